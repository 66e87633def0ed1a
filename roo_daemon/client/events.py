"""``EventStream``: the daemon's events over ``/ws`` as an async iterator that
survives disconnects.

It subscribes (optionally to one session or task, optionally replaying
stored events after ``after``), yields each event as a dict, and when the
connection drops (a restart, a network blip, a 1013 for reading too slowly)
reconnects and resubscribes with ``after`` set to the last ``seq`` it
yielded: no event is lost or yielded twice. A stream that started live
(``after=None``) and dropped before its first event resumes live.

``live`` turns True (and ``on_live`` is called) once the first
subscription's replay is over: the
daemon answers a client's ops in order, and a subscribe op is done only
when its replay has caught up with the live stream, so the ``pong`` to a
``ping`` sent right after it marks the end of the replay.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClientConnection, WebSocketClosedError, websocket_connect

from roo_daemon.client.endpoint import Endpoint
from roo_daemon.client.errors import ClientError

SUB_ID = "events"
CAUGHT_UP = "caught-up"
# Close codes after which reconnecting cannot help: policy (a bad or removed key).
_FATAL_CLOSE = {1008: 401}


class EventStream:
    def __init__(
        self,
        endpoint: Endpoint,
        *,
        session_id: str | None = None,
        task_id: str | None = None,
        after: int | None = None,
        reconnect_seconds: float = 60.0,
        on_live: Callable[[], None] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.session_id = session_id
        self.task_id = task_id
        self.after = after
        self.reconnect_seconds = reconnect_seconds
        self.on_live = on_live  # called once the first replay is over
        self.last_seq: int | None = None
        self.live = after is None  # without a replay every event is live
        self.reconnects = 0
        self._conn: WebSocketClientConnection | None = None
        self._closed = False

    async def __aenter__(self) -> EventStream:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def __aiter__(self) -> EventStream:
        return self

    def close(self) -> None:
        self._closed = True
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def start(self) -> None:
        """Connect and subscribe; returns once the daemon accepted the
        subscription, so anything done after it shows up in the stream.
        Errors here are not retried: a wrong URL, key or id fails at once."""
        if self._conn is None:
            self._conn = await self._subscribe(self.after)

    async def __anext__(self) -> dict[str, Any]:
        await self.start()
        while True:
            if self._closed:
                raise StopAsyncIteration
            assert self._conn is not None
            frame = await self._conn.read_message()
            if frame is None:
                if self._closed:
                    raise StopAsyncIteration
                self._conn = await self._reconnect(self._conn)
                continue
            doc = json.loads(frame)
            if "seq" in doc:  # an event
                if self.last_seq is not None and doc["seq"] <= self.last_seq:
                    continue  # already yielded before a reconnect
                self.last_seq = doc["seq"]
                return doc
            kind = doc.get("event")
            if kind == "pong" and doc.get("id") == CAUGHT_UP:
                self._go_live()
            elif kind == "gap":
                return doc  # events were pruned before the replay reached them: say so
            elif kind == "error":
                raise ClientError.from_ws_error(doc.get("data") or {})

    def _go_live(self) -> None:
        if not self.live:
            self.live = True
            if self.on_live is not None:
                self.on_live()

    # -- connecting ------------------------------------------------------------

    async def _subscribe(self, after: int | None) -> WebSocketClientConnection:
        url = self.endpoint.ws_url
        req = HTTPRequest(url, headers=self._headers(), connect_timeout=10, request_timeout=30)
        try:
            conn = await websocket_connect(req)
        except HTTPClientError as e:
            if e.response is not None and e.code != 599:
                r = e.response
                ctype = r.headers.get("Content-Type", "")
                raise ClientError.from_response("GET", url, e.code, ctype, r.body or b"") from None
            raise ClientError.unreachable(url, e) from None
        except OSError as e:
            raise ClientError.unreachable(url, e) from None
        op: dict[str, Any] = {"op": "subscribe", "id": SUB_ID}
        for key, value in (("session_id", self.session_id), ("task_id", self.task_id), ("after", after)):
            if value is not None:
                op[key] = value
        try:
            await conn.write_message(json.dumps(op))
            await conn.write_message(json.dumps({"op": "ping", "id": CAUGHT_UP}))
            while True:
                frame = await conn.read_message()
                if frame is None:
                    raise ClientError(
                        f"the daemon closed the connection ({conn.close_code} {conn.close_reason or ''})".rstrip(),
                        status=_FATAL_CLOSE.get(conn.close_code or 0),
                    )
                doc = json.loads(frame)
                if doc.get("event") == "error":
                    raise ClientError.from_ws_error(doc.get("data") or {})
                if doc.get("event") == "subscribed" and doc.get("id") == SUB_ID:
                    return conn
        except BaseException:
            conn.close()
            raise

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.endpoint.token}"} if self.endpoint.token else {}

    async def _reconnect(self, dropped: WebSocketClientConnection) -> WebSocketClientConnection:
        """Resubscribe after a dropped connection, backing off, for up to
        ``reconnect_seconds``; a refused key or a vanished session is final."""
        if dropped.close_code in _FATAL_CLOSE:
            raise ClientError(
                f"the daemon closed the connection: {dropped.close_reason or 'policy violation'}",
                status=_FATAL_CLOSE[dropped.close_code],  # type: ignore[index]
            )
        self._go_live()  # whatever the resumed replay brings was missed while away: it is news
        deadline = time.monotonic() + self.reconnect_seconds
        delay = 0.1
        while True:
            after = self.last_seq if self.last_seq is not None else self.after
            try:
                conn = await self._subscribe(after)
                self.reconnects += 1
                return conn
            except ClientError as e:
                if e.is_client_side or time.monotonic() + delay > deadline:
                    raise ClientError(
                        f"lost the connection to {self.endpoint.ws_url} and could not resume: {e}",
                        status=e.status,
                        problem=e.problem,
                    ) from None
            except WebSocketClosedError:
                pass
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
