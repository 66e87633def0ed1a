"""``roo-daemon vacuum``: rewrite a stopped daemon's store so it shrinks.

Stores made since incremental vacuum give pruned space back by themselves
(``auto_vacuum = INCREMENTAL``, set before the first table; see
``Database.reclaim``). SQLite cannot switch an existing file to it in place:
only a full ``VACUUM`` does, which rewrites the whole file, needs about its
size again in free space and locks out every writer while it runs. So it is
an offline command, not something a start does by surprise: it takes the
data dir's lock (a running daemon makes it exit 2, "already running") and
then converts and compacts the file in one go.
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

from roo_daemon.store.database import DB_FILE, storage_error
from roo_daemon.store.lock import DataDirLock, DataDirLocked

EXIT_USAGE = 2


def vacuum_store(data_dir: Path) -> int:
    """Convert and compact ``data_dir``'s store; the exit status. Blocking:
    a command of its own, with no event loop."""
    path = data_dir / DB_FILE
    if not path.exists():
        print(f"roo-daemon: no store to vacuum in {data_dir}", file=sys.stderr)
        return EXIT_USAGE
    lock = DataDirLock(data_dir)
    try:
        lock.acquire()
    except DataDirLocked as e:
        print(f"roo-daemon: {e}; stop it first", file=sys.stderr)
        return EXIT_USAGE
    try:
        before, after = _vacuum(path)
    except sqlite3.Error as e:
        failure = storage_error(e, data_dir)
        why = failure.reason if failure else str(e)
        print(f"roo-daemon: cannot vacuum {path}: {why} (VACUUM needs about the file's size in free space)")
        return 1
    finally:
        lock.release()
    print(f"{path}: auto_vacuum incremental; {_mb(before)} -> {_mb(after)}")
    return 0


def _vacuum(path: Path) -> tuple[int, int]:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the WAL's pages count too
        before = path.stat().st_size
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")  # recorded now, applied by the VACUUM
        conn.execute("VACUUM")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return before, path.stat().st_size
    finally:
        conn.close()


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"
