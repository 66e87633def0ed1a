"""WebSocket keepalive: a ping every ``websocket.ping_interval_seconds``; a
peer that leaves one unanswered for ``ping_timeout_seconds`` is closed.

Tornado's own pinger cannot do this as configured: it waits for each pong
before the next ping is due, so it clamps a timeout longer than the interval
to the interval (with a warning), and the documented default (20 s
interval, 60 s timeout) gave a peer 20 s. Here pings keep their pace while
one is unanswered; the deadline runs from the oldest unanswered ping. One
timer per connection, no task.
"""

from __future__ import annotations

from typing import Protocol

from tornado.ioloop import IOLoop
from tornado.websocket import WebSocketClosedError

# A loop timer may fire a hair before its time (asyncio rounds to its clock
# resolution): a deadline this close counts as reached.
_SLACK = 0.001


class Pingable(Protocol):
    def ping(self, data: bytes = b"") -> None: ...

    def close(self, code: int | None = None, reason: str | None = None) -> None: ...


class Keepalive:
    def __init__(self, conn: Pingable, interval: float, timeout: float) -> None:
        self.conn = conn
        self.interval = interval
        self.timeout = timeout
        self._loop = IOLoop.current()
        self._next_ping = 0.0
        self._unanswered_since: float | None = None  # when the oldest unanswered ping went out
        self._timer: object | None = None

    def start(self) -> None:
        """Begin pinging (nothing with an interval of 0: keepalive is off)."""
        if self.interval > 0:
            self._next_ping = self._loop.time() + self.interval
            self._schedule()

    def stop(self) -> None:
        if self._timer is not None:
            self._loop.remove_timeout(self._timer)
            self._timer = None

    def pong(self) -> None:
        """The peer answered: it is alive, every outstanding ping counts as answered."""
        self._unanswered_since = None

    def _schedule(self) -> None:
        due = self._next_ping
        if self._unanswered_since is not None:
            due = min(due, self._unanswered_since + self.timeout)
        self._timer = self._loop.call_at(due, self._tick)

    def _tick(self) -> None:
        self._timer = None
        now = self._loop.time()
        if self._unanswered_since is not None and now >= self._unanswered_since + self.timeout - _SLACK:
            self.conn.close(1000, "ping timed out")
            return
        if now >= self._next_ping - _SLACK:
            try:
                self.conn.ping()
            except WebSocketClosedError:
                return  # closing anyway; on_close stops the timer
            if self._unanswered_since is None:
                self._unanswered_since = now
            self._next_ping = now + self.interval
        self._schedule()
