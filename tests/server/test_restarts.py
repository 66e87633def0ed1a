"""Restarts lose nothing: a real daemon process, killed with SIGKILL (or
stopped with SIGTERM) while a task waits or streams, then started again on
the same data dir. The fake OpenAI server runs in the test, so every request
the daemon sends the model is checked: after a restart the model gets the
whole earlier conversation, never a task started over."""

from __future__ import annotations

import asyncio
import json
import signal
from typing import Any

import pytest

from tests.conftest import Api, wait_status
from tests.engine.fakes import FakeOpenAI, Turn, call, fake_openai  # noqa: F401
from tests.server.conftest import DaemonFactory
from tests.tasks.helpers import all_events, follow, named, task_path

FINAL = {"completed", "failed", "cancelled", "interrupted"}


@pytest.fixture
def fake(request: pytest.FixtureRequest) -> FakeOpenAI:
    return request.getfixturevalue("fake_openai")


def providers(fake: FakeOpenAI) -> dict[str, Any]:
    return {"providers": {"real": fake.profile(), "followup": {"kind": "scripted", "turns": FOLLOWUP}}}


FOLLOWUP = [
    {"tool_calls": [{"name": "ask_followup_question", "args": {"question": "Which?", "follow_up": ["Go", "Rust"]}}]},
    {"tool_calls": [{"name": "attempt_completion", "args": {"result": "answered"}}]},
]


def sent(fake: FakeOpenAI, i: int) -> str:
    return json.dumps(fake.requests[i].body["messages"])


async def ended(api: Api, sid: str, tid: str, nth: int = 1) -> dict[str, Any]:
    count = 0

    def final(frame: dict[str, Any]) -> bool:
        nonlocal count
        count += frame["event"] == "task.status" and frame["data"]["status"] in FINAL
        return count == nth

    await follow(api, tid, final)
    return (await api.get(task_path(sid, tid))).json


async def up(factory: DaemonFactory, fake: FakeOpenAI, **sections: Any) -> tuple[Any, Api]:
    """A (re)started daemon on the test's data dir with the fake's profile, and its client."""
    d = factory(**providers(fake), **sections)
    await d.astart()
    return d, Api(d.base_url)


async def kill(d: Any) -> None:
    d.send_signal(signal.SIGKILL)
    assert await d.await_exit() == -signal.SIGKILL


@pytest.mark.gen_test(timeout=90)
async def test_kill_9_while_waiting_then_answer_after_the_restart(
    daemon_factory: DaemonFactory, fake: FakeOpenAI
) -> None:
    fake.script(
        Turn(text="I will write it.", tool_calls=[call("write_to_file", path="a.txt", content="hello\n")]),
        Turn(tool_calls=[call("attempt_completion", result="a.txt is there")]),
    )
    d, api = await up(daemon_factory, fake)
    s = await api.session(provider="real")
    t = await api.task(s["id"], "create a.txt")
    waiting = await wait_status(api, s["id"], t["id"], {"waiting"})
    await kill(d)

    d2, api = await up(daemon_factory, fake)
    again = (await api.get(task_path(s["id"], t["id"]))).json
    assert again["status"] == "waiting" and again["pending_ask"] == waiting["pending_ask"]
    assert d2.wait_for_log("recovered tasks from the last run")["waiting"] == 1
    r = await api.post(
        task_path(s["id"], t["id"], "/responses"), {"ask_id": waiting["pending_ask"]["id"], "approve": True}
    )
    assert r.status == 200, r.body
    done = await ended(api, s["id"], t["id"])
    assert done["status"] == "completed" and done["result"] == "a.txt is there"
    with open(f"{s['workspace']}/a.txt") as f:
        assert f.read() == "hello\n"
    # Two requests in all: the task went on, it did not start over; the
    # second holds the prompt, the first answer and the tool's result.
    assert len(fake.requests) == 2
    second = sent(fake, 1)
    assert "create a.txt" in second and "I will write it." in second and "a.txt" in second
    # The tool's result, then (Roo's getEnvironmentDetails on every turn) the environment details.
    last, before_last = fake.requests[1].body["messages"][-1], fake.requests[1].body["messages"][-2]
    assert before_last["role"] == "tool" and last["role"] == "user", (before_last, last)
    assert "<environment_details>" in str(last["content"])
    assert "[TASK RESUMPTION]" not in second


@pytest.mark.gen_test(timeout=90)
async def test_kill_9_while_streaming_resumes_from_the_stored_conversation(
    daemon_factory: DaemonFactory, fake: FakeOpenAI
) -> None:
    fake.script(
        Turn(tool_calls=[call("update_todo_list", todos="[x] one")]),
        Turn(text="Halfway through a long answer", stall_after=4),
        Turn(tool_calls=[call("attempt_completion", result="resumed and done")]),
    )
    d, api = await up(daemon_factory, fake)
    s = await api.session(provider="real")
    t = await api.task(s["id"], "a long job")
    await fake.wait_requests(2, timeout=30)
    await follow(api, t["id"], named("message.delta"))
    await kill(d)

    d2, api = await up(daemon_factory, fake)
    assert d2.wait_for_log("recovered tasks from the last run")["resumed"] == 1
    done = await ended(api, s["id"], t["id"])
    assert done["status"] == "completed" and done["result"] == "resumed and done"
    third = sent(fake, 2)
    # The first turn and its result are there; the broken turn is not (it
    # was never stored half-way); Roo's note says what happened.
    assert "a long job" in third and "update_todo_list" in third and "Todo list updated successfully." in third
    assert "Halfway through" not in third
    assert "[TASK RESUMPTION] This task was interrupted just now." in third
    statuses = [e["data"]["status"] for e in await all_events(api, s["id"], t["id"]) if e["event"] == "task.status"]
    assert statuses == ["running", "queued", "running", "completed"]


@pytest.mark.gen_test(timeout=90)
async def test_sigterm_without_resume_stays_interrupted_until_continued(
    daemon_factory: DaemonFactory, fake: FakeOpenAI
) -> None:
    fake.script(
        Turn(text="Thinking for a long time", stall_after=3),
        Turn(tool_calls=[call("attempt_completion", result="continued")]),
    )
    off = {"engine": {"resume_interrupted": False}}
    d, api = await up(daemon_factory, fake, **off)
    s = await api.session(provider="real")
    t = await api.task(s["id"], "think")
    await follow(api, t["id"], named("message.delta"))
    d.send_signal(signal.SIGTERM)
    assert await d.await_exit() == 0

    d2, api = await up(daemon_factory, fake, **off)
    assert (await api.get(task_path(s["id"], t["id"]))).json["status"] == "interrupted"
    r = await api.post(task_path(s["id"], t["id"], "/messages"), {"text": "please go on"})
    assert r.status == 202, r.body
    assert (await ended(api, s["id"], t["id"], nth=2))["result"] == "continued"
    second = sent(fake, 1)
    assert "think" in second and "[TASK RESUMPTION]" in second and "please go on" in second


@pytest.mark.gen_test(timeout=90)
async def test_expiry_survives_a_restart_and_racing_answers_apply_once(
    daemon_factory: DaemonFactory, fake: FakeOpenAI
) -> None:
    d, api = await up(daemon_factory, fake)
    s = await api.session(provider="followup")
    expiring = await api.task(s["id"], "ask, then expire", ask_timeouts={"followup": 2})
    racing = await api.task(s["id"], "ask, then get two answers")
    expiring = await wait_status(api, s["id"], expiring["id"], {"waiting"})
    racing = await wait_status(api, s["id"], racing["id"], {"waiting"})
    await kill(d)
    await asyncio.sleep(2)  # the deadline passes while the daemon is down: it fires at the next start

    d2, api = await up(daemon_factory, fake)
    done = await ended(api, s["id"], expiring["id"])
    assert done["status"] == "completed"
    answered = [e["data"] for e in await all_events(api, s["id"], expiring["id"]) if e["event"] == "ask.answered"]
    assert answered and answered[0]["expired"] is True and answered[0]["text"] == "Go"

    body = {"ask_id": racing["pending_ask"]["id"], "approve": True, "text": "Rust"}
    path = task_path(s["id"], racing["id"], "/responses")
    results = await asyncio.gather(*(api.post(path, body) for _ in range(3)))
    assert sorted(r.status for r in results) == [200, 409, 409]
    assert (await ended(api, s["id"], racing["id"]))["result"] == "answered"
    answered = [e for e in await all_events(api, s["id"], racing["id"]) if e["event"] == "ask.answered"]
    assert len(answered) == 1
