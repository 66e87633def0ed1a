"""Raw HTTP on 127.0.0.1 for the transport tests: a server that writes
exactly the bytes a test gives it, a small HTTP proxy, TLS contexts from
the self-signed pair that Tornado ships, and a one-shot POST."""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import Awaitable, Callable

import tornado

from roo_daemon.engine.providers.http import ConnectionPool, StreamingPost
from roo_daemon.engine.providers.origin import Origin

Respond = Callable[[int, asyncio.StreamWriter], Awaitable[bool]]  # (request number, writer) -> keep the connection
CERT_DIR = os.path.join(os.path.dirname(tornado.__file__), "test")  # tornado ships a self-signed test pair


class _LoopbackServer:
    """An asyncio server on 127.0.0.1, used as ``async with``: its connection
    handlers (``_client``) are cancelled and awaited on the way out, so no
    task outlives the test's loop."""

    tls: ssl.SSLContext | None = None

    def __init__(self) -> None:
        self.port = 0
        self._handlers: set[asyncio.Task] = set()

    async def __aenter__(self):  # -> the subclass
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        for task in self._handlers:
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._handlers.add(asyncio.current_task())  # type: ignore[arg-type]
        await self._client(reader, writer)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError


class RawServer(_LoopbackServer):
    """Reads POSTs (head and Content-Length body) and lets ``respond`` write
    whatever bytes it likes; records which connection each request came on."""

    def __init__(self, respond: Respond, tls: ssl.SSLContext | None = None) -> None:
        super().__init__()
        self.respond = respond
        self.tls = tls
        self.connections = 0
        self.requests: list[tuple[int, bytes, bytes]] = []  # (connection number, head, body)
        self.closed_by_client = asyncio.Event()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/v1/chat/completions"

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    self.closed_by_client.set()
                    return
                length = int(
                    next(
                        line.split(b":")[1]
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length")
                    )
                )
                self.requests.append((number, head, await reader.readexactly(length)))
                if not await self.respond(len(self.requests), writer):
                    return
        finally:
            writer.close()


def reply(*pieces: bytes, keep: bool = True, bytewise: bool = False) -> Respond:
    """A responder that writes ``pieces`` (one byte at a time if ``bytewise``) to every request."""

    async def respond(n: int, writer: asyncio.StreamWriter) -> bool:
        for piece in pieces:
            for part in [piece[i : i + 1] for i in range(len(piece))] if bytewise else [piece]:
                writer.write(part)
                await writer.drain()
                if bytewise:
                    await asyncio.sleep(0)
        return keep

    return respond


def chunked(*parts: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


OK_CHUNKED = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


async def fetch(
    url: str | Origin, pool: ConnectionPool | None = None, idle: float = 5.0
) -> tuple[StreamingPost, int, bytes]:
    loop = asyncio.get_running_loop()
    post = StreamingPost(
        url, {"Content-Type": "application/json"}, b'{"a": 1}', idle_timeout=idle, deadline=loop.time() + 10, pool=pool
    )
    try:
        status = await post.start()
        body = await post.read_body(1 << 30)
    finally:
        post.abort()
    return post, status, body


def server_tls() -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(os.path.join(CERT_DIR, "test.crt"), os.path.join(CERT_DIR, "test.key"))
    return context


def client_tls() -> ssl.SSLContext:
    """Trusts the test pair only. It is for foo.example.com and the tests dial
    other names, so the host name is not checked; the chain still is."""
    context = ssl.create_default_context(cafile=os.path.join(CERT_DIR, "test.crt"))
    context.check_hostname = False
    return context


class HttpProxy(_LoopbackServer):
    """An HTTP proxy on 127.0.0.1. ``CONNECT name:port`` opens a tunnel to
    ``routes[name:port]`` (a loopback port), so tests can use names that do
    not resolve: only the proxy resolves them. A plain request (absolute
    form) is forwarded the same way, in origin form. ``require`` is the
    ``Proxy-Authorization`` value to insist on (else 407)."""

    def __init__(self, routes: dict[str, int], require: str | None = None) -> None:
        super().__init__()
        self.routes = routes
        self.require = require
        self.heads: list[bytes] = []  # every request head the proxy received

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.heads.append(head)
            given = [
                line.split(b":", 1)[1].strip()
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"proxy-authorization:")
            ]
            if self.require and given != [self.require.encode()]:
                writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
                return
            method, target, version = head.split(b"\r\n", 1)[0].split(b" ")
            if method == b"CONNECT":
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.routes[target.decode()])
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:  # http://name:port/path -> /path, to the routed port
                authority, _, path = target.split(b"://", 1)[1].partition(b"/")
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.routes[authority.decode()])
                up_writer.write(b"%s /%s %s\r\n%s" % (method, path, version, head.split(b"\r\n", 1)[1]))
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()
