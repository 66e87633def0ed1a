"""``PATCH /api/v1/sessions/{id}``: a session's name and its tasks' defaults
change; the change is stored, announced (``session.updated``), seen by new
tasks (mode, provider) and by live ones (auto_approve, ask_timeouts)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from roo_daemon.auth import Principal
from roo_daemon.problems import Problem
from tests.conftest import Api, WsClient, make_config
from tests.tasks.helpers import all_events, follow, named, status_is, task_path

SESSIONS = "/api/v1/sessions"
TWO_WRITES = {
    "kind": "scripted",
    "turns": [
        {"text": "First file.", "tool_calls": [{"name": "write_to_file", "args": {"path": "a.txt", "content": "a\n"}}]},
        {"text": "Second.", "tool_calls": [{"name": "write_to_file", "args": {"path": "b.txt", "content": "b\n"}}]},
        {"text": "Done.", "tool_calls": [{"name": "attempt_completion", "args": {"result": "two files"}}]},
    ],
}


@pytest.fixture
def config(tmp_path: Path) -> dict[str, Any]:
    cfg = make_config(tmp_path)
    cfg["providers"]["two_writes"] = TWO_WRITES
    return cfg


async def patch(api: Api, session_id: str, doc: Any, **kw: Any) -> Any:
    return await api.request("PATCH", f"{SESSIONS}/{session_id}", doc, **kw)


@pytest.mark.gen_test(timeout=20)
async def test_changes_are_answered_stored_and_announced(api: Api, ctx: Any) -> None:
    s = await api.session(name="before", auto_approve={"read_only": True, "allowed_commands": ["ls"]})
    ws = await WsClient.connect(api.base_url)
    await ws.send({"op": "subscribe", "id": "s", "session_id": s["id"]})
    await ws.recv()
    body = {
        "name": "after",
        "mode": "architect",
        "provider": "instant",
        "auto_approve": {"write": True},
        "ask_timeouts": {"followup": 60},
    }
    r = await patch(api, s["id"], body)
    assert r.status == 200, r.body
    changed = r.json
    assert (changed["name"], changed["mode"], changed["provider"]) == ("after", "architect", "instant")
    # auto_approve merges: what was not given keeps its value.
    assert changed["auto_approve"] == {**s["auto_approve"], "write": True}
    assert changed["auto_approve"]["allowed_commands"] == ["ls"]
    assert changed["ask_timeouts"] == {"followup": 60}
    assert {k: v for k, v in changed.items() if k not in body and k != "auto_approve"} == {
        k: v for k, v in s.items() if k not in body and k != "auto_approve"
    }
    assert (await api.get(f"{SESSIONS}/{s['id']}")).json == changed
    frame = await ws.recv()
    assert frame["event"] == "session.updated" and frame["data"] == changed
    ws.close()
    # Stored: what a restart loads.
    stored = {x.id: x for x in await ctx.sessions.store.load_all()}[s["id"]]
    assert json.loads(stored.resource_json) == changed
    # ask_timeouts replaces; null removes the name; a merge-patch media type is JSON too.
    r = await patch(
        api,
        s["id"],
        None,
        body=json.dumps({"ask_timeouts": {"tool": 30}, "name": None}),
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert r.status == 200, r.body
    assert r.json["ask_timeouts"] == {"tool": 30} and r.json["name"] is None


@pytest.mark.gen_test(timeout=20)
async def test_new_tasks_take_the_new_mode_and_provider(api: Api) -> None:
    s = await api.session()
    assert (await patch(api, s["id"], {"mode": "ask", "provider": "instant"})).status == 200
    t = await api.task(s["id"])
    assert (t["mode"], t["provider"], t["provider_kind"]) == ("ask", "instant", "scripted")
    await follow(api, t["id"], named("task.completed"))


@pytest.mark.gen_test(timeout=20)
async def test_a_live_task_sees_a_new_auto_approve_at_its_next_tool_call(api: Api) -> None:
    """Waiting on its first write, the session is patched to approve writes:
    the first ask is still answered by hand, the second write asks nothing."""
    s = await api.session(provider="two_writes")
    t = await api.task(s["id"])
    frames = await follow(api, t["id"], status_is("waiting"))
    ask = frames[-1]["data"]
    task = (await api.get(task_path(s["id"], t["id"]))).json
    assert task["pending_ask"]["kind"] == "tool", ask
    assert (await patch(api, s["id"], {"auto_approve": {"write": True}})).status == 200
    still = (await api.get(task_path(s["id"], t["id"]))).json
    assert still["status"] == "waiting" and still["pending_ask"] == task["pending_ask"]
    r = await api.post(
        task_path(s["id"], t["id"], "/responses"), {"ask_id": task["pending_ask"]["id"], "approve": True}
    )
    assert r.status == 200, r.body
    await follow(api, t["id"], named("task.completed"))
    asks = [e for e in await all_events(api, s["id"], t["id"]) if e["event"] == "ask"]
    assert len(asks) == 1


@pytest.mark.gen_test(timeout=20)
async def test_bad_changes_are_422_and_change_nothing(api: Api) -> None:
    s = await api.session(name="kept")
    for body, pointer in (
        ({"provider": "nope"}, "/body/provider"),
        ({"mode": "no-such-mode"}, "/body/mode"),
        ({}, "/body"),
        ({"workspace": "/tmp"}, "/body"),
        ({"name": ""}, "/body/name"),
        ({"ask_timeouts": {"tool": 0}}, "/body/ask_timeouts/tool"),
        ({"auto_approve": {"write": "yes"}}, "/body/auto_approve/write"),
    ):
        r = await patch(api, s["id"], body)
        assert r.status == 422, (body, r.body)
        assert r.headers["Content-Type"] == "application/problem+json"
        assert any(e["pointer"].startswith(pointer) for e in r.json["errors"]), (body, r.json)
    assert (await patch(api, s["id"], None, body="{", headers={"Content-Type": "application/json"})).status == 400
    assert (await patch(api, s["id"], None, body="name=x", headers={"Content-Type": "text/plain"})).status == 415
    assert (await patch(api, f"ses_{'0' * 32}", {"name": "x"})).status == 404
    assert (await api.get(f"{SESSIONS}/{s['id']}")).json == s


@pytest.mark.gen_test(timeout=20)
async def test_another_principals_session_is_not_found(ctx: Any) -> None:
    alice = Principal("alice", frozenset({"read", "write"}))
    bob = Principal("bob", frozenset({"read", "write"}))
    s, _ = await ctx.sessions.create(alice, {}, None)
    with pytest.raises(Problem) as e:
        await ctx.sessions.update(bob, s.id, {"name": "mine now"})
    assert e.value.status_code == 404 and s.name is None
