"""Live events on every node (PostgreSQL): each node's subscribers get
every node's events, in seq order, each once, whoever wrote them. Two
buses on one database stand for two daemons (each its own store: writer,
pool and listener connections)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from roo_daemon.events import Event
from tests.store.conftest import StorePlace
from tests.waiting import until


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def deliver(self, event: Event) -> None:
        self.events.append(event)

    def seqs(self) -> list[int]:
        return [e.seq for e in self.events]


@pytest.mark.gen_test(timeout=90)
async def test_every_node_fans_out_every_nodes_events_in_order(tmp_path: Any, pg_dsn: str) -> None:
    place = StorePlace("postgresql", tmp_path, pg_dsn)
    a, b = await place.open_bus(), await place.open_bus()
    seen_a, seen_b = Recorder(), Recorder()
    a.subscribe(seen_a)
    b.subscribe(seen_b)
    try:
        total = 0
        for burst in range(20):
            futures = []
            for i in range(15):
                for node, bus in (("a", a), ("b", b)):
                    data = {"node": node, "burst": burst, "i": i}
                    if i == 7:  # some in one transaction with others, as a task's status change does
                        also = [("test.also", {**data, "also": k}) for k in range(3)]
                        futures.append(bus.publish("test.event", data, session_id=f"s{node}", also=also))
                        total += 4
                    else:
                        futures.append(bus.publish("test.event", data, session_id=f"s{node}"))
                        total += 1
            await asyncio.gather(*futures)
        await until(lambda: len(seen_a.events) >= total and len(seen_b.events) >= total)
        await asyncio.sleep(0.2)  # nothing more, nothing twice, arrives late
        stored = await a.store.page(0, total + 10)
        assert [seq for seq, _ in stored] == list(range(1, total + 1))
        for seen in (seen_a, seen_b):
            assert seen.seqs() == list(range(1, total + 1))  # in order, no gap, no repeat
            assert [e.frame for e in seen.events] == [frame for _, frame in stored]
        # Each node heard the other's events from the log, its own at commit.
        nodes = {json.loads(e.frame)["data"]["node"] for e in seen_a.events}
        assert nodes == {"a", "b"}
        assert a.last_seq == b.last_seq == total
    finally:
        await a.db.close()
        await b.db.close()


@pytest.mark.gen_test(timeout=90)
async def test_a_node_alone_fans_out_at_commit_and_follows_another_after_a_lost_listener(
    tmp_path: Any, pg_dsn: str
) -> None:
    """Alone, a node's events go out on the commit's callback, before the
    writer's future resolves (as on SQLite). When its listener's connection
    is cut, it reconnects and reads what it missed from the log."""
    place = StorePlace("postgresql", tmp_path, pg_dsn)
    a = await place.open_bus()
    seen = Recorder()
    a.subscribe(seen)
    b = None
    try:
        await a.append("test.one", {}, session_id="s")
        assert seen.seqs() == [1]  # already out when append returned

        conn = place.connect()
        try:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%' "
                "AND datname = current_database() AND pid <> pg_backend_pid()"
            )
        finally:
            conn.conn.close()
        b = await place.open_bus()
        await b.append("test.from-b", {}, session_id="s")  # may be missed while a reconnects
        await until(lambda: seen.seqs() == [1, 2])
        await b.append("test.again", {}, session_id="s")
        await until(lambda: seen.seqs() == [1, 2, 3])
    finally:
        await a.db.close()
        if b is not None:
            await b.db.close()
