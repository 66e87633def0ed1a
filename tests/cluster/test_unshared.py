"""Without shared storage (``workspaces.shared: false``) a dead node's
sessions wait for it (issue #15): a mutation for one is answered 503
``owner-unavailable`` naming the node, nothing is lost or done, reads go on
through the survivors, and the node's restart (same node id) brings its
sessions back: the waiting task is answerable and completes, the
interrupted stream resumes and completes."""

from __future__ import annotations

import pytest

from tests.cluster.harness import Cluster, Recorder, task_state, wait_task


@pytest.mark.gen_test(timeout=300)
async def test_a_dead_nodes_sessions_wait_for_it(unshared_cluster: Cluster) -> None:
    cluster = unshared_cluster
    a, b = await cluster.start("a", "b")
    asking = await a.api.session(workspace=cluster.workspace("asks", node="a"))
    streaming = await a.api.session(workspace=cluster.workspace("streams", node="a"))
    ask_task = await a.api.task(asking["id"], "Which language?", provider="followup")
    stream_task = await a.api.task(streaming["id"], "Tell me a long story", provider="slow")
    ask_id = (await wait_task(b.api, asking["id"], ask_task["id"], "waiting"))["pending_ask"]["id"]
    rec = await Recorder.subscribe(b, after=0, task_id=stream_task["id"])
    try:
        await rec.wait_for(lambda f: f["event"] == "message.delta", "a delta of the stream on B")
        a.kill9()

        # The first request may wait for a claim (A's lease has not expired
        # yet) up to the hand-off timeout; either way nothing runs it.
        path = f"/api/v1/sessions/{asking['id']}/tasks/{ask_task['id']}/responses"
        r = await b.api.post(path, {"ask_id": ask_id, "approve": True, "text": "Go"})
        assert r.status == 503 and r.json["type"].endswith("owner-unavailable"), r.body
        assert "'a'" in r.json["detail"] and "nothing was done" in r.json["detail"], r.json
        assert r.headers.get("Retry-After"), r.headers

        # Nothing was done or lost: the task still waits with the same ask,
        # and, past A's lease, B has not taken A's sessions (no shared storage).
        still = await task_state(b.api, asking["id"], ask_task["id"])
        assert still["status"] == "waiting" and still["pending_ask"]["id"] == ask_id
        r = await b.api.post(f"/api/v1/sessions/{streaming['id']}/tasks", {"prompt": "more", "provider": "instant"})
        assert r.status == 503 and r.json["type"].endswith("owner-unavailable"), r.body
        assert (await task_state(b.api, streaming["id"], stream_task["id"]))["status"] == "running"
        # The session's modes come from its workspace's .roomodes, on A's disk: A reads them.
        r = await b.api.get(f"/api/v1/modes?session_id={asking['id']}")
        assert r.status == 503 and r.json["type"].endswith("owner-unavailable"), r.body

        # The node comes back (same id, same data dir): its sessions are its own again.
        a2 = await cluster.restart("a")
        assert (await b.api.get(f"/api/v1/modes?session_id={asking['id']}")).status == 200
        r = await b.api.post(path, {"ask_id": ask_id, "approve": True, "text": "Go"})
        assert r.status == 200, r.body
        assert (await wait_task(a2.api, asking["id"], ask_task["id"], "completed"))["result"] == "answered"
        done = await wait_task(b.api, streaming["id"], stream_task["id"], "completed", timeout=90)
        assert done["result"] == "streamed"
        await rec.wait_for(lambda f: f["event"] == "task.completed", "the resumed stream's end on B")
        rec.assert_in_order_once()
    finally:
        rec.close()
