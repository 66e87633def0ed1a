"""CORS: off by default; with ``server.cors_origins`` an exact allowlist for
REST (headers, preflights) and the WebSocket ``Origin``; and cross-site
writes from any other origin refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from tests.conftest import Api, WsClient
from tests.security.conftest import TOKENS, bearer, secure_config

SESSIONS = "/api/v1/sessions"
APP = "https://app.example.com"
EVIL = "https://evil.example.com"
UPGRADE = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version": "13",
}
PREFLIGHT = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"}


@pytest.fixture
def origins() -> list[str]:
    return []


@pytest.fixture
def config(tmp_path: Path, origins: list[str]) -> dict[str, Any]:
    return secure_config(tmp_path, server={"cors_origins": origins})


def no_cors(r: Any) -> None:
    for name in r.headers:
        assert not name.lower().startswith("access-control-"), (name, r.headers[name])


@pytest.mark.gen_test(timeout=15)
async def test_cors_is_off_by_default(as_: Any, origins: list[str]) -> None:
    alice = as_("alice")
    r = await alice.get(SESSIONS, headers={"Origin": APP})
    assert r.status == 200
    no_cors(r)
    r = await alice.request("OPTIONS", SESSIONS, headers={"Origin": APP, **PREFLIGHT})
    assert r.status == 405 and r.json["status"] == 405
    assert "OPTIONS" not in r.headers["Allow"]
    no_cors(r)


@pytest.mark.parametrize("origins", [[APP]])
@pytest.mark.gen_test(timeout=15)
async def test_an_allowed_origin_gets_cors_headers(as_: Any, api: Api, origins: list[str]) -> None:
    alice = as_("alice")
    r = await alice.get(SESSIONS, headers={"Origin": APP})
    assert r.status == 200
    assert r.headers["Access-Control-Allow-Origin"] == APP
    assert "Origin" in r.headers["Vary"]
    exposed = r.headers["Access-Control-Expose-Headers"]
    for name in ("X-Request-ID", "Retry-After", "RateLimit-Remaining", "Location"):
        assert name in exposed
    # Errors too, so the page can read the problem.
    r = await api.get(SESSIONS, headers={"Origin": APP})
    assert r.status == 401 and r.headers["Access-Control-Allow-Origin"] == APP
    # A cross-origin write from the allowed origin works.
    r = await alice.post(SESSIONS, {}, headers={"Origin": APP})
    assert r.status == 201 and r.headers["Access-Control-Allow-Origin"] == APP


@pytest.mark.parametrize("origins", [[APP]])
@pytest.mark.gen_test(timeout=15)
async def test_a_preflight_from_an_allowed_origin_is_204(api: Api, origins: list[str]) -> None:
    r = await api.request("OPTIONS", SESSIONS, headers={"Origin": APP, **PREFLIGHT}, check=False)
    assert r.status == 204 and r.body == b""
    assert r.headers["Access-Control-Allow-Origin"] == APP
    methods = {m.strip() for m in r.headers["Access-Control-Allow-Methods"].split(",")}
    assert {"GET", "POST"} <= methods
    allowed = r.headers["Access-Control-Allow-Headers"].lower()
    for name in ("authorization", "content-type", "idempotency-key"):
        assert name in allowed
    assert int(r.headers["Access-Control-Max-Age"]) > 0
    r = await api.request(
        "OPTIONS", f"{SESSIONS}/ses_{'0' * 32}/tasks/tsk_{'0' * 32}", headers={"Origin": APP, **PREFLIGHT}, check=False
    )
    assert r.status == 204 and "DELETE" in r.headers["Access-Control-Allow-Methods"]


@pytest.mark.parametrize("origins", [[APP]])
@pytest.mark.gen_test(timeout=15)
async def test_another_origin_gets_nothing(as_: Any, origins: list[str]) -> None:
    alice = as_("alice")
    r = await alice.get(SESSIONS, headers={"Origin": EVIL})
    assert r.status == 200  # a read answers, but a browser will not show it to the page
    no_cors(r)
    r = await alice.request("OPTIONS", SESSIONS, headers={"Origin": EVIL, **PREFLIGHT})
    assert r.status == 405
    no_cors(r)
    # Near misses are other origins: the match is exact.
    for near in (APP + "/", APP + ":443", "http://app.example.com", "https://app.example.com.evil.example"):
        no_cors(await alice.get(SESSIONS, headers={"Origin": near}))


@pytest.mark.parametrize("origins", [[], [APP]])
@pytest.mark.gen_test(timeout=15)
async def test_cross_site_writes_are_refused(as_: Any, api: Api, origins: list[str]) -> None:
    """A page elsewhere can still make a browser *send* a POST (a form needs
    no preflight): anything unsafe with a foreign Origin is 403, and nothing
    is created. Same-origin pages (like /docs) and clients without Origin pass."""
    alice = as_("alice")
    for origin in (EVIL, "null"):
        r = await alice.post(SESSIONS, {}, headers={"Origin": origin})
        assert r.status == 403, r.body
        no_cors(r)
    assert (await alice.get(SESSIONS)).json["items"] == []
    host = api.base_url.split("://", 1)[1]
    assert (await alice.post(SESSIONS, {}, headers={"Origin": f"http://{host}"})).status == 201
    assert (await alice.post(SESSIONS, {})).status == 201


@pytest.mark.parametrize("origins", [[], [APP]])
@pytest.mark.gen_test(timeout=15)
async def test_websocket_origin_is_checked_against_the_same_list(api: Api, origins: list[str]) -> None:
    r = await api.get("/ws", headers={**UPGRADE, **bearer("alice"), "Origin": EVIL})
    assert r.status == 403, r.body
    assert r.headers["Content-Type"].startswith("application/problem+json") and r.json["status"] == 403
    with pytest.raises(HTTPClientError) as err:
        await WsClient.connect(api.base_url, {**bearer("alice"), "Origin": EVIL})
    assert err.value.code == 403
    # Browsers send Origin and authenticate with the auth op; a foreign page never gets that far.
    with pytest.raises(HTTPClientError):
        await WsClient.connect(api.base_url, {"Origin": EVIL})
    # Same origin is always fine; the allowlisted one when configured.
    host = api.base_url.split("://", 1)[1]
    allowed = [f"http://{host}", *origins]
    for origin in allowed:
        ws = await WsClient.connect(api.base_url, {"Origin": origin})
        await ws.send({"op": "auth", "token": TOKENS["alice"]})
        assert (await ws.recv())["event"] == "authenticated"
        ws.close()
