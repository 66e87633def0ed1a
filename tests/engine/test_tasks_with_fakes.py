"""Whole tasks, from prompt to final status, through the daemon with the
fake OpenAI and Anthropic servers: files created and edited, a command run,
approvals given and refused, a followup answered, cancellation mid-stream
and mid-command, path escapes, mode rules, the mistake limit, a subtask,
and usage summed."""

from __future__ import annotations

import os
from typing import Any

import pytest

from tests.conftest import Api, WsClient, make_config, wait_status
from tests.engine.fakes import FakeProviderServer, Turn, call, fake_anthropic, fake_openai  # noqa: F401
from tests.procs import running, unique_seconds, wait_running
from tests.tasks.helpers import all_events

FINAL = {"completed", "failed", "cancelled", "interrupted"}
DONE = Turn(text="All done.", tool_calls=[call("attempt_completion", result="finished")])


@pytest.fixture(params=["openai", "anthropic"])
def fake(request: pytest.FixtureRequest) -> FakeProviderServer:
    return request.getfixturevalue(f"fake_{request.param}")


@pytest.fixture
def config(tmp_path, fake) -> dict[str, Any]:
    cfg = make_config(tmp_path, engine={"max_concurrent_tasks": 1})
    cfg["providers"]["real"] = fake.profile(prices={"input": 1.0, "output": 2.0})
    return cfg


async def start(api: Api, prompt: str = "do the work", **session: Any) -> tuple[dict, dict]:
    s = await api.session(provider="real", **session)
    return s, await api.task(s["id"], prompt)


async def until(api: Api, s: dict, t: dict, *statuses: str) -> dict:
    return await wait_status(api, s["id"], t["id"], set(statuses) or FINAL)


async def nth_wait(api: Api, s: dict, t: dict, n: int) -> dict:
    """The task at its ``n``-th ``waiting`` (a replay would also show the earlier ones)."""
    ws = await WsClient.connect(api.base_url)
    try:
        await ws.send({"op": "subscribe", "id": "waits", "task_id": t["id"], "after": 0})
        seen = 0

        def nth(frame: dict) -> bool:
            nonlocal seen
            if frame.get("event") == "task.status" and frame["data"]["status"] == "waiting":
                seen += 1
            return seen == n

        await ws.recv_until(nth)
    finally:
        ws.close()
    return (await api.get(f"/api/v1/sessions/{s['id']}/tasks/{t['id']}")).json


async def answer(api: Api, task: dict, approve: bool = True, text: str | None = None) -> None:
    body: dict[str, Any] = {"ask_id": task["pending_ask"]["id"], "approve": approve}
    if text is not None:
        body["text"] = text
    r = await api.post(f"/api/v1/sessions/{task['session_id']}/tasks/{task['id']}/responses", body)
    assert r.status == 200, r.body


def results(events: list[dict]) -> list[dict]:
    return [e["data"] for e in events if e["event"] == "tool.result"]


@pytest.mark.gen_test(timeout=30)
async def test_create_edit_and_run_a_command_to_completion(api: Api, fake: FakeProviderServer) -> None:
    fake.script(
        Turn(text="Writing the module.", tool_calls=[call("write_to_file", path="src/app.py", content="x = 1\n")]),
        Turn(tool_calls=[call("search_replace", file_path="src/app.py", old_string="x = 1", new_string="x = 2")]),
        Turn(tool_calls=[call("execute_command", command="python3 src/app.py && echo ran-ok")]),
        Turn(
            tool_calls=[call("attempt_completion", result="app.py written, edited and run")],
            usage={"input": 100, "output": 50},
        ),
    )
    s, t = await start(api, auto_approve={"write": True, "execute": True, "allowed_commands": ["python3", "echo"]})
    done = await until(api, s, t)
    assert done["status"] == "completed", done
    assert done["result"] == "app.py written, edited and run"
    with open(os.path.join(s["workspace"], "src", "app.py")) as f:
        assert f.read() == "x = 2\n"
    events = await all_events(api, s["id"], t["id"])
    output = "".join(e["data"]["text"] for e in events if e["event"] == "tool.output")
    assert "ran-ok" in output
    assert all(not r["is_error"] for r in results(events)), results(events)
    assert done["usage"]["tokens_in"] == 10 * 3 + 100 and done["usage"]["tokens_out"] == 5 * 3 + 50
    assert done["usage"]["cost_usd"] == pytest.approx((130 * 1.0 + 65 * 2.0) / 1e6)
    # The model saw each tool's result on its next request.
    assert "ran-ok" in str(fake.requests[3].body)


@pytest.mark.gen_test(timeout=30)
async def test_command_approval_accepted_then_rejected(api: Api, fake: FakeProviderServer) -> None:
    fake.script(
        Turn(tool_calls=[call("execute_command", command="echo approved > proof.txt")]),
        Turn(tool_calls=[call("execute_command", command="echo nope > nope.txt")]),
        DONE,
    )
    s, t = await start(api)
    waiting = await until(api, s, t, "waiting")
    assert waiting["pending_ask"]["kind"] == "command"
    assert waiting["pending_ask"]["command"] == "echo approved > proof.txt"
    await answer(api, waiting)
    waiting = await nth_wait(api, s, t, 2)
    assert waiting["pending_ask"]["command"] == "echo nope > nope.txt"
    await answer(api, waiting, approve=False, text="no files named nope")
    assert (await until(api, s, t))["status"] == "completed"
    assert os.path.exists(os.path.join(s["workspace"], "proof.txt"))
    assert not os.path.exists(os.path.join(s["workspace"], "nope.txt"))
    assert "no files named nope" in str(fake.requests[2].body)


@pytest.mark.gen_test(timeout=30)
async def test_followup_question_answered(api: Api, fake: FakeProviderServer) -> None:
    fake.script(
        Turn(tool_calls=[call("ask_followup_question", question="Which name?", follow_up=["alpha", "beta"])]),
        DONE,
    )
    s, t = await start(api)
    waiting = await until(api, s, t, "waiting")
    assert waiting["pending_ask"]["kind"] == "followup"
    assert waiting["pending_ask"]["suggestions"] == ["alpha", "beta"]
    await answer(api, waiting, text="gamma")
    assert (await until(api, s, t))["status"] == "completed"
    assert "gamma" in str(fake.requests[1].body)


@pytest.mark.gen_test(timeout=30)
async def test_cancel_mid_stream_closes_the_provider_connection(api: Api, fake: FakeProviderServer) -> None:
    fake.script(Turn(text="streaming forever " * 20, stall_after=3))
    s, t = await start(api)
    await until(api, s, t, "running")
    await fake.wait_requests(1)
    r = await api.delete(f"/api/v1/sessions/{s['id']}/tasks/{t['id']}")
    assert r.status == 202 and r.json["status"] == "cancelled"
    await fake.wait_disconnects(1)


@pytest.mark.gen_test(timeout=30)
async def test_cancel_mid_command_kills_it(api: Api, fake: FakeProviderServer) -> None:
    # Found by a unique argument: in the sandbox's PID namespace $$ is not the host's pid.
    marker = unique_seconds(60)
    fake.script(Turn(tool_calls=[call("execute_command", command=f"echo started; exec sleep {marker}")]))
    s, t = await start(api, auto_approve={"execute": True, "allowed_commands": ["*"]})
    ws = await WsClient.connect(api.base_url)
    await ws.send({"op": "subscribe", "id": "out", "task_id": t["id"], "after": 0})
    await ws.recv_until(lambda f: f.get("event") == "tool.output" and "started" in f["data"]["text"])
    ws.close()
    await wait_running(marker)
    r = await api.delete(f"/api/v1/sessions/{s['id']}/tasks/{t['id']}")
    assert r.status == 202 and r.json["status"] == "cancelled"
    assert running(marker) == [], "the command outlived its cancelled task"


@pytest.mark.gen_test(timeout=30)
async def test_path_escapes_are_refused(api: Api, fake: FakeProviderServer, tmp_path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    fake.script(
        Turn(
            tool_calls=[
                call("read_file", path="../../outside.txt"),
                call("read_file", path=str(outside)),
                call("write_to_file", path="link/evil.txt", content="x"),
            ]
        ),
        DONE,
    )
    s, t = await start(api, auto_approve={"read_only": True, "write": True})
    os.symlink(tmp_path, os.path.join(s["workspace"], "link"))
    assert (await until(api, s, t))["status"] == "completed"
    res = results(await all_events(api, s["id"], t["id"]))
    assert all(r["is_error"] for r in res[:3]), res
    assert "secret" not in str(res)
    assert not (tmp_path / "evil.txt").exists()


@pytest.mark.gen_test(timeout=30)
async def test_architect_mode_refuses_a_python_write(api: Api, fake: FakeProviderServer) -> None:
    fake.script(Turn(tool_calls=[call("write_to_file", path="main.py", content="print()\n")]), DONE)
    s, t = await start(api, mode="architect", auto_approve={"write": True})
    assert (await until(api, s, t))["status"] == "completed"
    res = results(await all_events(api, s["id"], t["id"]))
    assert res[0]["is_error"] and "can only edit files matching pattern" in res[0]["content"]
    assert not os.path.exists(os.path.join(s["workspace"], "main.py"))
    # Only the mode's tools were offered to the model.
    offered = str(fake.requests[0].body.get("tools"))
    assert "execute_command" not in offered and "write_to_file" in offered


@pytest.mark.gen_test(timeout=30)
async def test_mistake_limit_reached(api: Api, fake: FakeProviderServer) -> None:
    # Roo's grace: the first turn without a tool is not a mistake, so the fourth reaches 3.
    fake.script(Turn(text="hmm"), Turn(text="hmm"), Turn(text="hmm"), Turn(text="hmm"), DONE)
    s, t = await start(api)
    waiting = await until(api, s, t, "waiting")
    assert waiting["pending_ask"]["kind"] == "mistake_limit"
    assert len(fake.requests) == 4
    assert "You did not use a tool" in str(fake.requests[1].body)
    await answer(api, waiting, text="finish now")
    assert (await until(api, s, t))["status"] == "completed"
    # Roo's formatResponse.tooManyMistakes: the guidance as a JSON status object.
    assert '{"status":"guidance","feedback":"finish now"}' in str(fake.requests[4].body)


@pytest.mark.gen_test(timeout=30)
async def test_subtask_round_trip(api: Api, fake: FakeProviderServer) -> None:
    fake.script(
        Turn(tool_calls=[call("new_task", mode="code", message="write sub.txt")]),
        Turn(tool_calls=[call("write_to_file", path="sub.txt", content="sub\n")]),
        Turn(tool_calls=[call("attempt_completion", result="sub.txt written")]),
        Turn(tool_calls=[call("attempt_completion", result="delegated and done")]),
    )
    s, t = await start(api, mode="orchestrator", auto_approve={"write": True, "subtasks": True})
    done = await until(api, s, t)
    assert done["status"] == "completed" and done["result"] == "delegated and done"
    child = (await api.get(f"/api/v1/sessions/{s['id']}/tasks/{done['child_task_ids'][0]}")).json
    assert child["status"] == "completed" and child["parent_task_id"] == t["id"]
    assert "sub.txt written" in str(fake.requests[3].body)
    assert os.path.exists(os.path.join(s["workspace"], "sub.txt"))
