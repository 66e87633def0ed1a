"""SQLite off the event loop, with group commit.

All writes go to one writer thread that owns one connection. Writes queued
while a transaction is being committed are applied together in the next one
(group commit), so a burst of events costs one fsync, not one each. Each
write runs inside its own SAVEPOINT, so one failing write fails alone.

Reads go to a separate reader thread with its own connection; WAL lets it
read while the writer writes, and it sees every committed transaction.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

log = logging.getLogger("roo_daemon.store")
T = TypeVar("T")
WriteFn = Callable[[sqlite3.Connection], Any]

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    n INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    owner TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tasks (
    n INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    session_id TEXT NOT NULL,
    status TEXT NOT NULL,
    doc TEXT NOT NULL,
    inputs TEXT
);
CREATE INDEX IF NOT EXISTS tasks_by_session ON tasks (session_id, n);
CREATE INDEX IF NOT EXISTS tasks_by_status ON tasks (status);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event TEXT NOT NULL,
    session_id TEXT,
    task_id TEXT,
    owner TEXT,
    ts REAL NOT NULL,
    frame TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_task ON events (task_id, seq);
CREATE INDEX IF NOT EXISTS events_by_session ON events (session_id, seq);
CREATE TABLE IF NOT EXISTS idempotency (
    principal TEXT NOT NULL,
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    body_hash TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (principal, scope, key)
);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
"""


def _connect(path: Path, synchronous: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
    conn.execute("PRAGMA foreign_keys=OFF")
    return conn


class _Rows:
    """A batch of rows for one INSERT: a write function, run as one executemany."""

    __slots__ = ("sql", "rows", "afters")

    def __init__(self, sql: str) -> None:
        self.sql = sql
        self.rows: list[tuple] = []
        self.afters: list[Callable[[], None]] = []

    def add(self, row: tuple, after: Callable[[], None] | None) -> None:
        self.rows.append(row)
        if after is not None:
            self.afters.append(after)

    def __call__(self, conn: sqlite3.Connection) -> None:
        conn.executemany(self.sql, self.rows)

    def run_afters(self) -> None:
        for after in self.afters:
            try:
                after()
            except Exception:
                log.exception("post-commit callback failed")


class Database:
    """One SQLite file, a writer thread with group commit and a reader thread."""

    def __init__(self, path: Path, synchronous: str = "full") -> None:
        self.path = path
        self.synchronous = synchronous
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="store-writer")
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="store-reader")
        self._wconn: sqlite3.Connection | None = None
        self._rconn: sqlite3.Connection | None = None
        self._pending: list[tuple[WriteFn, asyncio.Future, Callable[[], None] | None]] = []
        self._backlog = 0  # writes (rows) in _pending, kept as a count: streams ask for it per delta
        self._flushing: asyncio.Task | None = None
        self.on_commit: Callable[[int, float], None] | None = None  # (writes, seconds), for metrics
        self.closed = False

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        self._wconn = await loop.run_in_executor(self._writer, self._open_writer)
        self._rconn = await loop.run_in_executor(self._reader, _connect, self.path, self.synchronous)

    def _open_writer(self) -> sqlite3.Connection:
        conn = _connect(self.path, self.synchronous)
        conn.executescript(SCHEMA)
        return conn

    # -- writes ---------------------------------------------------------

    def write(self, fn: WriteFn, after: Callable[[], None] | None = None) -> asyncio.Future:
        """Queue ``fn(conn)`` for the next transaction. The returned future
        resolves with its result once committed. ``after`` runs on the loop
        right after the commit, in queue order, before any future resolves:
        the event bus fans out there, so live order equals durable order."""
        if self.closed:
            raise RuntimeError("store is closed")
        fut = asyncio.get_running_loop().create_future()
        self._pending.append((fn, fut, after))
        self._backlog += 1
        if self._flushing is None:
            self._flushing = asyncio.get_running_loop().create_task(self._flush())
        return fut

    def write_row(self, sql: str, row: tuple, after: Callable[[], None] | None = None) -> asyncio.Future:
        """Queue one row for ``sql`` (an INSERT). Consecutive rows for the
        same statement share one ``executemany`` and one future: a stream
        of events costs one statement per commit, not a savepoint per row.
        ``after`` callbacks still run one per row, in order."""
        if self.closed:
            raise RuntimeError("store is closed")
        self._backlog += 1
        last = self._pending[-1] if self._pending else None
        if last is not None and isinstance(last[0], _Rows) and last[0].sql == sql:
            last[0].add(row, after)
            return last[1]
        rows = _Rows(sql)
        rows.add(row, after)
        fut = asyncio.get_running_loop().create_future()
        self._pending.append((rows, fut, rows.run_afters))
        if self._flushing is None:
            self._flushing = asyncio.get_running_loop().create_task(self._flush())
        return fut

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                self._backlog = 0
                started = time.perf_counter()
                try:
                    results = await loop.run_in_executor(self._writer, self._apply, [b[0] for b in batch])
                except Exception as e:  # the commit itself failed: every write in it failed
                    log.error("store commit failed: %s", e)
                    results = [(False, e)] * len(batch)
                if self.on_commit:
                    writes = sum(len(b[0].rows) if isinstance(b[0], _Rows) else 1 for b in batch)
                    self.on_commit(writes, time.perf_counter() - started)
                for (_, _, after), (ok, _) in zip(batch, results, strict=True):
                    if ok and after is not None:
                        try:
                            after()
                        except Exception:
                            log.exception("post-commit callback failed")
                for (_, fut, _), (ok, value) in zip(batch, results, strict=True):
                    if fut.done():
                        continue
                    if ok:
                        fut.set_result(value)
                    else:
                        fut.set_exception(value)
        finally:
            self._flushing = None

    def _apply(self, fns: list[WriteFn]) -> list[tuple[bool, Any]]:
        conn = self._wconn
        assert conn is not None
        results: list[tuple[bool, Any]] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for fn in fns:
                conn.execute("SAVEPOINT w")
                try:
                    results.append((True, fn(conn)))
                    conn.execute("RELEASE w")
                except Exception as e:
                    conn.execute("ROLLBACK TO w")
                    conn.execute("RELEASE w")
                    results.append((False, e))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return results

    @property
    def backlog(self) -> int:
        """Writes queued and not yet handed to the writer thread."""
        return self._backlog

    async def flush(self) -> None:
        """Wait until everything queued so far is committed."""
        while self._flushing is not None:
            await asyncio.shield(self._flushing)

    # -- reads ----------------------------------------------------------

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` on the reader thread; it sees every committed write."""
        return await asyncio.get_running_loop().run_in_executor(self._reader, fn, self._rconn)

    async def ping(self) -> bool:
        try:
            return await self.read(lambda c: c.execute("SELECT 1").fetchone()[0] == 1)
        except Exception:
            return False

    async def close(self) -> None:
        await self.flush()
        self.closed = True
        loop = asyncio.get_running_loop()
        if self._wconn is not None:
            await loop.run_in_executor(self._writer, self._checkpoint_and_close)
        if self._rconn is not None:
            await loop.run_in_executor(self._reader, self._rconn.close)
        self._writer.shutdown(wait=True)
        self._reader.shutdown(wait=True)

    def _checkpoint_and_close(self) -> None:
        assert self._wconn is not None
        try:
            self._wconn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            self._wconn.close()
