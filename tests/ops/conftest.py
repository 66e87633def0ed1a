"""Fixtures for the operations tests: the daemon as a real subprocess, started
the way systemd would start it (a notify socket, passed-in listening sockets).

Reuses ``tests.server.daemon_process.DaemonProcess`` (log capture, waiting on
log records, signals) and adds what systemd adds: extra environment, file
descriptors passed at fixed numbers, and a wrapper so ``LISTEN_PID`` names
the daemon's own pid.
"""

from __future__ import annotations

import asyncio
import re
import socket
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.server.conftest import daemon_config
from tests.server.daemon_process import TIMEOUT, DaemonProcess

# The variables systemd sets for a service: never inherited from the test's
# own environment (pytest may itself run under systemd).
SYSTEMD_VARS = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")


# Puts descriptor argv[1] at 3, sets LISTEN_FDS=1 and LISTEN_PID to its own
# pid, then execs argv[2:]: exec keeps the pid, so LISTEN_PID is the daemon's
# own, as systemd sets it. (dash's `3<&N` cannot name descriptors above 9.)
_ACTIVATE = """\
import os, sys
fd = int(sys.argv[1])
if fd != 3:
    os.dup2(fd, 3)
    os.close(fd)
os.environ.update(LISTEN_FDS="1", LISTEN_PID=str(os.getpid()))
os.execv(sys.argv[2], sys.argv[2:])
"""


def activation_wrapper(fd: int) -> list[str]:
    """A command prefix that passes ``fd`` to the daemon as systemd would: at
    descriptor 3 with ``LISTEN_FDS=1`` and ``LISTEN_PID`` = the daemon's pid."""
    return [sys.executable, "-c", _ACTIVATE, str(fd)]


class OpsDaemon(DaemonProcess):
    """A :class:`DaemonProcess` with a command prefix and passed file descriptors."""

    def __init__(self, *args: Any, prefix: list[str] | None = None, pass_fds: tuple[int, ...] = (), **kw: Any):
        super().__init__(*args, **kw)
        self.prefix = prefix or []
        self.pass_fds = pass_fds

    dropped_env = frozenset(SYSTEMD_VARS)  # the test's own environment must not look like systemd's

    def start_notified(self, socket_dir: Path, timeout: float = TIMEOUT) -> int:
        """Start with ``NOTIFY_SOCKET`` set and wait for ``READY=1``; return the
        port from its ``STATUS``. Works at any log level (``start`` waits for
        an info line)."""
        path = socket_dir / "notify"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
            notify.bind(str(path))
            notify.settimeout(timeout)  # an upper bound on the wait for the datagram
            self.extra_env["NOTIFY_SOCKET"] = str(path)
            self.launch()
            while True:
                msg = notify.recv(4096).decode()
                listening = re.search(r"^STATUS=listening on \S+:(\d+)$", msg, re.M)
                if "READY=1" in msg.split("\n") and listening:
                    self.port = int(listening.group(1))
                    return self.port

    async def astart_notified(self, socket_dir: Path, timeout: float = TIMEOUT) -> int:
        return await asyncio.get_running_loop().run_in_executor(None, self.start_notified, socket_dir, timeout)


OpsDaemonFactory = Callable[..., OpsDaemon]


@pytest.fixture
def ops_daemon(tmp_path: Path) -> Iterator[OpsDaemonFactory]:
    """``ops_daemon(env=..., prefix=..., pass_fds=..., **config sections)``:
    a daemon not yet started; every one still running at teardown is killed."""
    made: list[OpsDaemon] = []

    def make(
        env: dict[str, str] | None = None,
        prefix: list[str] | None = None,
        pass_fds: tuple[int, ...] = (),
        **sections: dict[str, Any],
    ) -> OpsDaemon:
        workdir = tmp_path / f"run{len(made)}"
        workdir.mkdir()
        d = OpsDaemon(workdir, daemon_config(**sections), tmp_path / "data", env=env, prefix=prefix, pass_fds=pass_fds)
        made.append(d)
        return d

    yield make
    for d in made:
        d.kill()


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A directory with a short path: AF_UNIX socket paths are limited to 107 bytes."""
    with tempfile.TemporaryDirectory(prefix="roo-ops-") as d:
        yield Path(d)
