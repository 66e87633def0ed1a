"""Asks: approving and rejecting tool calls, followup questions, request
limits, and the 409s for wrong, stale and late answers."""

from __future__ import annotations

import asyncio
import json
import os

import pytest

from tests.conftest import WsClient, wait_status
from tests.tasks.helpers import all_events, follow, named, settle, status_is, task_path

FEEDBACK = '{"status":"denied","feedback":'


async def answer(api, session_id: str, task_id: str, ask_id: str, approve: bool, text: str | None = None):
    body = {"ask_id": ask_id, "approve": approve}
    if text is not None:
        body["text"] = text
    return await api.post(task_path(session_id, task_id, "/responses"), body)


@pytest.mark.gen_test(timeout=20)
async def test_demo_approved_writes_the_file_and_completes(api):
    """The demo asks to write hello.txt; approving writes it and the task completes."""
    session = await api.session()
    task = await api.task(session["id"], "create hello.txt")
    waiting = await wait_status(api, session["id"], task["id"], {"waiting"})
    ask = waiting["pending_ask"]
    assert ask["kind"] == "tool" and ask["tool"] == "write_to_file"
    assert ask["args"] == {"path": "hello.txt", "content": "Hello from roo-daemon!\n"}
    assert ask["id"].startswith("ask_")
    assert not os.path.exists(os.path.join(session["workspace"], "hello.txt"))  # nothing before approval

    r = await answer(api, session["id"], task["id"], ask["id"], True)
    assert r.status == 200
    assert r.json["id"] == task["id"] and r.json["pending_ask"] is None
    assert r.json["status"] in ("running", "completed")

    done = await settle(api, session["id"], task["id"], "completed")
    assert done["result"] == "Created hello.txt with a greeting."
    assert done["error"] is None and done["finished_at"] is not None and done["started_at"] is not None
    with open(os.path.join(session["workspace"], "hello.txt")) as f:
        assert f.read() == "Hello from roo-daemon!\n"

    events = await all_events(api, session["id"], task["id"])
    names = [e["event"] for e in events]
    assert names[0] == "task.created"
    for name in ("tool.call", "ask", "ask.answered", "tool.result", "task.completed"):
        assert name in names, name
    assert names.index("ask") < names.index("ask.answered") < names.index("tool.result")
    answered = next(e for e in events if e["event"] == "ask.answered")["data"]
    assert answered == {"ask_id": ask["id"], "kind": "tool", "approve": True}
    result = next(e for e in events if e["event"] == "tool.result")["data"]
    assert result["tool"] == "write_to_file" and result["is_error"] is False
    assert json.loads(result["content"])["path"] == "hello.txt"  # Roo's file-write result
    statuses = [e["data"]["status"] for e in events if e["event"] == "task.status"]
    assert statuses == ["running", "waiting", "running", "completed"]
    completed = events[-1]
    assert completed["event"] == "task.completed"
    assert completed["data"] == {"status": "completed", "result": "Created hello.txt with a greeting."}


@pytest.mark.gen_test(timeout=20)
async def test_rejection_with_feedback_reaches_the_model_and_the_script_goes_on(api):
    """Rejecting with text: the tool result carries the feedback, no file is
    written, and the demo's second turn still completes the task."""
    session = await api.session()
    task = await api.task(session["id"], "create hello.txt")
    waiting = await wait_status(api, session["id"], task["id"], {"waiting"})
    r = await answer(api, session["id"], task["id"], waiting["pending_ask"]["id"], False, "Use goodbye.txt instead")
    assert r.status == 200

    done = await settle(api, session["id"], task["id"], "completed")
    assert done["result"] == "Created hello.txt with a greeting."
    assert not os.path.exists(os.path.join(session["workspace"], "hello.txt"))
    events = await all_events(api, session["id"], task["id"])
    result = next(e for e in events if e["event"] == "tool.result")["data"]
    assert result["is_error"] is True and result["tool"] == "write_to_file"
    assert result["content"] == FEEDBACK + '"Use goodbye.txt instead"}'
    answered = next(e for e in events if e["event"] == "ask.answered")["data"]
    assert answered["approve"] is False and answered["text"] == "Use goodbye.txt instead"
    # The second turn ran: a second assistant message, then completion.
    messages = [e["data"]["text"] for e in events if e["event"] == "message"]
    assert messages[-1] == "The file is written."


@pytest.mark.gen_test(timeout=20)
async def test_rejection_without_text_is_a_plain_denial(api):
    """Rejecting without text gives Roo's plain denial message."""
    session = await api.session()
    task = await api.task(session["id"])
    waiting = await wait_status(api, session["id"], task["id"], {"waiting"})
    r = await answer(api, session["id"], task["id"], waiting["pending_ask"]["id"], False)
    assert r.status == 200
    await settle(api, session["id"], task["id"], "completed")
    events = await all_events(api, session["id"], task["id"])
    result = next(e for e in events if e["event"] == "tool.result")["data"]
    assert result["content"] == '{"status":"denied","message":"The user denied this operation."}'


@pytest.mark.gen_test(timeout=20)
async def test_followup_question_is_answered_with_text(api):
    """A followup ask carries the question and suggestions; the answer text
    goes back to the model and the task completes."""
    session = await api.session(provider="followup")
    task = await api.task(session["id"], "which language?")
    waiting = await wait_status(api, session["id"], task["id"], {"waiting"})
    ask = waiting["pending_ask"]
    assert ask["kind"] == "followup"
    assert ask["question"] == "Which language?"
    assert ask["suggestions"] == ["Python", "Go"]

    r = await answer(api, session["id"], task["id"], ask["id"], True, "Python")
    assert r.status == 200
    done = await settle(api, session["id"], task["id"], "completed")
    assert done["result"] == "answered"
    events = await all_events(api, session["id"], task["id"])
    asked = next(e for e in events if e["event"] == "ask")["data"]
    assert asked["id"] == ask["id"] and asked["question"] == "Which language?"
    result = next(e for e in events if e["event"] == "tool.result")["data"]
    assert result["tool"] == "ask_followup_question"
    assert result["content"] == "<user_message>\nPython\n</user_message>"


@pytest.mark.gen_test(timeout=20)
async def test_wrong_ask_id_is_409_and_the_task_keeps_waiting(api):
    """An ask id that is not the pending one changes nothing."""
    session = await api.session()
    task = await api.task(session["id"])
    waiting = await wait_status(api, session["id"], task["id"], {"waiting"})
    r = await answer(api, session["id"], task["id"], "ask_0000000000000000", True)
    assert r.status == 409
    assert r.json["task_status"] == "waiting"
    again = await api.get(task_path(session["id"], task["id"]))
    assert again.json["status"] == "waiting"
    assert again.json["pending_ask"] == waiting["pending_ask"]
    events = await all_events(api, session["id"], task["id"])
    assert "ask.answered" not in [e["event"] for e in events]
    # The right id still works afterwards.
    r = await answer(api, session["id"], task["id"], waiting["pending_ask"]["id"], True)
    assert r.status == 200
    await settle(api, session["id"], task["id"], "completed")


@pytest.mark.gen_test(timeout=20)
async def test_answering_twice_is_409(api):
    """The second answer with the already used id is 409 and not applied."""
    session = await api.session(provider="followup")
    task = await api.task(session["id"])
    waiting = await wait_status(api, session["id"], task["id"], {"waiting"})
    ask_id = waiting["pending_ask"]["id"]
    first = await answer(api, session["id"], task["id"], ask_id, True, "Python")
    assert first.status == 200
    second = await answer(api, session["id"], task["id"], ask_id, True, "Go")
    assert second.status == 409
    assert second.json["task_status"] in ("running", "completed")
    await settle(api, session["id"], task["id"], "completed")
    events = await all_events(api, session["id"], task["id"])
    answered = [e["data"] for e in events if e["event"] == "ask.answered"]
    assert answered == [{"ask_id": ask_id, "kind": "followup", "approve": True, "text": "Python"}]


@pytest.mark.gen_test(timeout=20)
async def test_concurrent_answers_only_one_wins(api):
    """Two answers racing for one ask: exactly one is accepted."""
    session = await api.session(provider="followup")
    task = await api.task(session["id"])
    waiting = await wait_status(api, session["id"], task["id"], {"waiting"})
    ask_id = waiting["pending_ask"]["id"]
    results = await asyncio.gather(
        *(answer(api, session["id"], task["id"], ask_id, True, f"answer {i}") for i in range(4))
    )
    assert sorted(r.status for r in results) == [200, 409, 409, 409]
    await settle(api, session["id"], task["id"], "completed")
    events = await all_events(api, session["id"], task["id"])
    assert len([e for e in events if e["event"] == "ask.answered"]) == 1


@pytest.mark.gen_test(timeout=20)
async def test_answering_a_finished_task_is_409_with_its_status(api):
    """A completed task has no pending ask: 409 carrying ``task_status``."""
    session = await api.session(provider="instant")
    task = await api.task(session["id"])
    await settle(api, session["id"], task["id"], "completed")
    r = await answer(api, session["id"], task["id"], "ask_0123456789abcdef", True)
    assert r.status == 409
    assert r.json["task_status"] == "completed"
    assert r.json["type"] == "urn:roo-daemon:problem:conflict"


@pytest.mark.gen_test(timeout=20)
async def test_answering_a_running_task_is_409(api):
    """A running task without an ask: 409 with ``task_status: running``."""
    session = await api.session(provider="hang")
    task = await api.task(session["id"])
    await wait_status(api, session["id"], task["id"], {"running"})
    r = await answer(api, session["id"], task["id"], "ask_0123456789abcdef", True)
    assert r.status == 409 and r.json["task_status"] == "running"


@pytest.mark.gen_test(timeout=20)
async def test_bad_answer_bodies_are_422(api):
    """``ask_id`` and ``approve`` are required; unknown fields are refused."""
    session = await api.session()
    task = await api.task(session["id"])
    waiting = await wait_status(api, session["id"], task["id"], {"waiting"})
    path = task_path(session["id"], task["id"], "/responses")
    r = await api.post(path, {"approve": True})
    assert r.status == 422 and r.json["errors"][0]["pointer"] == "/body/ask_id"
    r = await api.post(path, {"ask_id": waiting["pending_ask"]["id"]})
    assert r.status == 422 and r.json["errors"][0]["pointer"] == "/body/approve"
    r = await api.post(path, {"ask_id": waiting["pending_ask"]["id"], "approve": "yes"})
    assert r.status == 422
    still = await api.get(task_path(session["id"], task["id"]))
    assert still.json["status"] == "waiting"


async def _limit_task(api):
    """A demo task allowed one request, with writes auto-approved: after the
    first turn it waits with ``limit_reached``."""
    session = await api.session(auto_approve={"write": True})
    task = await api.task(session["id"], "create hello.txt", limits={"max_requests": 1})
    assert task["limits"]["max_requests"] == 1
    waiting = await wait_status(api, session["id"], task["id"], {"waiting"})
    ask = waiting["pending_ask"]
    assert ask["kind"] == "limit_reached"
    assert "1 requests" in ask["message"]
    assert waiting["usage"]["tokens_in"] == 420  # exactly one turn ran
    with open(os.path.join(session["workspace"], "hello.txt")) as f:
        assert f.read() == "Hello from roo-daemon!\n"  # the first turn's write, auto-approved
    return session, task, ask


@pytest.mark.gen_test(timeout=20)
async def test_request_limit_approved_continues_to_completion(api):
    """Approving ``limit_reached`` allows more requests; the task completes."""
    session, task, ask = await _limit_task(api)
    r = await answer(api, session["id"], task["id"], ask["id"], True)
    assert r.status == 200
    done = await settle(api, session["id"], task["id"], "completed")
    assert done["result"] == "Created hello.txt with a greeting."
    assert done["usage"]["tokens_in"] == 930


@pytest.mark.gen_test(timeout=20)
async def test_request_limit_rejected_fails_the_task(api):
    """Rejecting ``limit_reached`` fails the task with code ``limit_reached``."""
    session, task, ask = await _limit_task(api)
    r = await answer(api, session["id"], task["id"], ask["id"], False)
    assert r.status == 200
    failed = await settle(api, session["id"], task["id"], "failed")
    assert failed["error"]["code"] == "limit_reached"
    assert failed["result"] is None and failed["pending_ask"] is None
    frames = await follow(api, task["id"], named("task.failed"))
    assert frames[-1]["data"]["error"]["code"] == "limit_reached"


@pytest.mark.gen_test(timeout=20)
async def test_ask_events_arrive_live_over_the_websocket(api, base_url):
    """A client following the task live sees the ask with the same id the REST task shows."""
    session = await api.session()
    ws = await WsClient.connect(base_url)
    try:
        await ws.send({"op": "subscribe", "id": "live", "session_id": session["id"]})
        assert (await ws.recv())["event"] == "subscribed"
        task = await api.task(session["id"])
        frames = await ws.recv_until(named("ask"))
        assert frames[0]["event"] == "task.created" and frames[0]["data"]["id"] == task["id"]
        ask = frames[-1]["data"]
        got = await api.get(task_path(session["id"], task["id"]))
        assert got.json["pending_ask"] == ask
        await answer(api, session["id"], task["id"], ask["id"], True)
        await ws.recv_until(status_is("completed"))
    finally:
        ws.close()


@pytest.mark.gen_test(timeout=20)
async def test_an_answer_while_the_ask_is_being_stored_waits_for_it(api, ctx, monkeypatch):
    """The task shows ``waiting`` with its ask as soon as it asks, while the
    ask's write is still on its way to the store. An answer in that window
    used to meet the store's compare-and-set on the old row and get 409
    "answered already" (seen as a flaky 409 by a fast generated client); it
    now waits for the ask's write, then applies."""
    release = asyncio.Event()
    real = ctx.bus.publish

    def slow_ask_write(name, data, **kwargs):  # publish returns a future its callers may add callbacks to
        if not (name == "task.status" and data.get("status") == "waiting"):
            return real(name, data, **kwargs)

        async def later():
            await release.wait()
            return await real(name, data, **kwargs)

        return asyncio.ensure_future(later())

    monkeypatch.setattr(ctx.bus, "publish", slow_ask_write)
    session = await api.session()
    task = await api.task(session["id"], "create hello.txt")
    while True:  # the task as a client sees it (no event says "waiting" yet: it is not stored)
        waiting = (await api.get(task_path(session["id"], task["id"]))).json
        if waiting["status"] == "waiting":
            break
        await asyncio.sleep(0.01)
    answering = asyncio.ensure_future(answer(api, session["id"], task["id"], waiting["pending_ask"]["id"], True))
    await asyncio.sleep(0.2)  # the answer is in before the ask is stored
    release.set()
    r = await answering
    assert r.status == 200, r.body
    done = await wait_status(api, session["id"], task["id"], {"completed"})
    assert done["result"] == "Created hello.txt with a greeting."
