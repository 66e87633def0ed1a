"""Failover with shared workspaces (issue #15): ``kill -9`` of the node that
owns two sessions, one with a task streaming and one with a task waiting
for an answer. Once its lease expires a surviving node takes the sessions
over: the streaming task resumes from its stored conversation and
completes, the waiting one is still waiting and is answered through another
node, and a WebSocket that stayed connected to a survivor saw every event
of both tasks once, in order, exactly as the log stores them.

No duration is asserted: each wait has a generous deadline (the lease is
3 s; a takeover comes within the lease plus a renewal tick)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cluster.harness import Cluster, Recorder, wait_task, wait_until
from tests.tasks.helpers import all_events, task_path


@pytest.mark.gen_test(timeout=300)
async def test_kill_9_of_the_owner_mid_stream_and_mid_wait(cluster: Cluster) -> None:
    a, b, c = await cluster.start("a", "b", "c")
    rec = await Recorder.subscribe(c, after=0)
    try:
        streaming = await a.api.session(workspace=cluster.workspace("streams"))
        asking = await a.api.session(workspace=cluster.workspace("asks"))
        stream_task = await a.api.task(streaming["id"], "Tell me a long story", provider="slow")
        ask_task = await a.api.task(asking["id"], "Which language?", provider="followup")

        waiting = await wait_task(b.api, asking["id"], ask_task["id"], "waiting")
        ask_id = waiting["pending_ask"]["id"]
        await rec.wait_for(
            lambda f: f["event"] == "message.delta" and f["task_id"] == stream_task["id"], "a delta of the stream on C"
        )
        a.kill9()  # mid-stream: the task is running on A, its turn half streamed

        # A survivor takes the sessions over and resumes the stream to its end.
        done = await wait_task(c.api, streaming["id"], stream_task["id"], "completed", timeout=90)
        assert done["result"] == "streamed"

        # The waiting task is still waiting, with the same ask, and answerable through B.
        still = await wait_task(b.api, asking["id"], ask_task["id"], "waiting")
        assert still["pending_ask"]["id"] == ask_id
        path = f"/api/v1/sessions/{asking['id']}/tasks/{ask_task['id']}/responses"
        r = await b.api.post(path, {"ask_id": ask_id, "approve": True, "text": "Python"})
        assert r.status == 200, r.body
        answered = await wait_task(c.api, asking["id"], ask_task["id"], "completed")
        assert answered["result"] == "answered"

        # The WebSocket on C stayed open through it all: nothing lost, nothing twice.
        await rec.wait_for(lambda f: f["event"] == "task.completed" and f["task_id"] == ask_task["id"], "answered on C")
        assert not rec.closed
        rec.assert_in_order_once()
        for session, task in ((streaming, stream_task), (asking, ask_task)):
            stored = await all_events(b.api, session["id"], task["id"])
            assert [f for f in rec.events() if f.get("task_id") == task["id"]] == stored
        statuses = [
            f["data"]["status"]
            for f in rec.events()
            if f["event"] == "task.status" and f["task_id"] == stream_task["id"]
        ]
        assert statuses.count("running") >= 2, statuses  # it ran on A, then again on its new owner
    finally:
        rec.close()


@pytest.mark.gen_test(timeout=240)
async def test_a_new_task_for_a_dead_nodes_session_runs_on_its_new_owner(cluster: Cluster) -> None:
    """After the takeover the session is served as before: a task posted
    through any node runs (on the new owner, in the same shared workspace),
    and the checkpoints the dead node made are the new owner's to diff and
    restore ("undo" survives failover: checkpoints.dir defaults to the
    shared storage beside the managed workspaces)."""
    a, b, _ = await cluster.start("a", "b", "c")
    workspace = Path(cluster.workspace("w"))
    session = await a.api.session(workspace=str(workspace), auto_approve={"write": True})
    first = await a.api.task(session["id"], provider="writes")
    assert (await wait_task(b.api, session["id"], first["id"], "completed"))["result"] == "wrote"
    assert (workspace / "notes.txt").read_text() == "written on A\n"
    a.kill9()

    async def created() -> dict | None:
        r = await b.api.post(f"/api/v1/sessions/{session['id']}/tasks", {"prompt": "again", "provider": "instant"})
        return r.json if r.status == 202 else None  # 503 owner-unavailable until the lease expires and one takes over

    second = await wait_until(created, "a task accepted for the dead node's session", timeout=90)
    done = await wait_task(b.api, session["id"], second["id"], "completed")
    assert done["result"] == "ok"

    # A's checkpoints of the first task: listed, diffed and restored by the new owner.
    ckpts = await b.api.get(task_path(session["id"], first["id"], "/checkpoints"))
    assert ckpts.status == 200, ckpts.body
    start, wrote = ckpts.json["items"]
    assert wrote["files_changed"] == [{"path": "notes.txt", "status": "added"}], wrote
    diff = await b.api.get(task_path(session["id"], first["id"], "/diff"))
    assert diff.status == 200, diff.body
    assert "+written on A" in diff.body.decode(), diff.body
    restored = await b.api.post(
        task_path(session["id"], first["id"], f"/checkpoints/{start['id']}/restore"), {"scope": "files"}
    )
    assert restored.status == 200, restored.body
    assert restored.json["files_changed"] == [{"path": "notes.txt", "status": "deleted"}], restored.json
    assert not (workspace / "notes.txt").exists()
