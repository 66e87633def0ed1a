"""How late the event loop runs: the one number that says the daemon is
CPU-bound. A timer is due every ``interval`` seconds; how much later than
due it fires is time the loop spent on other work. Under load it grows with
the delay of every event to every WebSocket client (``bench/engine.py``
shows the knee), so it is exported (``event_loop_lag_seconds``) and alerted
on (``config/prometheus/alerts.yml``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

DEFAULT_INTERVAL_SECONDS = 0.25


class LoopLagMonitor:
    """Samples the loop's lag with one timer: a few callbacks a second,
    nothing per request or event."""

    def __init__(self, observe: Callable[[float], None], interval: float = DEFAULT_INTERVAL_SECONDS) -> None:
        self.observe = observe
        self.interval = interval
        self._timer: asyncio.TimerHandle | None = None
        self._due = 0.0

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._due = loop.time() + self.interval
        self._timer = loop.call_at(self._due, self._sample, loop)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _sample(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        self.observe(max(0.0, now - self._due))
        # Due one interval from now, not from the missed time: a long stall
        # is one late sample, not a burst of catch-up ones.
        self._due = now + self.interval
        self._timer = loop.call_at(self._due, self._sample, loop)
