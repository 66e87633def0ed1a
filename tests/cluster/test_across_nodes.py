"""Any node serves any request (issue #15): a session created on node A is
read at once on B, a task posted to B (not the owner) runs on A, its ask is
answered through B, and a WebSocket connected to C sees every event of it,
in order, once: the same events the log holds."""

from __future__ import annotations

import pytest

from tests.cluster.harness import Cluster, Recorder, wait_task
from tests.tasks.helpers import all_events


@pytest.mark.gen_test(timeout=240)
async def test_create_on_a_answer_on_b_watch_on_c(cluster: Cluster) -> None:
    a, b, c = await cluster.start("a", "b", "c")
    rec = await Recorder.subscribe(c, after=0)
    try:
        session = await a.api.session(workspace=cluster.workspace("w1"))
        sid = session["id"]
        r = await b.api.get(f"/api/v1/sessions/{sid}")  # at once, on another node
        assert r.status == 200 and r.json["id"] == sid, r.body

        # A task created through B, which does not own the session: A runs it.
        task = await b.api.task(sid, "Which language?", provider="followup")
        waiting = await wait_task(c.api, sid, task["id"], "waiting")
        ask = waiting["pending_ask"]
        assert ask is not None and ask["kind"] == "followup", waiting

        r = await b.api.post(
            f"/api/v1/sessions/{sid}/tasks/{task['id']}/responses", {"ask_id": ask["id"], "approve": True, "text": "Go"}
        )
        assert r.status == 200, r.body
        done = await wait_task(a.api, sid, task["id"], "completed")
        assert done["result"] == "answered"

        # The same answer again, through C: the ask is answered already (409), as on one node.
        r = await c.api.post(
            f"/api/v1/sessions/{sid}/tasks/{task['id']}/responses", {"ask_id": ask["id"], "approve": True, "text": "Go"}
        )
        assert r.status == 409, r.body

        await rec.wait_for(lambda f: f["event"] == "task.completed" and f["task_id"] == task["id"], "completed on C")
        rec.assert_in_order_once()
        stored = await all_events(c.api, sid, task["id"])
        seen = [f for f in rec.events() if f.get("task_id") == task["id"]]
        assert seen == stored  # every event of the task, once, in order, as stored
        assert [f["event"] for f in seen if f["event"] in ("ask", "ask.answered")] == ["ask", "ask.answered"]
    finally:
        rec.close()
