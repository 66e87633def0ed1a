"""Two principals racing on each other's ids: over REST every foreign id is a
404 indistinguishable from an id that never existed (never 403, nothing
leaked in the detail), and over WebSocket no filter shows another
principal's events and no ``respond`` reaches another principal's ask."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.conftest import Api, WsClient
from tests.security.conftest import subscribe_ok

SESSIONS = "/api/v1/sessions"
GHOST_SESSION = "ses_" + "0" * 32
GHOST_TASK = "tsk_" + "0" * 32
SECRET_PROMPT = "alice's confidential prompt 7f1e"


async def alice_waiting_task(alice: Api) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Alice's session and a task of hers waiting on a followup ask (with its pending ask)."""
    session = await alice.session(name="alice-private", provider="followup")
    task = await alice.task(session["id"], SECRET_PROMPT)
    ws = await WsClient.connect(alice.base_url, {"Authorization": f"Bearer {alice.token}"})
    try:
        await subscribe_ok(ws, "wait", task_id=task["id"], after=0)
        await ws.recv_until(lambda f: f.get("event") == "ask" and f.get("task_id") == task["id"])
    finally:
        ws.close()
    r = await alice.get(f"{SESSIONS}/{session['id']}/tasks/{task['id']}")
    assert r.status == 200 and r.json["status"] == "waiting", r.json
    return session, r.json, r.json["pending_ask"]


def assert_like_a_ghost(r: Any, real_id: str, ghost_id: str, ghost: Any) -> None:
    """A 404 for a foreign id reads exactly like a 404 for an id that never existed."""
    assert r.status == 404, (r.status, r.body)
    doc = r.json
    assert doc["status"] == 404 and doc["type"] == ghost.json["type"] and doc["title"] == ghost.json["title"]
    assert doc["detail"].replace(real_id, ghost_id) == ghost.json["detail"], (doc, ghost.json)
    text = r.body.decode()
    for secret in ("alice", SECRET_PROMPT, "Which language?", "alice-private"):
        assert secret not in text, (secret, text)


@pytest.mark.gen_test(timeout=30)
async def test_rest_foreign_ids_are_404_like_ids_that_never_existed(as_: Any) -> None:
    alice, bob = as_("alice"), as_("bob")
    session, task, ask = await alice_waiting_task(alice)
    bobs = await bob.session(name="bob's own")
    sid, tid = session["id"], task["id"]
    answer = {"ask_id": ask["id"], "approve": True, "text": "Python"}

    # (bob's request for alice's resource, the same request for a ghost id, the foreign id, the ghost id)
    probes = [
        (bob.get(f"{SESSIONS}/{sid}"), bob.get(f"{SESSIONS}/{GHOST_SESSION}"), sid, GHOST_SESSION),
        (bob.get(f"{SESSIONS}/{sid}/tasks"), bob.get(f"{SESSIONS}/{GHOST_SESSION}/tasks"), sid, GHOST_SESSION),
        (
            bob.post(f"{SESSIONS}/{sid}/tasks", {"prompt": "steal"}),
            bob.post(f"{SESSIONS}/{GHOST_SESSION}/tasks", {"prompt": "steal"}),
            sid,
            GHOST_SESSION,
        ),
        (
            bob.get(f"{SESSIONS}/{sid}/tasks/{tid}"),
            bob.get(f"{SESSIONS}/{GHOST_SESSION}/tasks/{tid}"),
            sid,
            GHOST_SESSION,
        ),
        # Bob's own session with alice's task id: the task is not found in it.
        (
            bob.get(f"{SESSIONS}/{bobs['id']}/tasks/{tid}"),
            bob.get(f"{SESSIONS}/{bobs['id']}/tasks/{GHOST_TASK}"),
            tid,
            GHOST_TASK,
        ),
        (
            bob.get(f"{SESSIONS}/{bobs['id']}/tasks/{tid}/events?after=0"),
            bob.get(f"{SESSIONS}/{bobs['id']}/tasks/{GHOST_TASK}/events?after=0"),
            tid,
            GHOST_TASK,
        ),
        (
            bob.post(f"{SESSIONS}/{bobs['id']}/tasks/{tid}/responses", answer),
            bob.post(f"{SESSIONS}/{bobs['id']}/tasks/{GHOST_TASK}/responses", answer),
            tid,
            GHOST_TASK,
        ),
        (
            bob.delete(f"{SESSIONS}/{bobs['id']}/tasks/{tid}"),
            bob.delete(f"{SESSIONS}/{bobs['id']}/tasks/{GHOST_TASK}"),
            tid,
            GHOST_TASK,
        ),
        (
            bob.get(f"{SESSIONS}/{sid}/tasks/{tid}/events?after=0"),
            bob.get(f"{SESSIONS}/{GHOST_SESSION}/tasks/{tid}/events?after=0"),
            sid,
            GHOST_SESSION,
        ),
        (
            bob.post(f"{SESSIONS}/{sid}/tasks/{tid}/responses", answer),
            bob.post(f"{SESSIONS}/{GHOST_SESSION}/tasks/{tid}/responses", answer),
            sid,
            GHOST_SESSION,
        ),
        (
            bob.delete(f"{SESSIONS}/{sid}/tasks/{tid}"),
            bob.delete(f"{SESSIONS}/{GHOST_SESSION}/tasks/{tid}"),
            sid,
            GHOST_SESSION,
        ),
        (bob.delete(f"{SESSIONS}/{sid}"), bob.delete(f"{SESSIONS}/{GHOST_SESSION}"), sid, GHOST_SESSION),
    ]
    # Everything at once, while alice keeps using her task.
    alice_reads = [
        alice.get(f"{SESSIONS}/{sid}/tasks/{tid}"),
        alice.get(f"{SESSIONS}/{sid}/tasks/{tid}/events?after=0"),
    ]
    results = await asyncio.gather(*(c for p in probes for c in p[:2]), *alice_reads)
    for i, (_, _, real_id, ghost_id) in enumerate(probes):
        foreign, ghost = results[2 * i], results[2 * i + 1]
        assert ghost.status == 404, ghost.body
        assert_like_a_ghost(foreign, real_id, ghost_id, ghost)
    mine, events = results[-2:]
    assert mine.status == 200 and mine.json["status"] == "waiting"
    assert events.status == 200 and events.json["items"]

    # Nothing of alice's changed: same ask pending, no task created, session intact;
    # and bob's list shows only his own.
    r = await alice.get(f"{SESSIONS}/{sid}/tasks/{tid}")
    assert r.json["status"] == "waiting" and r.json["pending_ask"]["id"] == ask["id"]
    assert [t["id"] for t in (await alice.get(f"{SESSIONS}/{sid}/tasks")).json["items"]] == [tid]
    assert [s["id"] for s in (await bob.get(SESSIONS)).json["items"]] == [bobs["id"]]
    # Her answer still works.
    r = await alice.post(f"{SESSIONS}/{sid}/tasks/{tid}/responses", answer)
    assert r.status == 200, r.body


@pytest.mark.gen_test(timeout=30)
async def test_websocket_shows_bob_none_of_alices_events(as_: Any, ws_as: Any) -> None:
    alice, bob = as_("alice"), as_("bob")
    session, task, ask = await alice_waiting_task(alice)
    sid, tid = session["id"], task["id"]

    bob_all, bob_task, bob_session = await asyncio.gather(ws_as("bob"), ws_as("bob"), ws_as("bob"))
    root = await ws_as("root")
    alice_ws = await ws_as("alice")
    # Every filter bob could try, with and without a replay from the start.
    await asyncio.gather(
        subscribe_ok(bob_all, "everything", after=0),
        subscribe_ok(bob_all, "everything-live"),
        subscribe_ok(bob_task, "her-task", task_id=tid, after=0),
        subscribe_ok(bob_task, "her-task-live", task_id=tid),
        subscribe_ok(root, "admin", task_id=tid),
        subscribe_ok(alice_ws, "mine", task_id=tid),
    )
    # Her session id is not found for bob, exactly as a ghost id.
    await bob_session.send({"op": "subscribe", "id": "her-session", "session_id": sid, "after": 0})
    await bob_session.send({"op": "subscribe", "id": "ghost", "session_id": GHOST_SESSION, "after": 0})
    refused, ghost = await bob_session.recv(), await bob_session.recv()
    assert refused["event"] == "error" and refused["id"] == "her-session" and refused["data"]["code"] == "not-found"
    assert refused["data"]["detail"].replace(sid, GHOST_SESSION) == ghost["data"]["detail"]

    # Bob races alice to answer her ask, over WebSocket, with every id combination.
    respond = {"op": "respond", "session_id": sid, "task_id": tid, "ask_id": ask["id"], "approve": False}
    bob_attempts = [
        bob_session.send({**respond, "id": "r1"}),
        bob_session.send({**respond, "id": "r2", "text": "Go"}),
    ]
    await asyncio.gather(*bob_attempts)
    replies = [await bob_session.recv(), await bob_session.recv()]
    assert {r["id"] for r in replies} == {"r1", "r2"}
    assert all(r["event"] == "error" and r["data"]["code"] == "not-found" for r in replies), replies
    r = await alice.get(f"{SESSIONS}/{sid}/tasks/{tid}")
    assert r.json["status"] == "waiting" and r.json["pending_ask"]["id"] == ask["id"], "bob's answer reached the task"

    # Alice answers; her task runs to completion while bob listens.
    await alice_ws.send({**respond, "approve": True, "text": "Python", "id": "mine"})
    frames = await alice_ws.recv_until(lambda f: f.get("event") == "task.completed")
    assert any(f.get("event") == "responded" for f in frames)
    admin_frames = await root.recv_until(lambda f: f.get("event") == "task.completed")
    assert {f["seq"] for f in admin_frames if "seq" in f} >= {f["seq"] for f in frames if "seq" in f}

    # A ping's pong comes after everything the server sent before it: bob got none of it.
    for ws in (bob_all, bob_task, bob_session):
        await ws.send({"op": "ping", "id": "end"})
        got = await ws.recv_until(lambda f: f.get("event") == "pong")
        leaked = [f for f in got if "seq" in f]
        assert leaked == [], leaked
        for f in got:
            assert SECRET_PROMPT not in str(f)

    # Bob's own events still reach him on the same connection.
    mine = await bob.session(name="bob-after")
    frames = await bob_all.recv_until(lambda f: f.get("event") == "session.created")
    assert frames[-1]["session_id"] == mine["id"]
