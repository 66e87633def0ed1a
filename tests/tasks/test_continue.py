"""Continuing and steering a task with ``POST .../messages``, and reading its
stored conversation with ``GET .../messages``, through the API with the fake
OpenAI and Anthropic servers: the provider's next request must hold the
whole earlier conversation, with Roo's resumption wording."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.conftest import Api, make_config, wait_status
from tests.engine.fakes import FakeProviderServer, ReceivedRequest, Turn, call, fake_anthropic, fake_openai  # noqa: F401
from tests.tasks.helpers import all_events, follow, named, task_path

FINAL = {"completed", "failed", "cancelled", "interrupted"}


@pytest.fixture(params=["openai", "anthropic"])
def fake(request: pytest.FixtureRequest) -> FakeProviderServer:
    return request.getfixturevalue(f"fake_{request.param}")


@pytest.fixture
def config(tmp_path, fake) -> dict[str, Any]:
    cfg = make_config(tmp_path, engine={"max_concurrent_tasks": 2})
    cfg["providers"]["real"] = fake.profile(prices={"input": 1.0, "output": 2.0})
    return cfg


def done(result: str, **kw: Any) -> Turn:
    return Turn(text=f"Finishing: {result}.", tool_calls=[call("attempt_completion", result=result)], **kw)


def sent_text(request: ReceivedRequest) -> str:
    """Everything a request sent the model, as one string (either dialect)."""
    return json.dumps(request.body["messages"])


async def messages(api: Api, sid: str, tid: str, after: int = 0, limit: int = 200) -> dict[str, Any]:
    r = await api.get(task_path(sid, tid, f"/messages?after={after}&limit={limit}"))
    assert r.status == 200, r.body
    return r.json


async def post(api: Api, sid: str, tid: str, body: dict[str, Any], **kw: Any) -> Any:
    return await api.post(task_path(sid, tid, "/messages"), body, **kw)


async def finished(api: Api, sid: str, tid: str, nth: int = 1) -> dict[str, Any]:
    """The task once it has ended ``nth`` times (a continued task ends again)."""
    count = 0

    def ended(frame: dict[str, Any]) -> bool:
        nonlocal count
        if frame["event"] == "task.status" and frame["data"]["status"] in FINAL:
            count += 1
        return count == nth

    await follow(api, tid, ended)
    return (await api.get(task_path(sid, tid))).json


@pytest.mark.gen_test(timeout=60)
async def test_continue_a_completed_task_with_its_whole_conversation(api: Api, fake: FakeProviderServer) -> None:
    fake.script(
        Turn(text="Writing.", tool_calls=[call("write_to_file", path="a.txt", content="one\n")]),
        done("a.txt written"),
        done("b.txt too"),
    )
    s = await api.session(provider="real", auto_approve={"write": True})
    t = await api.task(s["id"], "write a.txt")
    first = await finished(api, s["id"], t["id"])
    assert first["status"] == "completed" and first["result"] == "a.txt written"
    before = await messages(api, s["id"], t["id"])
    assert [(m["role"], m["source"]) for m in before["items"]] == [
        ("user", "user"),
        ("assistant", "model"),
        ("tool", "tool"),
        ("user", "engine"),  # the environment details that end each user turn
        ("assistant", "model"),
    ]
    assert "write a.txt" in before["items"][0]["content"]
    assert before["items"][1]["tool_calls"][0]["name"] == "write_to_file"

    r = await post(api, s["id"], t["id"], {"text": "now write b.txt as well"})
    assert r.status == 202, r.body
    assert r.json["id"] == t["id"] and r.json["status"] in ("queued", "running")
    assert r.json["result"] is None and r.json["finished_at"] is None
    again = await finished(api, s["id"], t["id"], nth=2)
    assert again["status"] == "completed" and again["result"] == "b.txt too"

    # The third request held everything the first two did, then Roo's note
    # with the new instructions; the completion's open call got its result.
    third = sent_text(fake.requests[2])
    assert "write a.txt" in third and "Writing." in third and "a.txt written" in third
    assert "Task was interrupted before this tool call could be completed." in third
    assert "[TASK RESUMPTION] This task was interrupted" in third
    assert "assume the tool use was not successful" in third
    assert (
        "New instructions for task continuation:\\n<user_message>\\nnow write b.txt as well\\n</user_message>" in third
    )
    # Usage adds up over both runs; the events continue on the same task.
    assert again["usage"]["tokens_in"] == 3 * 10 and again["usage"]["tokens_out"] == 3 * 5
    events = await all_events(api, s["id"], t["id"])
    names = [e["event"] for e in events]
    assert names.count("task.completed") == 2 and names.count("task.created") == 1
    said = [e["data"] for e in events if e["event"] == "message.user"]
    assert said and said[0]["text"] == "now write b.txt as well" and said[0]["image_count"] == 0
    statuses = [e["data"]["status"] for e in events if e["event"] == "task.status"]
    assert statuses == ["running", "completed", "queued", "running", "completed"]
    after = await messages(api, s["id"], t["id"], after=before["next_after"])
    assert [m["role"] for m in after["items"]] == ["tool", "user", "user", "assistant"]
    assert after["items"][2]["content"].startswith("<environment_details>")
    assert after["items"][1]["source"] == "engine" and all(m["in_context"] for m in after["items"])


@pytest.mark.gen_test(timeout=60)
async def test_a_message_to_a_running_task_is_given_at_the_next_turn(api: Api, fake: FakeProviderServer) -> None:
    hold = asyncio.Event()
    fake.script(
        Turn(text="Working...", tool_calls=[call("update_todo_list", todos="[-] step")], drop_after=5, drop_when=hold),
        Turn(text="Working...", tool_calls=[call("update_todo_list", todos="[-] step")]),
        done("steered"),
    )
    s = await api.session(provider="real")
    t = await api.task(s["id"], "work a while")
    await follow(api, t["id"], named("message.delta"))  # streaming its first turn
    r = await post(api, s["id"], t["id"], {"text": "also mention the weather"})
    assert r.status == 202 and r.json["status"] == "running"
    hold.set()  # the stream breaks and is retried; the message waits for the turn after
    assert (await finished(api, s["id"], t["id"]))["status"] == "completed"
    events = await all_events(api, s["id"], t["id"])
    queued = [e for e in events if e["event"] == "message.queued"]
    assert queued and queued[0]["data"]["id"] == [e for e in events if e["event"] == "message.user"][0]["data"]["id"]
    # Not in the request of the turn it arrived during; in the next one.
    assert "also mention the weather" not in sent_text(fake.requests[1])
    assert "<user_message>\\nalso mention the weather\\n</user_message>" in sent_text(fake.requests[2])


@pytest.mark.gen_test(timeout=60)
async def test_waiting_task_refuses_messages_and_bad_input(api: Api, fake: FakeProviderServer) -> None:
    fake.script(Turn(tool_calls=[call("ask_followup_question", question="Which?", follow_up=["a", "b"])]), done("a"))
    s = await api.session(provider="real")
    t = await api.task(s["id"], "ask me")
    waiting = await wait_status(api, s["id"], t["id"], {"waiting"})
    r = await post(api, s["id"], t["id"], {"text": "hello?"})
    assert r.status == 409 and r.json["type"] == "urn:roo-daemon:problem:task-waiting"
    assert r.json["task_status"] == "waiting" and r.json["ask_id"] == waiting["pending_ask"]["id"]
    assert "/responses" in r.json["detail"]
    for body in ({}, {"text": "   "}, {"images": []}):
        r = await post(api, s["id"], t["id"], body)
        assert r.status == 422, (body, r.body)
    r = await post(api, s["id"], t["id"], {"text": "x", "extra": 1})
    assert r.status == 422
    r = await post(api, s["id"], t["id"], {"images": ["http://example.com/a.png"]})
    assert r.status == 422 and r.json["errors"][0]["pointer"].startswith("/body/images")
    ghost = "tsk_" + "0" * 32
    assert (await post(api, s["id"], ghost, {"text": "x"})).status == 404
    assert (await api.get(task_path(s["id"], ghost, "/messages"))).status == 404
    r = await api.post(
        task_path(s["id"], t["id"], "/responses"),
        {"ask_id": waiting["pending_ask"]["id"], "approve": True, "text": "a"},
    )
    assert r.status == 200
    assert (await finished(api, s["id"], t["id"]))["result"] == "a"
    await api.delete(f"/api/v1/sessions/{s['id']}")
    assert (await post(api, s["id"], t["id"], {"text": "x"})).status == 404
    assert (await api.get(task_path(s["id"], t["id"], "/messages"))).status == 404


@pytest.mark.gen_test(timeout=60)
async def test_two_messages_racing_on_a_finished_task_start_one_continuation(
    api: Api, fake: FakeProviderServer
) -> None:
    fake.script(done("first"), done("second"))
    s = await api.session(provider="real")
    t = await api.task(s["id"], "go")
    await finished(api, s["id"], t["id"])
    one, two = await asyncio.gather(
        post(api, s["id"], t["id"], {"text": "message one"}), post(api, s["id"], t["id"], {"text": "message two"})
    )
    assert (one.status, two.status) == (202, 202)
    assert (await finished(api, s["id"], t["id"], nth=2))["result"] == "second"
    assert len(fake.requests) == 2  # one continuation, one request
    text = sent_text(fake.requests[1])
    assert "message one" in text and "message two" in text
    events = await all_events(api, s["id"], t["id"])
    assert [e["data"]["status"] for e in events if e["event"] == "task.status"].count("queued") == 1
    assert len([e for e in events if e["event"] == "message.queued"]) == 1


@pytest.mark.gen_test(timeout=60)
async def test_idempotent_message_and_paging(api: Api, fake: FakeProviderServer) -> None:
    fake.script(done("first"), done("second"))
    s = await api.session(provider="real")
    t = await api.task(s["id"], "go")
    await finished(api, s["id"], t["id"])
    headers = {"Idempotency-Key": "msg-1"}
    r1 = await post(api, s["id"], t["id"], {"text": "again"}, headers=headers)
    r2 = await post(api, s["id"], t["id"], {"text": "again"}, headers=headers)
    assert r1.status == r2.status == 202 and r2.headers.get("Idempotent-Replayed") == "true"
    r3 = await post(api, s["id"], t["id"], {"text": "other"}, headers=headers)
    assert r3.status == 422
    await finished(api, s["id"], t["id"], nth=2)
    assert len([e for e in await all_events(api, s["id"], t["id"]) if e["event"] == "message.user"]) == 1
    whole = (await messages(api, s["id"], t["id"]))["items"]
    seen, after = [], 0
    while True:
        page = await messages(api, s["id"], t["id"], after=after, limit=2)
        seen += page["items"]
        after = page["next_after"]
        if not page["has_more"]:
            break
    assert seen == whole and [m["n"] for m in whole] == list(range(1, len(whole) + 1))
