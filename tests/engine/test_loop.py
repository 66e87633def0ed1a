"""The agent loop end to end through the daemon, with scripted providers:
modes and their tool rules, mode switches, subtasks, the mistake and cost
limits, rejection skipping, and context-window truncation."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from tests.conftest import Api, make_config, wait_status
from tests.tasks.helpers import all_events

FINAL = {"completed", "failed", "cancelled", "interrupted"}


async def settle(api: Api, session_id: str, task_id: str, statuses: set[str] = FINAL) -> dict[str, Any]:
    """The task once it reaches one of ``statuses`` (followed over the WebSocket)."""
    return await wait_status(api, session_id, task_id, statuses)


def _call(name: str, **args: Any) -> dict[str, Any]:
    return {"name": name, "args": args}


def _turn(*calls: dict[str, Any], text: str = "", **extra: Any) -> dict[str, Any]:
    return {"text": text, "tool_calls": list(calls), **extra}


DONE = _turn(_call("attempt_completion", result="done"))

PROVIDERS: dict[str, Any] = {
    "architect-py": {
        "kind": "scripted",
        "turns": [
            _turn(_call("write_to_file", path="main.py", content="print(1)\n")),
            _turn(_call("write_to_file", path="PLAN.md", content="# Plan\n")),
            DONE,
        ],
    },
    "ask-write": {"kind": "scripted", "turns": [_turn(_call("write_to_file", path="x.txt", content="x")), DONE]},
    "switcher": {
        "kind": "scripted",
        "turns": [
            _turn(_call("switch_mode", mode_slug="code", reason="time to implement")),
            _turn(_call("write_to_file", path="app.py", content="x = 1\n")),
            DONE,
        ],
    },
    "parent-child": {
        "kind": "scripted",
        "scripts": [
            {
                "match": "CHILD-TASK",
                "turns": [
                    _turn(_call("write_to_file", path="child.txt", content="from the child\n")),
                    _turn(_call("attempt_completion", result="child wrote child.txt")),
                ],
            },
            {
                "match": "",
                "turns": [
                    _turn(_call("new_task", mode="code", message="CHILD-TASK: write child.txt")),
                    _turn(_call("attempt_completion", result="parent saw the child finish")),
                ],
            },
        ],
    },
    "parent-hang": {
        "kind": "scripted",
        "scripts": [
            {"match": "CHILD-TASK", "turns": [{"text": "child working...", "hang": True}]},
            {"match": "", "turns": [_turn(_call("new_task", mode="code", message="CHILD-TASK: wait forever"))]},
        ],
    },
    "no-tools": {
        "kind": "scripted",
        "turns": [
            {"text": "thinking"},
            {"text": "still thinking"},
            {"text": "hmm"},
            {"text": "hmm, again"},  # the fourth: Roo's grace does not count the first
            DONE,
        ],
    },
    "pricey": {
        "kind": "scripted",
        "turns": [
            _turn(_call("update_todo_list", todos="[x] one\n[-] two\n[ ] three"), usage={"cost_usd": 0.01}),
            _turn(_call("update_todo_list", todos="[x] one\n[x] two\n[ ] three"), usage={"cost_usd": 0.01}),
            _turn(_call("attempt_completion", result="cheap enough"), usage={"cost_usd": 0.01}),
        ],
    },
    "two-writes": {
        "kind": "scripted",
        "turns": [
            _turn(_call("write_to_file", path="a.txt", content="a"), _call("write_to_file", path="b.txt", content="b")),
            DONE,
        ],
    },
    "big-context": {
        "kind": "scripted",
        "context_window": 1000,
        "condense": {"error": "no summaries today"},  # condensing fails: the fallback cuts instead
        "turns": [
            *[
                _turn(_call("update_todo_list", todos=f"[ ] {i}"), usage={"tokens_in": 100, "tokens_out": 10})
                for i in range(3)
            ],
            _turn(_call("update_todo_list", todos="[x] 3"), usage={"tokens_in": 900, "tokens_out": 50}),
            DONE,
        ],
    },
}


@pytest.fixture
def config(tmp_path):
    # One slot for the whole module: tasks here run one at a time, and the
    # subtask tests prove a parent and its child cannot deadlock on it.
    cfg = make_config(tmp_path, engine={"max_concurrent_tasks": 1})
    cfg["providers"].update(PROVIDERS)
    return cfg


async def _run(api: Api, provider: str, mode: str = "code", **session: Any) -> tuple[dict, dict]:
    s = await api.session(provider=provider, mode=mode, **session)
    t = await api.task(s["id"], "go")
    return s, t


async def _answer(api: Api, task: dict, approve: bool = True, text: str | None = None) -> dict:
    body: dict[str, Any] = {"ask_id": task["pending_ask"]["id"], "approve": approve}
    if text is not None:
        body["text"] = text
    r = await api.post(f"/api/v1/sessions/{task['session_id']}/tasks/{task['id']}/responses", body)
    assert r.status == 200, r.body
    return r.json


def _results(events: list[dict]) -> list[dict]:
    return [e["data"] for e in events if e["event"] == "tool.result"]


@pytest.mark.gen_test(timeout=20)
async def test_architect_mode_may_only_edit_markdown(api: Api) -> None:
    s, t = await _run(api, "architect-py", mode="architect", auto_approve={"write": True})
    done = await settle(api, s["id"], t["id"])
    assert done["status"] == "completed"
    results = _results(await all_events(api, s["id"], t["id"]))
    error = json.loads(results[0]["content"])["error"]
    assert results[0]["is_error"] and error.startswith("Tool 'write_to_file' in mode '🏗️ Architect' can only edit")
    assert "can only edit files matching pattern: \\.md$" in error
    assert not results[1]["is_error"]
    workspace = s["workspace"]
    assert not os.path.exists(f"{workspace}/main.py") and os.path.exists(f"{workspace}/PLAN.md")


@pytest.mark.gen_test(timeout=20)
async def test_ask_mode_has_no_edit_tools(api: Api) -> None:
    s, t = await _run(api, "ask-write", mode="ask", auto_approve={"write": True})
    await settle(api, s["id"], t["id"])
    results = _results(await all_events(api, s["id"], t["id"]))
    assert json.loads(results[0]["content"])["error"] == 'Tool "write_to_file" is not allowed in ask mode.'


@pytest.mark.gen_test(timeout=20)
async def test_switch_mode_changes_the_task_mode(api: Api) -> None:
    s, t = await _run(api, "switcher", mode="ask", auto_approve={"write": True, "mode_switch": True})
    done = await settle(api, s["id"], t["id"])
    assert done["status"] == "completed" and done["mode"] == "code"
    events = await all_events(api, s["id"], t["id"])
    switched = [e["data"] for e in events if e["event"] == "mode.switched"]
    assert switched == [{"from": "ask", "to": "code", "reason": "time to implement"}]
    assert not any(r["is_error"] for r in _results(events))


@pytest.mark.gen_test(timeout=20)
async def test_mode_switch_needs_approval_without_auto_approve(api: Api, base_url: str) -> None:
    s, t = await _run(api, "switcher", mode="ask", auto_approve={"write": True})
    waiting = await settle(api, s["id"], t["id"], statuses={"waiting"})
    assert waiting["pending_ask"]["tool"] == "switch_mode"
    await _answer(api, waiting)
    assert (await settle(api, s["id"], t["id"]))["mode"] == "code"


@pytest.mark.gen_test(timeout=30)
async def test_subtask_round_trip_with_a_single_slot(api: Api) -> None:
    """The parent waits (kind subtask) while its child runs in the same
    session, even with one slot, and resumes with the child's result."""
    s, t = await _run(api, "parent-child", mode="orchestrator", auto_approve={"write": True, "subtasks": True})
    done = await settle(api, s["id"], t["id"])
    assert done["status"] == "completed" and done["result"] == "parent saw the child finish"
    assert len(done["child_task_ids"]) == 1
    child_id = done["child_task_ids"][0]
    child = (await api.get(f"/api/v1/sessions/{s['id']}/tasks/{child_id}")).json
    assert child["parent_task_id"] == t["id"] and child["status"] == "completed" and child["mode"] == "code"
    events = await all_events(api, s["id"], t["id"])
    asks = [e["data"] for e in events if e["event"] == "ask"]
    assert asks[-1]["kind"] == "subtask" and asks[-1]["task_id"] == child_id
    assert f"Subtask {child_id} completed.\n\nResult:\nchild wrote child.txt" == _results(events)[0]["content"]
    with open(f"{s['workspace']}/child.txt") as f:
        assert f.read() == "from the child\n"


@pytest.mark.gen_test(timeout=30)
async def test_subtask_ask_is_not_for_clients_and_cancel_cascades(api: Api) -> None:
    s, t = await _run(api, "parent-hang", mode="orchestrator", auto_approve={"subtasks": True})
    parent = await settle(api, s["id"], t["id"], statuses={"waiting"})
    assert parent["pending_ask"]["kind"] == "subtask"
    r = await api.post(
        f"/api/v1/sessions/{s['id']}/tasks/{t['id']}/responses",
        {"ask_id": parent["pending_ask"]["id"], "approve": True},
    )
    assert r.status == 409 and "subtask" in r.json["detail"]
    r = await api.delete(f"/api/v1/sessions/{s['id']}/tasks/{t['id']}")
    assert r.status == 202
    child_id = parent["child_task_ids"][0]
    assert (await settle(api, s["id"], child_id))["status"] == "cancelled"
    assert (await settle(api, s["id"], t["id"]))["status"] == "cancelled"


@pytest.mark.gen_test(timeout=20)
async def test_mistake_limit_waits_for_guidance(api: Api) -> None:
    s, t = await _run(api, "no-tools")
    waiting = await settle(api, s["id"], t["id"], statuses={"waiting"})
    assert waiting["pending_ask"]["kind"] == "mistake_limit"
    await _answer(api, waiting, text="use attempt_completion")
    assert (await settle(api, s["id"], t["id"]))["status"] == "completed"


@pytest.mark.gen_test(timeout=20)
async def test_mistake_limit_rejected_fails_the_task(api: Api) -> None:
    s, t = await _run(api, "no-tools")
    waiting = await settle(api, s["id"], t["id"], statuses={"waiting"})
    await _answer(api, waiting, approve=False)
    done = await settle(api, s["id"], t["id"])
    assert done["status"] == "failed" and done["error"]["code"] == "mistake_limit"


@pytest.mark.gen_test(timeout=20)
async def test_cost_limit_waits_and_todos_are_kept(api: Api) -> None:
    s = await api.session(provider="pricey")
    t = await api.task(s["id"], "go", limits={"max_cost_usd": 0.015})
    waiting = await settle(api, s["id"], t["id"], statuses={"waiting"})
    assert waiting["pending_ask"]["kind"] == "limit_reached"
    assert waiting["usage"]["cost_usd"] == pytest.approx(0.02)
    assert waiting["todos"] == [
        {"content": "one", "status": "completed"},
        {"content": "two", "status": "completed"},
        {"content": "three", "status": "pending"},
    ]
    await _answer(api, waiting)
    done = await settle(api, s["id"], t["id"])
    assert done["status"] == "completed" and done["usage"]["cost_usd"] == pytest.approx(0.03)


@pytest.mark.gen_test(timeout=20)
async def test_a_rejection_skips_the_rest_of_the_message(api: Api) -> None:
    s, t = await _run(api, "two-writes")
    waiting = await settle(api, s["id"], t["id"], statuses={"waiting"})
    assert waiting["pending_ask"]["args"]["path"] == "a.txt"
    await _answer(api, waiting, approve=False, text="not now")
    await settle(api, s["id"], t["id"])
    results = _results(await all_events(api, s["id"], t["id"]))
    assert "not now" in results[0]["content"]
    assert results[1]["content"] == "Skipping tool write_to_file due to user rejecting a previous tool."


@pytest.mark.gen_test(timeout=20)
async def test_context_window_truncation_is_announced(api: Api) -> None:
    s, t = await _run(api, "big-context")
    assert (await settle(api, s["id"], t["id"]))["status"] == "completed"
    events = await all_events(api, s["id"], t["id"])
    cut = [e["data"] for e in events if e["event"] == "context.truncated"]
    # 1000 tokens less the 10 % buffer and 20 % reserved: 700 allowed; the last
    # request's 950 plus the tool result and environment details added since is over.
    assert cut and cut[0]["context_window"] == 1000 and 950 < cut[0]["context_tokens"] < 1200
    # The oldest two of four turns, each a call, its result and the environment details.
    assert cut[0]["removed_messages"] == 6
    assert "no summaries today" in cut[0]["condense_error"]


@pytest.mark.gen_test(timeout=20)
async def test_custom_mode_from_roomodes(api: Api, config: dict) -> None:
    root = config["workspaces"]["roots"][0]
    ws = os.path.join(root, "proj")
    os.makedirs(ws)
    with open(os.path.join(ws, ".roomodes"), "w") as f:
        f.write(
            "customModes:\n"
            "  - slug: docs\n    name: Docs\n    roleDefinition: You write docs.\n"
            "    groups: [read, [edit, {fileRegex: '\\.md$', description: Markdown only}]]\n"
        )
    s = await api.session(workspace=ws, mode="docs", provider="architect-py", auto_approve={"write": True})
    t = await api.task(s["id"], "go")
    assert (await settle(api, s["id"], t["id"]))["status"] == "completed"
    assert not os.path.exists(os.path.join(ws, "main.py")) and os.path.exists(os.path.join(ws, "PLAN.md"))
    r = await api.post("/api/v1/sessions", {"mode": "nope"})
    assert r.status == 422 and r.json["errors"][0]["pointer"] == "/body/mode"
    r = await api.post(f"/api/v1/sessions/{s['id']}/tasks", {"prompt": "x", "mode": "nope"})
    assert r.status == 422
