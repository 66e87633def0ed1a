"""``/ws``: JSON text frames, one connection per client.

The Tornado side of the stream, and nothing else: the upgrade with its
checks (origin, key, per-principal cap), the connection's lifecycle
(keepalive, the auth timeout) and the ops. What the frames mean is in
:mod:`roo_daemon.ws.protocol`, which events a connection gets (replay, at
most once across overlapping subscriptions) in
:mod:`roo_daemon.ws.subscriptions`, and how they leave (flow control, 1013
for a client that cannot keep up) in :mod:`roo_daemon.ws.outbox`.
Events are sent as the bus serialised them, the same bytes to everyone.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from tornado.ioloop import IOLoop
from tornado.websocket import WebSocketHandler

from roo_daemon.api.base import ProblemWriter, authenticate
from roo_daemon.auth import Principal
from roo_daemon.cluster.caps import too_many_connections
from roo_daemon.events import Event
from roo_daemon.problems import Problem
from roo_daemon.ratelimit import TokenBucket, bucket_spec
from roo_daemon.ws import protocol
from roo_daemon.ws.keepalive import Keepalive
from roo_daemon.ws.outbox import Outbox
from roo_daemon.ws.subscriptions import SubscriptionSet

if TYPE_CHECKING:
    from roo_daemon.context import AppContext

log = logging.getLogger("roo_daemon.ws")


class EventSocket(WebSocketHandler, ProblemWriter):
    route = "/ws"
    # Only the upgrade GET: any other method is 405 with ``Allow: GET``.
    SUPPORTED_METHODS = ("GET",)  # type: ignore[assignment]

    def initialize(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.outbox = Outbox(
            lambda: self.ws_connection,
            lambda: self.ctx.config["websocket"]["send_queue_max"],
            self.ctx.metrics.ws_sent.inc,
            self._overflow,
        )
        self.subs = SubscriptionSet(
            self.outbox.send,
            self.outbox.make_room,
            ctx.events,
            ctx.bus,
            lambda: self.ctx.config["websocket"],
            self._lagging,
        )
        self._closed = False
        self._opened = False
        self._cap_row: str | None = None  # PostgreSQL: this connection's ws_connections row
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
        if self.principal is not None:
            await self._admit(self.principal)
        try:
            await super().get(*args, **kwargs)
        finally:
            if not self._opened:  # the handshake failed: no on_close will come
                self._release()

    def check_origin(self, origin: str) -> bool:
        return True  # checked in get() (origin_allowed), where the refusal can be a problem+json

    async def _admit(self, principal: Principal) -> None:
        """Count the connection against ``principal``'s cap, or raise the 429.
        On SQLite the connections in memory are all there are; on PostgreSQL
        the cluster's are rows in the database (``cluster/caps.py``)."""
        cap = self.ctx.config["limits"]["ws_connections_per_principal"]
        if not self.ctx.caps.shared:
            if protocol.too_many(self.ctx.websockets, self, principal, cap):
                raise too_many_connections(principal.name)
            return
        self._cap_row = await self.ctx.caps.open_connection(principal.name, cap)
        if self._closed:  # gone while it was admitted
            self._release()

    def _release(self) -> None:
        row, self._cap_row = self._cap_row, None
        if row is not None:
            self.ctx.caps.close_connection(row)

    @property
    def principal(self) -> Principal | None:
        """Who the connection is; None until authenticated. Held by the
        subscription set (whose events it may send), so a SIGHUP that changes
        a key's scopes (``Daemon._recheck_websockets``) changes both at once."""
        return self.subs.principal

    @principal.setter
    def principal(self, principal: Principal | None) -> None:
        self.subs.principal = principal

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
        # (outbox.FLUSHER); Nagle's algorithm would only hold that write back
        # until the client's delayed ACK, 40 ms on Linux, and events are live.
        self.set_nodelay(True)
        self._opened = True
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
        self._release()
        self.ctx.metrics.ws_connections.dec()
        self.ctx.bus.unsubscribe(self)
        self.subs.close()
        self.outbox.close()  # a replay waiting for room stops now

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
        frame = protocol.decode(message, self.ctx.ws_validator, self.principal is not None)
        if isinstance(frame, protocol.Refused):
            return self._error(frame.op_id, frame.code, frame.detail)
        try:
            await getattr(self, f"_op_{frame['op']}")(frame)
        except Problem as p:
            self._error(frame["id"] if isinstance(frame.get("id"), str) else None, p.slug, p.detail)
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
        try:
            await self._admit(principal)
        except Problem as p:
            if p.status_code != 429:
                raise
            self._error(None, "too-many-requests", "too many WebSocket connections for this key")
            self.close(1008, "too many connections")
            return
        self.principal = principal
        self._reply("authenticated", None)

    async def _op_ping(self, frame: dict[str, Any]) -> None:
        self._reply("pong", frame.get("id"))

    async def _op_unsubscribe(self, frame: dict[str, Any]) -> None:
        if not self.subs.remove(frame["id"]):
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
            await self.ctx.sessions.visible(self.principal, frame["session_id"])
        after = frame.get("after")
        sub = self.subs.add(sub_id, frame.get("session_id"), frame.get("task_id"), after)
        self._reply("subscribed", sub_id, {"after": after} if after is not None else {})
        if after is not None:
            await self.subs.replay(sub)

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
        self.subs.deliver(event)

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        self.outbox.flush()  # what was queued (an error that explains the close) goes first
        super().close(code, reason)

    def _overflow(self, unsent: int) -> None:
        self.ctx.metrics.ws_dropped.inc()
        log.info("closing a WebSocket client that cannot keep up (%d frames unsent)", unsent)
        self._closed_for_lag()

    def _lagging(self) -> None:
        """A replay fell too far behind the live stream it holds back."""
        self.ctx.metrics.ws_dropped.inc()
        self._closed_for_lag()

    def _closed_for_lag(self) -> None:
        self.subs.clear()
        self.close(1013, "client too slow: reconnect and resume with after")
        self.on_close()

    def _reply(self, event: str, op_id: str | None, data: dict[str, Any] | None = None) -> None:
        self.outbox.send(protocol.reply(event, op_id, data))

    def _error(self, op_id: str | None, code: str, detail: str) -> None:
        self.outbox.send(protocol.error(op_id, code, detail))
