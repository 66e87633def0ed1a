"""One bad event must never cost anyone else an event.

Events are written in group commits: every event queued while the previous
commit ran goes into one transaction, and consecutive event rows into one
``executemany``. One row SQLite could not take (a lone UTF-16 surrogate is
not encodable as UTF-8) used to fail the whole statement: every event in the
batch, other tenants' included, was lost from the log and never sent live,
leaving a seq gap. Now an event that cannot be encoded is refused when it is
published (its producer gets the error, it never takes a seq), and a row
that still fails in the store fails alone."""

from __future__ import annotations

import asyncio
import json
import math
import sqlite3
from pathlib import Path

import pytest

from roo_daemon.events import Event, EventBus, UnstorableEvent
from roo_daemon.store import Database, EventStore

WAIT = 10.0


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def deliver(self, event: Event) -> None:
        self.events.append(event)


async def open_bus(path: Path) -> tuple[EventBus, Recorder]:
    db = Database(path)
    await db.open()
    bus = EventBus(db, EventStore(db))
    await bus.open()
    rec = Recorder()
    bus.subscribe(rec)
    return bus, rec


async def stored_seqs(db: Database) -> list[int]:
    return await db.read(lambda c: [r[0] for r in c.execute("SELECT seq FROM events ORDER BY seq")])


def row(seq: int, frame: str = '{"ok":true}') -> tuple:
    return (seq, "test.event", "ses_1", "tsk_1", "alice", 1.0, frame)


@pytest.mark.parametrize(
    "bad",
    [
        row(3, '{"text":"\ud800"}'),  # cannot be encoded as UTF-8
        row(1),  # UNIQUE seq: the same seq twice
        (3, "test.event", "ses_1", "tsk_1", "alice", 1.0, object()),  # cannot be bound at all
    ],
    ids=["surrogate", "duplicate-seq", "unbindable"],
)
@pytest.mark.gen_test(timeout=30)
async def test_a_bad_row_fails_alone_in_its_group_commit(tmp_path: Path, bad: tuple) -> None:
    """Rows from several producers share one statement; the bad one fails
    (its producer's future raises, its ``after`` never runs), the others
    commit, run their ``after`` in order and resolve."""
    db = Database(tmp_path / "db.sqlite3")
    await db.open()
    ran: list[int] = []
    rows = [row(1), row(2), bad, row(4), row(5)]
    futures = [db.write_row(EventStore.INSERT, r, after=lambda i=i: ran.append(i)) for i, r in enumerate(rows)]
    results = await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), WAIT)
    assert [isinstance(r, Exception) for r in results] == [False, False, True, False, False], results
    assert ran == [0, 1, 3, 4]
    assert await stored_seqs(db) == [1, 2, 4, 5]
    # The writer's connection is clean for the next batch.
    await asyncio.wait_for(db.write_row(EventStore.INSERT, row(6)), WAIT)
    assert await stored_seqs(db) == [1, 2, 4, 5, 6]
    await db.close()


@pytest.mark.gen_test(timeout=30)
async def test_a_failed_commit_still_fails_every_write_in_it(tmp_path: Path) -> None:
    """Isolation is per row, not a way round a store that cannot commit:
    when the transaction itself fails (a full disk), every write in it fails."""
    db = Database(tmp_path / "db.sqlite3")
    await db.open()
    original = db._apply

    def full(fns: list) -> list:
        raise sqlite3.OperationalError("database or disk is full")

    db._apply = full  # type: ignore[method-assign]
    futures = [db.write_row(EventStore.INSERT, row(i)) for i in (1, 2, 3)]
    results = await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), WAIT)
    assert all(isinstance(r, sqlite3.OperationalError) for r in results)
    db._apply = original  # type: ignore[method-assign]
    await asyncio.wait_for(db.write_row(EventStore.INSERT, row(4)), WAIT)
    assert await stored_seqs(db) == [4]
    await db.close()


@pytest.mark.parametrize(
    "data",
    [{"text": "a\ud800b"}, {"n\udfff": 1}, {"cost": math.nan}, {"cost": math.inf}],
    ids=["surrogate", "surrogate-key", "nan", "infinity"],
)
@pytest.mark.gen_test(timeout=30)
async def test_an_unstorable_event_is_refused_at_publish_and_takes_no_seq(tmp_path: Path, data: dict) -> None:
    """The producer gets the error at once; the events published around it
    (other tasks') are committed and fanned out, with no seq gap."""
    bus, rec = await open_bus(tmp_path / "db.sqlite3")
    futures = [bus.publish("message.delta", {"text": "a"}, session_id="ses_a", task_id="tsk_a", owner="alice")]
    with pytest.raises(UnstorableEvent) as caught:
        bus.publish("ask.answered", data, session_id="ses_b", task_id="tsk_b", owner="bob")
    assert "ask.answered" in str(caught.value)
    futures.append(bus.publish("message.delta", {"text": "b"}, session_id="ses_a", task_id="tsk_a", owner="alice"))
    await asyncio.wait_for(asyncio.gather(*futures), WAIT)
    assert bus.last_seq == 2
    assert [e.seq for e in rec.events] == [1, 2]
    assert await stored_seqs(bus.db) == [1, 2]
    assert [json.loads(e.frame)["data"]["text"] for e in rec.events] == ["a", "b"]
    await bus.db.close()


@pytest.mark.gen_test(timeout=30)
async def test_the_wire_bytes_are_the_stored_frame(tmp_path: Path) -> None:
    """Encoded once at publish: what the WebSocket sends is the stored frame's UTF-8."""
    bus, rec = await open_bus(tmp_path / "db.sqlite3")
    await bus.publish("message.delta", {"text": "h\u00e9llo \U0001f600"}, session_id="s", task_id="t")
    (event,) = rec.events
    assert event.payload == event.frame.encode("utf-8")
    rows = await bus.store.page(0, 10)
    assert rows == [(1, event.frame)]
    await bus.db.close()
