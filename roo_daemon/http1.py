"""Tornado's HTTP/1.1 server, with problem+json for the errors it answers
before any handler runs.

Tornado answers a request it cannot parse (a malformed request line or
header, a bad ``Content-Length``, broken chunking) with a bare
``HTTP/1.1 400 Bad Request`` and no body, and drops the connection without
a word when the request line and headers exceed ``max_header_size``. Every
error of ours is an RFC 9457 problem, so :class:`ProblemHTTPServer` gives
each connection's stream a class that:

- replaces that bare 400 with a problem+json 400 whose ``detail`` is
  Tornado's reason, without the bytes it quotes (it writes the 400 inside
  ``except HTTPInputError``, so the exception is at hand);
- answers 431 (Request Header Fields Too Large) when the header read
  overflows, instead of only closing.

Both then close gracefully: the write side is shut and what the client is
still sending is read and discarded for a moment, so the kernel does not
answer it with a reset that would destroy the response before the client
reads it. Hooking the stream is the smallest seam: both answers are made
deep inside ``HTTP1Connection._read_message_inner``, which has no hook.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import socket
import sys
from typing import Any

from tornado import gen, httputil, iostream
from tornado.concurrent import Future, future_add_done_callback
from tornado.http1connection import HTTP1Connection, HTTP1ServerConnection, parse_int
from tornado.httpserver import HTTPServer, _HTTPRequestContext
from tornado.ioloop import IOLoop
from tornado.iostream import IOStream, UnsatisfiableReadError
from tornado.log import app_log, gen_log

from roo_daemon.problems import PROBLEM_CONTENT_TYPE, Problem

_BARE_400 = b"HTTP/1.1 400 Bad Request\r\n\r\n"  # what tornado.http1connection writes
_LINGER_SECONDS = 2.0
_LINGER_BYTES = 1 << 20


def problem_response(problem: Problem) -> bytes:
    """A whole HTTP/1.1 response carrying ``problem``, closing the connection."""
    body = json.dumps(problem.body(), separators=(",", ":")).encode()
    head = (
        f"HTTP/1.1 {problem.status_code} {problem.title}\r\n"
        f"Content-Type: {PROBLEM_CONTENT_TYPE}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n"
        f"X-Request-ID: {secrets.token_hex(12)}\r\n"
        "X-Content-Type-Options: nosniff\r\n"
        "Cache-Control: no-store\r\n\r\n"
    )
    return head.encode("latin-1") + body


def _reason(exc: BaseException | None) -> str:
    """Tornado's reason without the value it quotes (``Invalid header value
    'Bearer roo_...'``): a request's own bytes are never echoed, they may
    carry a key."""
    text = str(exc or "") or "malformed request"
    return re.split(r"[:'\"]", text, maxsplit=1)[0].strip()[:200] or "malformed request"


class _ProblemStream(IOStream):
    """A server connection's stream (see the module docstring)."""

    header_limit = 0  # the server's max_header_size, set per connection
    _answered = False  # an error answer went out: close gracefully

    def write(self, data: Any) -> Any:
        if isinstance(data, bytes) and data == _BARE_400:
            problem = Problem(400, f"the request is not valid HTTP/1.1: {_reason(sys.exc_info()[1])}")
            data = problem_response(problem)
            self._answered = True
        return super().write(data)

    def close(self, exc_info: Any = False) -> None:
        if self.closed():
            return super().close(exc_info)
        answer = b""
        if isinstance(exc_info, UnsatisfiableReadError) and self._read_regex is not None:
            # Only the header read uses a regex with a limit: the request
            # line and headers did not end within max_header_size.
            answer = problem_response(
                Problem(
                    431,
                    f"the request line and headers exceed {self.header_limit} bytes (server.max_header_bytes)",
                    slug="request-header-fields-too-large",
                )
            )
        if not (answer or self._answered):
            return super().close(exc_info)
        try:
            sock = self.socket.dup()  # outlives the stream's own descriptor
        except OSError:
            return super().close(exc_info)
        super().close(exc_info)
        _Linger(sock, answer)


class _Linger:
    """Send ``answer``, shut the write side, and read and drop what the
    client still sends (up to a second or two, 1 MiB) before closing: a
    close with unread data is a reset, which can destroy the answer."""

    def __init__(self, sock: socket.socket, answer: bytes) -> None:
        self.sock = sock
        self.loop = IOLoop.current()
        self.drained = 0
        try:
            if answer:
                sock.send(answer)  # small: the socket's buffer takes it at once
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            sock.close()
            return
        self.timer = self.loop.call_later(_LINGER_SECONDS, self.close)
        self.loop.add_handler(sock.fileno(), self._drain, IOLoop.READ)

    def _drain(self, fd: Any, events: int) -> None:
        try:
            chunk = self.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        self.drained += len(chunk)
        if not chunk or self.drained > _LINGER_BYTES:
            self.loop.remove_timeout(self.timer)
            self.close()

    def close(self) -> None:
        if self.sock.fileno() == -1:
            return
        self.loop.remove_handler(self.sock.fileno())
        self.sock.close()


class _Connection(HTTP1Connection):
    """One request on a server connection, its answer's head written as
    Tornado's ``write_headers`` writes it, in fewer steps.

    Tornado builds each header line through a generator and two
    ``native_str`` calls, encodes each line on its own and searches each for
    CR or LF with a regex: about 5,000 instructions a line, a twentieth of a
    request for the eight lines of an API answer. Here the lines are one
    f-string each, joined and encoded once, and checked for CR and LF by
    counting them (the joined text holds exactly one CR and one LF per
    separator when no line holds any). Anything unusual (a value that is not
    a ``str``, a CR or LF in a line, a character latin-1 lacks, a non-ASCII reason, a client
    connection) goes to Tornado's own, which answers or raises as it always
    did (tests/api/test_hot_path.py compares the bytes)."""

    def write_headers(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
        chunk: bytes | None = None,
    ) -> Future[None]:
        request = self._request_start_line
        if (
            self.is_client
            or request is None
            or self._request_headers is None
            or not isinstance(start_line, httputil.ResponseStartLine)
            or type(start_line.code) is not int
            or not (type(start_line.reason) is str and start_line.reason.isascii())
        ):
            return super().write_headers(start_line, headers, chunk)
        # From here to the lines: Tornado's write_headers for a server, step for step.
        self._response_start_line = start_line
        code = start_line.code
        as_list = headers._as_list  # Tornado's own store, keyed by the normalised name
        version = request.version
        self._chunking_output = (
            version == "HTTP/1.1"
            and request.method != "HEAD"
            and code not in (204, 304)
            and (code < 100 or code >= 200)
            and "Content-Length" not in as_list
        )
        if version == "HTTP/1.1" and self._disconnect_on_finish:
            headers["Connection"] = "close"
        if version == "HTTP/1.0" and self._request_headers.get("Connection", "").lower() == "keep-alive":
            headers["Connection"] = "Keep-Alive"
        if self._chunking_output:
            headers["Transfer-Encoding"] = "chunked"
        if request.method == "HEAD" or code == 304:
            self._expected_content_remaining = 0
        elif "Content-Length" in as_list:
            self._expected_content_remaining = parse_int(headers["Content-Length"])
        else:
            self._expected_content_remaining = None
        lines = [f"HTTP/1.1 {code} {start_line.reason}"]
        for name, values in as_list.items():
            for value in values:
                if type(value) is not str:
                    return super().write_headers(start_line, headers, chunk)  # the steps above again: the same
                lines.append(f"{name}: {value}")
        text = "\r\n".join(lines)
        separators = len(lines) - 1
        if text.count("\r") != separators or text.count("\n") != separators:
            return super().write_headers(start_line, headers, chunk)  # raises, naming the line
        try:
            data = text.encode("latin1") + b"\r\n\r\n"
        except UnicodeEncodeError:
            return super().write_headers(start_line, headers, chunk)  # raises, for the line
        future: Future[None] = Future()
        self._write_future = future
        if self.stream.closed():
            future.set_exception(iostream.StreamClosedError())
            future.exception()
        else:
            if chunk:
                data += self._format_chunk(chunk)
            self._pending_write = self.stream.write(data)
            future_add_done_callback(self._pending_write, self._on_write_complete)
        return future


class _ServerConnection(HTTP1ServerConnection):
    """Tornado's HTTP/1.x server connection, making each request's
    connection a :class:`_Connection`."""

    async def _server_request_loop(self, delegate: httputil.HTTPServerConnectionDelegate) -> None:
        # Tornado's own loop (tornado/http1connection.py), but for the class.
        try:
            while True:
                conn = _Connection(self.stream, False, self.params, self.context)
                request_delegate = delegate.start_request(self, conn)
                try:
                    ret = await conn.read_response(request_delegate)
                except (iostream.StreamClosedError, iostream.UnsatisfiableReadError, asyncio.CancelledError):
                    return
                except Exception:
                    gen_log.error("Uncaught exception", exc_info=True)
                    conn.close()
                    return
                if not ret:
                    return
                await asyncio.sleep(0)
        finally:
            delegate.on_close(self)


class ProblemHTTPServer(HTTPServer):
    """``HTTPServer`` whose connections answer their own parse errors with
    problems (400, 431) instead of a bare 400 or a dropped connection."""

    def _handle_connection(self, connection: socket.socket, address: Any) -> None:
        """Tornado's ``TCPServer._handle_connection`` for a plain (not TLS)
        connection, making its stream a :class:`_ProblemStream` from the start.
        Swapping the class of a made stream (as :meth:`handle_stream` does for
        a stream from elsewhere) left every attribute read on it off
        CPython's fast path, for the connection's life: a twentieth of each
        request's cost."""
        if self.ssl_options is not None:  # the daemon leaves TLS to a proxy in front
            super()._handle_connection(connection, address)
            return
        try:
            stream = _ProblemStream(
                connection, max_buffer_size=self.max_buffer_size, read_chunk_size=self.read_chunk_size
            )
            future = self.handle_stream(stream, address)
            if future is not None:
                IOLoop.current().add_future(gen.convert_yielded(future), lambda f: f.result())
        except Exception:
            app_log.error("Error in connection callback", exc_info=True)

    def handle_stream(self, stream: IOStream, address: tuple) -> None:
        if type(stream) is IOStream:  # not TLS: the daemon leaves TLS to a proxy in front
            stream.__class__ = _ProblemStream
        if isinstance(stream, _ProblemStream):
            stream.header_limit = self.conn_params.max_header_size or 65536  # type: ignore[attr-defined]  # Tornado's default
        # HTTPServer.handle_stream, with the connection class of ours.
        context = _HTTPRequestContext(stream, address, self.protocol, self.trusted_downstream)
        conn = _ServerConnection(stream, self.conn_params, context)
        self._connections.add(conn)
        conn.start_serving(self)
