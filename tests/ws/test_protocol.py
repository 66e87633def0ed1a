"""The /ws protocol without auth: ping, subscribe filters, unsubscribe,
malformed frames, replay with ``after`` and answering asks with ``respond``."""

from __future__ import annotations

import socket

import pytest

from tests.ws.helpers import all_final, final, is_event, ping, status_is, stored_events, subscribe


@pytest.mark.gen_test(timeout=20)
async def test_ping_is_answered_with_pong(ws_connect):
    """``ping`` → ``pong`` echoing the id (null without one)."""
    ws = await ws_connect()
    await ws.send({"op": "ping", "id": "p-1"})
    assert await ws.recv() == {"event": "pong", "id": "p-1", "data": {}}
    await ws.send({"op": "ping"})
    assert await ws.recv() == {"event": "pong", "id": None, "data": {}}


@pytest.mark.gen_test(timeout=20)
async def test_event_sockets_send_without_nagle_delay(ws_connect, ctx):
    """Events are live: TCP_NODELAY is on, or Nagle would hold a write until
    the client's delayed ACK (40 ms on Linux), as bench/engine.py showed."""
    ws = await ws_connect()
    await ws.send({"op": "ping"})
    await ws.recv()
    (server_side,) = ctx.websockets
    sock = server_side.ws_connection.stream.socket
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


@pytest.mark.gen_test(timeout=20)
async def test_session_subscription_gets_only_that_sessions_events(api, ws_connect):
    """A session-filtered subscription never carries another session's events."""
    a = await api.session(provider="instant")
    b = await api.session(provider="instant")
    ws = await ws_connect()
    await subscribe(ws, "a", session_id=a["id"])
    watcher = await ws_connect()
    await subscribe(watcher, "b", session_id=b["id"])

    other = await api.task(b["id"])
    await watcher.recv_until(final(other["id"]))  # b's task is over before a's starts
    mine = await api.task(a["id"])
    frames = await ws.recv_until(final(mine["id"]))
    assert all(is_event(f) for f in frames)
    assert {f["session_id"] for f in frames} == {a["id"]}
    assert {f["task_id"] for f in frames} == {mine["id"]}
    assert frames[0]["event"] == "task.created"
    assert frames == await stored_events(api, a["id"], mine["id"])  # live frames equal the stored ones


@pytest.mark.gen_test(timeout=20)
async def test_task_subscription_gets_only_that_tasks_events(api, ws_connect):
    """A task-filtered subscription skips the other tasks of the same session."""
    session = await api.session(provider="hang")
    slow = await api.task(session["id"], "slow")
    ws = await ws_connect()
    await subscribe(ws, "slow", task_id=slow["id"])
    watcher = await ws_connect()
    await subscribe(watcher, "all")  # no filter: everything this client may see

    quick = await api.task(session["id"], "quick", provider="instant")
    seen = await watcher.recv_until(final(quick["id"]))
    assert quick["id"] in {f["task_id"] for f in seen}
    r = await api.delete(f"/api/v1/sessions/{session['id']}/tasks/{slow['id']}")
    assert r.status == 202
    frames = await ws.recv_until(final(slow["id"], "task.cancelled"))
    assert {f["task_id"] for f in frames} == {slow["id"]}
    assert frames[-1]["data"]["status"] == "cancelled"


@pytest.mark.gen_test(timeout=20)
async def test_unsubscribe_stops_the_events(api, ws_connect):
    """After ``unsubscribed`` no more events of that subscription arrive."""
    session = await api.session(provider="instant")
    ws = await ws_connect()
    await subscribe(ws, "s1", session_id=session["id"])
    await ws.send({"op": "unsubscribe", "id": "s1"})
    assert await ws.recv() == {"event": "unsubscribed", "id": "s1", "data": {}}

    watcher = await ws_connect()
    await subscribe(watcher, "w", session_id=session["id"])
    task = await api.task(session["id"])
    await watcher.recv_until(final(task["id"]))
    # Every event was fanned out to both clients by now; the pong comes after
    # anything the server sent, so nothing before it means nothing at all.
    assert await ping(ws) == [{"event": "pong", "id": "p", "data": {}}]
    # The id is free again.
    await subscribe(ws, "s1", session_id=session["id"])


@pytest.mark.gen_test(timeout=20)
async def test_unsubscribing_an_unknown_id_is_an_error(ws_connect):
    """``unsubscribe`` of an id never subscribed: an ``error`` frame echoing the id."""
    ws = await ws_connect()
    await ws.send({"op": "unsubscribe", "id": "nope"})
    err = await ws.recv()
    assert err["event"] == "error" and err["id"] == "nope"
    assert err["data"]["code"] == "not-found"
    assert "nope" in err["data"]["detail"]
    assert await ping(ws) == [{"event": "pong", "id": "p", "data": {}}]


BAD_FRAMES = [
    ("not json at all", None, "bad-json"),
    ("[1, 2, 3]", None, "bad-frame"),
    ('"just a string"', None, "bad-frame"),
    ("42", None, "bad-frame"),
    ("null", None, "bad-frame"),
    ('{"id": "x1"}', "x1", "bad-frame"),
    ('{"op": "dance", "id": "x2"}', "x2", "bad-frame"),
    ('{"op": "subscribe"}', None, "bad-frame"),
    ('{"op": "subscribe", "id": "x3", "after": -1}', "x3", "bad-frame"),
    ('{"op": "subscribe", "id": "x4", "colour": "red"}', "x4", "bad-frame"),
    ('{"op": "respond", "id": "x5", "session_id": "s", "task_id": "t", "approve": true}', "x5", "bad-frame"),
    ('{"op": "ping", "id": 7}', None, "bad-frame"),
    ('{"op": "auth"}', None, "bad-frame"),
]


@pytest.mark.gen_test(timeout=20)
async def test_malformed_frames_get_an_error_and_the_connection_stays_open(ws_connect):
    """Bad JSON, non-objects, unknown ops, missing or extra fields and binary
    frames: one ``error`` frame each; a ping still gets its pong."""
    ws = await ws_connect()
    for raw, op_id, code in BAD_FRAMES:
        await ws.send(raw)
        err = await ws.recv()
        assert err is not None, raw
        assert err["event"] == "error", raw
        assert err["id"] == op_id, raw
        assert err["data"]["code"] == code, raw
        assert err["data"]["detail"], raw
    await ws.conn.write_message(b'{"op": "ping"}', binary=True)
    err = await ws.recv()
    assert err["event"] == "error" and err["data"]["code"] == "bad-frame"
    assert "binary" in err["data"]["detail"]
    assert await ping(ws, "still-here") == [{"event": "pong", "id": "still-here", "data": {}}]


@pytest.mark.gen_test(timeout=20)
async def test_error_details_name_the_problem(ws_connect):
    """The error detail says what is wrong (the unknown op, the missing field)."""
    ws = await ws_connect()
    await ws.send({"op": "dance", "id": "d"})
    assert "'dance'" in (await ws.recv())["data"]["detail"]
    await ws.send({"op": "subscribe"})
    assert "'id'" in (await ws.recv())["data"]["detail"]


@pytest.mark.gen_test(timeout=20)
async def test_duplicate_subscription_id_is_an_error(api, ws_connect):
    """A second ``subscribe`` with an id in use is refused; the first keeps working."""
    session = await api.session(provider="instant")
    ws = await ws_connect()
    await subscribe(ws, "dup", session_id=session["id"])
    await ws.send({"op": "subscribe", "id": "dup"})
    err = await ws.recv()
    assert err["event"] == "error" and err["id"] == "dup" and err["data"]["code"] == "conflict"
    task = await api.task(session["id"])
    frames = await ws.recv_until(final(task["id"]))
    # One subscription, so each event once.
    seqs = [f["seq"] for f in frames if is_event(f)]
    assert len(seqs) == len(set(seqs))
    assert {f["session_id"] for f in frames if is_event(f)} == {session["id"]}


@pytest.mark.gen_test(timeout=20)
async def test_subscribing_to_an_unknown_session_is_an_error(ws_connect):
    """A session filter naming no visible session: ``error`` with code not-found."""
    ws = await ws_connect()
    await ws.send({"op": "subscribe", "id": "ghost", "session_id": "ses_" + "0" * 32})
    err = await ws.recv()
    assert err["event"] == "error" and err["id"] == "ghost" and err["data"]["code"] == "not-found"
    # The failed subscription did not take the id.
    await subscribe(ws, "ghost")


@pytest.mark.gen_test(timeout=20)
async def test_after_zero_replays_everything_then_continues_live(api, ws_connect):
    """``after: 0`` replays the stored events in order, then live events follow
    with no gap and no duplicate."""
    session = await api.session(provider="instant")
    first = await api.task(session["id"], "first")
    watcher = await ws_connect()
    await subscribe(watcher, "w", task_id=first["id"], after=0)
    await watcher.recv_until(final(first["id"]))

    ws = await ws_connect()
    await subscribe(ws, "replay", session_id=session["id"], after=0)
    replayed = await ws.recv_until(final(first["id"]))
    assert replayed[0]["event"] == "session.created" and replayed[0]["data"]["id"] == session["id"]
    assert replayed[1:] == await stored_events(api, session["id"], first["id"])

    second = await api.task(session["id"], "second")
    live = await ws.recv_until(final(second["id"]))
    assert live == await stored_events(api, session["id"], second["id"])
    seqs = [f["seq"] for f in replayed + live]
    assert all(a < b for a, b in zip(seqs, seqs[1:], strict=False))


@pytest.mark.gen_test(timeout=20)
async def test_respond_answers_an_ask(api, ws_connect):
    """``respond`` approves the pending ask (→ ``responded``) and the task goes on."""
    session = await api.session()
    task = await api.task(session["id"])
    ws = await ws_connect()
    await subscribe(ws, "t", task_id=task["id"], after=0)
    frames = await ws.recv_until(lambda f: is_event(f) and f["event"] == "ask")
    ask = frames[-1]["data"]
    await ws.send(
        {
            "op": "respond",
            "id": "r-1",
            "session_id": session["id"],
            "task_id": task["id"],
            "ask_id": ask["id"],
            "approve": True,
        }
    )
    frames = await ws.recv_until(final(task["id"]))
    replies = [f for f in frames if not is_event(f)]
    assert replies == [{"event": "responded", "id": "r-1", "data": {"task_id": task["id"], "ask_id": ask["id"]}}]
    answered = next(f for f in frames if is_event(f) and f["event"] == "ask.answered")
    assert answered["data"] == {"ask_id": ask["id"], "kind": "tool", "approve": True}
    assert frames[-1]["data"]["result"] == "Created hello.txt with a greeting."
    r = await api.get(f"/api/v1/sessions/{session['id']}/tasks/{task['id']}")
    assert r.json["status"] == "completed"

    # The same ask again is stale now.
    await ws.send(
        {
            "op": "respond",
            "id": "r-2",
            "session_id": session["id"],
            "task_id": task["id"],
            "ask_id": ask["id"],
            "approve": True,
        }
    )
    err = await ws.recv()
    assert err["event"] == "error" and err["id"] == "r-2" and err["data"]["code"] == "conflict"


@pytest.mark.gen_test(timeout=20)
async def test_respond_with_a_stale_ask_id_is_an_error_and_changes_nothing(api, ws_connect):
    """A wrong ask id over WS: ``error`` frame, the task keeps waiting."""
    session = await api.session(provider="followup")
    task = await api.task(session["id"])
    ws = await ws_connect()
    await subscribe(ws, "t", task_id=task["id"], after=0)
    ask = (await ws.recv_until(lambda f: is_event(f) and f["event"] == "ask"))[-1]["data"]
    respond = {"op": "respond", "session_id": session["id"], "task_id": task["id"], "approve": True}
    await ws.send({**respond, "id": "bad", "ask_id": "ask_0000000000000000"})
    err = await ws.recv()
    assert err["event"] == "error" and err["id"] == "bad" and err["data"]["code"] == "conflict"
    r = await api.get(f"/api/v1/sessions/{session['id']}/tasks/{task['id']}")
    assert r.json["status"] == "waiting" and r.json["pending_ask"]["id"] == ask["id"]
    # Unknown task and foreign session: not found.
    await ws.send({**respond, "id": "gone", "task_id": "tsk_" + "0" * 32, "ask_id": ask["id"]})
    err = await ws.recv()
    assert err["event"] == "error" and err["id"] == "gone" and err["data"]["code"] == "not-found"

    await ws.send({**respond, "id": "good", "ask_id": ask["id"], "text": "Go"})
    frames = await ws.recv_until(final(task["id"]))
    assert {"event": "responded", "id": "good", "data": {"task_id": task["id"], "ask_id": ask["id"]}} in frames
    result = next(f for f in frames if is_event(f) and f["event"] == "tool.result")
    assert result["data"]["content"] == "<user_message>\nGo\n</user_message>"


@pytest.mark.gen_test(timeout=20)
async def test_waiting_status_event_carries_the_pending_ask(api, ws_connect):
    """The ``task.status`` → waiting event holds the same ask as the ``ask`` event."""
    session = await api.session()
    task = await api.task(session["id"])
    ws = await ws_connect()
    await subscribe(ws, "t", task_id=task["id"], after=0)
    frames = await ws.recv_until(lambda f: is_event(f) and f["event"] == "ask")
    waiting = next(f for f in frames if status_is(task["id"], "waiting")(f))
    assert waiting["data"]["pending_ask"] == frames[-1]["data"]
    assert waiting["data"]["pending_ask"]["kind"] == "tool"


@pytest.mark.gen_test(timeout=20)
async def test_tasks_that_end_out_of_order_all_reach_a_session_subscription(api, ws_connect):
    """A session's tasks run side by side (``tasks.max_concurrent_tasks``),
    so they need not end in the order they were created: here the first
    waits for an answer while the second ends. A session subscription from
    ``after: 0`` gets both ends, the second's first."""
    session = await api.session()  # "demo" asks before it writes
    first = await api.task(session["id"], "first")
    watcher = await ws_connect()
    await subscribe(watcher, "w", session_id=session["id"], after=0)
    ws = await ws_connect()
    await subscribe(ws, "first", task_id=first["id"], after=0)
    ask = (await ws.recv_until(lambda f: is_event(f) and f["event"] == "ask"))[-1]["data"]
    second = await api.task(session["id"], "second", provider="instant")
    await subscribe(ws, "second", task_id=second["id"], after=0)
    await ws.recv_until(final(second["id"]))
    op = {"op": "respond", "id": "r", "session_id": session["id"], "task_id": first["id"], "ask_id": ask["id"]}
    await ws.send({**op, "approve": True})

    frames = await watcher.recv_until(all_final([first["id"], second["id"]]))
    ends = [f["task_id"] for f in frames if is_event(f) and f["event"] == "task.completed"]
    assert ends == [second["id"], first["id"]]
