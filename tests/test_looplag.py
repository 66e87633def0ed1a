"""``LoopLagMonitor``: a loop kept busy shows up as lag; a free one as none."""

from __future__ import annotations

import asyncio
import time

import pytest

from roo_daemon.looplag import LoopLagMonitor


@pytest.mark.gen_test(timeout=10)
async def test_a_blocked_loop_is_measured_as_lag():
    samples: list[float] = []
    monitor = LoopLagMonitor(samples.append, interval=0.01)
    monitor.start()
    time.sleep(0.2)  # on purpose: the loop is blocked while the first sample falls due
    while not samples:
        await asyncio.sleep(0.005)
    assert samples[0] >= 0.19  # due at start + 0.01, run after the 0.2 s block
    while len(samples) < 3:
        await asyncio.sleep(0.005)
    monitor.stop()
    count = len(samples)
    await asyncio.sleep(0.05)
    assert len(samples) == count  # stopped: no more samples
    assert all(s >= 0 for s in samples)
    # One late sample per stall, not a burst of catch-up ones: the next is due an interval after it ran.
    assert sum(1 for s in samples if s >= 0.19) == 1
