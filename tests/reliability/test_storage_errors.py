"""Storage failures as the store sees them, without a process: which errors
mean "the disk cannot take writes" (503 ``storage-unavailable``) and which
are the request's own; how the store remembers it for ``/readyz``.

``PRAGMA max_page_count`` makes SQLite fail with the very error a full disk
gives (SQLITE_FULL), so these run anywhere; tests/reliability/test_full_disk.py
does the same against a real daemon on a real, full file system."""

from __future__ import annotations

import asyncio
import errno
import sqlite3
from pathlib import Path

import pytest

from roo_daemon.problems import StorageUnavailable
from roo_daemon.store import Database
from roo_daemon.store.database import storage_error

WAIT = 10.0


def limit_growth(c: sqlite3.Connection) -> None:
    """From now on the database file cannot grow: as if the disk were full."""
    c.execute(f"PRAGMA max_page_count = {c.execute('PRAGMA page_count').fetchone()[0]}")


def big(key: str) -> object:
    return lambda c: c.execute("INSERT INTO meta (k, v) VALUES (?, ?)", (key, "x" * 200_000))


def sqlite_full() -> sqlite3.OperationalError:
    c = sqlite3.connect(":memory:")
    c.execute("CREATE TABLE t (x)")
    limit_growth(c)
    with pytest.raises(sqlite3.OperationalError) as caught:
        c.execute("INSERT INTO t VALUES (randomblob(100000))")
    return caught.value


def test_which_errors_are_the_storage() -> None:
    full = storage_error(sqlite_full())
    assert isinstance(full, StorageUnavailable) and full.reason == "the disk is full"
    for code, reason in ((errno.ENOSPC, "the disk is full"), (errno.EIO, "an I/O error"), (errno.EROFS, "read-only")):
        found = storage_error(OSError(code, "x"))
        assert found is not None and reason in found.reason
    # The request's own faults, or ours: not the disk's.
    assert storage_error(sqlite3.IntegrityError("UNIQUE constraint failed: events.seq")) is None
    assert storage_error(OSError(errno.ENOENT, "gone")) is None
    assert storage_error(ValueError("bad")) is None
    # A failure raised while cleaning up after a full disk still counts as the disk.
    try:
        try:
            raise sqlite_full()
        except sqlite3.OperationalError:
            raise sqlite3.OperationalError("no such savepoint: w") from None
    except sqlite3.OperationalError as e:
        assert e.__context__ is not None
        assert storage_error(e) is not None


def test_the_problem_says_what_and_when_to_retry() -> None:
    p = StorageUnavailable("the disk is full")
    body = p.body()
    assert body["type"] == "urn:roo-daemon:problem:storage-unavailable"
    assert body["status"] == 503 and p.status_code == 503
    assert "the disk is full" in body["detail"] and "nothing was stored" in body["detail"]
    assert int(p.headers["Retry-After"]) > 0


@pytest.mark.gen_test(timeout=30)
async def test_the_store_remembers_a_storage_failure_until_a_write_succeeds(tmp_path: Path) -> None:
    db = Database(tmp_path / "db.sqlite3")
    await db.open()
    commits: list[int] = []
    changes: list[bool] = []
    db.on_commit = lambda n, seconds: commits.append(n)
    db.on_writable = changes.append
    assert await db.check_writable() is None  # opening wrote (a probe): proof enough, no write now
    assert commits == []

    await db.write(limit_growth)
    futures = [db.write(big(f"big{i}")) for i in range(5)]
    results = await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), WAIT)
    assert all(isinstance(r, StorageUnavailable) for r in results), results
    assert isinstance(db.unwritable, StorageUnavailable)
    assert changes == [False]  # once, not once per failed write

    # While it fails, readiness asks the disk again with a write of its own.
    before = len(commits)
    assert await db.check_writable() is None  # a one-row probe still fits
    assert len(commits) == before + 1
    assert db.unwritable is None and changes == [False, True]

    await db.write(lambda c: c.execute("PRAGMA max_page_count = 1073741823"))
    await db.write(big("fits now"))
    assert db.unwritable is None
    await db.close()
