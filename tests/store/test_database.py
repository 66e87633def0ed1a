"""``Database``: group commit on the writer thread, per-write savepoints,
post-commit callbacks in queue order, reads on their own connection."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from roo_daemon.store import Database

WAIT = 10.0  # generous bound for a thread handshake


class Boom(Exception):
    pass


def put(key: str, value: str = "v") -> Any:
    return lambda c: c.execute("INSERT INTO meta (k, v) VALUES (?, ?)", (key, value)).lastrowid


async def keys(db: Database) -> list[str]:
    # The store's own entry (its schema version) is not one of the test's.
    sql = "SELECT k FROM meta WHERE k != 'schema_version' ORDER BY rowid"
    return await db.read(lambda c: [r[0] for r in c.execute(sql)])


async def opened(path: Path) -> tuple[Database, list[int]]:
    db = Database(path)
    await db.open()
    commits: list[int] = []
    db.on_commit = lambda n, seconds: commits.append(n)
    return db, commits


@pytest.mark.gen_test(timeout=30)
async def test_a_burst_of_writes_shares_transactions(tmp_path: Path) -> None:
    """500 writes queued at once: fewer commits than writes, every future
    resolves with its result, ``after`` runs in queue order, all rows stored."""
    db, commits = await opened(tmp_path / "db.sqlite3")
    order: list[int] = []
    futures = [db.write(put(f"k{i:03d}", str(i)), after=lambda i=i: order.append(i)) for i in range(500)]
    results = await asyncio.wait_for(asyncio.gather(*futures), WAIT)
    assert sum(commits) == 500
    assert len(commits) < 500
    assert order == list(range(500))
    assert len(set(results)) == 500  # each write got its own result (its rowid)
    assert await keys(db) == [f"k{i:03d}" for i in range(500)]
    await db.close()


@pytest.mark.gen_test(timeout=30)
async def test_writes_queued_during_a_commit_go_together_into_the_next(tmp_path: Path) -> None:
    """While one transaction is on the writer thread, new writes wait and
    then commit as one batch."""
    db, commits = await opened(tmp_path / "db.sqlite3")
    entered, release = threading.Event(), threading.Event()

    def slow(c: sqlite3.Connection) -> str:
        entered.set()
        assert release.wait(WAIT), "never released"
        c.execute("INSERT INTO meta (k, v) VALUES ('slow', 'v')")
        return "slow"

    first = db.write(slow)
    loop = asyncio.get_running_loop()
    assert await loop.run_in_executor(None, entered.wait, WAIT)  # the writer thread is inside ``slow``
    rest = [db.write(put(f"k{i}")) for i in range(100)]
    release.set()
    assert await first == "slow"
    await asyncio.wait_for(asyncio.gather(*rest), WAIT)
    assert commits == [1, 100]
    await db.close()


@pytest.mark.gen_test(timeout=30)
async def test_a_failing_write_fails_alone(tmp_path: Path) -> None:
    """One write raising inside a batch: its future gets the exception, its
    partial changes are rolled back, its ``after`` never runs; the others commit."""
    db, commits = await opened(tmp_path / "db.sqlite3")
    called: list[str] = []

    def half_then_boom(c: sqlite3.Connection) -> None:
        c.execute("INSERT INTO meta (k, v) VALUES ('partial', 'v')")
        raise Boom("no")

    futures = [
        db.write(put("a"), after=lambda: called.append("a")),
        db.write(half_then_boom, after=lambda: called.append("bad")),
        db.write(put("b"), after=lambda: called.append("b")),
        db.write(put("a"), after=lambda: called.append("a-again")),  # a constraint violation fails alone too
        db.write(put("c"), after=lambda: called.append("c")),
    ]
    results = await asyncio.gather(*futures, return_exceptions=True)
    assert commits == [5]  # one transaction
    assert isinstance(results[1], Boom)
    assert isinstance(results[3], sqlite3.IntegrityError)
    assert all(isinstance(results[i], int) for i in (0, 2, 4))
    assert called == ["a", "b", "c"]
    assert await keys(db) == ["a", "b", "c"]
    await db.close()


@pytest.mark.gen_test(timeout=30)
async def test_after_callbacks_run_before_any_future_of_the_batch_resolves(tmp_path: Path) -> None:
    """The bus relies on this: fan-out happens before the appender resumes.
    A failing callback is logged and does not stop the others."""
    db, _ = await opened(tmp_path / "db.sqlite3")
    futures: list[asyncio.Future] = []
    seen: list[tuple[int, bool]] = []

    def after(i: int) -> None:
        seen.append((i, any(f.done() for f in futures)))
        if i == 1:
            raise RuntimeError("callback bug")

    futures += [db.write(put(f"k{i}"), after=lambda i=i: after(i)) for i in range(3)]
    await asyncio.gather(*futures)
    assert seen == [(0, False), (1, False), (2, False)]
    await db.close()


@pytest.mark.gen_test(timeout=30)
async def test_reads_see_every_committed_write(tmp_path: Path) -> None:
    """The reader thread has its own connection; once a write's future
    resolves, a read sees it."""
    db, _ = await opened(tmp_path / "db.sqlite3")
    for i in range(20):
        await db.write(put(f"k{i}"))
        assert len(await keys(db)) == i + 1
    assert await db.ping()
    await db.close()


@pytest.mark.gen_test(timeout=30)
async def test_close_flushes_pending_writes_and_the_data_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    db, _ = await opened(path)
    futures = [db.write(put(f"k{i}")) for i in range(10)]
    await db.close()
    assert all(f.done() and f.exception() is None for f in futures)
    with pytest.raises(RuntimeError, match="closed"):
        db.write(put("late"))
    assert not (tmp_path / "db.sqlite3-wal").exists() or (tmp_path / "db.sqlite3-wal").stat().st_size == 0

    again, _ = await opened(path)
    assert await keys(again) == [f"k{i}" for i in range(10)]
    await again.close()


@pytest.mark.gen_test(timeout=10)
async def test_streaming_waits_when_the_store_falls_behind(ctx, monkeypatch) -> None:
    """publish() never waits; flow_control() makes a streaming task wait
    once the queued writes pass the limit, until the store has caught up."""
    from roo_daemon.models import Session, Task
    from roo_daemon.tasks import run as run_module

    monkeypatch.setattr(run_module, "BACKLOG_LIMIT", 5)
    for i in range(50):
        ctx.bus.publish("test.flood", {"i": i}, session_id=None)
    assert ctx.db.backlog == 50  # nothing has reached the writer thread yet
    task = Task(
        id="tsk_x",
        session_id="ses_x",
        prompt="p",
        mode="code",
        provider="demo",
        provider_kind="scripted",
        created_at="2026-01-01T00:00:00.000Z",
    )
    session = Session(
        id="ses_x",
        workspace="/tmp",
        workspace_managed=False,
        mode="code",
        provider="demo",
        provider_kind="scripted",
        created_at="2026-01-01T00:00:00.000Z",
        owner="local",
    )
    run = run_module.TaskRun(ctx.runner, task, session, [])
    await run.flow_control()
    assert ctx.db.backlog == 0
    assert (await ctx.events.page(0, 100))[-1][0] == ctx.bus.last_seq
