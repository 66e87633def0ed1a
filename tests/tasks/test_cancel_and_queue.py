"""Cancellation of queued, running and waiting tasks, and the concurrency
cap (``engine.max_concurrent_tasks: 1`` here)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

from tests.conftest import WsClient, make_config, wait_status
from tests.tasks.helpers import all_events, follow, named, settle, status_is, task_path

# The contract: a cancelled task is ``cancelled`` "within a second". Measured
# from sending the DELETE to the final status event on a socket subscribed
# beforehand, so the bound covers the whole cancel and nothing else (no
# connect, no replay). That path is a loopback request, a CancelledError, one
# store write and a frame: milliseconds, even on a loaded machine.
CANCEL_BOUND = 1.0
WAIT = 10.0  # a cancel that never comes fails here instead of hanging the test


@pytest.fixture
def config(tmp_path) -> dict[str, Any]:
    return make_config(tmp_path, engine={"max_concurrent_tasks": 1})


async def cancel(api, session_id: str, task_id: str) -> tuple[Any, dict[str, Any]]:
    """DELETE the task and wait for its ``task.cancelled``, bounded by
    ``CANCEL_BOUND``; returns the 202 and the task as fetched afterwards."""
    ws = await WsClient.connect(api.base_url)
    try:
        stored = await all_events(api, session_id, task_id)
        await ws.send({"op": "subscribe", "id": "cancel", "task_id": task_id, "after": stored[-1]["seq"]})
        assert (await ws.recv())["event"] == "subscribed"
        loop = asyncio.get_running_loop()
        sent = loop.time()
        r = await api.delete(task_path(session_id, task_id))
        assert r.status == 202, r.body
        frames = await asyncio.wait_for(ws.recv_until(named("task.cancelled")), WAIT)
        took = loop.time() - sent
    finally:
        ws.close()
    assert took < CANCEL_BOUND, f"cancelled {took:.2f} s after the DELETE was sent"
    assert frames[-1]["data"]["status"] == "cancelled"
    assert frames[-1]["data"]["error"]["code"] == "cancelled"
    got = await api.get(task_path(session_id, task_id))
    assert got.json["status"] == "cancelled"
    return r, got.json


@pytest.mark.gen_test(timeout=20)
async def test_cancel_running_task(api):
    """DELETE on a running task: 202, then ``cancelled`` with a ``task.cancelled`` event."""
    session = await api.session(provider="hang")
    task = await api.task(session["id"])
    await follow(api, task["id"], named("message.delta"))  # it is streaming
    r, got = await cancel(api, session["id"], task["id"])
    assert r.json["status"] in ("running", "cancelled")
    assert got["error"] == {"code": "cancelled", "message": "cancelled by the client"}
    assert got["finished_at"] is not None and got["pending_ask"] is None


@pytest.mark.gen_test(timeout=20)
async def test_cancel_waiting_task(api):
    """DELETE on a task waiting for approval: cancelled, ask dropped, nothing written."""
    session = await api.session()
    task = await api.task(session["id"])
    waiting = await wait_status(api, session["id"], task["id"], {"waiting"})
    r, got = await cancel(api, session["id"], task["id"])
    assert r.json["status"] in ("waiting", "cancelled")
    assert got["pending_ask"] is None
    assert not os.path.exists(os.path.join(session["workspace"], "hello.txt"))
    # The old ask can no longer be answered.
    late = await api.post(
        task_path(session["id"], task["id"], "/responses"), {"ask_id": waiting["pending_ask"]["id"], "approve": True}
    )
    assert late.status == 409 and late.json["task_status"] == "cancelled"


@pytest.mark.gen_test(timeout=20)
async def test_cancel_queued_task_never_starts_it(api):
    """With the only slot taken, a second task stays queued; DELETE cancels it
    at once and it never runs."""
    session = await api.session(provider="hang")
    blocker = await api.task(session["id"], "occupy the slot")
    await wait_status(api, session["id"], blocker["id"], {"running"})
    queued = await api.task(session["id"], "wait your turn", provider="instant")
    r = await api.get(task_path(session["id"], queued["id"]))
    assert r.json["status"] == "queued"

    r, got = await cancel(api, session["id"], queued["id"])
    assert r.json["status"] == "cancelled"  # a queued task has nothing to stop
    assert got["started_at"] is None and got["result"] is None
    events = await all_events(api, session["id"], queued["id"])
    assert [e["event"] for e in events] == ["task.created", "task.status", "task.cancelled"]
    assert events[1]["data"] == {"status": "cancelled", "previous": "queued"}

    # Freeing the slot does not resurrect it.
    await cancel(api, session["id"], blocker["id"])
    follower = await api.task(session["id"], "after both", provider="instant")
    await settle(api, session["id"], follower["id"], "completed")
    r = await api.get(task_path(session["id"], queued["id"]))
    assert r.json["status"] == "cancelled"


@pytest.mark.gen_test(timeout=20)
async def test_cancel_finished_task_is_409(api):
    """DELETE on a completed or cancelled task is 409 with ``task_status``."""
    session = await api.session(provider="instant")
    task = await api.task(session["id"])
    await settle(api, session["id"], task["id"], "completed")
    r = await api.delete(task_path(session["id"], task["id"]))
    assert r.status == 409
    assert r.json["task_status"] == "completed"
    assert r.json["type"] == "urn:roo-daemon:problem:conflict"

    hung = await api.task(session["id"], provider="hang")
    await wait_status(api, session["id"], hung["id"], {"running"})
    await cancel(api, session["id"], hung["id"])
    r = await api.delete(task_path(session["id"], hung["id"]))
    assert r.status == 409 and r.json["task_status"] == "cancelled"


@pytest.mark.gen_test(timeout=20)
async def test_concurrency_cap_queues_until_the_slot_frees(api):
    """Cap 1: a second task stays queued while the first runs, and starts
    only after the first reached its final status."""
    session = await api.session(provider="hang")
    first = await api.task(session["id"], "first")
    await follow(api, first["id"], named("message.delta"))
    second = await api.task(session["id"], "second", provider="instant")
    # Give the runner every chance to start it (it would be scheduled at
    # submit): a WebSocket replay of its events and a listing come first.
    await follow(api, second["id"], named("task.created"))
    await api.get(f"/api/v1/sessions/{session['id']}/tasks")
    r = await api.get(task_path(session["id"], second["id"]))
    assert r.json["status"] == "queued" and r.json["started_at"] is None
    listed = await api.get(f"/api/v1/sessions/{session['id']}/tasks?status=queued")
    assert [t["id"] for t in listed.json["items"]] == [second["id"]]

    assert (await api.delete(task_path(session["id"], first["id"]))).status == 202
    done = await settle(api, session["id"], second["id"], "completed")
    assert done["result"] == "ok"

    first_events = await all_events(api, session["id"], first["id"])
    second_events = await all_events(api, session["id"], second["id"])
    first_end = next(e["seq"] for e in first_events if e["event"] == "task.cancelled")
    second_start = next(e["seq"] for e in second_events if status_is("running")(e))
    assert second_start > first_end


@pytest.mark.gen_test(timeout=20)
async def test_queue_is_first_in_first_out(api):
    """Queued tasks start in the order they were created."""
    session = await api.session(provider="hang")
    blocker = await api.task(session["id"])
    await wait_status(api, session["id"], blocker["id"], {"running"})
    queued = [await api.task(session["id"], f"q{i}", provider="instant") for i in range(3)]
    assert (await api.delete(task_path(session["id"], blocker["id"]))).status == 202
    starts = []
    for t in queued:
        await settle(api, session["id"], t["id"], "completed")
        events = await all_events(api, session["id"], t["id"])
        starts.append(next(e["seq"] for e in events if status_is("running")(e)))
    assert starts == sorted(starts)


async def a_started_task_that_has_not_run_yet(api: Any, ctx: Any) -> tuple[dict, Any]:
    """A second task given a slot (the cap raised) whose worker exists but
    has not taken its first step: the window between ``_start`` and the
    loop's next turn, where a cancel or a shutdown can land (a SIGTERM right
    after a start that recovered queued tasks, a DELETE handled in the same
    turn as a slot freeing)."""
    session = await api.session(provider="hang")
    blocker = await api.task(session["id"], "occupy the slot")
    await wait_status(api, session["id"], blocker["id"], {"running"})
    queued = await api.task(session["id"], "wait your turn", provider="instant")
    run = ctx.runner.runs[queued["id"]]
    ctx.runner.max_concurrent = 2
    ctx.runner._pump()  # no await since: its worker has not run
    assert run.worker is not None and not run.worker.done()
    return queued, run


@pytest.mark.gen_test(timeout=20)
async def test_a_task_cancelled_before_its_worker_first_ran_is_cancelled(api, ctx):
    """Cancelling a worker before its first step throws into a coroutine that
    never entered its try: without care, nothing finishes the task, which
    stays ``queued`` and live for ever and holds its slot."""
    queued, run = await a_started_task_that_has_not_run_yet(api, ctx)
    await ctx.runner.cancel(run)
    assert run.done.is_set()
    got = await api.get(task_path(queued["session_id"], queued["id"]))
    assert got.json["status"] == "cancelled" and got.json["error"]["code"] == "cancelled"
    assert queued["id"] not in ctx.runner.runs


@pytest.mark.gen_test(timeout=20)
async def test_a_shutdown_before_a_started_worker_first_ran_leaves_the_task_queued(api, ctx):
    """A shutdown right after a start must not wait its whole timeout for a
    worker that was cancelled before it ran; the task stays ``queued`` in the
    store, for the next start."""
    queued, run = await a_started_task_that_has_not_run_yet(api, ctx)
    await ctx.runner.shutdown(timeout=30)
    assert run.done.is_set()
    got = await api.get(task_path(queued["session_id"], queued["id"]))
    assert got.json["status"] == "queued"
