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

import json
import re
import secrets
import socket
import sys
from typing import Any

from tornado import gen
from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop
from tornado.iostream import IOStream, UnsatisfiableReadError
from tornado.log import app_log

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
        super().handle_stream(stream, address)
