"""The provider transport (``providers/http.py``) at the byte level: how it
frames responses, keeps connections alive and replaces stale ones, and
speaks TLS. The servers here are raw asyncio servers on 127.0.0.1 that write
exactly the bytes each test needs."""

from __future__ import annotations

import asyncio
import gzip
import socket
import struct

import pytest

from roo_daemon.engine.providers import http
from roo_daemon.engine.providers.base import ProviderError
from roo_daemon.engine.providers.http import ConnectionPool, StreamingPost, TransportError
from roo_daemon.engine.providers.origin import Origin
from tests.engine.fakes import Turn
from tests.engine.providers.conftest import assemble, collect, make_provider
from tests.engine.providers.rawhttp import OK_CHUNKED, RawServer, chunked, client_tls, fetch, reply, server_tls


@pytest.mark.gen_test(timeout=10)
async def test_a_chunked_body_split_at_every_byte_arrives_whole_and_the_connection_is_kept():
    body = chunked(b'data: {"x": 1}\n\n', b"data: [DONE]\n\n").replace(b"10\r\n", b"10;ext=1\r\n", 1)
    body = body[:-2] + b"X-Trailer: yes\r\n\r\n"  # a trailer after the last chunk
    pool = ConnectionPool()
    async with RawServer(reply(OK_CHUNKED, body, bytewise=True)) as server:
        post, status, got = await fetch(server.url, pool)
        assert (status, got) == (200, b'data: {"x": 1}\n\ndata: [DONE]\n\n')
        assert post.headers["Content-Type"] == "text/event-stream"
        number, head, sent = server.requests[0]
        assert head.startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
        assert b"\r\nHost: 127.0.0.1:%d\r\n" % server.port in head and sent == b'{"a": 1}'
        await fetch(server.url, pool)
        assert [r[0] for r in server.requests] == [1, 1]  # the second request reused the connection
    pool.close()


@pytest.mark.gen_test(timeout=10)
async def test_chunked_framing_with_bare_line_feeds():
    async with RawServer(reply(OK_CHUNKED, b"3\nabc\n2\nde\n0\n\n", bytewise=True)) as server:
        assert (await fetch(server.url))[2] == b"abcde"


@pytest.mark.gen_test(timeout=10)
async def test_content_length_and_interim_responses():
    pieces = (
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"HTTP/1.1 429 Too Many\r\nRetry-After: 3\r\nContent-Length: 5\r\n\r\nslow!",
    )
    pool = ConnectionPool()
    async with RawServer(reply(*pieces)) as server:
        post, status, got = await fetch(server.url, pool)
        assert (status, got, post.headers["Retry-After"]) == (429, b"slow!", "3")
        await fetch(server.url, pool)
        assert server.connections == 1
    pool.close()


@pytest.mark.gen_test(timeout=10)
async def test_a_body_that_ends_with_the_connection_is_read_to_the_end_and_not_reused():
    pool = ConnectionPool()
    async with RawServer(reply(b"HTTP/1.0 200 OK\r\n\r\n", b"data: a\n\n", b"data: b\n\n", keep=False)) as server:
        _, status, got = await fetch(server.url, pool)
        assert (status, got) == (200, b"data: a\n\ndata: b\n\n")
        await fetch(server.url, pool)
        assert server.connections == 2
    pool.close()


@pytest.mark.gen_test(timeout=10)
async def test_connection_close_and_bytes_after_the_body_prevent_reuse():
    async def respond(n: int, writer: asyncio.StreamWriter) -> bool:
        if n == 1:
            writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA")
        return True

    pool = ConnectionPool()
    async with RawServer(respond) as server:
        for _ in range(3):
            assert (await fetch(server.url, pool))[2] == b"ok"
        assert server.connections == 3
    pool.close()


@pytest.mark.gen_test(timeout=10)
async def test_a_gzip_body_is_decoded():
    data = b"data: " + b"z" * 5000 + b"\n\n"
    packed = gzip.compress(data)
    head = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
    async with RawServer(reply(head, chunked(packed[:100], packed[100:]))) as server:
        assert (await fetch(server.url))[2] == data
        assert b"Accept-Encoding: identity" in server.requests[0][1]  # asked for none; decoded anyway


@pytest.mark.gen_test(timeout=10)
async def test_a_large_body_pauses_the_socket_and_still_arrives_whole():
    data = bytes(range(256)) * (3 * 4096 + 1)  # 3 MiB and a bit: over the pause threshold
    async with RawServer(reply(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(data), data)) as server:
        loop = asyncio.get_running_loop()
        post = StreamingPost(server.url, {}, b"", idle_timeout=5, deadline=loop.time() + 10)
        assert await post.start() == 200
        await asyncio.sleep(0.1)  # let the reads get ahead of us
        got = bytearray()
        while (piece := await post.next_chunk()) is not None:
            got += piece
        assert got == data
        post.abort()


@pytest.mark.parametrize(
    "response, message",
    [
        (b"SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP/1.x response"),
        (OK_CHUNKED + b"zz\r\n", "malformed chunked body"),
        (OK_CHUNKED + b"5\r\nhelloXX", "malformed chunked body"),
        (b"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: 1\r\n\r\nx", "unsupported Content-Encoding"),
        (b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70000, "response head larger than"),
        (OK_CHUNKED + b"10\r\npartial", "the server closed the connection mid-body"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "mid-body"),
        (b"", "the server closed the connection before the response"),
        # int() takes a sign: a negative size walked the parser backwards (with "-4\n\n", forever).
        pytest.param(OK_CHUNKED + b"-1\r\n0\r\n\r\n", "malformed chunked body", id="negative-chunk-size"),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nhello", "malformed Content-Length", id="negative-length"
        ),
        # "\xb2" is "²" in latin-1: isdigit() but not int(), which raised inside data_received.
        pytest.param(b"HTTP/1.1 \xb200 OK\r\n\r\n", "not an HTTP/1.x response", id="superscript-status"),
    ],
)
@pytest.mark.gen_test(timeout=10)
async def test_broken_responses_are_transport_errors(response, message):
    async with RawServer(reply(response, keep=False)) as server:
        with pytest.raises(TransportError, match=message):
            await fetch(server.url)


@pytest.mark.gen_test(timeout=10)
async def test_a_kept_alive_connection_closed_as_the_request_goes_out_is_replaced_at_once():
    async def respond(n: int, writer: asyncio.StreamWriter) -> bool:
        if n == 2:
            return False  # read the second request, then hang up without a word (a keep-alive race)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        return True

    pool = ConnectionPool()
    async with RawServer(respond) as server:
        await fetch(server.url, pool)
        _, status, got = await fetch(server.url, pool)
        assert (status, got) == (200, b"ok")
        assert [r[0] for r in server.requests] == [1, 1, 2]  # sent again on a new connection
    pool.close()


@pytest.mark.gen_test(timeout=10)
async def test_a_connection_the_server_closed_while_idle_leaves_the_pool():
    async def respond(n: int, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        return n > 1  # the first connection closes right after its response

    pool = ConnectionPool()
    async with RawServer(respond) as server:
        await fetch(server.url, pool)
        key = Origin(server.url).key
        for _ in range(50):
            if not pool._idle.get(key):  # not take(): that would remove it while still open
                break
            await asyncio.sleep(0.01)
        assert pool.take(key) is None
        await fetch(server.url, pool)
        assert server.connections == 2
    pool.close()


@pytest.mark.gen_test(timeout=10)
async def test_idle_connections_are_closed_after_a_while():
    pool = ConnectionPool(idle_seconds=0.05)
    async with RawServer(reply(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")) as server:
        await fetch(server.url, pool)
        await asyncio.wait_for(server.closed_by_client.wait(), 5)
        assert pool.take(Origin(server.url).key) is None


@pytest.mark.gen_test(timeout=10)
async def test_silence_while_connecting_or_waiting_is_the_idle_timeout():
    async with RawServer(reply()) as server:  # reads the request, never answers
        with pytest.raises(TransportError, match=r"no data for 0.1 s \(idle timeout\)"):
            await fetch(server.url, idle=0.1)


@pytest.mark.gen_test(timeout=10)
async def test_https_with_a_trusted_certificate(monkeypatch):
    async with RawServer(reply(OK_CHUNKED, chunked(b"data: secure\n\n")), tls=server_tls()) as server:
        with pytest.raises(TransportError, match="connection failed: SSLCertVerificationError"):
            await fetch(server.url)  # the system store does not trust a self-signed pair
        monkeypatch.setattr(http, "tls_context", client_tls)
        assert (await fetch(server.url))[1:] == (200, b"data: secure\n\n")


@pytest.mark.gen_test(timeout=10)
async def test_a_provider_keeps_one_connection_across_turns(fake):
    fake.script(Turn(text="one"), Turn(text="two"))
    setup = make_provider(fake)
    assert assemble(await collect(setup.provider)).text == "one"
    assert assemble(await collect(setup.provider)).text == "two"
    assert fake.requests[0].client_port == fake.requests[1].client_port
    setup.provider.close()


@pytest.mark.gen_test(timeout=10)
async def test_a_header_with_a_line_break_is_refused_before_sending(fake_openai):
    setup = make_provider(fake_openai, headers={"X-Team": "a\r\nX-Injected: 1"}, max_retries=3)
    with pytest.raises(ProviderError, match="header 'X-Team' contains a line break"):
        await collect(setup.provider)
    assert fake_openai.requests == [] and setup.sleep.delays == []


@pytest.mark.gen_test(timeout=10)
async def test_an_answer_before_the_whole_body_went_out_does_not_keep_the_connection():
    hold = asyncio.Event()

    async def early(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")  # the head only: the body stays unread
        writer.write(b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\n\r\n")
        await hold.wait()
        writer.close()

    server = await asyncio.start_server(early, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = ConnectionPool()
    loop = asyncio.get_running_loop()
    post = StreamingPost(
        f"http://127.0.0.1:{port}/v1", {}, b"x" * (16 << 20), idle_timeout=5, deadline=loop.time() + 10, pool=pool
    )
    assert await post.start() == 413
    assert await post.read_body(100) == b""
    post.abort()
    assert pool.take(("http", "127.0.0.1", port, "")) is None
    hold.set()
    server.close()


@pytest.mark.parametrize("status", [b"204 No Content", b"304 Not Modified"])
@pytest.mark.gen_test(timeout=10)
async def test_a_204_or_304_answer_has_no_body_and_keeps_the_connection(status):
    pool = ConnectionPool()
    async with RawServer(reply(b"HTTP/1.1 %s\r\n\r\n" % status)) as server:  # no framing headers: none needed
        for _ in range(2):
            assert (await fetch(server.url, pool, idle=2))[1:] == (int(status[:3]), b"")
        assert server.connections == 1
    pool.close()


@pytest.mark.gen_test(timeout=10)
async def test_a_connection_paused_for_a_slow_reader_goes_back_to_the_pool_reading():
    data = b"x" * (http.PAUSE_READING_BYTES + 1)  # the read that brings the last byte also crosses the threshold
    pool = ConnectionPool()
    async with RawServer(reply(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(data), data)) as server:
        key = Origin(server.url).key
        loop = asyncio.get_running_loop()
        post = StreamingPost(server.url, {}, b"", idle_timeout=5, deadline=loop.time() + 10, pool=pool)
        assert await post.start() == 200
        for _ in range(500):  # read nothing until the whole body is in and the connection pooled
            if (conn := pool.take(key)) is not None:
                break
            await asyncio.sleep(0.01)
        assert conn is not None and conn.transport.is_reading()
        pool.give_back(conn)
        assert await post.read_body(1 << 30) == data
        post.abort()
        assert (await fetch(server.url, pool, idle=1))[1:] == (200, data)  # was: the idle timeout
        assert server.connections == 1
    pool.close()


@pytest.mark.gen_test(timeout=10)
async def test_the_resend_on_a_stale_connection_gets_no_fresh_idle_window():
    async def respond(n: int, writer: asyncio.StreamWriter) -> bool:
        if n == 1:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            return True
        if n == 2:
            await asyncio.sleep(0.8)
            return False  # silent, then hangs up without a word: taken for a stale connection
        return True  # the resend is never answered

    pool = ConnectionPool()
    async with RawServer(respond) as server:
        await fetch(server.url, pool)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(TransportError, match="idle timeout"):
            await fetch(server.url, pool, idle=1.0)
        assert loop.time() - started < 1.5  # was 0.8 + a fresh 1.0
        assert [r[0] for r in server.requests] == [1, 1, 2]  # it was sent again all the same
    pool.close()


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"base_url": "http://127.0.0.1:99999/v1"}, "is not valid: Port out of range"),
        ({"base_url": "http://api..example.com/v1"}, "is not valid: .*label empty or too long"),
        ({"headers": {"X-Title": "Roo \u2013 daemon"}}, "header 'X-Title' contains '\u2013'"),
    ],
)
@pytest.mark.gen_test(timeout=10)
async def test_a_bad_url_or_header_value_fails_the_request_with_a_provider_error(fake_openai, overrides, message):
    # These escaped the retry loop as ValueError, UnicodeError or UnicodeEncodeError.
    setup = make_provider(fake_openai, max_retries=3, **overrides)
    with pytest.raises(ProviderError, match=message):
        await collect(setup.provider)
    assert fake_openai.requests == [] and setup.sleep.delays == []


@pytest.mark.gen_test(timeout=10)
async def test_an_endless_trailer_line_is_refused_not_buffered():
    async with RawServer(reply(OK_CHUNKED + b"0\r\nX-Trailer: " + b"a" * 70000)) as server:  # then silence
        with pytest.raises(TransportError, match="trailer"):  # was buffered until the idle timeout
            await fetch(server.url, idle=3)


@pytest.mark.gen_test(timeout=10)
async def test_a_server_that_hangs_up_on_connect_fails_the_attempt_at_once():
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()  # as docker-proxy does when the container behind it is down

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TransportError, match="the server closed the connection before the response"):
        await fetch(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1", idle=3)
    assert loop.time() - started < 1  # was the whole idle timeout
    server.close()


DONE_CHUNK = chunked(b"data: [DONE]\n\n")[: -len(b"0\r\n\r\n")]  # the last event, not the body's end


async def _read_to_marker(post: StreamingPost, marker: bytes) -> bytes:
    got = b""
    while marker not in got:
        piece = await post.next_chunk()
        assert piece is not None
        got += piece
    return got


@pytest.mark.gen_test(timeout=10)
async def test_a_released_stream_keeps_its_connection_when_the_body_ends_later():
    """Providers stop reading at their end marker; the chunked terminator
    often comes in a later packet. Released, the connection waits for it
    and goes back to the pool instead of being closed."""

    async def respond(n: int, writer: asyncio.StreamWriter) -> bool:
        writer.write(OK_CHUNKED + DONE_CHUNK)
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"0\r\n\r\n")
        return True

    pool = ConnectionPool()
    async with RawServer(respond) as server:
        loop = asyncio.get_running_loop()
        for _ in range(2):
            post = StreamingPost(server.url, {}, b"{}", idle_timeout=5, deadline=loop.time() + 10, pool=pool)
            assert await post.start() == 200
            assert await _read_to_marker(post, b"[DONE]") == b"data: [DONE]\n\n"
            post.release()
            post.abort()  # what the caller's cleanup does: no effect once released
            await asyncio.sleep(0.2)
        assert server.connections == 1
    pool.close()


@pytest.mark.gen_test(timeout=10)
async def test_a_released_stream_whose_body_never_ends_is_closed_after_the_linger():
    pool = ConnectionPool()
    async with RawServer(reply(OK_CHUNKED + DONE_CHUNK)) as server:  # then silence
        loop = asyncio.get_running_loop()
        post = StreamingPost(server.url, {}, b"{}", idle_timeout=5, deadline=loop.time() + 10, pool=pool)
        assert await post.start() == 200
        await _read_to_marker(post, b"[DONE]")
        post.release(linger=0.05)
        await asyncio.wait_for(server.closed_by_client.wait(), 5)
        assert pool.take(Origin(server.url).key) is None
    pool.close()


@pytest.mark.gen_test(timeout=10)
async def test_transfer_encoding_with_content_length_is_read_chunked_and_not_reused():
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
    pool = ConnectionPool()
    async with RawServer(reply(head, chunked(b"data: a\n\n"))) as server:
        for _ in range(2):
            assert (await fetch(server.url, pool))[2] == b"data: a\n\n"
        assert server.connections == 2
    pool.close()


@pytest.mark.gen_test(timeout=10)
async def test_a_reset_cuts_a_body_that_ends_with_the_connection():
    async def reset(n: int, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.0 200 OK\r\n\r\ndata: a\n\n")
        await writer.drain()
        await asyncio.sleep(0.05)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
        writer.transport.abort()
        return False

    async with RawServer(reset) as server:
        with pytest.raises(TransportError, match="connection lost mid-body"):
            await fetch(server.url)
