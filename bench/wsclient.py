"""A minimal RFC 6455 WebSocket client on asyncio streams, for benchmarks
that hold hundreds or thousands of connections in one process.

Tornado's client spends far more CPU per frame; a benchmark whose client
cannot keep up measures the client. This one does the handshake (checking
``Sec-WebSocket-Accept``), sends masked text frames, answers pings, and
hands back every frame of one socket read at once with one receive time.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import struct
import time

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 1.3
OP_TEXT, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x8, 0x9, 0xA


class WsClosed(Exception):
    """The server closed the connection; ``code`` is its close code (1006: no close frame)."""

    def __init__(self, code: int) -> None:
        super().__init__(f"closed with {code}")
        self.code = code


def _frame(opcode: int, payload: bytes) -> bytes:
    """A masked client frame (clients must mask, RFC 6455 5.3)."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload)) if n < 512 else _xor_long(payload, mask)
    return head + mask + masked


def _xor_long(payload: bytes, mask: bytes) -> bytes:
    n = len(payload)
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    return (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big")


class WsConn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self._buf = bytearray()

    @classmethod
    async def open(cls, host: str, port: int, path: str = "/ws", token: str | None = None) -> WsConn:
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
        key = base64.b64encode(os.urandom(16))
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: {host}:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key.decode()}",
            "Sec-WebSocket-Version: 13",
        ]
        if token:
            lines.append(f"Authorization: Bearer {token}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            writer.close()
            status = head.split(b"\r\n", 1)[0].decode()
            raise ConnectionError(f"handshake refused: {status}")
        accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
        if b"sec-websocket-accept: " + accept.lower() not in head.lower():
            writer.close()
            raise ConnectionError("handshake: wrong Sec-WebSocket-Accept")
        return cls(reader, writer)

    def send_text(self, text: str) -> None:
        self.writer.write(_frame(OP_TEXT, text.encode()))

    async def read_frames(self) -> tuple[float, list[bytes]]:
        """Every complete text frame of the next socket read, with the time it
        arrived. Pings are answered; a close frame or EOF raises ``WsClosed``."""
        while True:
            chunk = await self.reader.read(1 << 18)
            received = time.time()
            if not chunk:
                raise WsClosed(1006)
            self._buf += chunk
            frames = self._parse()
            if frames:
                return received, frames

    async def read_text(self) -> bytes:
        """The next single text frame (for handshakes and replies)."""
        while True:
            _, frames = await self.read_frames()
            if frames:
                # Only used before any burst: at most one frame is pending.
                return frames[0]

    def _parse(self) -> list[bytes]:
        buf, out, i = self._buf, [], 0
        while len(buf) - i >= 2:
            b0, b1 = buf[i], buf[i + 1]
            n, hl = b1 & 0x7F, 2
            if n == 126:
                if len(buf) - i < 4:
                    break
                n, hl = int.from_bytes(buf[i + 2 : i + 4], "big"), 4
            elif n == 127:
                if len(buf) - i < 10:
                    break
                n, hl = int.from_bytes(buf[i + 2 : i + 10], "big"), 10
            if len(buf) - i < hl + n:
                break
            payload = bytes(buf[i + hl : i + hl + n])
            i += hl + n
            opcode = b0 & 0x0F
            if opcode == OP_TEXT:
                out.append(payload)
            elif opcode == OP_PING:
                self.writer.write(_frame(OP_PONG, payload))
            elif opcode == OP_CLOSE:
                del buf[:i]
                raise WsClosed(int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005)
        del buf[:i]
        return out

    def close(self) -> None:
        try:
            self.writer.write(_frame(OP_CLOSE, struct.pack("!H", 1000)))
        except (ConnectionError, RuntimeError):
            pass
        self.writer.close()


async def open_many(host: str, port: int, count: int, token: str | None = None, batch: int = 50) -> list[WsConn]:
    """``count`` connections, opened ``batch`` at a time (a listen backlog of
    128 drops SYNs from a thousand simultaneous connects)."""
    conns: list[WsConn] = []
    for start in range(0, count, batch):
        conns += await asyncio.gather(*[WsConn.open(host, port, token=token) for _ in range(min(batch, count - start))])
    return conns
