"""Polling for a condition that another task, thread or node makes true.

Tests across nodes cannot await the thing they wait for (it happens in
another process or behind a notification), so they poll; the deadline is a
failure bound, never a timing assertion.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


async def until(predicate: Callable[[], object], seconds: float = 30) -> None:
    """Return once ``predicate()`` is true; fail the test after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {seconds} s"
        await asyncio.sleep(0.01)
