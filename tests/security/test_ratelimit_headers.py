"""``RateLimit-*`` on every answer to a request counted against a bucket,
success or error, not only on 429: a client sees where it stands and can
slow down first. The limiter's clock is frozen, so every value is exact."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import struct
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError
from tornado.httpserver import HTTPServer
from tornado.httputil import HTTPHeaders
from tornado.netutil import bind_unix_socket

from roo_daemon.clientip import unix_peer
from tests.conftest import Api, WsClient
from tests.contract import check_response
from tests.security.conftest import FakeClock, secure_config

SESSIONS = "/api/v1/sessions"
MISSING = f"{SESSIONS}/ses_{'0' * 32}"
RATE_HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")


@pytest.fixture
def config(tmp_path: Path) -> dict[str, Any]:
    return secure_config(
        tmp_path,
        limits={
            "read": {"rate": 1, "burst": 5},
            "write": {"rate": 1, "burst": 3},
            "task_create": {"rate": 1, "burst": 2},
            "auth_failures_per_ip": {"rate": 1, "burst": 4},
        },
    )


@pytest.fixture
def clock(ctx: Any) -> FakeClock:
    """Installed before the first request, so every bucket starts on it."""
    ctx.limiter.clock = FakeClock()
    return ctx.limiter.clock


def rate(r: Any) -> tuple[int, int, int] | None:
    """``(limit, remaining, reset)``, or None when the answer has none of them."""
    values = [r.headers.get(name) for name in RATE_HEADERS]
    if values == [None, None, None]:
        return None
    assert None not in values, dict(zip(RATE_HEADERS, values, strict=True))
    return tuple(int(v) for v in values)  # type: ignore[return-value]


@pytest.mark.gen_test(timeout=15)
async def test_successes_carry_the_bucket_of_their_class(as_: Any, clock: FakeClock) -> None:
    alice = as_("alice")
    r = await alice.get(SESSIONS)
    assert r.status == 200 and rate(r) == (5, 4, 1)  # 1 s at 1/s to be full again
    r = await alice.get(SESSIONS)
    assert r.status == 200 and rate(r) == (5, 3, 2)
    r = await alice.post(SESSIONS, {"provider": "instant"})
    assert r.status == 201 and rate(r) == (3, 2, 1)  # the write bucket
    sid = r.json["id"]
    r = await alice.post(f"{SESSIONS}/{sid}/tasks", {"prompt": "go"})
    assert r.status == 202 and rate(r) == (2, 1, 1)  # task creation has its own
    r = await alice.delete(f"{SESSIONS}/{sid}")
    assert r.status == 204 and rate(r) == (3, 1, 2)
    # Time refills, and the headers follow: 3 + 1 token, minus this request.
    clock.advance(1.0)
    r = await alice.get(SESSIONS)
    assert rate(r) == (5, 3, 2)
    # Bob's buckets are his own.
    assert rate(await as_("bob").get(SESSIONS)) == (5, 4, 1)


@pytest.mark.gen_test(timeout=15)
async def test_errors_after_the_bucket_carry_it_too(as_: Any, ctx: Any, clock: FakeClock) -> None:
    alice = as_("alice")
    r = await alice.get(MISSING)
    assert r.status == 404 and rate(r) == (5, 4, 1)
    r = await alice.get(f"{SESSIONS}?limit=0")
    assert r.status == 422 and rate(r) == (5, 3, 2)
    r = await alice.post(SESSIONS, body=b"{", headers={"Content-Type": "application/json"})
    assert r.status == 400 and rate(r) == (3, 2, 1)
    r = await alice.post(SESSIONS, body=b"x", headers={"Content-Type": "text/plain"})
    assert r.status == 415 and rate(r) == (3, 1, 2)

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    ctx.sessions.list = broken
    r = await alice.get(SESSIONS)
    assert r.status == 500 and rate(r) == (5, 2, 3)
    # Then the 429 itself, as before: the same fields plus Retry-After.
    for remaining in (1, 0):
        assert rate(await alice.get(MISSING)) == (5, remaining, 5 - remaining)
    r = await alice.get(MISSING)
    assert r.status == 429 and rate(r) == (5, 0, 5) and r.headers["Retry-After"] == "1"


@pytest.mark.gen_test(timeout=15)
async def test_a_cap_refusal_carries_the_bucket_and_its_own_retry_after(as_: Any, ctx: Any, clock: FakeClock) -> None:
    ctx.sessions.update_limits(1)
    alice = as_("alice")
    await alice.session()
    r = await alice.post(SESSIONS, {})
    assert r.status == 429 and "sessions" in r.json["detail"]
    assert r.headers["Retry-After"] == "60" and rate(r) == (3, 1, 2)  # the bucket had room: the cap refused


@pytest.mark.gen_test(timeout=15)
async def test_wrong_keys_see_their_address_budget_and_others_see_no_bucket(
    api: Api, as_: Any, clock: FakeClock
) -> None:
    """A wrong key takes a token from its address's bucket, so its 401 says
    what is left; a request with no key, or refused for its scope before it
    was counted, went through no bucket and carries none."""
    r = await api.get(SESSIONS, headers={"Authorization": "Bearer roo_wrong"})
    assert r.status == 401 and r.headers["WWW-Authenticate"].startswith("Bearer") and rate(r) == (4, 3, 1)
    with pytest.raises(HTTPClientError) as err:  # the WebSocket handshake draws from the same bucket
        await WsClient.connect(api.base_url, {"Authorization": "Bearer roo_wrong"})
    assert err.value.code == 401 and rate(err.value.response) == (4, 2, 2)
    r = await api.get(SESSIONS)
    assert r.status == 401 and rate(r) is None
    r = await as_("reader").post(SESSIONS, {})
    assert r.status == 403 and rate(r) is None
    for path in ("/healthz", "/metrics", "/openapi.json"):  # no key needed, no bucket
        assert rate(await api.get(path)) is None


@pytest.mark.gen_test(timeout=15)
async def test_an_unlimited_class_sends_no_headers(as_: Any, ctx: Any, clock: FakeClock) -> None:
    ctx.limiter.update_limits({**ctx.config["limits"], "read": {"rate": 0, "burst": 1}})
    alice = as_("alice")
    assert rate(await alice.get(SESSIONS)) is None
    assert rate(await alice.get(MISSING)) is None
    assert rate(await alice.post(SESSIONS, {})) == (3, 2, 1)  # writes are still limited


@pytest.mark.gen_test(timeout=15)
async def test_unix_socket_clients_have_a_bucket_of_their_own(
    api: Api, app: Any, clock: FakeClock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Tornado calls every unix-socket peer 0.0.0.0; the limiter (and the
    access log) see the peer's user instead, so local users do not share one
    address bucket."""
    caplog.set_level(logging.INFO, "roo_daemon.access")
    server = HTTPServer(app)
    server.add_socket(bind_unix_socket(str(tmp_path / "roo.sock")))

    async def wrong_key_over_unix() -> tuple[int, int, int] | None:
        reader, writer = await asyncio.open_unix_connection(str(tmp_path / "roo.sock"))
        writer.write(f"GET {SESSIONS} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer roo_wrong\r\n\r\n".encode())
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        headers = HTTPHeaders.parse(head.split("\r\n", 1)[1])
        body = await reader.readexactly(int(headers["Content-Length"]))
        writer.close()
        check_response("GET", SESSIONS, int(head.split(" ")[1]), headers, body)
        assert head.startswith("HTTP/1.1 401 ")
        return rate(SimpleNamespace(headers=headers))

    r = await api.get(SESSIONS, headers={"Authorization": "Bearer roo_wrong"})
    assert rate(r) == (4, 3, 1)  # the TCP client's address bucket
    assert await wrong_key_over_unix() == (4, 3, 1)  # a fresh bucket: this user's
    assert await wrong_key_over_unix() == (4, 2, 2)
    server.stop()
    clients = [getattr(r, "client", None) for r in caplog.records if r.name == "roo_daemon.access"]
    assert clients == ["127.0.0.1", f"unix:uid={os.getuid()}", f"unix:uid={os.getuid()}"]


def test_a_unix_peer_is_named_by_its_user() -> None:
    left, right = socket.socketpair(socket.AF_UNIX)
    with left, right:
        assert unix_peer(left) == f"unix:uid={os.getuid()}"
    assert unix_peer(None) == "unix"


def test_a_unix_peer_uid_is_unsigned() -> None:
    """``uid_t`` is unsigned: a uid past 2**31 is named as the kernel numbers it, not as a negative."""

    class Peer:
        def getsockopt(self, level: int, option: int, size: int) -> bytes:
            assert (level, option) == (socket.SOL_SOCKET, socket.SO_PEERCRED)
            return struct.pack("iII", 4321, 3_000_000_000, 3_000_000_000)[:size]

    assert unix_peer(Peer()) == "unix:uid=3000000000"  # type: ignore[arg-type]
