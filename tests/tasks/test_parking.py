"""A waiting task holds no concurrency slot (it is parked, and takes one
again when answered), and asks expire per ``ask_timeouts``: a followup takes
its first suggestion, anything else is denied with a message the model sees."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Api, make_config, wait_status
from tests.tasks.helpers import all_events, follow, named, settle, task_path


@pytest.fixture
def config(tmp_path) -> dict[str, Any]:
    cfg = make_config(tmp_path, engine={"max_concurrent_tasks": 1})
    cfg["providers"]["write"] = {
        "kind": "scripted",
        "turns": [
            {"tool_calls": [{"name": "write_to_file", "args": {"path": "a.txt", "content": "a"}}]},
            {"tool_calls": [{"name": "attempt_completion", "args": {"result": "written or not"}}]},
        ],
    }
    return cfg


async def answer(api: Api, task: dict[str, Any], **body: Any) -> Any:
    ask = task["pending_ask"]["id"]
    return await api.post(task_path(task["session_id"], task["id"], "/responses"), {"ask_id": ask, **body})


@pytest.mark.gen_test(timeout=30)
async def test_a_waiting_task_gives_its_slot_back(api: Api) -> None:
    s = await api.session(provider="followup")
    waiting = await api.task(s["id"], "ask me")
    waiting = await wait_status(api, s["id"], waiting["id"], {"waiting"})
    # The only slot is free: another task runs to its end meanwhile.
    other = await api.task(s["id"], "quick", provider="instant")
    assert (await settle(api, s["id"], other["id"], "completed"))["result"] == "ok"
    # With the slot taken by a task that hangs, an answer queues for it.
    hang = await api.task(s["id"], "slow", provider="hang")
    await follow(api, hang["id"], named("message.delta"))
    r = await answer(api, waiting, approve=True, text="Python")
    assert r.status == 200 and r.json["status"] == "queued" and r.json["pending_ask"] is None
    assert (await answer(api, waiting, approve=True, text="again")).status == 409
    await api.delete(task_path(s["id"], hang["id"]))  # frees the slot: the answered task goes on
    done = await settle(api, s["id"], waiting["id"], "completed")
    assert done["result"] == "answered"
    statuses = [
        e["data"]["status"] for e in await all_events(api, s["id"], waiting["id"]) if e["event"] == "task.status"
    ]
    assert statuses == ["running", "waiting", "queued", "running", "completed"]


@pytest.mark.gen_test(timeout=30)
async def test_a_followup_ask_expires_to_its_first_suggestion(api: Api) -> None:
    s = await api.session(provider="followup", ask_timeouts={"followup": 1})
    t = await api.task(s["id"], "ask me")
    waiting = await wait_status(api, s["id"], t["id"], {"waiting"})
    assert waiting["pending_ask"]["expires_at"] > waiting["pending_ask"]["created_at"]
    done = await settle(api, s["id"], t["id"], "completed")
    answered = [e["data"] for e in await all_events(api, s["id"], t["id"]) if e["event"] == "ask.answered"]
    assert answered == [
        {"ask_id": waiting["pending_ask"]["id"], "kind": "followup", "approve": True, "text": "Python", "expired": True}
    ]
    assert done["result"] == "answered"
    tool = [m for m in (await api.get(task_path(s["id"], t["id"], "/messages"))).json["items"] if m["role"] == "tool"]
    assert tool[0]["content"] == "<user_message>\nPython\n</user_message>"


@pytest.mark.gen_test(timeout=30)
async def test_other_asks_expire_denied_and_the_task_setting_wins(api: Api) -> None:
    s = await api.session(provider="write", ask_timeouts={"tool": 3600})
    t = await api.task(s["id"], "write it", ask_timeouts={"tool": 1})
    assert t["ask_timeouts"] == {"tool": 1}
    waiting = await wait_status(api, s["id"], t["id"], {"waiting"})
    assert waiting["pending_ask"]["kind"] == "tool" and waiting["pending_ask"]["call_id"]
    await settle(api, s["id"], t["id"], "completed")
    events = await all_events(api, s["id"], t["id"])
    answered = [e["data"] for e in events if e["event"] == "ask.answered"][0]
    assert answered["approve"] is False and answered["expired"] is True
    result = [e["data"] for e in events if e["event"] == "tool.result"][0]
    assert result["is_error"] and "the ask expired" in result["content"] and "denied" in result["content"]


@pytest.mark.gen_test(timeout=30)
async def test_ask_timeouts_are_validated(api: Api) -> None:
    for bad in ({"never": 5}, {"tool": 0}, {"tool": "5"}):
        r = await api.post("/api/v1/sessions", {"ask_timeouts": bad})
        assert r.status == 422, bad
    s = await api.session()
    r = await api.post(f"/api/v1/sessions/{s['id']}/tasks", {"prompt": "x", "ask_timeouts": {"followup": -1}})
    assert r.status == 422
