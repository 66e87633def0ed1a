"""Event append throughput, SQLite vs PostgreSQL, side by side.

The store and event bus only (no HTTP): ``--producers`` streams publish
``message.delta`` events as a streaming task does (lone events, batched by
the store's group commit), each awaiting durability every ``--window``
events, for ``--seconds``. SQLite is the data dir's file (``synchronous:
normal``); PostgreSQL is a throwaway local server (tests/pgserver.py,
``fsync`` on and ``synchronous_commit`` on: durable as in production) where
the events also take the log's advisory lock (docs/postgresql.md).

    PYTHONPATH=. python bench/eventlog_backends.py [--seconds 5] [--producers 4] [--window 64]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from common import throwaway_postgresql

from roo_daemon.events import EventBus
from roo_daemon.store.backends import event_store, make_database


async def run(backend: str, dsn: str | None, args: argparse.Namespace) -> float:
    store = {"backend": backend, "synchronous": "normal", "dsn_env": "BENCH_DSN", "pool_size": 4}
    db = make_database(store, Path(tempfile.mkdtemp(prefix="roo-bench-")), env={"BENCH_DSN": dsn or ""})
    await db.open()
    bus = EventBus(db, event_store(db))
    await bus.open()
    count = 0
    stop = time.monotonic() + args.seconds

    async def producer(i: int) -> None:
        nonlocal count
        text = {"text": "x" * 40}
        while time.monotonic() < stop:
            futures = [
                bus.publish("message.delta", text, session_id=f"ses_{i}", task_id=f"tsk_{i}", owner="local")
                for _ in range(args.window)
            ]
            await asyncio.gather(*futures)
            count += len(futures)

    started = time.monotonic()
    await asyncio.gather(*(producer(i) for i in range(args.producers)))
    rate = count / (time.monotonic() - started)
    await db.close()
    return rate


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--producers", type=int, default=4)
    parser.add_argument("--window", type=int, default=64)
    args = parser.parse_args()
    with throwaway_postgresql(durable=True) as server:
        sqlite = await run("sqlite", None, args)
        pg = await run("postgresql", server.fresh_database(), args)
    print(f"{'backend':<12} {'events/s':>10}")
    print(f"{'sqlite':<12} {sqlite:>10,.0f}")
    print(f"{'postgresql':<12} {pg:>10,.0f}")
    print(f"postgresql / sqlite: {pg / sqlite:.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
