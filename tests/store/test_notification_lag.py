"""Notification lag (PostgreSQL): a node times each other node's commit of
events, taken from the notification (the database's clock), to their
fan-out here; its own events are not timed (it fans them out at commit)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from roo_daemon.events import EventBus
from roo_daemon.events.merge import OrderedFanOut
from roo_daemon.store.backends import event_store
from tests.store.conftest import StorePlace
from tests.waiting import until


@pytest.mark.gen_test(timeout=60)
async def test_a_node_times_other_nodes_commits_to_its_fan_out(tmp_path: Any, pg_dsn: str) -> None:
    place = StorePlace("postgresql", tmp_path, pg_dsn)
    a = await place.open_bus()
    db_b = await place.open()
    assert abs(db_b.clock_offset) < 1  # type: ignore[attr-defined]  # one machine: one clock
    b = EventBus(db_b, event_store(db_b))
    lags: list[float] = []
    b.on_lag = lags.append
    await b.open()
    fanned: list[int] = []
    b.subscribe(type("Sub", (), {"deliver": lambda self, e: fanned.append(e.seq)})())
    try:
        for i in range(5):
            await a.append("test.event", {"i": i}, session_id="s")
        await until(lambda: len(fanned) == 5)
        await until(lambda: len(lags) >= 1)
        assert len(lags) <= 5  # one per commit at most (a notification may find it read already)
        assert all(0 <= lag < 30 for lag in lags), lags
        before = len(lags)
        await b.append("test.own", {}, session_id="s")  # b's own: fanned out at commit, not timed
        await until(lambda: len(fanned) == 6)
        await asyncio.sleep(0.2)
        assert len(lags) == before
    finally:
        await a.db.close()
        await db_b.close()


@pytest.mark.gen_test
async def test_fan_out_times_a_notified_seq_once_it_has_gone_out() -> None:
    rows = [(seq, "e", None, None, None, f'{{"seq":{seq}}}') for seq in (1, 2, 3)]
    gate = asyncio.Event()

    async def read(after: int, limit: int) -> list[Any]:
        await gate.wait()
        return [r for r in rows if r[0] > after][:limit]

    async def last_seq() -> int:
        return 3

    out: list[Any] = []
    lags: list[float] = []
    merge = OrderedFanOut(out.append, lambda row: type("E", (), {"seq": row[0]})(), read, last_seq, fanned=0)
    merge.on_lag = lags.append
    committed = time.time() - 2.0  # committed two seconds ago (this node's clock)
    merge.notified(2, committed)
    merge.notified(3, committed + 1)
    assert lags == []  # not fanned out yet
    gate.set()
    await until(lambda: len(out) == 3)
    assert len(lags) == 2 and lags[0] >= 2.0 and lags[1] >= 1.0
    merge.notified(3, committed)  # already out: not timed again
    assert len(lags) == 2
