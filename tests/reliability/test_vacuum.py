"""The store gives back the space retention frees (issue #9, item 15).

Before, pruning deleted rows but the SQLite file never shrank: freed pages
stayed in the file for reuse, so a burst of events grew the file for good.
Now new stores use ``auto_vacuum = INCREMENTAL`` and each prune is followed
by ``PRAGMA incremental_vacuum`` in small steps on the writer thread; a store
made before that is converted by ``roo-daemon vacuum`` (offline, under the
data dir's lock)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from roo_daemon import cli
from roo_daemon.context import DB_FILE
from roo_daemon.server import Daemon
from roo_daemon.store.database import SCHEMA
from roo_daemon.store.lock import DataDirLock
from tests.conftest import make_config

EVENTS = 6000
KEEP = 1000


@pytest.fixture
def config(tmp_path: Path) -> dict[str, Any]:
    return make_config(tmp_path, events={"retention_max_events": KEEP})


def file_size(path: Path) -> int:
    """The database file's size once the WAL is folded into it."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return path.stat().st_size


def pragma(path: Path, name: str) -> int:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]
    finally:
        conn.close()


@pytest.mark.gen_test(timeout=60)
async def test_pruned_events_give_their_space_back(ctx: Any, config: dict[str, Any]) -> None:
    path = ctx.data_dir / DB_FILE
    assert pragma(path, "auto_vacuum") == 2  # INCREMENTAL, from the store's first page on
    daemon = Daemon(config)
    daemon.ctx = ctx
    text = "x" * 2000
    for i in range(EVENTS):
        fut = ctx.bus.publish("message.delta", {"text": text, "i": i}, session_id=None)
    await fut
    await ctx.db.flush()
    grown = file_size(path)
    assert grown > EVENTS * 2000

    await daemon._prune()  # what the daemon runs every events.prune_interval_seconds
    shrunk = file_size(path)
    assert shrunk < grown / 3, (grown, shrunk)
    assert pragma(path, "freelist_count") < 64
    pages = await ctx.events.page(0, 10_000)
    assert len(pages) == KEEP  # what retention keeps is still there


def old_store(data_dir: Path) -> Path:
    """A store as daemons before incremental vacuum made it."""
    data_dir.mkdir(parents=True)
    path = data_dir / DB_FILE
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(SCHEMA)
    conn.execute("BEGIN")
    for i in range(2000):
        conn.execute("INSERT INTO meta (k, v) VALUES (?, ?)", (f"k{i}", "v" * 2000))
    conn.execute("COMMIT")
    conn.execute("DELETE FROM meta")
    conn.close()
    return path


def test_roo_daemon_vacuum_converts_an_old_store_and_shrinks_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "data"
    path = old_store(data_dir)
    assert pragma(path, "auto_vacuum") == 0
    before = file_size(path)

    assert cli.main(["vacuum", "--data-dir", str(data_dir)]) == 0
    assert pragma(path, "auto_vacuum") == 2
    assert file_size(path) < before / 4
    out = capsys.readouterr().out
    assert "incremental" in out and str(path) in out


def test_roo_daemon_vacuum_refuses_while_a_daemon_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data_dir = tmp_path / "data"
    path = old_store(data_dir)
    lock = DataDirLock(data_dir)
    lock.acquire()  # as a running daemon holds it
    try:
        assert cli.main(["vacuum", "--data-dir", str(data_dir)]) == 2
    finally:
        lock.release()
    assert "already running" in capsys.readouterr().err
    assert pragma(path, "auto_vacuum") == 0  # untouched
