"""``EventBus`` over the real store: seq order, fan-out only after commit,
seq never reused across restarts, retention pruning."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from roo_daemon.events import Event, EventBus
from tests.store.conftest import StorePlace, close


class Boom(Exception):
    pass


class Recorder:
    """A subscriber that checks, at delivery, that the event is already
    committed, through a connection of its own."""

    def __init__(self, store: StorePlace) -> None:
        self.conn = store.connect()
        self.events: list[Event] = []
        self.uncommitted: list[int] = []

    def deliver(self, event: Event) -> None:
        row = self.conn.execute("SELECT frame FROM events WHERE seq = ?", (event.seq,)).fetchone()
        if row is None or row[0] != event.frame:
            self.uncommitted.append(event.seq)
        self.events.append(event)


async def open_bus(store: StorePlace) -> EventBus:
    return await store.open_bus()


def publish(bus: EventBus, i: int, **kw: Any) -> asyncio.Future:
    return bus.publish("test.event", {"i": i}, session_id="ses_1", task_id=kw.pop("task_id", "tsk_1"), **kw)


async def stored(bus: EventBus) -> list[tuple[int, str]]:
    return await bus.store.page(0, 100_000)


@pytest.mark.gen_test(timeout=30)
async def test_seq_increases_and_fan_out_follows_the_commit(store: StorePlace) -> None:
    """500 concurrent publishes: seq 1..500 with no gaps, fewer commits than
    events, every event delivered after it is durable, in seq order, with
    the stored bytes."""
    bus = await open_bus(store)
    commits: list[int] = []
    bus.db.on_commit = lambda n, seconds: commits.append(n)
    rec = Recorder(store)
    bus.subscribe(rec)
    await asyncio.wait_for(asyncio.gather(*(publish(bus, i) for i in range(500))), 10)

    assert sum(commits) == 500 and len(commits) < 500
    assert rec.uncommitted == []
    assert [e.seq for e in rec.events] == list(range(1, 501))
    rows = await stored(bus)
    assert [seq for seq, _ in rows] == list(range(1, 501))
    assert [frame for _, frame in rows] == [e.frame for e in rec.events]
    first = json.loads(rows[0][1])
    assert first["seq"] == 1 and first["event"] == "test.event" and first["data"] == {"i": 0}
    assert first["session_id"] == "ses_1" and first["task_id"] == "tsk_1"
    assert bus.last_seq == 500
    close(rec.conn)
    await bus.db.close()


@pytest.mark.gen_test(timeout=30)
async def test_an_event_whose_write_fails_is_neither_stored_nor_delivered(store: StorePlace) -> None:
    """The event and its ``write`` are one transaction: if the write raises,
    neither exists, no subscriber hears of it, and its neighbours are unaffected."""
    bus = await open_bus(store)
    rec = Recorder(store)
    bus.subscribe(rec)

    def bad(c: Any) -> None:
        c.execute("INSERT INTO meta (k, v) VALUES ('half', 'done')")
        raise Boom("write failed")

    futures = [publish(bus, 0), publish(bus, 1, write=bad), publish(bus, 2)]
    results = await asyncio.gather(*futures, return_exceptions=True)
    assert isinstance(results[1], Boom)
    # SQLite's bus numbered the failed event before the write (its seq stays
    # unused); PostgreSQL's store numbers events as it commits them, so a
    # failed one takes none.
    kept = [1, 3] if store.backend == "sqlite" else [1, 2]
    assert [e.seq for e in rec.events] == kept
    assert [seq for seq, _ in await stored(bus)] == kept
    assert await bus.db.read(lambda c: c.execute("SELECT COUNT(*) FROM meta WHERE k = 'half'").fetchone()[0]) == 0
    assert rec.uncommitted == []
    close(rec.conn)
    await bus.db.close()


@pytest.mark.gen_test(timeout=30)
async def test_unsubscribed_subscribers_hear_nothing_and_a_failing_one_harms_no_other(store: StorePlace) -> None:
    bus = await open_bus(store)
    gone, good = Recorder(store), Recorder(store)

    class Broken:
        def deliver(self, event: Event) -> None:
            raise RuntimeError("subscriber bug")

    for sub in (gone, Broken(), good):
        bus.subscribe(sub)
    await bus.append("a", {}, session_id=None)
    bus.unsubscribe(gone)
    await bus.append("b", {}, session_id=None)
    assert [e.name for e in gone.events] == ["a"]
    assert [e.name for e in good.events] == ["a", "b"]
    close(gone.conn)
    close(good.conn)
    await bus.db.close()


@pytest.mark.gen_test(timeout=30)
async def test_last_seq_survives_reopen_even_when_every_event_was_deleted(store: StorePlace) -> None:
    """The store remembers the highest seq ever used (SQLite's
    ``sqlite_sequence``, PostgreSQL's ``event_seq``), so after a restart seq
    continues above it even if the log is empty."""
    bus = await open_bus(store)
    for i in range(5):
        await publish(bus, i)
    await bus.db.write(lambda c: c.execute("DELETE FROM events"))
    assert await stored(bus) == []
    await bus.db.close()

    bus = await open_bus(store)
    assert bus.last_seq == 5
    await publish(bus, 5)
    assert [seq for seq, _ in await stored(bus)] == [6]
    await bus.db.close()

    bus = await open_bus(store)  # and again, with rows present
    assert bus.last_seq == 6
    await bus.db.close()


@pytest.mark.gen_test(timeout=30)
async def test_a_fresh_store_starts_at_seq_1(store: StorePlace) -> None:
    bus = await open_bus(store)
    assert (bus.last_seq, bus.pruned_through) == (0, 0)
    await publish(bus, 0)
    assert [seq for seq, _ in await stored(bus)] == [1]
    await bus.db.close()


@pytest.mark.gen_test(timeout=30)
async def test_prune_by_count_keeps_the_newest_and_records_pruned_through(store: StorePlace) -> None:
    bus = await open_bus(store)
    await asyncio.gather(*(publish(bus, i) for i in range(10)))
    assert await bus.prune(max_events=4, max_age_seconds=3600) == 6
    assert bus.pruned_through == 6
    assert [seq for seq, _ in await stored(bus)] == [7, 8, 9, 10]
    assert await bus.prune(max_events=4, max_age_seconds=3600) == 0  # nothing more to drop
    assert bus.pruned_through == 6
    await bus.db.close()

    bus = await open_bus(store)
    assert (bus.last_seq, bus.pruned_through) == (10, 6)
    await bus.db.close()


@pytest.mark.gen_test(timeout=30)
async def test_prune_by_age_and_pruned_through_never_goes_back(store: StorePlace) -> None:
    """Events older than the cutoff go; a later prune with a lower floor
    does not lower ``pruned_through``."""
    bus = await open_bus(store)
    now = time.time()
    old = [(seq, "old", None, None, None, now - 7200, json.dumps({"seq": seq, "event": "old"})) for seq in (1, 2, 3)]
    await bus.db.write(bus.store.insert([(None, row) for row in old]))
    bus.last_seq = 3
    for i in range(3):
        await publish(bus, i)  # seq 4..6, fresh
    assert await bus.prune(max_events=1000, max_age_seconds=3600) == 3
    assert bus.pruned_through == 3
    assert [seq for seq, _ in await stored(bus)] == [4, 5, 6]

    assert await bus.store.prune_floor(2, now - 3600) == 4  # by count
    await bus.db.write(bus.store.prune(4))
    assert await bus.store.pruned_through() == 4
    await bus.db.write(lambda c: c.execute("INSERT INTO events (seq, event, ts, frame) VALUES (2, 'x', 0, '{}')"))
    assert await bus.db.write(bus.store.prune(2)) == 1  # a lower floor drops seq 2 only
    assert await bus.store.pruned_through() == 4
    await bus.db.close()
