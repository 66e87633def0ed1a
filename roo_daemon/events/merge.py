"""Every node's events, fanned out in seq order (the PostgreSQL store).

On PostgreSQL several daemons append to one log, and seq order is commit
order (docs/postgresql.md). A node learns of its own events when it commits
them and of the others' through the database's notifications (LISTEN/
NOTIFY: a transaction that appends events notifies, at its commit, the last
seq it gave). The events themselves are read from the log by seq, never
carried in the notification (whose payload PostgreSQL limits to 8,000
bytes), so a notification lost with a connection costs nothing: the next
one, or the resync after reconnecting, reads from where fan-out stands.

:class:`OrderedFanOut` keeps the one rule the WebSocket side relies on:
events are fanned out in seq order, each once. A local event whose seq is
the next one goes out at once, on the commit's callback (one node alone
never waits for a read); one that follows a gap (another node committed
between) waits until the gap is read from the log, which holds it: the
other node committed first, so its events are visible.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("roo_daemon.events")
PAGE = 1000
RETRY_SECONDS = 1.0
LAG_PENDING_MAX = 10_000  # notifications waiting for their fan-out to be timed (older ones are dropped)
# A row of the log as EventStore.since returns it: seq, event, session, task, owner, frame.
LogRow = tuple[int, str, "str | None", "str | None", "str | None", str]


class OrderedFanOut:
    """``fan_out`` sends one event (anything with ``seq``) to the
    subscribers; ``from_row`` makes one of a :data:`LogRow`; ``read(after,
    limit)`` pages the log; ``last_seq`` reads the highest seq given."""

    def __init__(
        self,
        fan_out: Callable[[Any], None],
        from_row: Callable[[LogRow], Any],
        read: Callable[[int, int], Awaitable[list[LogRow]]],
        last_seq: Callable[[], Awaitable[int]],
        fanned: int,
    ) -> None:
        self._fan_out = fan_out
        self._from_row = from_row
        self._read = read
        self._last_seq = last_seq
        self.fanned = fanned  # every event up to here went out (or was pruned)
        self._target = fanned  # the highest seq known committed
        self._local: dict[int, Any] = {}  # this node's committed events waiting for a gap to be read
        self._catching: asyncio.Task | None = None
        self._resync = False
        # Notification lag: (seq, when it was committed, on this node's clock)
        # for notified seqs not fanned out yet; ``on_lag(seconds)`` times each.
        self.on_lag: Callable[[float], None] | None = None
        self._lags: deque[tuple[int, float]] = deque(maxlen=LAG_PENDING_MAX)

    def committed(self, event: Any) -> None:
        """This node committed ``event`` (the store's post-commit callback)."""
        if event.seq <= self.fanned:
            return  # a notification got it read from the log first
        self._local[event.seq] = event
        self._target = max(self._target, event.seq)
        self._advance()

    def notified(self, seq: int | None, committed_at: float | None = None) -> None:
        """Some node committed events through ``seq`` (at ``committed_at``,
        on this node's clock, when known); None: notifications may have been
        lost (the listener reconnected), find out from the log."""
        if seq is None:
            self._resync = True
        else:
            if committed_at is not None and self.on_lag is not None and seq > self.fanned:
                self._lags.append((seq, committed_at))
            if seq <= self._target:
                return
            self._target = seq
        self._advance()

    def _time_lags(self) -> None:
        """Notification lag: each notified seq now fanned out, timed from its commit."""
        if not self._lags or self.on_lag is None:
            return
        now = time.time()
        while self._lags and self._lags[0][0] <= self.fanned:
            _, committed_at = self._lags.popleft()
            self.on_lag(max(0.0, now - committed_at))

    def _advance(self) -> None:
        self._send_local()
        if (self.fanned < self._target or self._resync) and self._catching is None:
            self._catching = asyncio.get_running_loop().create_task(self._catch_up())

    async def _catch_up(self) -> None:
        """Read what is missing from the log, in order, and fan it out,
        merged with this node's own events waiting behind the gap."""
        try:
            while True:
                if self._resync:
                    self._resync = False
                    self._target = max(self._target, await self._last_seq())
                if self.fanned >= self._target:
                    return
                rows = await self._read(self.fanned, PAGE)
                if not rows:
                    # Committed but not visible yet cannot happen (a notification
                    # comes after its commit); so it was pruned meanwhile.
                    log.warning("events %d..%d are gone from the log before fan-out", self.fanned + 1, self._target)
                    self.fanned = self._target
                    return
                for seq, name, session_id, task_id, owner, frame in rows:
                    if seq <= self.fanned:
                        continue  # went out meanwhile (this node's own, without a gap)
                    event = self._local.pop(seq, None) or self._from_row((seq, name, session_id, task_id, owner, frame))
                    self.fanned = seq
                    self._target = max(self._target, seq)
                    self._fan_out(event)
                self._send_local()
                self._time_lags()
        except Exception:
            log.exception("reading events from the log for fan-out failed; retrying in %s s", RETRY_SECONDS)
            asyncio.get_running_loop().call_later(RETRY_SECONDS, self._advance)
        finally:
            self._catching = None

    def _send_local(self) -> None:
        """This node's events that come next, at once."""
        while (event := self._local.pop(self.fanned + 1, None)) is not None:
            self.fanned = event.seq
            self._fan_out(event)
