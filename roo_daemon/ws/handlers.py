"""``/ws``: JSON text frames, one connection per client.

Client ops (schemas ``WsClientMessage`` in ``openapi.yaml``): ``auth``,
``subscribe``, ``unsubscribe``, ``respond``, ``ping``; each is answered.
Events are sent as the bus serialised them, the same bytes to everyone.

Back-pressure: each connection counts frames the socket could not take at
once, still waiting in Tornado's buffer for the client to read (a burst the
socket absorbs is no backlog). Past ``websocket.send_queue_max`` the client
is closed with 1013 (try again later) and resumes with ``after``: a slow
client never makes the daemon buffer without bound or slow anyone else.
Replays hand over frames only as fast as the client reads them.

At most once per connection: event frames carry no subscription id, so a
connection is one stream however many subscriptions it holds. Each
subscription records which events it has covered (see ``Subscription``);
an event another subscription already sent is skipped, whether it comes
from a replay, from the live events held back during one, or live. What
the client gets is what the subscriptions would send on their own, minus
every repeat: the first copy stays, in its place.
"""

from __future__ import annotations

import asyncio
import json
import logging
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain
from typing import TYPE_CHECKING, Any

from tornado.ioloop import IOLoop
from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketHandler

from roo_daemon import strictjson
from roo_daemon.api.base import ProblemWriter, authenticate
from roo_daemon.auth import Principal
from roo_daemon.events import Event
from roo_daemon.problems import Problem
from roo_daemon.ratelimit import TokenBucket, bucket_spec
from roo_daemon.ws.keepalive import Keepalive

if TYPE_CHECKING:
    from roo_daemon.context import AppContext

log = logging.getLogger("roo_daemon.ws")
REPLAY_PAGE = 1000
HELD_PER_QUEUE_SLOT = 16  # live events held during a replay, per send_queue_max slot
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


class _Flusher:
    """One loop callback per turn flushes every connection that queued
    frames in it: fanning an event out to a thousand clients schedules one
    callback, not a thousand."""

    def __init__(self) -> None:
        self._dirty: list[EventSocket] = []
        self._loop: IOLoop | None = None

    def mark(self, conn: EventSocket) -> None:
        loop = IOLoop.current()
        if loop is not self._loop:  # a new loop (tests run one per test): start afresh
            self._dirty, self._loop = [], loop
        if not self._dirty:
            loop.add_callback(self._flush)
        self._dirty.append(conn)

    def _flush(self) -> None:
        dirty, self._dirty = self._dirty, []
        for conn in dirty:
            conn._flush_outbox()


_FLUSHER = _Flusher()


def text_frame(payload: bytes) -> bytes:
    """An unmasked, uncompressed, final text frame (RFC 6455 5.2): what a
    server sends. Built here so one event is framed once for all clients
    (the daemon offers no permessage-deflate, so frames are never compressed)."""
    n = len(payload)
    if n < 126:
        return struct.pack("!BB", 0x81, n) + payload
    if n <= 0xFFFF:
        return struct.pack("!BBH", 0x81, 126, n) + payload
    return struct.pack("!BBQ", 0x81, 127, n) + payload


class FrameValidator:
    """Checks client frames against the ``Ws*`` schemas of ``openapi.yaml``,
    choosing the schema by ``op`` so the error names the real problem."""

    OPS = {
        "auth": "WsAuth",
        "subscribe": "WsSubscribe",
        "unsubscribe": "WsUnsubscribe",
        "respond": "WsRespond",
        "ping": "WsPing",
    }

    def __init__(self, spec: Any) -> None:
        self.validators = {op: spec.schema_validator(name) for op, name in self.OPS.items()}

    def error(self, frame: Any) -> str | None:
        if not isinstance(frame, dict):
            return "a frame must be a JSON object"
        validator = self.validators.get(frame.get("op"))  # type: ignore[arg-type]
        if validator is None:
            return f"unknown op {frame.get('op')!r}; expected one of {', '.join(self.OPS)}"
        for err in validator.iter_errors(frame):
            where = "/".join(map(str, err.absolute_path))
            return f"{where + ': ' if where else ''}{err.message}"
        return None


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
    not repeat what it sent (``EventSocket._remember``).
    """

    id: str
    session_id: str | None
    task_id: str | None
    # Exclusive start: ``after`` for a replay, else the last seq fanned out
    # when it began; None if that was before the connection's first event
    # (unknown until then: it covers nothing yet, EventSocket._start_live).
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


def _stored_event(seq: int, frame: str) -> Event:
    """A replayed row as an event: its ids, to match other subscriptions' filters."""
    doc = json.loads(frame)
    return Event(seq, doc["event"], doc["session_id"], doc["task_id"], None, frame)


class EventSocket(WebSocketHandler, ProblemWriter):
    route = "/ws"
    # Only the upgrade GET: any other method is 405 with ``Allow: GET``.
    SUPPORTED_METHODS = ("GET",)  # type: ignore[assignment]

    def initialize(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.principal: Principal | None = None
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
        self._unflushed = 0
        self._outbox: list[bytes] = []
        self._room: asyncio.Event | None = None  # set when a replay may send again
        self._closed = False
        self._auth_timer: Any = None
        self._keepalive: Keepalive | None = None
        self._frames: TokenBucket | None = None
        self.update_limits(ctx.config["limits"])

    async def get(self, *args: Any, **kwargs: Any) -> None:
        if self.request.headers.get("Upgrade", "").lower() != "websocket":
            raise Problem(
                426,
                "this route speaks WebSocket only: send an Upgrade: websocket request",
                headers={"Upgrade": "websocket"},
            )
        if self.ctx.shutting_down:
            raise Problem(503, "the daemon is shutting down", slug="shutting-down")
        self.check_host()
        origin = self.request.headers.get("Origin")
        if origin is not None and not self.origin_allowed(origin):
            # Before any key is looked at: a page from a foreign origin gets nowhere.
            raise Problem(403, f"WebSocket connections from origin {origin} are not allowed", slug="origin")
        header = self.request.headers.get("Authorization")
        if header is not None or self.ctx.auth.open:
            # Same rules as REST: 401 with a challenge, 429 for an address
            # that has sent too many wrong keys.
            self.principal = authenticate(self.ctx, self.client_ip, header)
        if self.principal is not None and self._too_many(self.principal):
            raise Problem(
                429,
                f"{self.principal.name!r} already has the most WebSocket connections allowed",
                headers={"Retry-After": "5"},
            )
        await super().get(*args, **kwargs)

    def check_origin(self, origin: str) -> bool:
        return True  # checked in get() (origin_allowed), where the refusal can be a problem+json

    def _too_many(self, principal: Principal) -> bool:
        cap = self.ctx.config["limits"]["ws_connections_per_principal"]
        mine = sum(
            1 for w in self.ctx.websockets if w is not self and w.principal and w.principal.name == principal.name
        )
        return mine >= cap

    def update_limits(self, limits: dict[str, Any]) -> None:
        """The client's frame budget (``limits.ws_frames``), at open and on a
        SIGHUP reload: a changed rate keeps the bucket's fill (clamped to a
        lowered burst); rate 0 lifts the limit, a new limit starts full."""
        spec = bucket_spec(limits["ws_frames"])
        now = time.monotonic()
        if spec is None:
            self._frames = None
        elif self._frames is None:
            self._frames = TokenBucket(spec[0], spec[1], now)
        else:
            self._frames.retune(spec[0], spec[1], now)

    def open(self, *args: Any, **kwargs: Any) -> None:
        # Frames are already gathered into one write per loop turn
        # (_Flusher); Nagle's algorithm would only hold that write back until
        # the client's delayed ACK, 40 ms on Linux, and events are live.
        self.set_nodelay(True)
        self.ctx.websockets.add(self)
        self.ctx.metrics.ws_connections.inc()
        self.ctx.bus.subscribe(self)
        ws = self.ctx.config["websocket"]
        self._keepalive = Keepalive(self, ws["ping_interval_seconds"], ws["ping_timeout_seconds"])
        self._keepalive.start()
        if self.principal is None:
            # Browsers cannot set headers on a WebSocket: they get a few
            # seconds to send {"op": "auth", "token": ...} first.
            timeout = self.ctx.config["websocket"]["auth_timeout_seconds"]
            self._auth_timer = IOLoop.current().call_later(timeout, self._auth_expired)

    def _auth_expired(self) -> None:
        if self.principal is None:
            self.close(1008, "authentication timed out")

    def on_close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._auth_timer is not None:
            IOLoop.current().remove_timeout(self._auth_timer)
        if self._keepalive is not None:
            self._keepalive.stop()
        self.ctx.websockets.discard(self)
        self.ctx.metrics.ws_connections.dec()
        self.ctx.bus.unsubscribe(self)
        if self._room is not None:
            self._room.set()  # a replay waiting for room stops now

    # -- incoming -------------------------------------------------------

    def on_pong(self, data: bytes) -> None:
        if self._keepalive is not None:
            self._keepalive.pong()

    async def on_message(self, message: str | bytes) -> None:
        verdict = self._frames.take(time.monotonic()) if self._frames is not None else None
        if verdict is not None and not verdict.allowed:
            self.ctx.metrics.rate_limited.labels("ws_frames").inc()
            return self._error(
                None, "rate-limited", f"too many frames; this one was dropped (retry in {verdict.retry_after} s)"
            )
        if isinstance(message, bytes):
            return self._error(None, "bad-frame", "binary frames are not supported; send JSON text frames")
        try:
            frame = strictjson.loads(message)
        except strictjson.JsonInputError as e:
            if e.syntax:
                return self._error(None, "bad-json", f"the frame is {e.message}")
            # No id is echoed: it may be the very string that cannot be sent.
            return self._error(None, "bad-frame", str(e))
        op_id = frame.get("id") if isinstance(frame, dict) and isinstance(frame.get("id"), str) else None
        error = self.ctx.ws_validator.error(frame)
        if error:
            return self._error(op_id, "bad-frame", error)
        op = frame["op"]
        if self.principal is None and op != "auth":
            return self._error(op_id, "unauthenticated", 'send {"op": "auth", "token": ...} first')
        try:
            await getattr(self, f"_op_{op}")(frame)
        except Problem as p:
            self._error(op_id, p.slug, p.detail)
        except (asyncio.CancelledError, Exception):
            if self._closed or self.ctx.shutting_down:
                return  # the daemon is stopping under a replay: nothing to report
            raise

    async def _op_auth(self, frame: dict[str, Any]) -> None:
        if self.principal is not None:
            raise Problem(409, f"this connection is already authenticated as {self.principal.name!r}", slug="conflict")
        try:
            principal = authenticate(self.ctx, self.client_ip, token=frame["token"])
        except Problem as p:
            if p.status_code == 429:
                self._error(None, "too-many-requests", p.detail)
            else:
                self._error(None, "unauthorized", "the token is not a valid API key")
            self.close(1008, "authentication failed")
            return
        if self._too_many(principal):
            self._error(None, "too-many-requests", "too many WebSocket connections for this key")
            self.close(1008, "too many connections")
            return
        self.principal = principal
        self._reply("authenticated", None)

    async def _op_ping(self, frame: dict[str, Any]) -> None:
        self._reply("pong", frame.get("id"))

    async def _op_unsubscribe(self, frame: dict[str, Any]) -> None:
        sub = self.subs.pop(frame["id"], None)
        if sub is None:
            raise Problem(404, f"no subscription with id {frame['id']}", slug="not-found")
        self._remember(sub)
        self._reshape()
        self._reply("unsubscribed", frame["id"])

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
        floor = self.ctx.bus.pruned_through
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
        self._gone = kept[-self.ctx.config["websocket"]["max_subscriptions"] :]

    async def _op_subscribe(self, frame: dict[str, Any]) -> None:
        assert self.principal is not None
        if not self.principal.has("read"):
            raise Problem(403, f"the key {self.principal.name!r} lacks the 'read' scope", slug="forbidden")
        sub_id = frame["id"]
        if sub_id in self.subs:
            raise Problem(409, f"subscription id {sub_id} is already in use", slug="conflict")
        limit = self.ctx.config["websocket"]["max_subscriptions"]
        if len(self.subs) >= limit:
            raise Problem(429, f"at most {limit} subscriptions per connection", slug="too-many-requests")
        if frame.get("session_id") is not None:
            self.ctx.sessions.visible(self.principal, frame["session_id"])
        after = frame.get("after")
        # Without a replay, it sends every match fanned out from now on: it
        # starts at the last seq fanned out (unknown before the first).
        start = self._fanned if after is None else after
        self._unstarted = self._unstarted or start is None
        sub = Subscription(sub_id, frame.get("session_id"), frame.get("task_id"), start, start or 0)
        if after is not None:
            sub.buffer = []
        self.subs[sub_id] = sub
        self._reshape()
        self._reply("subscribed", sub_id, {"after": after} if after is not None else {})
        if after is not None:
            await self._replay(sub, after)

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
        return self._any_matches(self._holders(sub, event.seq, fanned), event)

    async def _replay(self, sub: Subscription, after: int) -> None:
        """Stored events after ``after``, then the live ones held back
        meanwhile: each exactly once, in seq order, skipping those another
        subscription has already sent."""
        assert self.principal is not None and sub.buffer is not None
        owner = None if self.principal.is_admin else self.principal.name
        while self._replaying(sub):
            rows = await self.ctx.events.page(sub.through, REPLAY_PAGE, sub.session_id, sub.task_id, owner)
            last_page = len(rows) < REPLAY_PAGE
            floor = self.ctx.bus.pruned_through
            if floor > sub.through:
                # Pruned before the replay or during it (the bus raises the
                # floor before the rows go, so this read sees it if it missed
                # any): the client is told, and nothing below it is sent.
                self._send(
                    _dumps({"event": "gap", "id": sub.id, "data": {"after": sub.through, "first_seq": floor + 1}})
                )
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
        if not holders or not self._any_matches(holders, event or _stored_event(seq, frame)):
            self._send(frame)
        sub.through = seq
        self._ahead = max(self._ahead, seq)
        return True

    @staticmethod
    def _any_matches(records: list[Subscription], event: Event) -> bool:
        return any(r.matches(event) for r in records)

    def _replaying(self, sub: Subscription) -> bool:
        return not self._closed and self.subs.get(sub.id) is sub

    async def _make_room(self) -> None:
        """Wait until the client has read enough of what it was handed."""
        low_water = max(1, self.ctx.config["websocket"]["send_queue_max"] // 2)
        while self._unflushed >= low_water and not self._closed:
            if self._room is None or self._room.is_set():
                self._room = asyncio.Event()  # shared: every replay waiting for room must wake, not only the last
            await self._room.wait()

    async def _op_respond(self, frame: dict[str, Any]) -> None:
        assert self.principal is not None
        if not self.principal.has("write"):
            raise Problem(403, f"the key {self.principal.name!r} lacks the 'write' scope", slug="forbidden")
        await self.ctx.tasks.respond(
            self.principal, frame["session_id"], frame["task_id"], frame["ask_id"], frame["approve"], frame.get("text")
        )
        self._reply("responded", frame.get("id"), {"task_id": frame["task_id"], "ask_id": frame["ask_id"]})

    # -- outgoing -------------------------------------------------------

    def deliver(self, event: Event) -> None:
        """Called by the bus for every committed event, in seq order."""
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
        if principal is None or self._closed or not (principal.is_admin or event.owner == principal.name):
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
        limit = HELD_PER_QUEUE_SLOT * self.ctx.config["websocket"]["send_queue_max"]
        for sub in replaying:
            assert sub.buffer is not None
            sub.buffer.append(event)
            if len(sub.buffer) > limit:
                # The replay cannot catch up with the live stream:
                # holding more would be memory without bound.
                self.ctx.metrics.ws_dropped.inc()
                self._closed_for_lag()
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

    def _send(self, frame: str | bytes) -> None:
        """Queue one frame (JSON text, or a ready wire frame). Frames queued
        in one loop turn leave in one write: a commit's events to this
        client cost one system call, not one each."""
        if self._closed:
            return
        if self._unflushed >= self.ctx.config["websocket"]["send_queue_max"]:
            self.ctx.metrics.ws_dropped.inc()
            log.info("closing a WebSocket client that cannot keep up (%d frames unsent)", self._unflushed)
            self._closed_for_lag()
            return
        self._outbox.append(frame if isinstance(frame, bytes) else text_frame(frame.encode()))
        if len(self._outbox) == 1:
            _FLUSHER.mark(self)

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        self._flush_outbox()  # what was queued (an error that explains the close) goes first
        super().close(code, reason)

    def _flush_outbox(self) -> None:
        out, self._outbox = self._outbox, []
        conn = self.ws_connection
        if not out or self._closed or conn is None or conn.stream is None or conn.is_closing():
            return
        data = b"".join(out) if len(out) > 1 else out[0]
        self.ctx.metrics.ws_sent.inc(len(out))
        stream = conn.stream
        if not stream.writing():
            # Fast path: nothing of Tornado's is queued ahead of us, so a
            # direct non-blocking send keeps the order and skips the stream's
            # buffer and future; only what the socket does not take goes on.
            try:
                sent = stream.socket.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                return  # the connection is gone; Tornado closes it on its next read
            if sent == len(data):
                return
            data = data[sent:]
        try:
            fut = stream.write(data)
        except StreamClosedError:
            return
        if fut.done():
            _seen(fut)
        else:
            # The socket did not take all of it: these frames wait for the client to read.
            self._unflushed += len(out)
            fut.add_done_callback(lambda f, n=len(out): self._flushed(f, n))

    def _flushed(self, fut: Any, frames: int) -> None:
        self._unflushed -= frames
        if self._room is not None and self._unflushed < max(1, self.ctx.config["websocket"]["send_queue_max"] // 2):
            self._room.set()
        _seen(fut)

    def _closed_for_lag(self) -> None:
        self.subs.clear()
        self._gone.clear()
        self._solo = None
        self.close(1013, "client too slow: reconnect and resume with after")
        self.on_close()

    def _reply(self, event: str, op_id: str | None, data: dict[str, Any] | None = None) -> None:
        self._send(_dumps({"event": event, "id": op_id, "data": data or {}}))

    def _error(self, op_id: str | None, code: str, detail: str) -> None:
        self._send(_dumps({"event": "error", "id": op_id, "data": {"code": code, "detail": detail}}))


def _seen(fut: Any) -> None:
    if not fut.cancelled():
        fut.exception()  # a closed stream is expected here; mark it seen
