"""The headline defect of issue #9, end to end: while one tenant streams a
task, another sends lone UTF-16 surrogates everywhere it can (an answer's
text over REST and WebSocket, a session name, a prompt, a WebSocket id).

Before the fix one bad answer failed its whole group commit: thousands of
the streaming tenant's events were lost from the log and never sent live
(a seq gap), and the answering task was left ``waiting`` with no
``pending_ask``. Now every event of the first tenant is stored and was
delivered live, the log has no gap, and the second tenant's task still
waits for a (valid) answer."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Api, WsClient, wait_status
from tests.security.conftest import as_, secure_config, subscribe_ok, ws_as  # noqa: F401 (fixtures)
from tests.server.test_lifecycle import task_events

DELTAS = 6_000  # one character each: a stream long enough to overlap the hostile requests
LONE = "\\ud800"  # a lone surrogate as the client spells it in JSON text
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def config(tmp_path: Path) -> dict[str, Any]:
    unlimited = {"rate": 0, "burst": 1}  # bob attacks as fast as he can: no 429 gets in the way
    cfg = secure_config(
        tmp_path, limits={"read": unlimited, "write": unlimited, "task_create": unlimited, "ws_frames": unlimited}
    )
    cfg["providers"]["stream"] = {
        "kind": "scripted",
        "chunk_chars": 1,
        "turns": [
            {
                "text": "x" * DELTAS,
                "tool_calls": [{"name": "attempt_completion", "args": {"result": "streamed"}}],
            }
        ],
    }
    return cfg


async def follow(ws: WsClient, task_id: str, frames: list[dict[str, Any]], streaming: asyncio.Event) -> None:
    """Alice's live view of her task, until it ends."""
    while True:
        frame = await ws.recv()
        assert frame is not None, "alice's WebSocket was closed"
        if frame.get("task_id") != task_id:
            continue
        frames.append(frame)
        if frame["event"] == "message.delta":
            streaming.set()
        if frame["event"] in ("task.completed", "task.failed", "task.cancelled"):
            return


async def hostile_round(bob: Api, bob_ws: WsClient, waiting: dict[str, Any], ask: dict[str, Any]) -> list[Any]:
    """Every place bob can put a lone surrogate. Returns what came back (HTTP
    statuses, WebSocket frames), checked after the damage is counted."""
    sid, tid = waiting["session_id"], waiting["id"]
    answer = f'{{"ask_id": "{ask["id"]}", "approve": true, "text": "no{LONE}"}}'
    replies: list[Any] = []
    for path, body in (
        (f"/api/v1/sessions/{sid}/tasks/{tid}/responses", answer),
        ("/api/v1/sessions", f'{{"name": "n{LONE}"}}'),
        (f"/api/v1/sessions/{sid}/tasks", f'{{"prompt": "p{LONE}"}}'),
    ):
        replies.append((await bob.post(path, body=body, headers=JSON, check=False)).status)
    ids = f'"session_id": "{sid}", "task_id": "{tid}", "ask_id": "{ask["id"]}"'
    await bob_ws.send(f'{{"op": "respond", "id": "r", {ids}, "approve": false, "text": "{LONE}"}}')
    await bob_ws.send(f'{{"op": "ping", "id": "p{LONE}"}}')
    for _ in range(2):
        reply = await asyncio.wait_for(bob_ws.conn.read_message(), 30)
        replies.append(None if reply is None else json.loads(reply)["event"])
        if reply is None:
            break
    return replies


@pytest.mark.gen_test(timeout=120)
async def test_one_tenants_lone_surrogates_cost_another_tenant_nothing(as_: Any, ws_as: Any, ctx: Any) -> None:  # noqa: F811
    alice, bob = as_("alice"), as_("bob")
    # Bob: a task waiting for an answer, and a WebSocket to attack from.
    bob_session = await bob.session(provider="followup")
    bob_task = await bob.task(bob_session["id"])
    waiting = await wait_status(bob, bob_session["id"], bob_task["id"], {"waiting"}, await ws_as("bob"))
    ask = waiting["pending_ask"]
    bob_ws = await ws_as("bob")

    # Alice: streaming, followed live from before it starts.
    alice_session = await alice.session(provider="stream")
    alice_ws = await ws_as("alice")
    await subscribe_ok(alice_ws, "a", session_id=alice_session["id"])
    alice_task = await alice.task(alice_session["id"])
    live: list[dict[str, Any]] = []
    streaming = asyncio.Event()
    following = asyncio.ensure_future(follow(alice_ws, alice_task["id"], live, streaming))
    await asyncio.wait_for(streaming.wait(), 30)

    # Bob attacks while alice streams, round after round until her task ends.
    rounds_while_streaming = 0
    replies: list[Any] = []
    while not following.done():
        replies += await hostile_round(bob, bob_ws, waiting, ask)
        if not following.done():
            rounds_while_streaming += 1
        if None in replies:
            break  # bob's WebSocket was dropped
    await following
    assert rounds_while_streaming >= 1, "the hostile requests never overlapped the stream"

    # Every event of alice's task is stored and was delivered live, in order.
    events = await task_events(alice, alice_session["id"], alice_task["id"])
    assert [e["seq"] for e in live] == [e["seq"] for e in events]
    assert sum(1 for e in events if e["event"] == "message.delta") == DELTAS
    assert "".join(e["data"]["text"] for e in events if e["event"] == "message.delta") == "x" * DELTAS
    assert live[-1]["event"] == "task.completed"
    # The log has no gap: every seq ever given out is stored.
    count, first, last = await ctx.db.read(
        lambda c: c.execute("SELECT COUNT(*), MIN(seq), MAX(seq) FROM events").fetchone()
    )
    assert (count, first, last) == (ctx.bus.last_seq, 1, ctx.bus.last_seq)

    # Each hostile request was refused at the edge: 422, or an error frame on a kept connection.
    assert set(replies) == {422, "error"}, replies

    # Bob's task was not wedged: it still waits, and a valid answer goes through.
    again = (await bob.get(f"/api/v1/sessions/{bob_session['id']}/tasks/{bob_task['id']}")).json
    assert again["status"] == "waiting" and again["pending_ask"] == ask
    r = await bob.post(
        f"/api/v1/sessions/{bob_session['id']}/tasks/{bob_task['id']}/responses",
        {"ask_id": ask["id"], "approve": True, "text": "Python"},
    )
    assert r.status == 200, r.body
    done = await wait_status(bob, bob_session["id"], bob_task["id"], {"completed"}, await ws_as("bob"))
    assert done["status"] == "completed"
