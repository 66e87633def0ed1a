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
"""

from __future__ import annotations

import asyncio
import json
import logging
import struct
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tornado.ioloop import IOLoop
from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketHandler

from roo_daemon.api.base import ProblemWriter, authenticate
from roo_daemon.auth import Principal
from roo_daemon.events import Event
from roo_daemon.problems import Problem
from roo_daemon.ratelimit import TokenBucket

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


@dataclass
class Subscription:
    id: str
    session_id: str | None
    task_id: str | None
    buffer: list[Event] | None = None  # live events held back while the replay runs
    # The last seq the replay sent. The store commits an event before the bus
    # fans it out, so a replay may read an event whose live copy comes later.
    replayed_through: int = 0

    def matches(self, event: Event) -> bool:
        return (
            event.seq > self.replayed_through
            and (self.session_id is None or event.session_id == self.session_id)
            and (self.task_id is None or event.task_id == self.task_id)
        )


class EventSocket(WebSocketHandler, ProblemWriter):
    route = "/ws"
    # Only the upgrade GET: any other method is 405 with ``Allow: GET``.
    SUPPORTED_METHODS = ("GET",)  # type: ignore[assignment]

    def initialize(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.principal: Principal | None = None
        self.subs: dict[str, Subscription] = {}
        self._unflushed = 0
        self._outbox: list[bytes] = []
        self._room: asyncio.Event | None = None  # set when a replay may send again
        self._closed = False
        self._auth_timer: Any = None
        frames = ctx.config["limits"]["ws_frames"]
        self._frames = TokenBucket(frames["rate"], frames["burst"], time.monotonic()) if frames["rate"] else None

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

    def open(self, *args: Any, **kwargs: Any) -> None:
        # Frames are already gathered into one write per loop turn
        # (_Flusher); Nagle's algorithm would only hold that write back until
        # the client's delayed ACK, 40 ms on Linux, and events are live.
        self.set_nodelay(True)
        self.ctx.websockets.add(self)
        self.ctx.metrics.ws_connections.inc()
        self.ctx.bus.subscribe(self)
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
        self.ctx.websockets.discard(self)
        self.ctx.metrics.ws_connections.dec()
        self.ctx.bus.unsubscribe(self)
        if self._room is not None:
            self._room.set()  # a replay waiting for room stops now

    # -- incoming -------------------------------------------------------

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
            frame = json.loads(message)
        except ValueError as e:
            return self._error(None, "bad-json", f"the frame is not valid JSON: {e}")
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
        if self.subs.pop(frame["id"], None) is None:
            raise Problem(404, f"no subscription with id {frame['id']}", slug="not-found")
        self._reply("unsubscribed", frame["id"])

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
        sub = Subscription(sub_id, frame.get("session_id"), frame.get("task_id"))
        after = frame.get("after")
        if after is not None:
            sub.buffer = []
        self.subs[sub_id] = sub
        self._reply("subscribed", sub_id, {"after": after} if after is not None else {})
        if after is not None:
            await self._replay(sub, after)

    async def _replay(self, sub: Subscription, after: int) -> None:
        """Stored events after ``after``, then the live ones held back
        meanwhile: each exactly once, in seq order."""
        assert self.principal is not None and sub.buffer is not None
        if after < self.ctx.bus.pruned_through:
            self._send(
                _dumps(
                    {
                        "event": "gap",
                        "id": sub.id,
                        "data": {"after": after, "first_seq": self.ctx.bus.pruned_through + 1},
                    }
                )
            )
        owner = None if self.principal.is_admin else self.principal.name
        last = after
        while self._replaying(sub):
            rows = await self.ctx.events.page(last, REPLAY_PAGE, sub.session_id, sub.task_id, owner)
            for seq, frame in rows:
                await self._make_room()
                self._send(frame)
                last = seq
            if len(rows) < REPLAY_PAGE:
                break
        # Live events held back meanwhile; more may arrive while we wait for
        # room, so keep buffering until a pass finds none, then go live.
        while self._replaying(sub):
            held, sub.buffer = sub.buffer, []
            if not held:
                break
            for event in held:
                if event.seq > last:
                    await self._make_room()
                    self._send(event.frame)
                    last = event.seq
        sub.replayed_through = last
        sub.buffer = None

    def _replaying(self, sub: Subscription) -> bool:
        return not self._closed and self.subs.get(sub.id) is sub

    async def _make_room(self) -> None:
        """Wait until the client has read enough of what it was handed."""
        low_water = max(1, self.ctx.config["websocket"]["send_queue_max"] // 2)
        while self._unflushed >= low_water and not self._closed:
            self._room = asyncio.Event()
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
        """Called by the bus for every committed event."""
        principal = self.principal
        if principal is None or self._closed or not self.subs:
            return
        if not (principal.is_admin or event.owner == principal.name):
            return
        sent = False
        for sub in list(self.subs.values()):  # a drop for lag clears self.subs
            if sub.matches(event):
                if sub.buffer is not None:
                    sub.buffer.append(event)
                    if len(sub.buffer) > HELD_PER_QUEUE_SLOT * self.ctx.config["websocket"]["send_queue_max"]:
                        # The replay cannot catch up with the live stream:
                        # holding more would be memory without bound.
                        self.ctx.metrics.ws_dropped.inc()
                        self._closed_for_lag()
                        return
                elif not sent:
                    if event.wire is None:  # framed once, the same bytes for every subscriber
                        event.wire = text_frame(event.frame.encode())
                    self._send(event.wire)
                    sent = True

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
        self.close(1013, "client too slow: reconnect and resume with after")
        self.on_close()

    def _reply(self, event: str, op_id: str | None, data: dict[str, Any] | None = None) -> None:
        self._send(_dumps({"event": event, "id": op_id, "data": data or {}}))

    def _error(self, op_id: str | None, code: str, detail: str) -> None:
        self._send(_dumps({"event": "error", "id": op_id, "data": {"code": code, "detail": detail}}))


def _seen(fut: Any) -> None:
    if not fut.cancelled():
        fut.exception()  # a closed stream is expected here; mark it seen
