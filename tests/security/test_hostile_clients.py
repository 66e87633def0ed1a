"""Hostile clients against the real daemon (a subprocess, so the HTTP
server's own limits are the ones ``roo-daemon serve`` sets): oversized
bodies answered 413 before they are read, oversized WebSocket frames closed
with 1009, and connections that send nothing, or headers or a body too
slowly, dropped."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Iterator

import pytest
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from tests.security.conftest import TOKENS, auth_keys, open_raw, parse_head, read_all
from tests.server.conftest import daemon_config
from tests.server.daemon_process import DaemonProcess

MAX_BODY = 16 * 1024
MAX_FRAME = 1024
IDLE = 1.0
BODY_TIMEOUT = 2.0
GENEROUS = 15.0  # an upper bound for "promptly", far above every configured timeout


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    root = tmp_path_factory.mktemp("hostile")
    cfg = daemon_config(
        server={
            "max_body_bytes": MAX_BODY,
            "idle_timeout_seconds": IDLE,
            "body_timeout_seconds": BODY_TIMEOUT,
            "max_header_bytes": 4096,
        },
        auth={"keys": auth_keys()},
        websocket={"max_message_bytes": MAX_FRAME},
    )
    d = DaemonProcess(root, cfg, root / "data")
    d.start()
    yield d
    d.send_signal(signal.SIGTERM)
    assert d.wait_exit() == 0


def request_head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One response, by its Content-Length (the connection may stay open after it)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), GENEROUS)
    status, headers, _ = parse_head(head)
    body = await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", "0"))), GENEROUS)
    return status, headers, body


async def hung_up(reader: asyncio.StreamReader) -> bytes:
    """What arrived before the daemon closed the connection. Closing with
    bytes of ours still unread makes the kernel send a reset instead of a
    FIN: both mean the daemon dropped us."""
    try:
        return await read_all(reader, GENEROUS)
    except ConnectionResetError:
        return b""


AUTH = {"Authorization": f"Bearer {TOKENS['alice']}", "Content-Type": "application/json"}


@pytest.mark.parametrize("length", [MAX_BODY + 1, 10**12])
@pytest.mark.gen_test(timeout=30)
async def test_an_oversized_body_is_413_before_it_is_read(daemon: DaemonProcess, length: int) -> None:
    """Content-Length over the limit, a few bytes actually sent: the 413 comes
    without waiting for a body that never arrives (had the daemon waited, the
    body timeout would have closed the connection with no answer at all),
    and the daemon closes the connection rather than read on."""
    reader, writer = await open_raw(daemon.base_url)
    writer.write(request_head("POST", "/api/v1/sessions", {**AUTH, "Content-Length": str(length)}) + b'{"name":')
    await writer.drain()
    status, headers, body = await read_response(reader)
    assert status == 413, body
    assert headers["content-type"].startswith("application/problem+json")
    assert headers["connection"].lower() == "close"
    assert b"payload-too-large" in body
    assert await hung_up(reader) == b""  # closed, the rest never read
    writer.close()


@pytest.mark.gen_test(timeout=30)
async def test_an_oversized_chunked_body_is_413(daemon: DaemonProcess) -> None:
    """No Content-Length to judge by: the body is counted as it streams and refused once over."""
    reader, writer = await open_raw(daemon.base_url)
    writer.write(request_head("POST", "/api/v1/sessions", {**AUTH, "Transfer-Encoding": "chunked"}))
    chunk = b"x" * 4096
    for _ in range(MAX_BODY // len(chunk) + 2):
        writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
    writer.write(b"0\r\n\r\n")
    await writer.drain()
    status, headers, body = await read_response(reader)
    assert status == 413, body
    assert headers["content-type"].startswith("application/problem+json")
    writer.close()


@pytest.mark.gen_test(timeout=30)
async def test_an_oversized_websocket_frame_closes_with_1009(daemon: DaemonProcess) -> None:
    url = daemon.base_url.replace("http://", "ws://") + "/ws"
    conn = await websocket_connect(HTTPRequest(url, headers={"Authorization": f"Bearer {TOKENS['alice']}"}))
    await conn.write_message('{"op": "ping", "id": "ok"}')
    assert "pong" in await conn.read_message()
    await conn.write_message('{"op": "ping", "id": "' + "x" * MAX_FRAME + '"}')
    assert await asyncio.wait_for(conn.read_message(), GENEROUS) is None
    assert conn.close_code == 1009


@pytest.mark.gen_test(timeout=30)
async def test_a_connection_that_sends_nothing_is_dropped(daemon: DaemonProcess) -> None:
    reader, writer = await open_raw(daemon.base_url)
    started = time.monotonic()
    assert await read_all(reader, GENEROUS) == b""  # EOF: the daemon hung up, with no answer
    assert time.monotonic() - started >= IDLE * 0.9
    writer.close()


async def drip(writer: asyncio.StreamWriter, data: bytes, every: float) -> None:
    """A slowloris: one byte per ``every`` seconds until the daemon hangs up.
    (The sleep paces the attacker; nothing waits on it.)"""
    try:
        for b in data:
            writer.write(bytes([b]))
            await writer.drain()
            await asyncio.sleep(every)
    except (ConnectionError, OSError):
        pass


@pytest.mark.gen_test(timeout=30)
async def test_headers_sent_too_slowly_are_dropped(daemon: DaemonProcess) -> None:
    """Bytes keep coming, but the headers are not complete within the idle
    timeout: the daemon closes the connection anyway."""
    reader, writer = await open_raw(daemon.base_url)
    started = time.monotonic()
    slow = asyncio.ensure_future(drip(writer, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: y\r\n" * 100, 0.1))
    try:
        assert await hung_up(reader) == b""
        assert time.monotonic() - started < GENEROUS
    finally:
        slow.cancel()
        writer.close()


@pytest.mark.gen_test(timeout=30)
async def test_a_body_sent_too_slowly_is_dropped(daemon: DaemonProcess) -> None:
    reader, writer = await open_raw(daemon.base_url)
    writer.write(request_head("POST", "/api/v1/sessions", {**AUTH, "Content-Length": "200"}))
    await writer.drain()
    started = time.monotonic()
    slow = asyncio.ensure_future(drip(writer, b'{"name": "' + b"s" * 180, 0.2))
    try:
        assert await hung_up(reader) == b""
        assert BODY_TIMEOUT * 0.9 <= time.monotonic() - started < GENEROUS
    finally:
        slow.cancel()
        writer.close()


@pytest.mark.gen_test(timeout=30)
async def test_oversized_headers_are_refused(daemon: DaemonProcess) -> None:
    """Headers over ``server.max_header_bytes`` get an answer, a 4xx
    problem+json, not a connection closed without a word."""
    reader, writer = await open_raw(daemon.base_url)
    writer.write(request_head("GET", "/healthz", {"X-Pad": "y" * 8192}))
    await writer.drain()
    raw = await read_all(reader, GENEROUS)
    writer.close()
    assert raw, "the connection was closed without an answer"
    status, headers, body = parse_head(raw)
    assert status == 431, raw[:200]
    assert headers["content-type"].startswith("application/problem+json"), raw[:200]
    assert json.loads(body)["status"] == status
