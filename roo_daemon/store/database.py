"""SQLite off the event loop, with group commit.

All writes go to one writer thread that owns one connection. Writes queued
while a transaction is being committed are applied together in the next one
(group commit), so a burst of events costs one fsync, not one each. Each
write runs inside its own SAVEPOINT, so one failing write fails alone; so
does each row of a batched INSERT (``_Rows``).

Reads go to a separate reader thread with its own connection; WAL lets it
read while the writer writes, and it sees every committed transaction.

A write that fails because of the storage itself (a full disk, an I/O
error, a read-only file system) fails with :class:`StorageUnavailable` (503
``storage-unavailable``), and the store remembers it: ``/readyz`` is not
ready until a write succeeds again.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from roo_daemon.problems import StorageUnavailable
from roo_daemon.store.schema import migrate

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


# What each storage failure is called in a problem's detail and at start-up.
_SQLITE_STORAGE = {
    sqlite3.SQLITE_FULL: "the disk is full",
    sqlite3.SQLITE_IOERR: "an I/O error",
    sqlite3.SQLITE_READONLY: "the file system is read-only",
    sqlite3.SQLITE_CANTOPEN: "the database file cannot be opened",
}
_ERRNO_STORAGE = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EIO: "an I/O error",
    errno.EROFS: "the file system is read-only",
}
# Before a probe proves the store writable, the last successful commit does,
# if it is this recent (seconds): a busy daemon's /readyz costs no write.
PROBE_AFTER_SECONDS = 5.0


def _probe(conn: sqlite3.Connection) -> None:
    """A write that leaves nothing behind but still has to reach the disk:
    the page it dirtied is appended to the WAL at commit."""
    conn.execute("INSERT INTO meta (k, v) VALUES ('write_probe', '') ON CONFLICT (k) DO UPDATE SET v = excluded.v")
    conn.execute("DELETE FROM meta WHERE k = 'write_probe'")


def storage_error(exc: BaseException, where: Path | None = None) -> StorageUnavailable | None:
    """A :class:`StorageUnavailable` if ``exc`` (or the error it was raised
    while handling) says the storage cannot be written, else None: other
    errors (a constraint, a bug) are the request's or ours, not the disk's.
    ``where`` (a path on the store's file system) lets an I/O error that is
    really a full disk say so: SQLite reports ENOSPC on its shared-memory
    file as SQLITE_IOERR."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, StorageUnavailable):
            return seen
        reason = None
        if isinstance(seen, sqlite3.Error):
            code = getattr(seen, "sqlite_errorcode", None)
            reason = _SQLITE_STORAGE.get(code & 0xFF) if isinstance(code, int) else None  # extended codes too
        elif isinstance(seen, OSError):
            reason = _ERRNO_STORAGE.get(seen.errno or 0)
        if reason:
            if reason == "an I/O error" and where is not None and _no_space(where):
                reason = "the disk is full"
            return StorageUnavailable(reason)
        seen = seen.__context__
    return None


def _no_space(where: Path) -> bool:
    """Blocking (one statvfs), called only once a write has failed."""
    try:
        return os.statvfs(where).f_bavail == 0
    except OSError:
        return False


DB_FILE = "roo-daemon.sqlite3"  # in the data dir
# Pruned space is given back in steps this big (pages of 4 KiB), each a short
# job of its own on the writer thread, so commits queued meanwhile go between.
RECLAIM_STEP_PAGES = 256
# The WAL file is cut back to this after a checkpoint, not left at its largest.
WAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024


def _connect(path: Path, synchronous: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    # Before anything writes the file's first page (journal_mode=WAL does): a
    # new store can then give pruned space back (see Database.reclaim). On an
    # existing file it changes nothing until a VACUUM (roo-daemon vacuum).
    conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT_BYTES}")
    conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
    conn.execute("PRAGMA foreign_keys=OFF")
    return conn


# Errors that belong to one row (what it holds), not to the store: a value
# SQLite cannot bind or encode, a constraint it breaks. A row failing with
# one fails alone. Anything else (sqlite3.OperationalError: a full disk, an
# I/O error) fails the whole batch, as the store itself is failing.
_ROW_ERRORS = (sqlite3.IntegrityError, sqlite3.InterfaceError, sqlite3.ProgrammingError, ValueError, OverflowError)


class _Rows:
    """A batch of rows for one INSERT: a write function, run as one
    executemany. Each row has its own future and ``after``: if the statement
    fails because of a row, the rows are inserted one by one and only the
    bad ones fail (their futures raise, their ``after`` never runs), so one
    producer's bad row never costs another producer its write."""

    __slots__ = ("sql", "rows", "afters", "futures", "errors")

    def __init__(self, sql: str) -> None:
        self.sql = sql
        self.rows: list[tuple] = []
        self.afters: list[Callable[[], None] | None] = []
        self.futures: list[asyncio.Future] = []
        self.errors: dict[int, Exception] = {}  # row index -> why it failed (set on the writer thread)

    def add(self, row: tuple, after: Callable[[], None] | None, fut: asyncio.Future) -> None:
        self.rows.append(row)
        self.afters.append(after)
        self.futures.append(fut)

    def __call__(self, conn: sqlite3.Connection) -> None:
        self.insert(conn, self.rows)

    def insert(self, conn: sqlite3.Connection, rows: list[tuple]) -> None:
        """The statement for ``rows`` (all of them, or one at a time)."""
        conn.executemany(self.sql, rows)

    def one_by_one(self, conn: sqlite3.Connection, row_errors: tuple[type[BaseException], ...]) -> None:
        """After the statement failed on a row (and was rolled back): each
        row in a savepoint of its own. Slow, and only ever after a failure."""
        for i, row in enumerate(self.rows):
            conn.execute("SAVEPOINT r")
            try:
                self.insert(conn, [row])
                conn.execute("RELEASE r")
            except row_errors as e:
                conn.execute("ROLLBACK TO r")
                conn.execute("RELEASE r")
                self.errors[i] = e

    def run_afters(self) -> None:
        errors = self.errors
        for i, after in enumerate(self.afters):
            if after is None or i in errors:
                continue
            try:
                after()
            except Exception:
                log.exception("post-commit callback failed")

    def settle(self, ok: bool, error: BaseException | None) -> None:
        """Resolve each row's future: its own outcome, or the batch's failure."""
        errors = self.errors
        for i, fut in enumerate(self.futures):
            if fut.done():
                continue
            failure = error if not ok else errors.get(i)
            if failure is None:
                fut.set_result(None)
            else:
                fut.set_exception(failure)
                fut.exception()  # logged here, once; a producer that awaits still gets it
        if ok and errors:
            for e in errors.values():
                log.error("store: a write was refused and failed alone (%s); the rest of its batch committed", e)


class Database:
    """One SQLite file, a writer thread with group commit and a reader thread.

    The group commit, the write queue and the storage-failure bookkeeping
    are shared with the PostgreSQL backend (``store/postgres.py``), which
    overrides the connection handling: opening, reads, the transaction's
    BEGIN, which errors mean "the storage" and which "this row"."""

    row_errors: tuple[type[BaseException], ...] = _ROW_ERRORS
    BEGIN = "BEGIN IMMEDIATE"
    backend = "sqlite"

    def __init__(self, path: Path, synchronous: str = "full") -> None:
        self.path = path
        self.synchronous = synchronous
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="store-writer")
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="store-reader")
        self._wconn: sqlite3.Connection | None = None
        self._rconn: sqlite3.Connection | None = None
        # (write, its future, after); a _Rows has None: a future per row instead.
        self._pending: list[tuple[WriteFn, asyncio.Future | None, Callable[[], None] | None]] = []
        self._backlog = 0  # writes (rows) in _pending, kept as a count: streams ask for it per delta
        self._flushing: asyncio.Task | None = None
        self.on_commit: Callable[[int, float], None] | None = None  # (writes, seconds), for metrics
        self.on_writable: Callable[[bool], None] | None = None  # the store became (un)writable, for metrics
        self.unwritable: StorageUnavailable | None = None  # why the last write failed, until one succeeds
        self._last_ok = time.monotonic()  # the last commit that wrote without a storage failure
        self._probe: asyncio.Future | None = None
        self.reclaims_space = True  # auto_vacuum is INCREMENTAL (a store made before it is not)
        self.closed = False

    async def open(self) -> None:
        """Open both connections and prove the store takes a write; raises
        :class:`StorageUnavailable` if it does not (a full disk at start)."""
        loop = asyncio.get_running_loop()
        try:
            self._wconn = await loop.run_in_executor(self._writer, self._open_writer)
            self._rconn = await loop.run_in_executor(self._reader, _connect, self.path, self.synchronous)
        except Exception as e:
            failure = storage_error(e, self.path.parent)
            if failure is None:
                raise
            self._writer.shutdown(wait=False)
            self._reader.shutdown(wait=False)
            raise failure from None

    def _open_writer(self) -> sqlite3.Connection:
        conn = _connect(self.path, self.synchronous)
        try:
            migrate(conn, SCHEMA, str(self.path.parent))  # refuses a newer release's store
            self.reclaims_space = conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2
            # One write: an existing store on a full disk fails here, at start, not on the first request.
            conn.execute("BEGIN IMMEDIATE")
            try:
                _probe(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except BaseException:
            conn.close()
            raise
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

    def write_row(
        self, sql: str, row: Any, after: Callable[[], None] | None = None, batch: type[_Rows] | None = None
    ) -> asyncio.Future:
        """Queue one row for ``sql`` (an INSERT). Consecutive rows for the
        same statement share one ``executemany``: a stream of events costs
        one statement per commit, not a savepoint per row. Each row still
        has its own future and ``after`` (run in order), and fails alone.
        ``batch`` (a :class:`_Rows` subclass) may say how such rows are
        inserted (the PostgreSQL event log numbers them as it inserts)."""
        batch = batch or _Rows
        if self.closed:
            raise RuntimeError("store is closed")
        self._backlog += 1
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        last = self._pending[-1] if self._pending else None
        if last is not None and type(last[0]) is batch and last[0].sql == sql:
            last[0].add(row, after, fut)
            return fut
        rows = batch(sql)
        rows.add(row, after, fut)
        self._pending.append((rows, None, rows.run_afters))
        if self._flushing is None:
            self._flushing = loop.create_task(self._flush())
        return fut

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                self._backlog = 0
                started = time.perf_counter()
                try:
                    results = await loop.run_in_executor(self._writer, self._commit, [b[0] for b in batch])
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
                for (fn, fut, _), (ok, value) in zip(batch, results, strict=True):
                    if isinstance(fn, _Rows):
                        fn.settle(ok, None if ok else value)  # one future per row
                        continue
                    assert fut is not None
                    if fut.done():
                        continue
                    if ok:
                        fut.set_result(value)
                    else:
                        fut.set_exception(value)
        finally:
            self._flushing = None

    def _commit(self, fns: list[WriteFn]) -> list[tuple[bool, Any]]:
        """:meth:`_apply`, with storage failures turned into
        :class:`StorageUnavailable` (for the whole batch, or per write) and
        remembered for ``/readyz``. Runs on the writer thread."""
        try:
            results = self._apply(fns)
        except Exception as e:
            failure = self.storage_error(e)
            if failure is None:
                raise
            self._note(failure, e)
            raise failure from e
        first: StorageUnavailable | None = None
        for i, (ok, value) in enumerate(results):
            failure = None if ok else self.storage_error(value)
            if failure is not None:
                results[i] = (False, failure)
                first = first or failure
        self._note(first, None)
        return results

    def storage_error(self, exc: BaseException) -> StorageUnavailable | None:
        """Whether ``exc`` is the storage failing (see :func:`storage_error`)."""
        return storage_error(exc, self.path.parent)

    def _note(self, failure: StorageUnavailable | None, cause: BaseException | None) -> None:
        """Remember whether writes work; log each change once, not each failed write."""
        was = self.unwritable
        self.unwritable = failure
        if failure is None:
            self._last_ok = time.monotonic()
            if was is not None:
                log.warning("the store takes writes again")
        elif was is None:
            log.error("the store cannot be written: %s (%s); writes fail with 503 until it can", failure.reason, cause)
        if (was is None) != (failure is None) and self.on_writable:
            self.on_writable(failure is None)

    async def check_writable(self) -> StorageUnavailable | None:
        """None if the store takes writes, else why not. Proved by the last
        commit when it is recent and wrote, else by a one-row write (shared
        by concurrent callers): after a failure, only a write can tell that
        the disk has room again."""
        if self.unwritable is None and time.monotonic() - self._last_ok < PROBE_AFTER_SECONDS:
            return None
        if self._probe is None:
            probe = self._probe = self.write(_probe)
            probe.add_done_callback(self._probe_done)
        try:
            await asyncio.shield(self._probe)
        except StorageUnavailable as e:
            return e
        return None

    def _probe_done(self, fut: asyncio.Future) -> None:
        self._probe = None
        if not fut.cancelled():
            fut.exception()  # seen here; the callers got it

    def _writer_conn(self) -> Any:
        assert self._wconn is not None
        return self._wconn

    def _apply(self, fns: list[WriteFn]) -> list[tuple[bool, Any]]:
        conn = self._writer_conn()
        results: list[tuple[bool, Any]] = []
        conn.execute(self.BEGIN)
        try:
            for fn in fns:
                conn.execute("SAVEPOINT w")
                try:
                    results.append((True, fn(conn)))
                    conn.execute("RELEASE w")
                except Exception as e:
                    conn.execute("ROLLBACK TO w")
                    if isinstance(fn, _Rows) and isinstance(e, self.row_errors):
                        fn.one_by_one(conn, self.row_errors)  # isolate the bad rows; the rest still commit
                        conn.execute("RELEASE w")
                        results.append((True, None))
                        continue
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

    # -- space ------------------------------------------------------------

    async def reclaim(self) -> int:
        """Give the pages that deletes (retention) freed back to the file
        system: ``PRAGMA incremental_vacuum`` in steps of
        ``RECLAIM_STEP_PAGES``, each a job of its own on the writer thread
        (commits queued meanwhile run between steps), then a passive
        checkpoint, which cuts the file once the WAL is folded in. Returns
        the pages freed. Off the request path: the pruner calls it."""
        if not self.reclaims_space:
            return 0
        loop = asyncio.get_running_loop()
        freed = 0
        try:
            while not self.closed:
                step = await loop.run_in_executor(self._writer, self._reclaim_step)
                freed += step
                if step < RECLAIM_STEP_PAGES:
                    break
            if freed and not self.closed:
                await loop.run_in_executor(self._writer, self._checkpoint, "PASSIVE")
        except sqlite3.Error as e:  # a full disk: moving pages needs room in the WAL
            log.warning("could not give pruned space back to the file system: %s", e)
        return freed

    def _reclaim_step(self) -> int:
        conn = self._wconn
        assert conn is not None
        before = conn.execute("PRAGMA freelist_count").fetchone()[0]
        if not before:
            return 0
        # executescript steps the pragma to its end (execute() would free one page)
        # and commits at once: nothing else runs on this thread meanwhile.
        conn.executescript(f"PRAGMA incremental_vacuum({RECLAIM_STEP_PAGES})")
        return before - conn.execute("PRAGMA freelist_count").fetchone()[0]

    def _checkpoint(self, mode: str) -> None:
        assert self._wconn is not None
        self._wconn.execute(f"PRAGMA wal_checkpoint({mode})")

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
        """Flush, checkpoint, close. Never raises for a failing disk: the
        daemon must be able to stop; what could not be written is in
        ``unwritable`` (and was reported to its writers)."""
        try:
            await self.flush()
        finally:
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
        except sqlite3.Error as e:
            # Committed data is safe in the WAL; the next start checkpoints it.
            log.warning("could not checkpoint the store at close: %s", e)
        finally:
            self._wconn.close()
