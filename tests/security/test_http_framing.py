"""Requests Tornado refuses before any handler runs, against the real daemon
(a subprocess: ``roo-daemon serve``'s own HTTP server and limits).

Tornado answered these with a bare ``400 Bad Request`` and no body, and
dropped a connection whose headers were too large without a word. Now each
is a problem+json (400, or 431 for oversized headers) and the connection is
closed only after the client can read it."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Iterator

import pytest

from tests.contract import _validate, spec
from tests.security.conftest import open_raw, parse_head, read_all
from tests.server.conftest import daemon_config
from tests.server.daemon_process import DaemonProcess

MAX_HEADER = 4096
GENEROUS = 15.0


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    root = tmp_path_factory.mktemp("framing")
    d = DaemonProcess(root, daemon_config(server={"max_header_bytes": MAX_HEADER}), root / "data")
    d.start()
    yield d
    d.send_signal(signal.SIGTERM)
    assert d.wait_exit() == 0
    # Refused, not failed: no error logged, no traceback.
    assert not d.find_log(lambda r: r.get("level") in ("error", "critical") or "exc" in r), d.records


async def exchange(daemon: DaemonProcess, data: bytes, *, keep_sending: int = 0) -> tuple[int, dict, dict]:
    """Send ``data`` (then ``keep_sending`` more bytes, as a client that
    does not stop to listen would) and read until the daemon closes."""
    reader, writer = await open_raw(daemon.base_url)
    writer.write(data)

    async def pour() -> None:
        try:
            for _ in range(keep_sending // 65536):
                writer.write(b"z" * 65536)
                await writer.drain()
        except (ConnectionError, OSError):
            pass  # the daemon closed its side: expected once it has answered

    pouring = asyncio.ensure_future(pour())
    raw = await read_all(reader, GENEROUS)
    await pouring
    writer.close()
    assert raw, "the connection was dropped without an answer"
    status, headers, body = parse_head(raw)
    return status, headers, json.loads(body)


def assert_problem(status: int, headers: dict, doc: dict, expected: int, slug: str) -> None:
    assert status == expected, (status, doc)
    assert headers["content-type"] == "application/problem+json"
    assert headers["connection"] == "close" and headers.get("x-request-id")
    assert headers["x-content-type-options"] == "nosniff"
    _validate(spec(), "/components/schemas/Problem", doc, f"{expected} answer")
    assert doc["status"] == expected and doc["type"] == f"urn:roo-daemon:problem:{slug}", doc


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nNo colon on this line\r\n\r\n",
        b"GET /healthz HTTP/9.9\r\nHost: 127.0.0.1\r\n\r\n",
        b"POST /api/v1/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: ten\r\n\r\n",
    ],
    ids=["request-line", "header-line", "version", "content-length"],
)
@pytest.mark.gen_test(timeout=30)
async def test_a_malformed_request_is_a_400_problem(daemon: DaemonProcess, request_bytes: bytes) -> None:
    status, headers, doc = await exchange(daemon, request_bytes)
    assert_problem(status, headers, doc, 400, "malformed-request")
    assert doc["detail"].startswith("the request is not valid HTTP/1.1: "), doc


@pytest.mark.gen_test(timeout=30)
async def test_the_400_does_not_echo_the_request(daemon: DaemonProcess) -> None:
    """Tornado's reason quotes the bad value; it may be a key."""
    bad = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer roo_sekrit-value\x01\r\n\r\n"
    status, headers, doc = await exchange(daemon, bad)
    assert_problem(status, headers, doc, 400, "malformed-request")
    assert "sekrit" not in json.dumps(doc) and "Bearer" not in json.dumps(doc), doc


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: " + b"y" * (2 * MAX_HEADER) + b"\r\n\r\n",
        b"GET /" + b"a" * (2 * MAX_HEADER) + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    ],
    ids=["header", "request-line"],
)
@pytest.mark.gen_test(timeout=30)
async def test_oversized_headers_are_a_431_problem(daemon: DaemonProcess, request_bytes: bytes) -> None:
    status, headers, doc = await exchange(daemon, request_bytes)
    assert_problem(status, headers, doc, 431, "request-header-fields-too-large")
    assert str(MAX_HEADER) in doc["detail"]


@pytest.mark.gen_test(timeout=30)
async def test_the_431_reaches_a_client_that_keeps_sending(daemon: DaemonProcess) -> None:
    """The daemon closes only after draining: an unread byte at close would
    be a reset, and the client would lose the answer."""
    head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: "
    status, headers, doc = await exchange(daemon, head, keep_sending=512 * 1024)
    assert_problem(status, headers, doc, 431, "request-header-fields-too-large")


@pytest.mark.gen_test(timeout=30)
async def test_the_daemon_serves_on_after_them(daemon: DaemonProcess) -> None:
    for _ in range(3):
        await exchange(daemon, b"GARBAGE\r\n\r\n")
        await exchange(daemon, b"GET /" + b"a" * (2 * MAX_HEADER) + b" HTTP/1.1\r\n\r\n")
    reader, writer = await open_raw(daemon.base_url)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    status, _, body = parse_head(await read_all(reader, GENEROUS))
    writer.close()
    assert status == 200 and json.loads(body) == {"status": "ok"}
