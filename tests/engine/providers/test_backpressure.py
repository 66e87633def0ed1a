"""Back-pressure in the provider transport: a response body arriving faster
than its consumer reads is not buffered without bound. Past
``PAUSE_READING_BYTES`` the socket is paused, the kernel's buffers fill, the
server's writes stall; reading resumes once the consumer reads."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from roo_daemon.engine.providers import http
from roo_daemon.engine.providers.http import StreamingPost
from tests.engine.providers.rawhttp import RawServer

READ_SIZE = 256 * 1024  # the most asyncio's selector transport reads at once
WAIT = 10.0


def kernel_buffer_max() -> int:
    """The most loopback TCP can hold in flight: the largest send plus
    receive buffer the kernel may grow to."""
    total = 0
    for name in ("tcp_rmem", "tcp_wmem"):
        total += int(Path(f"/proc/sys/net/ipv4/{name}").read_text().split()[2])
    return total


@pytest.mark.gen_test(timeout=60)
async def test_a_body_the_consumer_does_not_read_pauses_the_socket_and_stays_bounded() -> None:
    # More than the kernel can hold in flight plus our threshold: while we
    # do not read, the server cannot finish writing.
    size = kernel_buffer_max() + 4 * http.PAUSE_READING_BYTES
    body = b"x" * size
    writers: list[asyncio.StreamWriter] = []

    async def respond(n: int, writer: asyncio.StreamWriter) -> bool:
        writers.append(writer)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size + body)
        await writer.drain()
        return True

    loop = asyncio.get_running_loop()
    async with RawServer(respond) as server:
        post = StreamingPost(server.url, {}, b"", idle_timeout=60, deadline=loop.time() + 60)
        try:
            assert await post.start() == 200
            assert post._conn is not None
            transport = post._conn.transport
            # The consumer reads nothing. Wait until reading stops, or the
            # whole body has been buffered (what a transport without
            # back-pressure does).
            deadline = loop.time() + WAIT
            while transport.is_reading() and post._buffered < size and loop.time() < deadline:
                await asyncio.sleep(0.01)
            assert post._buffered <= http.PAUSE_READING_BYTES + READ_SIZE, (
                f"never paused: {post._buffered:,} bytes buffered unread"
            )
            assert post._buffered > http.PAUSE_READING_BYTES
            assert not transport.is_closing() and not transport.is_reading()

            # Paused, it stays paused and bounded however long the consumer
            # dawdles, and the server is held back (its bytes wait in its own
            # buffer, not ours).
            held = post._buffered
            await asyncio.sleep(0.5)
            assert not transport.is_reading() and post._buffered == held
            assert writers and writers[0].transport.get_write_buffer_size() > 0

            # The consumer reads: reading resumes, and the body arrives whole,
            # never buffering more than a threshold's worth meanwhile.
            got = len(await post.next_chunk() or b"")
            assert got == held and transport.is_reading()
            peak = 0
            while (chunk := await post.next_chunk()) is not None:
                assert chunk.count(b"x") == len(chunk)
                got += len(chunk)
                peak = max(peak, len(chunk))
            assert got == size
            assert peak <= http.PAUSE_READING_BYTES + READ_SIZE
        finally:
            post.abort()


@pytest.mark.gen_test(timeout=60)
async def test_a_stream_paused_for_a_slow_consumer_is_not_idle() -> None:
    # The idle timeout is for a silent server. While the socket is paused
    # because our consumer is slow, the server cannot send: that time is not
    # its silence, and a healthy stream must not fail for it.
    size = kernel_buffer_max() + 4 * http.PAUSE_READING_BYTES
    idle = 0.3
    sent_all = asyncio.Event()

    async def respond(n: int, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(size // 65536 + 1):
            writer.write(b"10000\r\n" + b"x" * 65536 + b"\r\n")
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        sent_all.set()
        return True

    loop = asyncio.get_running_loop()
    async with RawServer(respond) as server:
        post = StreamingPost(server.url, {}, b"", idle_timeout=idle, deadline=loop.time() + 60)
        try:
            assert await post.start() == 200
            assert post._conn is not None
            transport = post._conn.transport
            deadline = loop.time() + WAIT
            while transport.is_reading() and loop.time() < deadline:
                await asyncio.sleep(0.01)
            assert not transport.is_reading(), "never paused"
            # The consumer dawdles for several idle timeouts while paused.
            await asyncio.sleep(idle * 5)
            assert post._failure is None, f"failed while paused: {post._failure}"
            got = 0
            while (chunk := await post.next_chunk()) is not None:
                got += len(chunk)
                # Slow between reads too, though never for a whole idle
                # timeout while reading is on and the server silent.
                if post._paused:
                    await asyncio.sleep(idle * 2)
            assert got == (size // 65536 + 1) * 65536
            assert sent_all.is_set()
        finally:
            post.abort()
