"""WebSocket caps: connections per principal (429 at the handshake, 1008
after an ``auth`` op), incoming frames per connection (an error frame, the
frame dropped, the connection kept), subscriptions per connection."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from tests.conftest import Api, WsClient
from tests.security.conftest import TOKENS, bearer, secure_config, subscribe_ok

CONN_CAP = 2
SUB_CAP = 2


@pytest.fixture
def frames() -> dict[str, float]:
    return {"rate": 100, "burst": 100}


@pytest.fixture
def config(tmp_path: Path, frames: dict[str, float]) -> dict[str, Any]:
    return secure_config(
        tmp_path,
        limits={"ws_connections_per_principal": CONN_CAP, "ws_frames": frames},
        websocket={"max_subscriptions": SUB_CAP},
    )


async def connect(api: Api, name: str | None) -> WsClient:
    return await WsClient.connect(api.base_url, bearer(name) if name else {})


@pytest.mark.gen_test(timeout=15)
async def test_connections_per_principal_are_capped_at_the_handshake(api: Api) -> None:
    results = await asyncio.gather(*(connect(api, "alice") for _ in range(CONN_CAP + 3)), return_exceptions=True)
    opened = [r for r in results if isinstance(r, WsClient)]
    refused = [r for r in results if not isinstance(r, WsClient)]
    assert len(opened) == CONN_CAP, results
    for err in refused:
        assert isinstance(err, HTTPClientError) and err.code == 429, err
        assert int(err.response.headers["Retry-After"]) >= 1
        assert err.response.headers["Content-Type"].startswith("application/problem+json")
    # The open ones keep working; other principals have their own allowance.
    for ws in opened:
        await ws.send({"op": "ping", "id": "p"})
        assert (await ws.recv())["event"] == "pong"
    bobs = [await connect(api, "bob") for _ in range(CONN_CAP)]
    for ws in (*opened, *bobs):
        ws.close()


@pytest.mark.gen_test(timeout=15)
async def test_over_the_cap_by_auth_op_closes_with_1008(api: Api) -> None:
    held = [await connect(api, "alice") for _ in range(CONN_CAP)]
    browser = await connect(api, None)  # browsers authenticate in the first frame
    await browser.send({"op": "auth", "token": TOKENS["alice"]})
    err = await browser.recv()
    assert err["event"] == "error" and err["data"]["code"] == "too-many-requests", err
    assert await browser.recv() is None and browser.conn.close_code == 1008
    await held[0].send({"op": "ping", "id": "still"})
    assert (await held[0].recv())["event"] == "pong"
    for ws in held:
        ws.close()


@pytest.mark.parametrize("frames", [{"rate": 0.001, "burst": 5}])
@pytest.mark.gen_test(timeout=15)
async def test_frames_over_the_rate_are_dropped_and_the_connection_stays(
    api: Api, as_: Any, frames: dict[str, float]
) -> None:
    ws = await connect(api, "alice")
    await subscribe_ok(ws, "all")  # frame 1
    for i in range(4):  # frames 2..5
        await ws.send({"op": "ping", "id": f"p{i}"})
        assert await ws.recv() == {"event": "pong", "id": f"p{i}", "data": {}}
    await ws.send({"op": "ping", "id": "over"})
    err = await ws.recv()
    assert err["event"] == "error" and err["data"]["code"] == "rate-limited", err
    assert err["id"] is None  # the frame was dropped unread
    # Still open, still subscribed: events keep coming.
    session = await as_("alice").session(name="after the flood")
    frame = await ws.recv()
    assert frame["event"] == "session.created" and frame["session_id"] == session["id"]
    text = (await api.get("/metrics")).body.decode()
    assert 'rate_limited_total{class="ws_frames"} 1.0' in text


@pytest.mark.gen_test(timeout=15)
async def test_subscriptions_per_connection_are_capped(api: Api) -> None:
    ws = await connect(api, "alice")
    await subscribe_ok(ws, "s1")
    await subscribe_ok(ws, "s2", after=0)
    await ws.send({"op": "subscribe", "id": "s3"})
    err = await ws.recv()
    assert err["event"] == "error" and err["id"] == "s3" and err["data"]["code"] == "too-many-requests", err
    await ws.send({"op": "unsubscribe", "id": "s1"})
    assert (await ws.recv())["event"] == "unsubscribed"
    await subscribe_ok(ws, "s3")
