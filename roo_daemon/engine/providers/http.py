"""One streaming HTTP/1.1 POST to a model provider, as something to await.

Why not Tornado's AsyncHTTPClient (the design card's default)? Measured: with
200 tasks streaming at once, py-spy showed the daemon's loop about 60 % busy
inside ``simple_httpclient``/``IOStream`` reading the chunked event streams,
25 % of it re-registering each socket with epoll for every chunk
(``read_until`` + ``read_bytes`` per chunk add and remove the reader). A
provider stream needs none of that machinery: one asyncio :class:`Protocol`
per connection stays registered while the body arrives, decodes the chunked
framing in place, and hands the SSE bytes to the reader in as few pieces as
possible. See ``bench/engine.py`` and README "Performance" for the numbers.
It also keeps connections alive between a task's turns (:class:`ConnectionPool`),
which the simple client cannot, saving a TCP and TLS handshake per turn, and
honours ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY`` (``origin.py``), which
Tornado's client ignores.

Only what a provider needs: a POST with a body, a status and headers, and a
body framed by ``Transfer-Encoding: chunked``, ``Content-Length`` or the
connection's end; gzip/deflate bodies are decoded. ``https`` uses the
system's CA store (``SSL_CERT_FILE`` is honoured).

Timeouts, as before: no byte for ``idle_timeout`` seconds (connecting and
waiting for the headers included) fails with :class:`TransportError`. Only
time spent reading counts: while the socket is paused for a slow consumer
(back-pressure) the server cannot send, so the idle clock stops and starts
afresh when reading resumes. The
overall ``deadline`` (a loop time covering the caller's retries) fails with
:class:`DeadlineExceeded`. :meth:`StreamingPost.abort` closes the connection
at once, which is how cancelling a task stops its model stream.
"""

from __future__ import annotations

import asyncio
import ssl
import zlib
from functools import cache
from typing import Any

from tornado.httputil import HTTPHeaders

from roo_daemon.engine.providers.origin import Origin, Proxy, encode_head

MAX_HEAD_BYTES = 65536  # status line and headers of one response
PAUSE_READING_BYTES = 1 << 20  # unread body buffered before the socket is paused
POOL_IDLE_SECONDS = 10.0  # a kept-alive connection is closed after this long unused
POOL_MAX_IDLE = 256  # per pool (one pool per provider profile)
LINGER_SECONDS = 2.0  # after release(): how long the rest of a body may take to arrive


class TransportError(Exception):
    """The connection failed or broke: refused, reset, closed mid-body, a
    malformed response, or silent for longer than the idle timeout. Worth a
    retry, unless ``retryable`` is false (a proxy that refuses our credentials)."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class DeadlineExceeded(Exception):
    """The request's overall time budget ran out."""


class _Stale(Exception):
    """A kept-alive connection turned out closed before any response byte."""


@cache
def tls_context() -> ssl.SSLContext:
    """The client TLS context, made once: loading the CA store reads files, so
    the first caller should not be on a busy loop (providers make it at start)."""
    return ssl.create_default_context(ssl.Purpose.SERVER_AUTH)


class Connection(asyncio.Protocol):
    """One TCP (or TLS) connection to a provider. While an exchange runs, the
    bytes go straight to it; while idle in a pool, any byte or close just
    retires the connection."""

    def __init__(self, pool: ConnectionPool | None, key: tuple[str, str, int, str]) -> None:
        self.pool = pool
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.exchange: StreamingPost | None = None
        self.closed = False
        self.reused = False
        self.idle_timer: asyncio.TimerHandle | None = None
        self._tunnel_reply: asyncio.Future[bytes] | None = None  # while CONNECT awaits the proxy
        self._tunnel_buf = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.exchange is not None:
            self.exchange._feed(data)
        elif self._tunnel_reply is not None:
            self._tunnel_received(data)
        else:  # nothing was asked: the server is confused; do not reuse
            self.close()

    async def tunnel(self, origin: Origin, proxy: Proxy) -> None:
        """``CONNECT`` through ``proxy`` to ``origin``, then TLS inside the tunnel."""
        loop = asyncio.get_running_loop()
        assert self.transport is not None
        lines = [f"CONNECT {origin.host_port} HTTP/1.1", f"Host: {origin.host_port}"]
        if proxy.authorization:
            lines.append(f"Proxy-Authorization: {proxy.authorization}")
        self._tunnel_reply = loop.create_future()
        self.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        try:
            head = await self._tunnel_reply
        finally:
            self._tunnel_reply = None
        status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        code = status_line[9:12]
        if not (status_line.startswith("HTTP/1.") and code == "200"):
            # 407 (credentials) and 403 (policy) will not change on a retry.
            raise TransportError(
                f"proxy {proxy.shown} refused CONNECT {origin.host_port}: {status_line[9:][:80] or status_line[:80]}",
                retryable=code not in ("407", "403"),
            )
        self.transport = await loop.start_tls(  # type: ignore[assignment]
            self.transport, self, tls_context(), server_hostname=origin.host
        )

    def _tunnel_received(self, data: bytes) -> None:
        reply = self._tunnel_reply
        assert reply is not None
        self._tunnel_buf += data
        end = self._tunnel_buf.find(b"\r\n\r\n")
        if reply.done():
            return
        # A refusal (407, 403, 502) usually comes with a page: the status
        # line is what counts, and the connection is closed anyway.
        if end >= 0 and (end + 4 == len(self._tunnel_buf) or self._tunnel_buf[9:12] != b"200"):
            reply.set_result(self._tunnel_buf[:end])
        elif end >= 0:  # bytes from the origin before we spoke TLS: not a proxy we can trust
            reply.set_exception(TransportError("proxy sent data after its CONNECT reply"))
        elif len(self._tunnel_buf) > MAX_HEAD_BYTES:
            reply.set_exception(TransportError("proxy reply to CONNECT too large"))

    def eof_received(self) -> bool:
        if self.exchange is not None:
            self.exchange._eof()
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._tunnel_reply is not None and not self._tunnel_reply.done():
            self._tunnel_reply.set_exception(TransportError("the proxy closed the connection during CONNECT"))
        if self.exchange is not None:
            self.exchange._lost(exc)
        if self.pool is not None:
            self.pool.forget(self)

    def close(self) -> None:
        """Close now, dropping anything not yet sent (an abort: the server sees the socket end)."""
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class ConnectionPool:
    """Kept-alive connections per origin, for the next request to the same
    provider. A connection is reused only after a response was read to its
    end with nothing left over; one the server closed while idle drops out
    at once (``connection_lost``), and one unused for ``idle_seconds`` is closed."""

    def __init__(self, idle_seconds: float = POOL_IDLE_SECONDS, max_idle: int = POOL_MAX_IDLE) -> None:
        self.idle_seconds = idle_seconds
        self.max_idle = max_idle
        self._idle: dict[tuple[str, str, int, str], list[Connection]] = {}
        self._count = 0

    def take(self, key: tuple[str, str, int, str]) -> Connection | None:
        """The most recently used idle connection to ``key``, if any."""
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            self._count -= 1
            if conn.idle_timer is not None:
                conn.idle_timer.cancel()
                conn.idle_timer = None
            if not conn.closed and conn.transport is not None and not conn.transport.is_closing():
                conn.reused = True
                return conn
        return None

    def give_back(self, conn: Connection) -> None:
        if conn.closed or self._count >= self.max_idle:
            conn.close()
            return
        conn.exchange = None
        self._idle.setdefault(conn.key, []).append(conn)
        self._count += 1
        loop = asyncio.get_running_loop()
        conn.idle_timer = loop.call_later(self.idle_seconds, self._expire, conn)

    def forget(self, conn: Connection) -> None:
        idle = self._idle.get(conn.key)
        if idle and conn in idle:
            idle.remove(conn)
            self._count -= 1
        if conn.idle_timer is not None:
            conn.idle_timer.cancel()
            conn.idle_timer = None

    def close(self) -> None:
        """Close every idle connection (at shutdown)."""
        for idle in self._idle.values():
            for conn in idle:
                if conn.idle_timer is not None:
                    conn.idle_timer.cancel()
                conn.close()
        self._idle.clear()
        self._count = 0

    def _expire(self, conn: Connection) -> None:
        conn.idle_timer = None
        self.forget(conn)
        conn.close()


# Where the response parser is.
_HEAD, _SIZE, _DATA, _DATA_END, _TRAILER, _FIXED, _UNTIL_CLOSE, _DONE = range(8)


class StreamingPost:
    """A POST whose response is read as it arrives. Use :meth:`start`, then
    :meth:`next_chunk` (or :meth:`read_body`) until it returns ``None``;
    always :meth:`abort` at the end (harmless once the response is complete:
    the connection has gone back to its pool or been closed by then)."""

    def __init__(
        self,
        origin: Origin | str,
        headers: dict[str, str],
        body: bytes,
        *,
        idle_timeout: float,
        deadline: float,
        pool: ConnectionPool | None = None,
    ) -> None:
        self.origin = origin if isinstance(origin, Origin) else Origin(origin)
        self.url = f"{self.origin.scheme}://{self.origin.authority}{self.origin.target}"
        self.status: int | None = None
        self.headers = HTTPHeaders()
        self._request = encode_head(self.origin, headers, len(body)) + body
        self._idle_timeout = idle_timeout
        self._deadline = deadline
        self._pool = pool
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conn: Connection | None = None
        self._state = _HEAD
        self._rest = b""  # bytes received but not yet parsed
        self._remaining = 0  # of the current chunk, or of a Content-Length body
        self._keep_alive = False
        self._decoder: Any = None  # zlib decompressor for a gzip/deflate body
        self._parts: list[bytes] = []  # body bytes not yet read
        self._buffered = 0
        self._paused = False
        self._received_any = False
        self._failure: Exception | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._last_activity = 0.0
        self._idle_timer: asyncio.TimerHandle | None = None
        self._deadline_timer: asyncio.TimerHandle | None = None
        self._draining = False  # released: the rest of the body is read and dropped

    async def start(self) -> int:
        """Send the request; return the response's status once its headers arrived."""
        loop = self._loop = asyncio.get_running_loop()
        if self._deadline <= loop.time():
            raise DeadlineExceeded()
        self._arm_timers()
        conn = self._pool.take(self.origin.key) if self._pool is not None else None
        try:
            return await self._exchange(conn or await self._connect())
        except _Stale:
            # The server closed a kept-alive connection as we sent on it, so
            # it never answered. Once more on a new connection, as browsers
            # and urllib3 do: this is not a failed attempt.
            self._failure = None
            self._state = _HEAD
            self._rest = b""
            # Silence is counted from the first send: a server that said
            # nothing for a while and then hung up gets no fresh idle window.
            self._arm_timers(silent_since=self._last_activity)
            return await self._exchange(await self._connect())

    async def next_chunk(self) -> bytes | None:
        """The next piece of the body (everything that arrived since the last
        call), or ``None`` when it ended cleanly."""
        while not self._parts:
            if self._failure is not None:
                raise self._failure
            if self._state == _DONE:
                return None
            await self._wait()
        parts, self._parts = self._parts, []
        self._buffered = 0
        if self._paused and self._conn is not None and self._conn.transport is not None:
            self._paused = False
            self._conn.transport.resume_reading()
            self._restart_idle_clock()
        return parts[0] if len(parts) == 1 else b"".join(parts)

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

    def release(self, linger: float = LINGER_SECONDS) -> None:
        """The caller has all it wants (the stream's end marker came) and
        reads no further. Instead of closing the connection, let the rest of
        the body (usually just the chunked ``0\\r\\n\\r\\n``, often in a later
        packet) arrive and be dropped, so the connection goes back to its pool;
        it is closed if that takes longer than ``linger`` seconds. After
        this, :meth:`abort` leaves the connection be."""
        if self._conn is None or self._failure is not None or self._state == _DONE:
            return  # already pooled or closed
        self._draining = True
        self._parts.clear()
        self._buffered = 0
        self._cancel_timers()
        self._idle_timer = self._loop.call_later(linger, self._give_up)  # type: ignore[union-attr]
        if self._paused and self._conn.transport is not None:
            self._paused = False
            self._conn.transport.resume_reading()

    def abort(self) -> None:
        """Stop the request now (closing its connection), unless it already
        ended or was released."""
        if not self._draining:
            self._give_up()

    def _give_up(self) -> None:
        self._cancel_timers()
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.exchange = None
            conn.close()
        if self._failure is None and self._state != _DONE:
            self._failure = TransportError("aborted")

    # Connecting and sending.

    async def _connect(self) -> Connection:
        loop = self._loop
        assert loop is not None
        conn = Connection(self._pool, self.origin.key)
        task = asyncio.ensure_future(self._open(conn))
        self._waiter = waiter = loop.create_future()
        try:
            # The idle and deadline timers end the wait by resolving the waiter.
            await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
        except BaseException:  # our caller was cancelled
            _discard(task, conn)
            raise
        finally:
            self._waiter = None
        if self._failure is not None:
            _discard(task, conn)
            raise self._failure
        try:
            task.result()
        except (TimeoutError, OSError) as e:  # refused, unreachable, DNS, TLS
            via = f" (via proxy {self.origin.proxy.shown})" if self.origin.proxy else ""
            raise TransportError(f"connection failed{via}: {_describe(e)}") from None
        return conn

    async def _open(self, conn: Connection) -> None:
        """TCP to the provider (TLS for https), or to the proxy and through it."""
        origin, proxy = self.origin, self.origin.proxy
        loop = self._loop
        assert loop is not None
        tls = origin.scheme == "https"
        host, port = (proxy.host, proxy.port) if proxy else (origin.host, origin.port)
        direct_tls = tls and proxy is None
        await loop.create_connection(
            lambda: conn,
            host,
            port,
            ssl=tls_context() if direct_tls else None,
            server_hostname=origin.host if direct_tls else None,
            happy_eyeballs_delay=0.25,
        )
        if tls and proxy is not None:
            try:
                await conn.tunnel(origin, proxy)
            except BaseException:
                conn.close()
                raise

    async def _exchange(self, conn: Connection) -> int:
        self._conn = conn
        conn.exchange = self
        assert conn.transport is not None
        if conn.closed or conn.transport.is_closing():
            # It ended before we listened (a server or docker-proxy that
            # accepts and hangs up): say so now, not after the idle timeout.
            self._broken("the server closed the connection")
        else:
            conn.transport.write(self._request)
        while self._state == _HEAD:
            if self._failure is not None:
                raise self._failure
            await self._wait()
        assert self.status is not None
        return self.status

    async def _wait(self) -> None:
        assert self._loop is not None
        self._waiter = self._loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # The connection's events, all on the loop.

    def _feed(self, data: bytes) -> None:
        self._received_any = True
        self._last_activity = self._loop.time()  # type: ignore[union-attr]
        buf, self._rest = (self._rest + data if self._rest else data), b""
        try:
            self._parse(buf)
        except TransportError as e:
            self._fail(e)
            return
        self._wake()

    def _eof(self) -> None:
        if self._state == _UNTIL_CLOSE:
            self._finish(reusable=False)
        elif self._state != _DONE:
            self._broken("the server closed the connection")

    def _lost(self, exc: Exception | None) -> None:
        if self._state == _UNTIL_CLOSE and exc is not None:
            # A body that ends with the connection must end cleanly: a reset cut it.
            self._fail(TransportError(f"connection lost mid-body: {_describe(exc)}"))
        elif self._state != _DONE:
            self._broken(f"connection lost: {_describe(exc)}" if exc else "the server closed the connection")

    def _broken(self, message: str) -> None:
        if self._state == _UNTIL_CLOSE:
            self._finish(reusable=False)
            return
        if self._conn is not None and self._conn.reused and not self._received_any:
            self._fail(_Stale())
        else:
            where = "before the response" if self._state == _HEAD else "mid-body"
            self._fail(TransportError(f"{message} {where}"))

    def _fail(self, error: Exception) -> None:
        if self._failure is None and self._state != _DONE:
            self._failure = error
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.exchange = None
                conn.close()
        self._cancel_timers()
        self._wake()

    def _arm_timers(self, silent_since: float | None = None) -> None:
        loop = self._loop
        assert loop is not None
        self._cancel_timers()
        self._last_activity = loop.time() if silent_since is None else silent_since
        self._idle_timer = loop.call_at(self._last_activity + self._idle_timeout, self._check_idle)
        self._deadline_timer = loop.call_at(self._deadline, self._fail, DeadlineExceeded())

    def _check_idle(self) -> None:
        loop = self._loop
        assert loop is not None
        if self._paused:
            # Reading is paused because our consumer is slow: the server
            # cannot send, so this is not its silence. The clock stops here
            # and restarts when reading resumes (_restart_idle_clock).
            self._idle_timer = None
            return
        silent_until = self._last_activity + self._idle_timeout
        if loop.time() >= silent_until:
            self._idle_timer = None
            self._fail(TransportError(f"no data for {self._idle_timeout:g} s (idle timeout)"))
        else:
            self._idle_timer = loop.call_at(silent_until, self._check_idle)

    def _restart_idle_clock(self) -> None:
        """Reading resumed after a pause: the server's silence is counted
        afresh from now, since while paused we had asked it for nothing."""
        loop = self._loop
        assert loop is not None
        self._last_activity = loop.time()
        if self._idle_timer is None and self._failure is None and self._state != _DONE and not self._draining:
            self._idle_timer = loop.call_at(self._last_activity + self._idle_timeout, self._check_idle)

    def _cancel_timers(self) -> None:
        for timer in (self._idle_timer, self._deadline_timer):
            if timer is not None:
                timer.cancel()
        self._idle_timer = self._deadline_timer = None

    def _finish(self, reusable: bool) -> None:
        if self._decoder is not None:
            self._deliver(self._decoder.flush(), decoded=True)
        self._state = _DONE
        self._cancel_timers()
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.exchange = None
            # An answer that came before our whole body went out (an early
            # error) leaves the rest of the body on the wire: not reusable.
            sent_all = conn.transport is not None and conn.transport.get_write_buffer_size() == 0
            if reusable and self._keep_alive and not self._rest and sent_all and self._pool is not None:
                if self._paused:  # paused for our slow reader; the next exchange must hear its answer
                    self._paused = False
                    conn.transport.resume_reading()  # type: ignore[union-attr]
                self._pool.give_back(conn)
            else:
                conn.close()
        self._wake()

    # The response parser: the head, then the body's framing.

    def _parse(self, buf: bytes) -> None:
        pos = 0
        end = len(buf)
        while pos < end:
            state = self._state
            if state == _SIZE:
                eol = buf.find(b"\n", pos)
                if eol < 0:
                    if end - pos > 1024:
                        raise TransportError("malformed chunked body (no chunk size line)")
                    break
                size_text = buf[pos:eol].split(b";", 1)[0].strip()
                try:
                    size = int(size_text, 16)
                    if size < 0:  # int() takes a sign; a negative size would walk the parser backwards forever
                        raise ValueError
                except ValueError:
                    raise TransportError(f"malformed chunked body (chunk size {size_text[:20]!r})") from None
                pos = eol + 1
                if size == 0:
                    self._state = _TRAILER
                else:
                    self._remaining = size
                    self._state = _DATA
            elif state == _DATA or state == _FIXED:
                take = min(self._remaining, end - pos)
                self._deliver(buf[pos : pos + take] if pos or take < end else buf)
                pos += take
                self._remaining -= take
                if self._remaining == 0:
                    if state == _FIXED:
                        self._rest = buf[pos:]
                        self._finish(reusable=True)
                        return
                    self._state = _DATA_END
            elif state == _DATA_END:  # the CRLF that ends a chunk's data
                if buf[pos] == 13 and pos + 1 == end:
                    break  # a lone CR so far
                if buf[pos] == 10:  # a bare LF, which servers send and clients accept
                    pos += 1
                elif buf[pos] == 13 and buf[pos + 1] == 10:
                    pos += 2
                else:
                    raise TransportError("malformed chunked body (no line end after a chunk)")
                self._state = _SIZE
            elif state == _TRAILER:
                eol = buf.find(b"\n", pos)
                if eol < 0:
                    if end - pos > MAX_HEAD_BYTES:  # bounded, as the head and size lines are
                        raise TransportError("malformed chunked body (trailer line too long)")
                    break
                line = buf[pos:eol].strip()
                pos = eol + 1
                if not line:
                    self._rest = buf[pos:]
                    self._finish(reusable=True)
                    return
            elif state == _UNTIL_CLOSE:
                self._deliver(buf[pos:] if pos else buf)
                pos = end
            elif state == _HEAD:
                head_end = buf.find(b"\r\n\r\n", pos)
                if head_end < 0:
                    if end - pos > MAX_HEAD_BYTES:
                        raise TransportError(f"response head larger than {MAX_HEAD_BYTES} bytes")
                    break
                self._head(buf[pos:head_end].decode("latin-1"))
                pos = head_end + 4
                if self._state == _FIXED and self._remaining == 0:
                    self._rest = buf[pos:]
                    self._finish(reusable=True)
                    return
            else:  # _DONE: bytes after the response; the connection will not be reused
                self._rest = buf[pos:]
                return
        self._rest = buf[pos:] if pos < end else b""

    def _head(self, text: str) -> None:
        status_line, _, header_text = text.partition("\r\n")
        version, _, rest = status_line.partition(" ")
        code = rest[:3]
        if not version.startswith("HTTP/1.") or not code.isdecimal():  # isdigit() takes "²", which int() refuses
            raise TransportError(f"not an HTTP/1.x response: {status_line[:80]!r}")
        status = int(code)
        if 100 <= status < 200:
            return  # an interim response (100 Continue, 103 Early Hints): the real one follows
        try:
            self.headers = HTTPHeaders.parse(header_text)
        except Exception as e:
            raise TransportError(f"malformed response headers: {e}") from None
        self.status = status
        connection = self.headers.get("Connection", "").lower()
        self._keep_alive = version == "HTTP/1.1" and "close" not in connection
        encoding = self.headers.get("Content-Encoding", "identity").lower()
        if encoding == "gzip":
            self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._decoder = zlib.decompressobj()
        elif encoding != "identity":
            raise TransportError(f"unsupported Content-Encoding {encoding!r}")
        if status == 204 or status == 304:  # never a body, whatever the headers say (RFC 9112, 6.3)
            self._state = _FIXED
            self._remaining = 0
        elif "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self._state = _SIZE
            if "Content-Length" in self.headers:
                # Both framings: chunked wins, but the connection is not reused
                # (RFC 9112 6.3: the message may be an attempt at smuggling).
                self._keep_alive = False
        elif "Content-Length" in self.headers:
            try:
                self._remaining = int(self.headers["Content-Length"])
            except ValueError:
                raise TransportError("malformed Content-Length") from None
            if self._remaining < 0:
                raise TransportError("malformed Content-Length")
            self._state = _FIXED
        else:
            self._state = _UNTIL_CLOSE
            self._keep_alive = False

    def _deliver(self, data: bytes, decoded: bool = False) -> None:
        if self._decoder is not None and not decoded:
            try:
                data = self._decoder.decompress(data)
            except zlib.error as e:
                raise TransportError(f"corrupt compressed body: {e}") from None
        if not data or self._draining:
            return
        self._parts.append(data)
        self._buffered += len(data)
        if self._buffered > PAUSE_READING_BYTES and not self._paused and self._conn is not None:
            self._paused = True
            self._conn.transport.pause_reading()  # type: ignore[union-attr]


def _discard(task: asyncio.Future[Any], conn: Connection) -> None:
    """Give up on a connection attempt: cancel it, or close what it made."""
    if not task.done():
        task.cancel()
    elif not task.cancelled() and task.exception() is None:
        conn.close()


def _describe(error: BaseException) -> str:
    text = str(error).strip()
    name = type(error).__name__
    return f"{name}: {text}" if text and text != name else name
