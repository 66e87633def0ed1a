"""psycopg 3 vs asyncpg on the store's two hot paths, side by side, on a
throwaway PostgreSQL (tests/pgserver.py): appending events (a group commit
of 200 rows, executemany, one transaction each) and paging the log (a
replay's ``seq > ? ORDER BY seq LIMIT 100``). psycopg runs as the store
runs it: its blocking API on a worker thread, awaited from the loop.

    python bench/pg_drivers.py [rows]
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import asyncpg
import psycopg

from tests.pgserver import start_or_skip

DDL = (
    "CREATE TABLE events (seq BIGINT PRIMARY KEY, event TEXT NOT NULL, session_id TEXT, task_id TEXT,"
    " owner TEXT, ts DOUBLE PRECISION NOT NULL, frame TEXT NOT NULL)"
)
BATCH = 200
PAGES = 2000


def rows(n: int) -> list[tuple]:
    frame = json.dumps({"seq": 0, "event": "message.delta", "data": {"text": "x" * 60}})
    return [(i, "message.delta", "ses_1", "tsk_1", "local", time.time(), frame) for i in range(1, n + 1)]


def psycopg_run(dsn: str, data: list[tuple]) -> tuple[float, float]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(DDL)
        cur = conn.cursor()
        t0 = time.perf_counter()
        for i in range(0, len(data), BATCH):
            conn.execute("BEGIN")
            cur.executemany("INSERT INTO events VALUES (%s, %s, %s, %s, %s, %s, %s)", data[i : i + BATCH])
            conn.execute("COMMIT")
        append = time.perf_counter() - t0
        t0 = time.perf_counter()
        for i in range(PAGES):
            conn.execute(
                "SELECT seq, frame FROM events WHERE seq > %s ORDER BY seq LIMIT 100", ((i * 7) % len(data),)
            ).fetchall()
        return append, time.perf_counter() - t0


async def psycopg_threaded(dsn: str, data: list[tuple]) -> tuple[float, float]:
    return await asyncio.to_thread(psycopg_run, dsn, data)


async def asyncpg_run(dsn: str, data: list[tuple]) -> tuple[float, float]:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(DDL)
        t0 = time.perf_counter()
        for i in range(0, len(data), BATCH):
            async with conn.transaction():
                await conn.executemany("INSERT INTO events VALUES ($1, $2, $3, $4, $5, $6, $7)", data[i : i + BATCH])
        append = time.perf_counter() - t0
        t0 = time.perf_counter()
        for i in range(PAGES):
            await conn.fetch("SELECT seq, frame FROM events WHERE seq > $1 ORDER BY seq LIMIT 100", (i * 7) % len(data))
        return append, time.perf_counter() - t0
    finally:
        await conn.close()


async def main(n: int) -> None:
    server = start_or_skip()
    try:
        data = rows(n)
        results = {}
        for name, fn in (("psycopg 3 (thread)", psycopg_threaded), ("asyncpg", asyncpg_run)):
            results[name] = await fn(server.fresh_database(), data)
        print(f"{'driver':<20} {'append rows/s':>14} {'pages/s':>10}")
        for name, (append, pages) in results.items():
            print(f"{name:<20} {n / append:>14,.0f} {PAGES / pages:>10,.0f}")
        (pa, pp), (aa, ap) = results.values()
        print(f"asyncpg / psycopg: append {pa / aa:.2f}x, pages {pp / ap:.2f}x")
    finally:
        server.stop()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 40_000))
