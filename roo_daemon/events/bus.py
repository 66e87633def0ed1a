"""The event bus: every state change, durably appended, then fanned out.

``seq`` is assigned here, on the loop, in call order (or, on PostgreSQL,
by the store as it commits, see docs/postgresql.md); the store commits in
that same order and the bus fans an event out only after its commit. So a
live subscriber never sees an event that a replay could not, and live order
equals durable order: the property that makes replay-then-live seamless.

An event is encoded to UTF-8 once, here, before it takes a seq: one that
cannot be (a lone surrogate, NaN) is refused to its producer at once and
never reaches the store, where it would fail a group commit; the bytes are
what the WebSocket sends.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from roo_daemon.events.merge import LogRow, OrderedFanOut
from roo_daemon.models import iso
from roo_daemon.problems import Problem
from roo_daemon.store import Database, EventStore
from roo_daemon.store.database import WriteFn
from roo_daemon.store.sqlite import chain

log = logging.getLogger("roo_daemon.events")
# allow_nan=False: NaN and Infinity are not JSON; the log must be valid JSON for every client.
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


class UnstorableEvent(ValueError):
    """An event that cannot be encoded as JSON in UTF-8: refused at publish."""


@dataclass(slots=True)
class Event:
    seq: int
    name: str
    session_id: str | None
    task_id: str | None
    owner: str | None
    frame: str  # the serialised envelope: encoded once, sent to every subscriber as is
    payload: bytes | None = None  # ``frame`` in UTF-8, encoded at publish (None for a replayed row)
    wire: bytes | None = None  # the WebSocket frame, built by the first subscriber that sends it


class Subscriber(Protocol):
    def deliver(self, event: Event) -> None: ...


class EventBus:
    def __init__(self, db: Database, store: EventStore) -> None:
        self.db = db
        self.store = store
        self.last_seq = 0
        self.pruned_through = 0
        self._subscribers: set[Subscriber] = set()
        self.on_append: Any = None  # metrics hook: called with the event name
        self.on_lag: Any = None  # metrics hook (PostgreSQL): another node's commit -> fan-out here, seconds
        # PostgreSQL: every node's events, merged in seq order (events/merge.py).
        self._merge: OrderedFanOut | None = None
        # Several nodes (roo_daemon/cluster): the fence check chained into
        # every write of a task (an event with a task_id, ``fenced_write``),
        # and who to tell when one is refused. None on a single daemon.
        self.fence: Callable[[str], WriteFn | None] | None = None
        self.on_fenced: Callable[[str], None] | None = None

    async def open(self) -> None:
        self.last_seq = await self.store.last_seq()
        self.pruned_through = await self.store.pruned_through()
        if self.store.assigns_seq:
            self._merge = OrderedFanOut(
                self._fan_out, _from_row, self.store.since, self.store.last_seq, fanned=self.last_seq
            )
            self._merge.on_lag = self.on_lag
            await self.store.listen(self._merge.notified)

    def _committed(self, event: Event) -> None:
        """After this node's commit: fan out now, or, on PostgreSQL, once
        every lower seq (another node's) has gone out."""
        if self._merge is not None:
            self._merge.committed(event)
        else:
            self._fan_out(event)

    def subscribe(self, sub: Subscriber) -> None:
        self._subscribers.add(sub)

    def unsubscribe(self, sub: Subscriber) -> None:
        self._subscribers.discard(sub)

    def publish(
        self,
        name: str,
        data: dict[str, Any],
        *,
        session_id: str | None,
        task_id: str | None = None,
        owner: str | None = None,
        write: WriteFn | None = None,
        also: list[tuple[str, dict[str, Any]]] | None = None,
    ) -> asyncio.Future:
        """Append an event (and ``write``, and the events ``also``, all in the
        same transaction: if ``write`` fails, none of them is stored or sent).
        Returns the store's future; callers that must not answer before the
        event is durable await it (see :meth:`append`), streaming callers need
        not. Raises :class:`UnstorableEvent`, taking no seq, if an event
        cannot be encoded."""
        ts = time.time()
        check = self.fence(session_id) if self.fence is not None and task_id and session_id else None
        if check is not None:
            write = chain(check, write) if write is not None or also else None
        # A store that numbers events itself (PostgreSQL, shared by several
        # daemons) gives them their seq as it commits them; 0 until then.
        numbered = not self.store.assigns_seq
        first = self.last_seq + 1 if numbered else 0
        event, row = self._encode(first, name, data, session_id, task_id, owner, ts)
        if also:
            encoded = [(event, row)] + [
                self._encode(first + 1 + i if numbered else 0, n, d, session_id, task_id, owner, ts)
                for i, (n, d) in enumerate(also)
            ]
            if numbered:
                self.last_seq += len(encoded)
            events = [e for e, _ in encoded]

            def fan_out_all() -> None:
                for e in events:
                    self._committed(e)

            fut = self.db.write(chain(write, self.store.insert(encoded)), after=fan_out_all)
            fut.add_done_callback(_log_failure)
            if check is not None:
                self._watch(fut, session_id)
            return fut
        if numbered:
            self.last_seq += 1
        if write is None:
            # The common case (streamed text, tool events): rows share one
            # statement per commit (each fails alone; the store logs it).
            # Their fence checks are made once per session and commit.
            if check is None:
                return self.store.append((event, row), after=lambda: self._committed(event))
            fut = self.store.append((event, row), after=lambda: self._committed(event), check=check)
        else:
            fut = self.db.write(chain(write, self.store.insert([(event, row)])), after=lambda: self._committed(event))
            fut.add_done_callback(_log_failure)
        if check is not None:
            self._watch(fut, session_id)
        return fut

    def fenced_write(self, write: WriteFn, session_id: str) -> asyncio.Future:
        """A task's write with no event (its conversation's rows): fenced as
        its events are."""
        check = self.fence(session_id) if self.fence is not None else None
        if check is None:
            return self.db.write(write)
        fut = self.db.write(chain(check, write))
        self._watch(fut, session_id)
        return fut

    def _watch(self, fut: asyncio.Future, session_id: str | None) -> None:
        """Tell ``on_fenced`` when the session's write was refused: this
        node no longer owns it."""

        def done(f: asyncio.Future) -> None:
            if not f.cancelled() and _is_fenced(f.exception()) and self.on_fenced is not None and session_id:
                self.on_fenced(session_id)

        fut.add_done_callback(done)

    @staticmethod
    def _encode(
        seq: int,
        name: str,
        data: dict[str, Any],
        session_id: str | None,
        task_id: str | None,
        owner: str | None,
        ts: float,
    ) -> tuple[Event, tuple]:
        """The event and its store row, encoded once (the frame and its UTF-8 bytes)."""
        try:
            frame = _dumps(
                {"seq": seq, "event": name, "session_id": session_id, "task_id": task_id, "ts": iso(ts), "data": data}
            )
            payload = frame.encode()
        except (ValueError, TypeError) as e:  # UnicodeEncodeError is a ValueError
            raise UnstorableEvent(f"event {name} cannot be stored: {e}") from None
        return Event(seq, name, session_id, task_id, owner, frame, payload), (
            seq,
            name,
            session_id,
            task_id,
            owner,
            ts,
            frame,
        )

    async def append(self, name: str, data: dict[str, Any], **kw: Any) -> None:
        """Publish and wait until the event (and its ``write``) is committed."""
        await self.publish(name, data, **kw)

    def _fan_out(self, event: Event) -> None:
        if event.seq > self.last_seq:  # numbered by the store as it committed
            self.last_seq = event.seq
        if self.on_append is not None:
            self.on_append(event.name)
        for sub in list(self._subscribers):
            try:
                sub.deliver(event)
            except Exception:
                log.exception("subscriber failed on event %d", event.seq)

    async def prune(self, max_events: int, max_age_seconds: float) -> int:
        floor = await self.store.prune_floor(max_events, time.time() - max_age_seconds)
        if floor <= self.pruned_through:
            return 0
        # Raised before the rows go, not after: a replay that reads the store
        # while they go finds the new floor when its read returns, and tells
        # its client with a gap frame (EventSocket._replay).
        self.pruned_through = floor
        dropped = await self.db.write(self.store.prune(floor))
        if dropped:
            log.info("pruned %d events; retained from seq %d", dropped, floor + 1)
        return dropped


def _from_row(row: LogRow) -> Event:
    """Another node's event, read from the log."""
    seq, name, session_id, task_id, owner, frame = row
    return Event(seq, name, session_id, task_id, owner, frame)


def _is_fenced(exc: BaseException | None) -> bool:
    return exc is not None and getattr(exc, "slug", None) == "owner-changed"


def _log_failure(fut: asyncio.Future) -> None:
    if fut.cancelled() or fut.exception() is None:
        return
    if isinstance(fut.exception(), Problem) and fut.exception().status_code < 500:  # type: ignore[union-attr]
        return  # a write that refused on purpose (a cap's 429): the producer answers it
    if _is_fenced(fut.exception()):
        log.info("event not stored: %s", fut.exception())  # another node owns the session now
        return
    log.error("event append failed: %s", fut.exception())
