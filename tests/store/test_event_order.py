"""One ordered event log across writers (PostgreSQL): several daemons'
stores append at once, from processes of their own, while a reader pages
the log the way a replaying client does (``after=<the last seq it saw>``).
Were seqs taken in one order and committed in another, the reader would
at some point see seq N+1 committed before N and, reading on from N+1,
skip N for ever. It must see every seq, once, in order, without a hole;
and each writer's events must be in the order it published them.
docs/postgresql.md explains the design this checks."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import time
from typing import Any

import pytest

from tests.store.conftest import StorePlace

WRITERS = 4
BURSTS = 30
PER_BURST = 20  # events per burst; bursts mix lone events and grouped ones


def write_events(dsn: str, node: int, ready: Any, go: Any) -> None:
    """One daemon's store and bus, in a process of its own: publish
    ``BURSTS`` bursts of events, some lone (batched by the store), some in
    one transaction with ``also``, as tasks do."""

    async def run() -> None:
        from pathlib import Path

        place = StorePlace("postgresql", Path("/nonexistent"), dsn)
        bus = await place.open_bus()
        ready.set()
        go.wait(30)
        n = 0
        for burst in range(BURSTS):
            futures = []
            if burst % 3 == 2:
                also = [("test.also", {"node": node, "n": n + 1 + i}) for i in range(PER_BURST - 1)]
                futures.append(bus.publish("test.event", {"node": node, "n": n}, session_id=f"s{node}", also=also))
                n += PER_BURST
            else:
                for _ in range(PER_BURST):
                    futures.append(bus.publish("test.event", {"node": node, "n": n}, session_id=f"s{node}"))
                    n += 1
            await asyncio.gather(*futures)
        await bus.db.close()

    asyncio.run(run())


@pytest.mark.gen_test(timeout=120)
async def test_concurrent_writers_never_leave_a_reader_a_gap(tmp_path: Any, pg_dsn: str) -> None:
    place = StorePlace("postgresql", tmp_path, pg_dsn)
    reader = await place.open_bus()  # made the schema; reads as a replay does
    mp = multiprocessing.get_context("spawn")
    go = mp.Event()
    readies = [mp.Event() for _ in range(WRITERS)]
    procs = [mp.Process(target=write_events, args=(pg_dsn, i, readies[i], go)) for i in range(WRITERS)]
    for p in procs:
        p.start()
    try:
        for ready in readies:
            assert await asyncio.to_thread(ready.wait, 60)
        go.set()
        total = WRITERS * BURSTS * PER_BURST
        seen: list[tuple[int, dict[str, Any]]] = []
        after = 0
        pages = 0
        deadline = time.monotonic() + 90
        while len(seen) < total and time.monotonic() < deadline:
            rows = await reader.store.page(after, 37)  # small pages: many reads race the writers
            pages += 1
            for seq, frame in rows:
                assert seq == after + 1, f"after seq {after} the reader got {seq}: a gap"
                doc = json.loads(frame)
                assert doc["seq"] == seq  # the frame carries the seq it was stored under
                seen.append((seq, doc["data"]))
                after = seq
            if not rows:
                await asyncio.sleep(0.001)
        for p in procs:
            await asyncio.to_thread(p.join, 60)
            assert p.exitcode == 0
        # Nothing committed later below what the reader passed.
        assert [seq for seq, _ in await reader.store.page(0, total + 10)] == list(range(1, total + 1))
        assert len(seen) == total and pages > WRITERS * BURSTS / 4
        for node in range(WRITERS):
            mine = [data["n"] for _, data in seen if data["node"] == node]
            assert mine == list(range(BURSTS * PER_BURST))  # each writer's order kept, nothing twice
        assert await reader.store.last_seq() == total
    finally:
        go.set()
        for p in procs:
            if p.is_alive():
                p.kill()
        await reader.db.close()
