"""A connection's subscriptions: matching, replay, and at most once.

At most once per connection: event frames carry no subscription id, so a
connection is one stream however many subscriptions it holds. Each
subscription records which events it has covered (see ``Subscription``);
an event another subscription already sent is skipped, whether it comes
from a replay, from the live events held back during one, or live. What
the client gets is what the subscriptions would send on their own, minus
every repeat: the first copy stays, in its place.

The set knows nothing of sockets or of the protocol: it is handed a
``send`` for frames, a ``make_room`` to wait on (the outbox's flow
control), the store's ``page`` for replays and the bus for the pruning
floor. So it is tested on its own (tests/ws/test_subscription_set.py), and
delivery from another node changes what feeds :meth:`deliver`, not this.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from itertools import chain
from typing import Any, Protocol

from roo_daemon.auth import Principal
from roo_daemon.events import Event
from roo_daemon.ws.outbox import text_frame

REPLAY_PAGE = 1000
HELD_PER_QUEUE_SLOT = 16  # live events held during a replay, per send_queue_max slot
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


class EventPages(Protocol):
    """What a replay reads: :meth:`roo_daemon.store.EventStore.page`."""

    def page(
        self, after: int, limit: int, session_id: str | None, task_id: str | None, owner: str | None
    ) -> Awaitable[list[tuple[int, str]]]: ...


class PruneFloor(Protocol):
    """What a replay needs of the bus: how far retention has pruned."""

    pruned_through: int


@dataclass(slots=True)
class Subscription:
    """One subscription of a connection, and what it has covered.

    Covered: every event matching the filters with ``after < seq <= reach``
    is on the connection already, sent by this subscription or, before it,
    by another one. While replaying, ``reach`` is ``through``, the last seq
    the replay has dealt with (held-back live events are not covered yet).
    Live, it also takes in every event fanned out so far: a live
    subscription sends each match as it is fanned out. Unsubscribed, it is
    frozen as ``until``; the record stays a while so a later replay does
    not repeat what it sent (``SubscriptionSet._remember``).
    """

    id: str
    session_id: str | None
    task_id: str | None
    # Exclusive start: ``after`` for a replay, else the last seq fanned out
    # when it began; None if that was before the connection's first event
    # (unknown until then: it covers nothing yet, SubscriptionSet._start_live).
    after: int | None
    # The last seq the replay dealt with (a subscription without one: its
    # start). The store commits an event before the bus fans it out, so a
    # replay may read an event whose live copy comes later: live copies up
    # to here are skipped.
    through: int
    buffer: list[Event] | None = None  # live events held back while the replay runs (None: live)
    until: int | None = None  # the reach when it was unsubscribed

    def matches(self, event: Event) -> bool:
        return (self.session_id is None or event.session_id == self.session_id) and (
            self.task_id is None or event.task_id == self.task_id
        )

    def reach(self, fanned: int) -> int:
        """The last seq covered, ``fanned`` being the last seq fanned out."""
        if self.until is not None:
            return self.until
        if self.buffer is not None:
            return self.through
        return max(self.through, fanned)

    def joins(self, other: Subscription) -> bool:
        """Same filters, and ranges that overlap or touch: together, one range."""
        return (
            self.session_id == other.session_id
            and self.task_id == other.task_id
            and (self.after or 0) <= (other.until or 0)
            and (other.after or 0) <= (self.until or 0)
        )


def stored_event(seq: int, frame: str) -> Event:
    """A replayed row as an event: its ids, to match other subscriptions' filters."""
    doc = json.loads(frame)
    return Event(seq, doc["event"], doc["session_id"], doc["task_id"], None, frame)


def gap_frame(sub_id: str, after: int, first_seq: int) -> str:
    return _dumps({"event": "gap", "id": sub_id, "data": {"after": after, "first_seq": first_seq}})


class SubscriptionSet:
    """Every subscription of one connection, live and unsubscribed.

    ``send`` queues a frame; ``make_room`` waits until the client has read
    enough; ``events`` pages the stored log; ``floor`` is the bus (its
    ``pruned_through``); ``limits`` returns the ``websocket`` config section
    (read on each use: SIGHUP may change it); ``on_lag`` is called when a
    replay cannot keep up with the live stream (the connection must go)."""

    def __init__(
        self,
        send: Callable[[str | bytes], None],
        make_room: Callable[[], Awaitable[None]],
        events: EventPages,
        floor: PruneFloor,
        limits: Callable[[], dict[str, Any]],
        on_lag: Callable[[], None],
    ) -> None:
        self._send = send
        self._make_room = make_room
        self._events = events
        self._floor = floor
        self._limits = limits
        self._on_lag = on_lag
        self.principal: Principal | None = None  # whose events may be sent (set once authenticated)
        self.subs: dict[str, Subscription] = {}
        self._gone: list[Subscription] = []  # unsubscribed, still covering what they sent
        # deliver()'s fast path: the one live subscription when nothing else
        # could have sent its events (the common case), else None.
        self._solo: Subscription | None = None
        # The last seq the bus fanned out to this connection; None before the
        # first (what was fanned out before the connection opened is unknown).
        self._fanned: int | None = None
        self._unstarted = False  # a live subscription waits for the first event to learn its start
        # The highest seq a replay dealt with or a gone record reaches: a
        # live event beyond it cannot have been sent yet (no record to check).
        self._ahead = 0
        self.closed = False

    def __len__(self) -> int:
        return len(self.subs)

    def __contains__(self, sub_id: str) -> bool:
        return sub_id in self.subs

    def __getitem__(self, sub_id: str) -> Subscription:
        return self.subs[sub_id]

    def close(self) -> None:
        """The connection is gone: replays stop, nothing more is sent."""
        self.closed = True

    def clear(self) -> None:
        """Forget everything (the connection is dropped for lag)."""
        self.subs.clear()
        self._gone.clear()
        self._solo = None

    # -- changes ----------------------------------------------------------

    def add(self, sub_id: str, session_id: str | None, task_id: str | None, after: int | None) -> Subscription:
        """A new subscription; one with ``after`` must then run :meth:`replay`."""
        # Without a replay, it sends every match fanned out from now on: it
        # starts at the last seq fanned out (unknown before the first).
        start = self._fanned if after is None else after
        self._unstarted = self._unstarted or start is None
        sub = Subscription(sub_id, session_id, task_id, start, start or 0)
        if after is not None:
            sub.buffer = []
        self.subs[sub_id] = sub
        self._reshape()
        return sub

    def remove(self, sub_id: str) -> bool:
        """Unsubscribe; False if there is no such subscription."""
        sub = self.subs.pop(sub_id, None)
        if sub is None:
            return False
        self._remember(sub)
        self._reshape()
        return True

    def _remember(self, gone: Subscription) -> None:
        """Keep what an unsubscribed subscription covered, so a later replay
        skips what it sent. Bounded: a record stays only while the store
        still holds events of its range (a replay cannot return older ones,
        and every event fanned out from now on is newer than its reach); one
        that overlaps or touches an earlier record with the same filters
        merges into it (unsubscribing and resubscribing keeps one record);
        and past ``websocket.max_subscriptions`` records the one that ends
        first is forgotten: a replay reaching back into its range may then
        repeat those events, a duplicate, never a gap."""
        if gone.after is None:
            return  # it began before any event reached this connection, and none has since: it sent nothing
        gone.until = gone.reach(self._fanned or 0)
        gone.buffer = None
        floor = self._floor.pruned_through
        kept: list[Subscription] = []
        for old in self._gone:
            if old.until is None or old.until <= floor:
                continue
            if old.joins(gone):
                gone.after, gone.until = min(old.after or 0, gone.after), max(old.until, gone.until)
            else:
                kept.append(old)
        # An empty range (an ``after`` past the live stream, or no event since
        # it began) covers nothing, nor does one whose events are all pruned;
        # kept, it would only hold deliver() off its fast path until the
        # stream got that far.
        if gone.until > max(gone.after, floor):
            kept.append(gone)
            self._ahead = max(self._ahead, gone.until)
        kept.sort(key=lambda r: r.until or 0)
        self._gone = kept[-self._limits()["max_subscriptions"] :]

    def _reshape(self) -> None:
        """Choose deliver()'s path after the subscriptions changed. The fast
        one needs a single live subscription and no record that may hold an
        event not fanned out yet (an unsubscribed replay that read it from
        the store first); anything else goes through _deliver_shared."""
        only = next(iter(self.subs.values())) if len(self.subs) == 1 else None
        fanned = self._fanned or 0
        if (
            only is not None
            and only.buffer is None
            and only.after is not None
            and all((r.until or 0) <= fanned for r in self._gone)
        ):
            self._solo = only
        else:
            self._solo = None

    def _records(self) -> Iterator[Subscription]:
        return chain(self.subs.values(), self._gone)

    def _holders(self, sub: Subscription, seq: int, fanned: int) -> list[Subscription]:
        """The records other than ``sub`` whose range holds ``seq``: the only
        ones that may have sent it already (if their filters match)."""
        return [r for r in self._records() if r is not sub and r.after is not None and r.after < seq <= r.reach(fanned)]

    def _sent_by_another(self, sub: Subscription, event: Event, fanned: int) -> bool:
        return _any_matches(self._holders(sub, event.seq, fanned), event)

    # -- replay -----------------------------------------------------------

    async def replay(self, sub: Subscription) -> None:
        """Stored events after ``sub.after``, then the live ones held back
        meanwhile: each exactly once, in seq order, skipping those another
        subscription has already sent."""
        assert self.principal is not None and sub.buffer is not None
        owner = None if self.principal.is_admin else self.principal.name
        while self._replaying(sub):
            rows = await self._events.page(sub.through, REPLAY_PAGE, sub.session_id, sub.task_id, owner)
            last_page = len(rows) < REPLAY_PAGE
            floor = self._floor.pruned_through
            if floor > sub.through:
                # Pruned before the replay or during it (the bus raises the
                # floor before the rows go, so this read sees it if it missed
                # any): the client is told, and nothing below it is sent.
                self._send(gap_frame(sub.id, sub.through, floor + 1))
                sub.through = floor
                rows = [row for row in rows if row[0] > floor]
            for seq, frame in rows:
                if not await self._catch_up(sub, seq, frame, None):
                    return
            if last_page:
                break
        # Live events held back meanwhile; more may arrive while we wait for
        # room, so keep buffering until a pass finds none, then go live.
        while self._replaying(sub):
            held, sub.buffer = sub.buffer, []
            if not held:
                break
            for event in held:
                if event.seq > sub.through and not await self._catch_up(sub, event.seq, event.frame, event):
                    return
        sub.buffer = None
        self._reshape()

    async def _catch_up(self, sub: Subscription, seq: int, frame: str, event: Event | None) -> bool:
        """Send one event of ``sub``'s replay, unless another subscription
        sent it already (checked after waiting for room: meanwhile a live
        one may have). False once ``sub`` is gone: it sends no more then."""
        await self._make_room()
        if not self._replaying(sub):
            return False
        holders = self._holders(sub, seq, self._fanned or 0)
        if not holders or not _any_matches(holders, event or stored_event(seq, frame)):
            self._send(frame)
        sub.through = seq
        self._ahead = max(self._ahead, seq)
        return True

    def _replaying(self, sub: Subscription) -> bool:
        return not self.closed and self.subs.get(sub.id) is sub

    # -- live -------------------------------------------------------------

    def deliver(self, event: Event) -> None:
        """Called for every committed event, in seq order."""
        self._fanned = event.seq
        solo = self._solo
        if solo is not None:
            # The hot path (every event, every connection): one live
            # subscription, so nothing else could have sent this event.
            principal = self.principal
            if (
                (principal.is_admin or event.owner == principal.name)  # type: ignore[union-attr]
                and solo.matches(event)
                and event.seq > solo.through
            ):
                if event.wire is None:  # framed once, the same bytes for every subscriber
                    event.wire = text_frame(event.payload or event.frame.encode())
                self._send(event.wire)
            return
        if self.subs:
            self._deliver_shared(event)

    def _deliver_shared(self, event: Event) -> None:
        """Several subscriptions, or one replaying. Live ones come first:
        the first that matches and began before the event sends it, unless
        a replay read it from the store before this fan-out and sent it
        already. Replaying ones hold it back only if no such live one
        matched: what was sent live, their replay will skip."""
        if self._unstarted:
            self._start_live(event.seq - 1)
        principal = self.principal
        if principal is None or self.closed or not (principal.is_admin or event.owner == principal.name):
            return
        replaying: list[Subscription] = []
        for sub in self.subs.values():
            if not sub.matches(event):
                continue
            if sub.buffer is not None:
                replaying.append(sub)
                continue
            seq = event.seq
            if seq <= (sub.after or 0):
                continue  # it began past this event (an ``after`` ahead of the fan-out): not its to send or skip
            # Fanned out so far: up to ``event.seq - 1``. No other live
            # subscription has seen this event yet; only a replay that read
            # it from the store before this fan-out may have sent it.
            if seq > sub.through and (seq > self._ahead or not self._sent_by_another(sub, event, seq - 1)):
                if event.wire is None:
                    event.wire = text_frame(event.payload or event.frame.encode())
                self._send(event.wire)  # may drop the client for lag, clearing self.subs: stop iterating
            if seq >= self._ahead and len(self.subs) == 1:
                self._reshape()  # no record reaches past this fan-out any more: back to the fast path
            return
        limit = HELD_PER_QUEUE_SLOT * self._limits()["send_queue_max"]
        for sub in replaying:
            assert sub.buffer is not None
            sub.buffer.append(event)
            if len(sub.buffer) > limit:
                # The replay cannot catch up with the live stream:
                # holding more would be memory without bound.
                self._on_lag()
                return

    def _start_live(self, before_first: int) -> None:
        """The connection's first event: the live subscriptions begun before
        it start here (everything up to it was fanned out before the
        connection opened, so none of them sent it)."""
        self._unstarted = False
        for sub in self.subs.values():
            if sub.after is None:
                sub.after = sub.through = before_first
        self._reshape()


def _any_matches(records: list[Subscription], event: Event) -> bool:
    return any(r.matches(event) for r in records)
