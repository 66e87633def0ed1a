"""The HTTP server, with a drain: after SIGTERM no request is started, and
none in flight is cut off.

Closing the listener stops new connections, but kept-alive ones stay open: a
client on one could go on creating sessions for the whole grace period, and
then lose answers to writes that had committed when the connections were
closed under it. :class:`DrainingHTTPServer` knows, per connection, whether a
request is in flight (from its headers until its answer is fully written:
Tornado starts reading the next request only then). While draining:

- a request whose headers arrive is not handled: it is answered 503
  ``shutting-down`` with ``Connection: close`` (after its body is read, so the
  client sees the answer, not a reset), and the connection is closed;
- a request in flight when the drain began is answered with ``Connection:
  close``, and its connection closed after the answer;
- :meth:`drained` waits until no request is in flight;
- then the remaining connections are idle and can be closed (a client that
  sends on one just then gets no answer: its request was not handled).
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable, Iterable
from typing import Any

from tornado import httputil

from roo_daemon.accept import Acceptor
from roo_daemon.api.base import new_request_id
from roo_daemon.http1 import ProblemHTTPServer
from roo_daemon.problems import PROBLEM_CONTENT_TYPE, Problem

# A client may send the request again shortly: to the next instance, or to
# this service once it is back (systemd restarts it).
DRAIN_RETRY_AFTER_SECONDS = 1


class DrainingHTTPServer(ProblemHTTPServer):
    """The HTTP server (with problem+json for Tornado's own errors, see
    roo_daemon/http1.py) that can refuse new requests on open connections
    and tell when none is in flight; its accept loop backs off when the
    process is out of descriptors (roo_daemon/accept.py)."""

    def initialize(self, *args: Any, **kwargs: Any) -> None:
        super().initialize(*args, **kwargs)
        self.draining = False
        self.refused = 0  # requests answered 503 during the drain
        self._busy: dict[Any, httputil.HTTPConnection] = {}  # connection -> the request in flight on it
        self._idle = asyncio.Event()
        self._idle.set()
        self.on_accept_error: Callable[[str], None] | None = None  # for the metric

    def add_sockets(self, sockets: Iterable[socket.socket]) -> None:
        """As Tornado's, with :class:`Acceptor` instead of its accept handler
        (``stop()`` calls what ``_handlers`` holds to stop accepting)."""
        for sock in sockets:
            self._sockets[sock.fileno()] = sock
            self._handlers[sock.fileno()] = Acceptor(sock, self._handle_connection, self._accept_error).remove

    def _accept_error(self, reason: str) -> None:
        if self.on_accept_error is not None:
            self.on_accept_error(reason)

    @property
    def in_flight(self) -> int:
        return len(self._busy)

    def start_drain(self) -> None:
        """From now on, requests whose headers arrive are refused, and those
        in flight are told that their connection closes after them."""
        self.draining = True
        for request_conn in self._busy.values():
            # Tornado's own flag (HTTP1Connection has no public setter): it
            # adds "Connection: close" to the answer and closes after it.
            if hasattr(request_conn, "_disconnect_on_finish"):
                request_conn._disconnect_on_finish = True  # type: ignore[attr-defined]

    async def drained(self, timeout: float) -> bool:
        """Wait until no request is in flight (True), or ``timeout`` seconds (False)."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def start_request(self, server_conn: object, request_conn: httputil.HTTPConnection) -> httputil.HTTPMessageDelegate:
        # Tornado starts the next request on a connection only once the
        # previous answer is written: the connection is idle until headers come.
        self._done(server_conn)
        return _Gate(self, server_conn, request_conn, super().start_request(server_conn, request_conn))

    def on_close(self, server_conn: object) -> None:
        self._done(server_conn)  # closed, or handed over to a WebSocket
        super().on_close(server_conn)

    def _begin(self, server_conn: object, request_conn: httputil.HTTPConnection) -> None:
        self._busy[server_conn] = request_conn
        self._idle.clear()

    def _done(self, server_conn: object) -> None:
        self._busy.pop(server_conn, None)
        if not self._busy:
            self._idle.set()


class _Gate(httputil.HTTPMessageDelegate):
    """One request: passed to the application, or, while draining, refused."""

    __slots__ = ("server", "server_conn", "request_conn", "inner", "refused")

    def __init__(
        self,
        server: DrainingHTTPServer,
        server_conn: object,
        request_conn: httputil.HTTPConnection,
        inner: httputil.HTTPMessageDelegate,
    ) -> None:
        self.server = server
        self.server_conn = server_conn
        self.request_conn = request_conn
        self.inner = inner
        self.refused: httputil.RequestStartLine | None = None

    def headers_received(
        self, start_line: httputil.RequestStartLine | httputil.ResponseStartLine, headers: httputil.HTTPHeaders
    ) -> Any:
        if self.server.draining:
            assert isinstance(start_line, httputil.RequestStartLine)
            self.refused = start_line
            return None
        self.server._begin(self.server_conn, self.request_conn)
        return self.inner.headers_received(start_line, headers)

    def data_received(self, chunk: bytes) -> Any:
        if self.refused is None:
            return self.inner.data_received(chunk)
        return None  # the body of a refused request: read, then dropped

    def finish(self) -> None:
        if self.refused is None:
            self.inner.finish()
        else:
            self._refuse(self.refused)

    def on_connection_close(self) -> None:
        if self.refused is None:
            self.inner.on_connection_close()

    def _refuse(self, start_line: httputil.RequestStartLine) -> None:
        """503 problem, ``Connection: close``; then close once it is written
        (Tornado would keep a connection the client asked to keep)."""
        self.server.refused += 1
        problem = Problem(
            503,
            "the daemon is shutting down and did not handle this request; send it again",
            slug="shutting-down",
        )
        body = json.dumps(problem.body(), separators=(",", ":")).encode()
        headers = httputil.HTTPHeaders(
            {
                "Content-Type": PROBLEM_CONTENT_TYPE,
                "Content-Length": str(len(body)),
                "Connection": "close",
                "Retry-After": str(DRAIN_RETRY_AFTER_SECONDS),
                "X-Request-ID": new_request_id(),
                "X-Content-Type-Options": "nosniff",
                "Cache-Control": "no-store",
            }
        )
        conn = self.request_conn
        written = conn.write_headers(
            httputil.ResponseStartLine("HTTP/1.1", 503, "Service Unavailable"),
            headers,
            None if start_line.method == "HEAD" else body,
        )
        conn.finish()
        written.add_done_callback(lambda _: self.request_conn.close())
