"""One daemon per data dir: an exclusive ``flock`` on ``roo-daemon.lock``.

Two daemons on one SQLite store corrupt each other's state: the second one's
crash recovery marks the first one's live tasks ``interrupted`` and both
assign the same ``seq``s. So the lock is taken before the store is opened
and held until the process ends. It is per data dir because the SQLite
backend is; a shared database server (several daemons on one PostgreSQL)
needs its own coordination, not this lock.

``flock`` (not a pid file) because the kernel drops it when the holder dies,
``kill -9`` included: a stale file never blocks a restart. The descriptor is
close-on-exec (Python's default), so commands the agent runs never inherit
the lock and cannot keep it after the daemon is gone.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

LOCK_FILE = "roo-daemon.lock"


class DataDirLocked(Exception):
    """Another live process holds the data dir."""

    def __init__(self, data_dir: Path, holder: str) -> None:
        super().__init__(f"{data_dir} is in use: already running ({holder})")


class DataDirLock:
    """Held from :meth:`acquire` until :meth:`release` (or the process's end).
    Blocking calls: both run once, at start and stop, before or after serving."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.path = data_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock without waiting, or raise :class:`DataDirLocked`
        naming the holder's pid. Writes our pid only once the lock is ours:
        the loser never truncates the winner's pid."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = _read_pid(fd)
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EACCES):
                raise DataDirLocked(self.data_dir, f"pid {holder}" if holder else "pid unknown") from None
            raise
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass  # a full disk: the lock holds all the same, only the pid is not shown
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor drops the flock
            self._fd = None


def holder_of(data_dir: Path) -> DataDirLocked | None:
    """Whether a live process holds ``data_dir``'s lock (without creating
    anything): lets a start that failed for another reason, such as a taken
    port, say the more useful thing when that port is the live daemon's."""
    try:
        fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return None  # no lock file: no daemon ever ran here
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno in (errno.EWOULDBLOCK, errno.EACCES):
            holder = _read_pid(fd)
            return DataDirLocked(data_dir, f"pid {holder}" if holder else "pid unknown")
        return None
    finally:
        os.close(fd)  # also drops the lock if we just took it
    return None


def _read_pid(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return text if text.isdigit() else ""
