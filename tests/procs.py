"""Find a test's processes from the outside, by a unique argument.

Inside a sandbox (a new PID namespace) ``$$`` and ``$!`` are the
namespace's numbers, not the host's: a test recognises its processes by a
marker in their command line instead, e.g. ``sleep 300.482913``.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time


def unique_seconds(base: int = 300) -> str:
    """A ``sleep`` duration no other process on the machine is likely to use."""
    return f"{base}.{secrets.randbelow(10**6):06d}"


def running(marker: str) -> list[int]:
    """Pids of live (not zombie) processes with ``marker`` in an argument."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            with open(f"/proc/{name}/stat", encoding="ascii", errors="replace") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in ("Z", "X") and any(marker.encode() in arg for arg in argv):
            found.append(int(name))
    return found


async def wait_running(marker: str, timeout: float = 15.0, count: int = 1) -> list[int]:
    """Until at least ``count`` processes carry ``marker``; fails after ``timeout``."""
    deadline = time.monotonic() + timeout
    while len(pids := await asyncio.to_thread(running, marker)) < count:
        assert time.monotonic() < deadline, f"no process with {marker!r} within {timeout}s"
        await asyncio.sleep(0.05)
    return pids


async def wait_gone(marker: str, timeout: float = 15.0) -> None:
    """Until no process carries ``marker``; fails (naming them) after ``timeout``."""
    deadline = time.monotonic() + timeout
    while pids := await asyncio.to_thread(running, marker):
        assert time.monotonic() < deadline, f"still running after {timeout}s: {pids} ({marker!r})"
        await asyncio.sleep(0.05)
