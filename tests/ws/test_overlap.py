"""Several subscriptions on one connection: event frames carry no
subscription id, so the connection is one stream, and each event is on it
at most once, however the subscriptions overlap (live, replaying, gone),
while every event any of them asked for still arrives."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.ws.helpers import (
    PONG,
    all_final,
    cancel,
    chatty_config,
    delta_is,
    final,
    hold_fan_out,
    is_event,
    ping,
    seqs,
    store_seqs,
    stored_events,
    subscribe,
)


@pytest.fixture
def config(tmp_path) -> dict[str, Any]:
    return chatty_config(tmp_path)


def reply_to(sub_id: str, event: str = "subscribed"):
    return lambda f: f.get("event") == event and f.get("id") == sub_id


def without_one(received: list[int], seq: int) -> list[int]:
    """``received`` minus ``seq``, which must be in it exactly once."""
    assert received.count(seq) == 1, (seq, received)
    return [s for s in received if s != seq]


@pytest.mark.gen_test(timeout=20)
async def test_a_replay_skips_what_a_live_subscription_already_sent(api, ctx, ws_connect):
    """(a) A live subscription sent a task's events; replays on the same
    connection from ``after: 0`` send only what it did not send (here the
    ``session.created`` from before it), and new events arrive once."""
    session = await api.session(provider="instant")
    (created,) = await store_seqs(ctx, session["id"])  # fanned out before the 201
    ws = await ws_connect()
    await subscribe(ws, "live", session_id=session["id"])
    first = await api.task(session["id"])
    live = await ws.recv_until(final(first["id"]))
    assert seqs(live) == [e["seq"] for e in await stored_events(api, session["id"], first["id"])]

    await subscribe(ws, "task", task_id=first["id"], after=0)  # all of it sent already
    assert await ping(ws) == [PONG]
    await subscribe(ws, "all", after=0)  # everything: only what came before "live"
    frames = await ping(ws, "p2")
    assert [f.get("seq") for f in frames] == [created, None] and frames[0]["event"] == "session.created"

    # Three subscriptions match the next task's events: each arrives once.
    second = await api.task(session["id"])
    frames = await ws.recv_until(final(second["id"]))
    assert seqs(frames) == [e["seq"] for e in await stored_events(api, session["id"], second["id"])]
    assert await ping(ws) == [PONG]


def publish_during_replays(ctx, session_id: str, task_id: str, events: int):
    """Each replay page, once read, waits while ``events`` more of the task's
    events are committed and fanned out: live events during a replay, for
    sure, however far the task's own stream has got. Returns the function
    that undoes it."""
    page = ctx.events.page

    async def page_then_publish(*args, **kwargs):
        rows = await page(*args, **kwargs)
        for n in range(events):
            await ctx.bus.append("test.tick", {"n": n}, session_id=session_id, task_id=task_id, owner="local")
        return rows

    ctx.events.page = page_then_publish
    return lambda: setattr(ctx.events, "page", page)


@pytest.mark.gen_test(timeout=30)
async def test_a_replay_while_another_subscription_streams_sends_each_event_once(api, ctx, ws_connect):
    """(b) One subscription streams a task live; a second, wider one (the
    session) replays from the last seq seen while events keep coming.
    Events fanned out during that replay go out live and are neither held
    back for it nor replayed again; an event it reads before its fan-out
    goes out once. The connection gets every stored event exactly once, in
    seq order."""
    session = await api.session(provider="chatty")
    task = await api.task(session["id"], "talk")
    ws = await ws_connect()
    await subscribe(ws, "task", task_id=task["id"], after=0)
    frames = await ws.recv_until(delta_is("J"))  # the 36th delta
    frames += await ping(ws)  # the replay of "task" is over: it is live
    n = frames[-2]["seq"]

    restore = publish_during_replays(ctx, session["id"], task["id"], events=5)
    try:
        await ws.send({"op": "subscribe", "id": "session", "session_id": session["id"], "after": n})
        frames += await ws.recv_until(reply_to("session"))  # live frames keep arriving meanwhile
        frames += await ping(ws, "replayed")
    finally:
        restore()
    await cancel(api, session["id"], task["id"])
    frames += await ws.recv_until(final(task["id"], "task.cancelled"))
    assert await ping(ws, "end") == [{"event": "pong", "id": "end", "data": {}}]  # nothing held back comes late

    stored = await stored_events(api, session["id"], task["id"])
    assert seqs(frames) == [e["seq"] for e in stored]
    assert [f for f in frames if is_event(f)] == stored  # byte-for-byte
    assert await store_seqs(ctx, session["id"], after=n) == [e["seq"] for e in stored if e["seq"] > n]
    assert len([f for f in frames if is_event(f) and f["event"] == "test.tick"]) >= 5


@pytest.mark.gen_test(timeout=20)
async def test_two_replays_asked_for_at_once_send_each_event_once(api, ctx, ws_connect):
    """(c) Two overlapping subscriptions with ``after: 0`` sent back to back:
    the connection handles one op at a time, so the second replay runs
    after the first and sends only what the first did not."""
    session = await api.session(provider="instant")
    task = await api.task(session["id"])
    watcher = await ws_connect()
    await subscribe(watcher, "w", task_id=task["id"], after=0)
    await watcher.recv_until(final(task["id"]))
    created, *task_seqs = await store_seqs(ctx, session["id"])

    ws = await ws_connect()
    await ws.send({"op": "subscribe", "id": "task", "task_id": task["id"], "after": 0})
    await ws.send({"op": "subscribe", "id": "session", "session_id": session["id"], "after": 0})
    frames = await ping(ws)
    assert [f["event"] for f in frames if not is_event(f)] == ["subscribed", "subscribed", "pong"]
    assert frames[0] == {"event": "subscribed", "id": "task", "data": {"after": 0}}
    assert frames[len(task_seqs) + 1] == {"event": "subscribed", "id": "session", "data": {"after": 0}}
    assert seqs(frames) == task_seqs + [created]


@pytest.mark.gen_test(timeout=30)
async def test_two_replays_running_at_the_same_time_send_each_event_once(api, ctx, ws_connect):
    """(c) Two replays interleaved page by page. The protocol cannot start
    them together today (a connection's ops run one at a time), so this
    drives the handler directly: the guarantee must not rest on that. With
    more events than a replay page, each replay skips what the other has
    sent: the task's events arrive once each and in seq order."""
    session = await api.session(provider="chatty")
    task = await api.task(session["id"], "talk")
    watcher = await ws_connect()
    await subscribe(watcher, "w", task_id=task["id"], after=0)
    await watcher.recv_until(delta_is("!"))  # streamed out; the task now waits
    created, *task_seqs = await store_seqs(ctx, session["id"])
    assert len(task_seqs) > 2000  # two and more replay pages each

    ws = await ws_connect()
    assert await ping(ws, "hello") == [{"event": "pong", "id": "hello", "data": {}}]
    (server_side,) = [w for w in ctx.websockets if not w.subs]  # the watcher's has one
    await asyncio.gather(
        server_side._op_subscribe({"op": "subscribe", "id": "task", "task_id": task["id"], "after": 0}),
        server_side._op_subscribe({"op": "subscribe", "id": "session", "session_id": session["id"], "after": 0}),
    )
    frames = await ping(ws)
    assert without_one(seqs(frames), created) == task_seqs
    await cancel(api, session["id"], task["id"])
    frames = await ws.recv_until(final(task["id"], "task.cancelled"))
    assert seqs(frames) == await store_seqs(ctx, task_id=task["id"], after=task_seqs[-1])


@pytest.mark.gen_test(timeout=20)
async def test_resubscribing_after_an_unsubscribe_replays_only_what_was_missed(api, ctx, ws_connect):
    """Unsubscribe, let a task run, subscribe again from ``after: 0``: the
    connection gets what it was not sent (the events before the first
    subscription and while it had none), never what it was."""
    session = await api.session(provider="instant")
    (created,) = await store_seqs(ctx, session["id"])
    ws = await ws_connect()
    await subscribe(ws, "s", session_id=session["id"])
    first = await api.task(session["id"], "first")
    assert seqs(await ws.recv_until(final(first["id"]))) == await store_seqs(ctx, task_id=first["id"])
    await ws.send({"op": "unsubscribe", "id": "s"})
    assert await ws.recv() == {"event": "unsubscribed", "id": "s", "data": {}}

    second = await api.task(session["id"], "second")  # while the connection has no subscription
    watcher = await ws_connect()
    await subscribe(watcher, "w", task_id=second["id"], after=0)
    await watcher.recv_until(final(second["id"]))

    await subscribe(ws, "s", session_id=session["id"], after=0)
    assert seqs(await ping(ws)) == [created] + await store_seqs(ctx, task_id=second["id"])
    await subscribe(ws, "first-again", task_id=first["id"], after=0)
    assert await ping(ws) == [PONG]

    # Unsubscribed and subscribed again, as often as it likes: still once each.
    for round_ in range(3):
        await ws.send({"op": "unsubscribe", "id": "s"})
        assert await ws.recv() == {"event": "unsubscribed", "id": "s", "data": {}}
        await subscribe(ws, "s", session_id=session["id"], after=0)
        assert await ping(ws, f"r{round_}") == [{"event": "pong", "id": f"r{round_}", "data": {}}]
    third = await api.task(session["id"], "third")
    frames = await ws.recv_until(final(third["id"]))
    assert seqs(frames) == await store_seqs(ctx, task_id=third["id"])


@pytest.mark.gen_test(timeout=20)
async def test_an_event_replayed_before_its_fan_out_is_not_sent_again_live(api, ctx, ws_connect):
    """A replay may read an event the store has committed but the bus has
    not fanned out yet. Its live copy, when it comes, is not sent again by
    another live subscription, neither while the replaying subscription is
    there nor after it is gone."""
    session = await api.session()
    (created,) = await store_seqs(ctx, session["id"])
    ws = await ws_connect()
    await subscribe(ws, "live", session_id=session["id"])
    release = hold_fan_out(ctx)
    try:
        await asyncio.gather(
            ctx.bus.publish("test.late", {"n": 1}, session_id=session["id"], owner="local"),
            ctx.bus.publish("test.late", {"n": 2}, session_id=session["id"], owner="local"),
        )
    finally:
        fan_out = release()
    two = await ctx.events.last_seq()  # committed (the bus learns seqs at fan-out on PostgreSQL)
    one = two - 1
    assert len(fan_out) == 2 and await ping(ws) == [PONG]  # committed, not fanned out

    await subscribe(ws, "replay", session_id=session["id"], after=0)
    assert seqs(await ping(ws)) == [created, one, two]
    fan_out[0]()  # "replay" is live now and sent it already
    assert await ping(ws) == [PONG]
    await ws.send({"op": "unsubscribe", "id": "replay"})
    assert await ws.recv() == {"event": "unsubscribed", "id": "replay", "data": {}}
    fan_out[1]()  # "replay" is gone, but it sent this one
    assert await ping(ws) == [PONG]

    await ctx.bus.publish("test.next", {"n": 3}, session_id=session["id"], owner="local")
    assert seqs(await ping(ws)) == [two + 1]


@pytest.mark.gen_test(timeout=20)
async def test_a_late_event_sent_live_is_not_replayed_again(api, ctx, ws_connect):
    """An event committed before a live subscription began but fanned out
    after goes out live (as with a single subscription); a replay on the
    same connection then knows it was sent."""
    session = await api.session()
    (created,) = await store_seqs(ctx, session["id"])
    ws = await ws_connect()
    release = hold_fan_out(ctx)
    try:
        await ctx.bus.publish("test.late", {"n": 1}, session_id=session["id"], owner="local")
    finally:
        fan_out = release()
    late = await ctx.events.last_seq()  # committed, not fanned out yet

    await subscribe(ws, "live", session_id=session["id"])
    fan_out[0]()
    assert seqs(await ping(ws)) == [late]
    await subscribe(ws, "replay", session_id=session["id"], after=0)
    assert seqs(await ping(ws)) == [created]


@pytest.mark.gen_test(timeout=20)
async def test_what_unsubscribed_subscriptions_sent_is_remembered_within_bounds(api, ctx, ws_connect):
    """The records kept for gone subscriptions are bounded: the same filters
    again make one record; past ``websocket.max_subscriptions`` the one that
    ends first is forgotten (its events may then come again: a duplicate,
    never a gap); records whose events are all pruned are dropped."""
    ctx.config["websocket"]["max_subscriptions"] = 3
    session = await api.session(provider="instant")
    tasks = [await api.task(session["id"], f"t{i}") for i in range(5)]
    watcher = await ws_connect()
    await subscribe(watcher, "w", session_id=session["id"], after=0)
    await watcher.recv_until(all_final([t["id"] for t in tasks]))  # four run at once: any may end first
    ws = await ws_connect()
    assert await ping(ws, "hello") == [{"event": "pong", "id": "hello", "data": {}}]
    (handler,) = [w for w in ctx.websockets if not w.subs]

    async def once(sub_id: str, **filters: Any) -> list[int]:
        """Subscribe from the start, then unsubscribe: the seqs it sent."""
        await subscribe(ws, sub_id, after=0, **filters)
        frames = await ping(ws)
        await ws.send({"op": "unsubscribe", "id": sub_id})
        assert await ws.recv() == {"event": "unsubscribed", "id": sub_id, "data": {}}
        return seqs(frames)

    first = await store_seqs(ctx, task_id=tasks[0]["id"])
    assert await once("a", task_id=tasks[0]["id"]) == first
    for _ in range(3):
        assert await once("a", task_id=tasks[0]["id"]) == []
    assert len(handler.subs._gone) == 1  # one record for the same filters

    for task in tasks[1:]:
        assert await once("b", task_id=task["id"]) == await store_seqs(ctx, task_id=task["id"])
    assert len(handler.subs._gone) == 3  # the cap: the first task's record was forgotten
    assert await once("a", task_id=tasks[0]["id"]) == first  # again: a duplicate, not a gap
    assert await once("b", task_id=tasks[-1]["id"]) == []  # still remembered

    await ctx.bus.prune(max_events=0, max_age_seconds=10**9)
    assert await once("c", task_id=tasks[0]["id"]) == []  # only a gap frame: everything is pruned
    # The others covered pruned events only; "c" covered nothing (nothing was
    # left to replay, and no event has reached this connection live).
    assert handler.subs._gone == []


@pytest.mark.gen_test(timeout=20)
async def test_a_subscription_that_starts_after_an_event_leaves_it_to_the_others(api, ctx, ws_connect):
    """A replay may begin past events not fanned out yet (an ``after`` ahead
    of the live stream). Live, it skips them, but it must not keep another
    subscription from sending them: neither a live one that began before
    them nor a replay that holds them back."""
    session = await api.session()
    ws = await ws_connect()
    ahead = ctx.bus.last_seq + 3
    await subscribe(ws, "ahead", session_id=session["id"], after=ahead)
    await subscribe(ws, "live", session_id=session["id"])
    for n in range(4):
        await ctx.bus.append("test.tick", {"n": n}, session_id=session["id"], owner="local")
    assert seqs(await ping(ws)) == [ahead - 2, ahead - 1, ahead, ahead + 1]

    # A replay running while such events are fanned out holds them back and sends them.
    for sub_id in ("ahead", "live"):
        await ws.send({"op": "unsubscribe", "id": sub_id})
        assert await ws.recv() == {"event": "unsubscribed", "id": sub_id, "data": {}}
    ahead = ctx.bus.last_seq + 3
    await subscribe(ws, "ahead-again", session_id=session["id"], after=ahead)
    restore = publish_during_replays(ctx, session["id"], None, events=2)  # fanned out during the replay
    try:
        await subscribe(ws, "replay", session_id=session["id"], after=ahead - 3)
    finally:
        restore()
    assert seqs(await ping(ws)) == [ahead - 2, ahead - 1]


@pytest.mark.gen_test(timeout=20)
async def test_replays_waiting_for_room_side_by_side_all_resume(api, ctx, ws_connect):
    """Two replays waiting at once for the client to read (driven directly,
    as in (c)): the room the client makes wakes both, not only the last one
    to wait. Each event then arrives once."""
    session = await api.session(provider="instant")
    task = await api.task(session["id"])
    watcher = await ws_connect()
    await subscribe(watcher, "w", task_id=task["id"], after=0)
    await watcher.recv_until(final(task["id"]))

    ws = await ws_connect()
    assert await ping(ws, "hello") == [{"event": "pong", "id": "hello", "data": {}}]
    (handler,) = [w for w in ctx.websockets if not w.subs]
    low_water = ctx.config["websocket"]["send_queue_max"] // 2
    handler.outbox.unflushed = low_water  # as if the client had not read what it was handed
    pages = 0
    page = ctx.events.page

    async def counted_page(*args, **kwargs):
        nonlocal pages
        rows = await page(*args, **kwargs)
        pages += 1  # the replay goes on to wait for room in this same step
        return rows

    ctx.events.page = counted_page
    try:
        replays = [
            asyncio.ensure_future(handler._op_subscribe({"op": "subscribe", "id": sub_id, **filters, "after": 0}))
            for sub_id, filters in (("task", {"task_id": task["id"]}), ("session", {"session_id": session["id"]}))
        ]
        while pages < 2 and not any(r.done() for r in replays):
            await asyncio.sleep(0.001)
    finally:
        ctx.events.page = page
    assert not any(r.done() for r in replays)

    done = asyncio.get_running_loop().create_future()
    done.set_result(None)
    handler.outbox.flushed(done, low_water)  # the client read it all
    await asyncio.wait_for(asyncio.gather(*replays), 5)
    frames = await ping(ws)
    assert sorted(seqs(frames)) == await store_seqs(ctx, session["id"])


@pytest.mark.gen_test(timeout=20)
async def test_one_live_subscription_gets_the_fast_path_back(api, ctx, ws_connect):
    """deliver()'s fast path (one live subscription) stays off only while an
    unsubscribed record may hold an event not fanned out yet: it is on again
    once that event is fanned out, and a record that covers nothing (an
    ``after`` past the live stream) never turns it off."""
    session = await api.session()
    ws = await ws_connect()
    assert await ping(ws, "hello") == [{"event": "pong", "id": "hello", "data": {}}]
    (handler,) = ctx.websockets
    await ctx.bus.append("test.first", {"n": 0}, session_id=session["id"], owner="local")  # the start is known

    await subscribe(ws, "ahead", session_id=session["id"], after=ctx.bus.last_seq + 1000)
    await ws.send({"op": "unsubscribe", "id": "ahead"})
    assert await ws.recv() == {"event": "unsubscribed", "id": "ahead", "data": {}}
    await subscribe(ws, "live", session_id=session["id"])
    assert handler.subs._solo is handler.subs["live"]

    release = hold_fan_out(ctx)
    try:
        await ctx.bus.publish("test.late", {"n": 1}, session_id=session["id"], owner="local")
    finally:
        fan_out = release()
    late = await ctx.events.last_seq()  # committed, not fanned out yet
    await subscribe(ws, "replay", session_id=session["id"], after=late - 1)
    assert seqs(await ping(ws)) == [late]  # read from the store before its fan-out
    await ws.send({"op": "unsubscribe", "id": "replay"})
    assert await ws.recv() == {"event": "unsubscribed", "id": "replay", "data": {}}
    assert handler.subs._solo is None  # "live" alone would send it again
    fan_out[0]()
    assert await ping(ws) == [PONG]
    assert handler.subs._solo is handler.subs["live"]
    await ctx.bus.append("test.next", {"n": 2}, session_id=session["id"], owner="local")
    assert seqs(await ping(ws)) == [late + 1]
