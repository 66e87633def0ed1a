"""Replay with ``after``: the replay/live seam while events are being
produced, resuming after a reconnect, and the ``gap`` frame after pruning."""

from __future__ import annotations

from typing import Any

import pytest

from tests.ws.helpers import (
    CHATTY_TEXT,
    cancel,
    chatty_config,
    deltas,
    final,
    is_event,
    past,
    ping,
    stored_events,
    subscribe,
)


@pytest.fixture
def config(tmp_path) -> dict[str, Any]:
    return chatty_config(tmp_path)


@pytest.mark.gen_test(timeout=30)
async def test_subscribing_mid_stream_has_no_gap_and_no_duplicate(api, ctx, ws_connect):
    """A client joining with ``after=N`` while deltas stream gets exactly the
    stored events after N: the replay hands over to live events seamlessly."""
    session = await api.session(provider="chatty")
    task = await api.task(session["id"], "talk")
    first = await ws_connect()
    await subscribe(first, "from-start", task_id=task["id"], after=0)
    early = await first.recv_until(lambda f: len(deltas([f])) == 1 and f["data"]["text"] == "J")  # 36th delta
    n = early[-1]["seq"]

    second = await ws_connect()
    await subscribe(second, "mid", task_id=task["id"], after=n)
    s = ctx.bus.last_seq  # events up to here existed when the subscription began
    assert s > n, "the stream should still be going"
    # Read well past the subscription point: these were delivered live.
    joined = await second.recv_until(past(s + 300))
    await cancel(api, session["id"], task["id"])
    joined += await second.recv_until(final(task["id"], "task.cancelled"))
    whole = early + await first.recv_until(final(task["id"], "task.cancelled"))

    stored_after_n = await stored_events(api, session["id"], task["id"], after=n)
    assert [f["seq"] for f in joined] == [e["seq"] for e in stored_after_n]
    assert joined == stored_after_n  # byte-for-byte the same events
    assert whole == await stored_events(api, session["id"], task["id"])
    # The streamed text arrived in order, one character per delta.
    text = "".join(f["data"]["text"] for f in deltas(whole))
    assert CHATTY_TEXT.startswith(text) and len(text) > 336


@pytest.mark.gen_test(timeout=30)
async def test_reconnect_and_resume_after_the_last_seq(api, ws_connect):
    """Close mid-stream, reconnect with ``after=<last seq seen>``: together the
    two connections saw every stored event exactly once."""
    session = await api.session(provider="chatty")
    task = await api.task(session["id"], "talk")
    ws = await ws_connect()
    await subscribe(ws, "t", task_id=task["id"], after=0)
    before = await ws.recv_until(lambda f: len(deltas([f])) == 1 and f["data"]["text"] == "z")
    last = before[-1]["seq"]
    ws.close()

    # Events keep coming while nobody listens on that connection. (The
    # watcher replays from ``last``: subscribed live only, it got nothing
    # when the whole text had streamed while it connected, as on PostgreSQL
    # under load.)
    watcher = await ws_connect()
    await subscribe(watcher, "w", task_id=task["id"], after=last)
    await watcher.recv_until(past(last + 200))

    again = await ws_connect()
    await subscribe(again, "t", task_id=task["id"], after=last)
    after = await again.recv_until(past(last + 400))
    assert after[0]["seq"] > last
    await cancel(api, session["id"], task["id"])
    after += await again.recv_until(final(task["id"], "task.cancelled"))

    seen = [f["seq"] for f in before + after]
    stored = [e["seq"] for e in await stored_events(api, session["id"], task["id"])]
    assert seen == stored
    assert len(set(seen)) == len(seen)


@pytest.mark.gen_test(timeout=20)
async def test_gap_frame_when_after_is_older_than_retention(api, ctx, ws_connect):
    """After pruning, ``after: 0`` gets ``gap`` (with the first retained seq)
    first, then the retained events; an ``after`` inside retention gets no gap."""
    session = await api.session(provider="instant")
    task = await api.task(session["id"])
    watcher = await ws_connect()
    await subscribe(watcher, "w", task_id=task["id"], after=0)
    await watcher.recv_until(final(task["id"]))
    last = ctx.bus.last_seq
    assert last > 6

    dropped = await ctx.bus.prune(max_events=3, max_age_seconds=10**9)
    assert dropped == last - 3
    assert ctx.bus.pruned_through == last - 3

    ws = await ws_connect()
    await subscribe(ws, "old", after=0)
    gap = await ws.recv()
    assert gap == {"event": "gap", "id": "old", "data": {"after": 0, "first_seq": last - 2}}
    replayed = [await ws.recv() for _ in range(3)]
    assert [f["seq"] for f in replayed] == [last - 2, last - 1, last]
    assert replayed == (await stored_events(api, session["id"], task["id"]))[-3:]
    assert await ping(ws) == [{"event": "pong", "id": "p", "data": {}}]

    # With a task filter, the gap is announced too.
    other = await ws_connect()
    await subscribe(other, "old-task", task_id=task["id"], after=1)
    assert (await other.recv())["event"] == "gap"
    assert [f["seq"] for f in await other.recv_until(final(task["id"]))][0] == last - 2
    # On the connection that got those events already: the gap, and no event twice.
    await subscribe(ws, "old-task", task_id=task["id"], after=1)
    assert (await ws.recv())["event"] == "gap"
    assert await ping(ws) == [{"event": "pong", "id": "p", "data": {}}]

    # From inside the retained range: no gap.
    fresh = await ws_connect()
    await subscribe(fresh, "recent", after=last - 3)
    frames = await fresh.recv_until(lambda f: is_event(f) and f["seq"] == last)
    assert [f["seq"] for f in frames] == [last - 2, last - 1, last]


@pytest.mark.gen_test(timeout=20)
async def test_gap_when_everything_was_pruned(api, ctx, ws_connect):
    """Pruning by age can drop every event: the gap points past the end, and
    new events still arrive after it."""
    session = await api.session(provider="instant")
    first = await api.task(session["id"])
    watcher = await ws_connect()
    await subscribe(watcher, "w", session_id=session["id"], after=0)  # replay: the task may be done already
    await watcher.recv_until(final(first["id"]))
    last = ctx.bus.last_seq
    await ctx.bus.prune(max_events=10**9, max_age_seconds=-60)  # everything is "older" than a minute from now
    assert ctx.bus.pruned_through == last

    ws = await ws_connect()
    await subscribe(ws, "s", session_id=session["id"], after=0)
    assert await ws.recv() == {"event": "gap", "id": "s", "data": {"after": 0, "first_seq": last + 1}}
    second = await api.task(session["id"])
    frames = await ws.recv_until(final(second["id"]))
    assert frames[0]["seq"] == last + 1 and frames[0]["event"] == "task.created"


@pytest.mark.gen_test(timeout=20)
async def test_event_committed_before_the_replay_but_fanned_out_after_is_sent_once(api, ctx, ws_connect):
    """The store commits an event before the bus fans it out. If a replay
    reads it in between, the late live copy must not be sent again."""
    session = await api.session()
    ws = await ws_connect()
    late: list = []
    write_row = ctx.db.write_row

    def delaying_write_row(sql, row, after=None, **kw):  # commit now, fan out when the test says so
        return write_row(sql, row, after=(lambda: late.append(after)) if after is not None else None, **kw)

    ctx.db.write_row = delaying_write_row
    try:
        fut = ctx.bus.publish("test.late", {"n": 1}, session_id=session["id"], owner="local")
        await fut  # committed: a replay can read it; not fanned out yet
        seq = await ctx.events.last_seq()
    finally:
        ctx.db.write_row = write_row
    assert len(late) == 1

    await subscribe(ws, "s", session_id=session["id"], after=0)
    frames = await ws.recv_until(lambda f: is_event(f) and f["seq"] == seq)
    assert [f["event"] for f in frames] == ["session.created", "test.late"]
    assert await ping(ws, "replayed") == [{"event": "pong", "id": "replayed", "data": {}}]  # replay is over

    late[0]()  # the bus fans the event out now: the subscription is live
    assert await ping(ws, "after") == [{"event": "pong", "id": "after", "data": {}}]
    # Later events still flow.
    await ctx.bus.publish("test.next", {"n": 2}, session_id=session["id"], owner="local")
    frame = await ws.recv()
    assert frame["event"] == "test.next" and frame["seq"] == seq + 1


@pytest.mark.parametrize("when", ["between pages", "during a read"])
@pytest.mark.gen_test(timeout=20)
async def test_pruning_during_a_replay_is_announced_with_a_gap(api, ctx, ws_connect, monkeypatch, when):
    """Retention may drop events while a long replay pages through them: the
    client gets a gap frame where they went, never a silent hole."""
    from roo_daemon.ws import subscriptions

    session = await api.session(provider="instant")
    task = await api.task(session["id"])
    watcher = await ws_connect()
    await subscribe(watcher, "w", task_id=task["id"], after=0)
    await watcher.recv_until(final(task["id"]))
    stored = [f["seq"] for f in await stored_events(api, session["id"], task["id"])]
    assert len(stored) > 6
    monkeypatch.setattr(subscriptions, "REPLAY_PAGE", 2)
    page = ctx.events.page
    calls = 0

    async def page_with_pruning(*args, **kwargs):
        nonlocal calls
        calls += 1
        if when == "between pages" and calls == 2:
            await ctx.bus.prune(max_events=3, max_age_seconds=10**9)
        rows = await page(*args, **kwargs)
        if when == "during a read" and calls == 1:  # the rows were read, then went
            await ctx.bus.prune(max_events=3, max_age_seconds=10**9)
        return rows

    monkeypatch.setattr(ctx.events, "page", page_with_pruning)
    ws = await ws_connect()
    await subscribe(ws, "r", task_id=task["id"], after=0)
    frames = await ws.recv_until(final(task["id"]))
    floor = ctx.bus.pruned_through
    sent_before = stored[:2] if when == "between pages" else []
    gap = {"event": "gap", "id": "r", "data": {"after": sent_before[-1] if sent_before else 0, "first_seq": floor + 1}}
    assert frames == [*frames[: len(sent_before)], gap, *frames[len(sent_before) + 1 :]]
    assert [f["seq"] for f in frames if f["event"] != "gap"] == sent_before + [s for s in stored if s > floor]
