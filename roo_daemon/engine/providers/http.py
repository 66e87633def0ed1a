"""One streaming HTTP POST over Tornado's AsyncHTTPClient, as something to await.

Tornado hands a streamed body to callbacks (``header_callback``,
``streaming_callback``, then the fetch future). :class:`StreamingPost` puts
all three on one ``asyncio.Queue``, in arrival order, so a provider reads the
status, then the body chunk by chunk, with plain ``await``s.

Two things Tornado does not do for us, done here:

* **Aborting.** Cancelling the fetch future does not stop the request, and the
  simple client offers no handle on its connection. The body is therefore
  sent by a ``body_producer``, which Tornado calls with the connection's
  ``write`` method once connected; its owner is the ``HTTP1Connection``, and
  closing that is an immediate, clean abort (the server sees the socket
  close). An abort before the connection exists makes the producer raise, so
  the request dies as soon as it connects.
* **The idle timeout.** No bytes for ``idle_timeout`` seconds (waiting for the
  headers included) aborts the request; a lazy timer (re-armed from the time
  of the last byte, not once per chunk) keeps that cheap.

The overall deadline is a loop time: the caller's budget for the whole
request, retries included; this attempt is aborted when it passes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from tornado.httpclient import HTTPRequest
from tornado.httputil import HTTPHeaders, parse_response_start_line
from tornado.simple_httpclient import SimpleAsyncHTTPClient

# Tornado's own timeouts sit this far behind ours, as a backstop only.
_BACKSTOP_SECONDS = 5.0


class TransportError(Exception):
    """The connection failed or broke: refused, reset, closed mid-body, or
    silent for longer than the idle timeout. Worth a retry."""


class DeadlineExceeded(Exception):
    """The request's overall time budget ran out."""


class _Aborted(Exception):
    """Raised into Tornado by the body producer when the request was aborted
    before it connected."""


class StreamingPost:
    """A POST whose response is read as it arrives. Use :meth:`start`, then
    :meth:`next_chunk` (or :meth:`read_body`) until it returns ``None``;
    always :meth:`abort` at the end (harmless once the response is complete)."""

    def __init__(
        self,
        url: str,
        headers: dict[str, str],
        body: bytes,
        *,
        idle_timeout: float,
        deadline: float,
    ) -> None:
        self.url = url
        self.status: int | None = None
        self._pending_status = 0
        self.headers = HTTPHeaders()
        self._request_headers = {**headers, "Content-Length": str(len(body))}
        self._body = body
        self._idle_timeout = idle_timeout
        self._deadline = deadline
        self._queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._connection: Any = None  # tornado.http1connection.HTTP1Connection, once connected
        self._aborted = False
        self._finished = False
        self._idle_timer: asyncio.TimerHandle | None = None
        self._deadline_timer: asyncio.TimerHandle | None = None
        self._last_activity = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> int:
        """Send the request; return the response's status once its headers arrived."""
        loop = self._loop = asyncio.get_running_loop()
        remaining = self._deadline - loop.time()
        if remaining <= 0:
            raise DeadlineExceeded()
        client = SimpleAsyncHTTPClient(force_instance=True)
        request = HTTPRequest(
            self.url,
            method="POST",
            headers=self._request_headers,
            body_producer=self._produce,
            header_callback=self._on_header_line,
            streaming_callback=self._on_chunk,
            follow_redirects=False,
            connect_timeout=remaining + _BACKSTOP_SECONDS,
            request_timeout=remaining + _BACKSTOP_SECONDS,
        )
        self._last_activity = loop.time()
        self._idle_timer = loop.call_later(self._idle_timeout, self._check_idle)
        self._deadline_timer = loop.call_at(self._deadline, self._expire)
        future = client.fetch(request, raise_error=False)
        future.add_done_callback(lambda f: self._on_done(f, client))
        while True:
            kind, value = await self._queue.get()
            if kind == "headers":
                self.status = value
                return value
            self._raise_for(kind, value)
            if kind == "end":  # no header block (not seen with HTTP/1.x): take the code, never wait forever
                self.status = value.code
                self._queue.put_nowait(("end", value))
                return value.code

    async def next_chunk(self) -> bytes | None:
        """The next piece of the body, or ``None`` when it ended cleanly."""
        kind, value = await self._queue.get()
        if kind == "data":
            return value
        if kind == "end":
            self._queue.put_nowait((kind, value))  # stay at the end for later calls
            return None
        self._raise_for(kind, value)
        raise AssertionError(kind)  # pragma: no cover - _raise_for always raises here

    async def read_body(self, limit: int) -> bytes:
        """The rest of the body, at most ``limit`` bytes (error bodies are short;
        a longer one is cut, not awaited forever: the idle timeout still applies)."""
        out = bytearray()
        while len(out) < limit:
            chunk = await self.next_chunk()
            if chunk is None:
                break
            out += chunk
        return bytes(out[:limit])

    def abort(self) -> None:
        """Stop the request now (closing its connection), unless it already ended."""
        self._aborted = True
        self._cancel_timers()
        if self._connection is not None and not self._finished:
            self._connection.close()

    # Tornado's callbacks, all on the loop.

    async def _produce(self, write: Callable[[bytes], Awaitable[None]]) -> None:
        self._connection = getattr(write, "__self__", None)
        if self._aborted:
            raise _Aborted()
        await write(self._body)

    def _on_header_line(self, line: str) -> None:
        self._last_activity = self._now()
        if line.startswith("HTTP/"):
            self._pending_status = parse_response_start_line(line.strip()).code
            self.headers = HTTPHeaders()
        elif line == "\r\n":
            self._queue.put_nowait(("headers", self._pending_status))
        else:
            self.headers.parse_line(line)

    def _on_chunk(self, chunk: bytes) -> None:
        self._last_activity = self._now()
        self._queue.put_nowait(("data", chunk))

    def _on_done(self, future: asyncio.Future[Any], client: SimpleAsyncHTTPClient) -> None:
        self._finished = True
        self._cancel_timers()
        client.close()
        error = future.exception()  # retrieved here, so asyncio never logs it as lost
        if error is not None:
            self._queue.put_nowait(("failed", error))
        else:
            self._queue.put_nowait(("end", future.result()))

    def _check_idle(self) -> None:
        silent_until = self._last_activity + self._idle_timeout
        if self._now() >= silent_until:
            self._queue.put_nowait(("idle", None))
            self.abort()
        else:
            self._idle_timer = self._loop.call_at(silent_until, self._check_idle)  # type: ignore[union-attr]

    def _expire(self) -> None:
        self._queue.put_nowait(("deadline", None))
        self.abort()

    def _cancel_timers(self) -> None:
        for timer in (self._idle_timer, self._deadline_timer):
            if timer is not None:
                timer.cancel()
        self._idle_timer = self._deadline_timer = None

    def _now(self) -> float:
        return self._loop.time() if self._loop is not None else 0.0

    def _raise_for(self, kind: str, value: Any) -> None:
        if kind == "idle":
            raise TransportError(f"no data for {self._idle_timeout:g} s (idle timeout)")
        if kind == "deadline":
            raise DeadlineExceeded()
        if kind == "failed":
            raise TransportError(f"connection failed: {_describe(value)}")


def _describe(error: BaseException) -> str:
    text = str(error).strip()
    name = type(error).__name__
    return f"{name}: {text}" if text and text != name else name
