"""WebSocket keepalive: ``websocket.ping_timeout_seconds`` is honoured as
documented, also when it is longer than ``ping_interval_seconds`` (the
default: 60 and 20). Tornado's own pinger clamps such a timeout to the
interval, with a warning, so a peer got only one interval to answer.

A raw client reads the server's frames and decides whether to answer pings:
no timing is asserted beyond lower bounds (a loaded machine only delays)."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import struct
import time
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.conftest import make_config

INTERVAL, TIMEOUT = 0.2, 1.2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA


@pytest.fixture
def ws_settings() -> tuple[float, float]:
    return INTERVAL, TIMEOUT


@pytest.fixture
def config(tmp_path, ws_settings: tuple[float, float]) -> dict[str, Any]:
    interval, timeout = ws_settings
    return make_config(tmp_path, websocket={"ping_interval_seconds": interval, "ping_timeout_seconds": timeout})


class RawClient:
    """Just enough RFC 6455 to count the server's pings, optionally answer
    them, and see the connection end."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.pings: list[float] = []

    @classmethod
    async def open(cls, base_url: str) -> RawClient:
        url = urlsplit(base_url)
        reader, writer = await asyncio.open_connection(url.hostname, url.port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET /ws HTTP/1.1\r\nHost: {url.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(reader, writer)

    async def frame(self) -> tuple[int, bytes] | None:
        """The next server frame (servers do not mask), or None at EOF."""
        try:
            b0, b1 = await self.reader.readexactly(2)
            n = b1 & 0x7F
            if n == 126:
                n = int.from_bytes(await self.reader.readexactly(2), "big")
            elif n == 127:
                n = int.from_bytes(await self.reader.readexactly(8), "big")
            return b0 & 0x0F, await self.reader.readexactly(n)
        except (asyncio.IncompleteReadError, ConnectionError):
            return None

    def pong(self, payload: bytes) -> None:
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.writer.write(struct.pack("!BB", 0x80 | OP_PONG, 0x80 | len(payload)) + mask + masked)

    async def run(self, answer: bool, stop_after_pings: int | None = None) -> str:
        """Read until the server closes (``"closed"``) or ``stop_after_pings``
        pings have come (``"alive"``)."""
        while True:
            got = await self.frame()
            if got is None or got[0] == OP_CLOSE:
                return "closed"
            opcode, payload = got
            if opcode == OP_PING:
                self.pings.append(time.monotonic())
                if answer:
                    self.pong(payload)
                if stop_after_pings is not None and len(self.pings) >= stop_after_pings:
                    return "alive"

    def close(self) -> None:
        self.writer.close()


@pytest.mark.gen_test(timeout=60)
async def test_a_silent_peer_gets_the_whole_timeout(http_server: Any, base_url: str, caplog: Any) -> None:
    caplog.set_level(logging.WARNING, logger="tornado.general")
    client = await RawClient.open(base_url)
    try:
        assert await client.run(answer=False) == "closed"
        closed = time.monotonic()
    finally:
        client.close()
    # Pinged every interval while waiting, and closed no sooner than the
    # timeout after the first unanswered ping (Tornado closed after one interval).
    assert len(client.pings) >= 3, client.pings
    assert closed - client.pings[0] >= TIMEOUT
    assert not [r for r in caplog.records if "ping_timeout" in r.getMessage()], "Tornado still clamps the timeout"


@pytest.mark.gen_test(timeout=60)
async def test_a_peer_that_answers_stays_connected(http_server: Any, base_url: str) -> None:
    client = await RawClient.open(base_url)
    try:
        # Pings keep coming every interval for well past the timeout.
        pings = int(TIMEOUT / INTERVAL) * 2
        assert await client.run(answer=True, stop_after_pings=pings) == "alive"
        assert client.pings[-1] - client.pings[0] > TIMEOUT
    finally:
        client.close()


@pytest.mark.gen_test(timeout=60)
@pytest.mark.parametrize("ws_settings", [(1.2, 1.0)])
async def test_a_timeout_shorter_than_the_interval(
    ws_settings: tuple[float, float], http_server: Any, base_url: str
) -> None:
    """Pings still come once per interval (not once per timeout)."""
    client = await RawClient.open(base_url)
    try:
        assert await client.run(answer=True, stop_after_pings=2) == "alive"
        assert client.pings[-1] - client.pings[0] >= ws_settings[0] - 0.05
    finally:
        client.close()
