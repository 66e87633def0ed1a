"""/ws with API keys: the handshake header, the ``auth`` op for browsers,
its timeout, and isolation between principals."""

from __future__ import annotations

from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from roo_daemon.auth import Principal, hash_key
from tests.conftest import Api, WsClient, make_config
from tests.ws.helpers import final, is_event, ping, stored_events, subscribe

TOKENS = {"alice": "alice-secret-token", "bob": "bob-secret-token", "root": "root-secret-token"}
UPGRADE = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version": "13",
}


@pytest.fixture
def auth_timeout() -> float:
    """Generous, so no test races it; the timeout tests parametrize it down."""
    return 10.0


@pytest.fixture
def config(tmp_path, auth_timeout) -> dict[str, Any]:
    keys = [
        {"name": "alice", "sha256": hash_key(TOKENS["alice"]), "scopes": ["read", "write"]},
        {"name": "bob", "sha256": hash_key(TOKENS["bob"]), "scopes": ["read", "write"]},
        {"name": "root", "sha256": hash_key(TOKENS["root"]), "scopes": ["admin"]},
    ]
    return make_config(tmp_path, auth={"keys": keys}, websocket={"auth_timeout_seconds": auth_timeout})


def bearer(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[name]}"}


@pytest.fixture
def alice(http_server, base_url) -> Api:
    return Api(base_url, token=TOKENS["alice"])


@pytest.fixture
def bob(http_server, base_url) -> Api:
    return Api(base_url, token=TOKENS["bob"])


@pytest.mark.gen_test(timeout=20)
async def test_without_a_header_the_first_frame_must_be_auth(ws_connect):
    """Ops before ``auth`` get an ``unauthenticated`` error; a good token → ``authenticated``."""
    ws = await ws_connect()
    await ws.send({"op": "ping", "id": "early"})
    err = await ws.recv()
    assert err["event"] == "error" and err["id"] == "early" and err["data"]["code"] == "unauthenticated"
    await ws.send({"op": "subscribe", "id": "s"})
    err = await ws.recv()
    assert err["event"] == "error" and err["id"] == "s" and err["data"]["code"] == "unauthenticated"

    await ws.send({"op": "auth", "token": TOKENS["alice"]})
    assert await ws.recv() == {"event": "authenticated", "id": None, "data": {}}
    assert await ping(ws) == [{"event": "pong", "id": "p", "data": {}}]
    await subscribe(ws, "s")  # the id was not taken by the refused attempt


@pytest.mark.gen_test(timeout=20)
async def test_bad_token_is_an_error_then_close_1008(ws_connect):
    """A wrong token in ``auth``: an ``error`` frame, then the server closes with 1008."""
    ws = await ws_connect()
    await ws.send({"op": "auth", "token": "not-a-key"})
    err = await ws.recv()
    assert err["event"] == "error" and err["data"]["code"] == "unauthorized"
    assert await ws.recv() is None
    assert ws.conn.close_code == 1008


@pytest.mark.gen_test(timeout=20)
@pytest.mark.parametrize("auth_timeout", [0.2])
async def test_no_auth_in_time_closes_with_1008(ws_connect, ctx, auth_timeout):
    """Without ``auth`` within ``auth_timeout_seconds`` the connection is closed with 1008."""
    assert ctx.config["websocket"]["auth_timeout_seconds"] == auth_timeout
    silent = await ws_connect()
    assert await silent.recv() is None  # closed by the server, nothing else sent
    assert silent.conn.close_code == 1008
    assert "auth" in (silent.conn.close_reason or "")


@pytest.mark.gen_test(timeout=20)
@pytest.mark.parametrize("auth_timeout", [0.2])
async def test_good_header_authenticates_the_handshake(ws_connect, auth_timeout):
    """With ``Authorization`` on the upgrade no ``auth`` op is needed, and the auth timeout does not apply."""
    ws = await ws_connect(bearer("alice"))
    assert await ping(ws) == [{"event": "pong", "id": "p", "data": {}}]
    silent = await ws_connect()
    assert await silent.recv() is None and silent.conn.close_code == 1008  # the timeout has passed
    assert await ping(ws, "later") == [{"event": "pong", "id": "later", "data": {}}]


@pytest.mark.gen_test(timeout=20)
async def test_bad_header_at_the_handshake_is_401(api, base_url):
    """A bad ``Authorization`` on the upgrade request: HTTP 401 problem, no WebSocket."""
    for value in ("Bearer wrong-token", "Basic YWxpY2U6c2VjcmV0", "Bearer "):
        r = await api.get("/ws", headers={**UPGRADE, "Authorization": value})
        assert r.status == 401, value
        assert r.headers["Content-Type"].startswith("application/problem+json")
        assert r.json["type"] == "urn:roo-daemon:problem:unauthorized"
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
    with pytest.raises(HTTPClientError) as info:
        await WsClient.connect(base_url, {"Authorization": "Bearer wrong-token"})
    assert info.value.code == 401


@pytest.mark.gen_test(timeout=20)
async def test_plain_get_on_ws_is_426(api):
    """A GET /ws without ``Upgrade: websocket``: 426 problem naming the protocol."""
    for headers in ({}, bearer("alice"), {"Upgrade": "h2c"}):
        r = await api.get("/ws", headers=headers)
        assert r.status == 426
        assert r.headers["Upgrade"] == "websocket"
        assert r.json["type"] == "urn:roo-daemon:problem:upgrade-required"


@pytest.mark.gen_test(timeout=20)
async def test_principals_never_see_each_others_events(alice, bob, ws_connect):
    """Bob, subscribed without filters, live or replaying from 0, gets only his
    own events; naming Alice's session is an error, and he cannot answer her asks."""
    bob_ws = await ws_connect(bearer("bob"))
    await subscribe(bob_ws, "everything")
    alice_ws = await ws_connect(bearer("alice"))
    await subscribe(alice_ws, "everything")

    hers = await alice.session(provider="followup")
    her_task = await alice.task(hers["id"])
    frames = await alice_ws.recv_until(lambda f: is_event(f) and f["event"] == "ask")
    her_ask = frames[-1]["data"]

    mine = await bob.session(provider="instant")
    my_task = await bob.task(mine["id"])
    seen = await bob_ws.recv_until(final(my_task["id"]))
    assert {f["session_id"] for f in seen} == {mine["id"]}
    assert seen[0]["event"] == "session.created"
    assert seen[1:] == await stored_events(bob, mine["id"], my_task["id"])

    # Replay from the very start: still only his.
    replay = await ws_connect(bearer("bob"))
    await subscribe(replay, "all", after=0)
    replayed = await replay.recv_until(final(my_task["id"]))
    assert {f["session_id"] for f in replayed} == {mine["id"]}
    assert [f["seq"] for f in replayed] == [f["seq"] for f in seen]
    # A task filter naming her task yields nothing either.
    await subscribe(replay, "her-task", task_id=her_task["id"], after=0)
    assert await ping(replay) == [{"event": "pong", "id": "p", "data": {}}]

    await bob_ws.send({"op": "subscribe", "id": "hers", "session_id": hers["id"]})
    err = await bob_ws.recv()
    assert err["event"] == "error" and err["id"] == "hers" and err["data"]["code"] == "not-found"
    await bob_ws.send(
        {
            "op": "respond",
            "id": "steal",
            "session_id": hers["id"],
            "task_id": her_task["id"],
            "ask_id": her_ask["id"],
            "approve": True,
            "text": "Go",
        }
    )
    err = await bob_ws.recv()
    assert err["event"] == "error" and err["id"] == "steal" and err["data"]["code"] == "not-found"
    r = await alice.get(f"/api/v1/sessions/{hers['id']}/tasks/{her_task['id']}")
    assert r.json["status"] == "waiting" and r.json["pending_ask"]["id"] == her_ask["id"]

    # Her next events reach her, and still not him.
    await alice_ws.send(
        {
            "op": "respond",
            "id": "mine",
            "session_id": hers["id"],
            "task_id": her_task["id"],
            "ask_id": her_ask["id"],
            "approve": True,
            "text": "Python",
        }
    )
    await alice_ws.recv_until(final(her_task["id"]))
    assert await ping(bob_ws, "quiet") == [{"event": "pong", "id": "quiet", "data": {}}]


@pytest.mark.gen_test(timeout=20)
async def test_admin_sees_every_principals_events(alice, bob, ws_connect):
    """A key with the ``admin`` scope gets everyone's events without filters."""
    root = await ws_connect()
    await root.send({"op": "auth", "token": TOKENS["root"]})
    assert (await root.recv())["event"] == "authenticated"
    await subscribe(root, "all")
    a = await alice.session(provider="instant")
    b = await bob.session(provider="instant")
    ta = await alice.task(a["id"])
    await root.recv_until(final(ta["id"]))
    tb = await bob.task(b["id"])
    frames = await root.recv_until(final(tb["id"]))
    assert {f["session_id"] for f in frames} == {b["id"]}
    await subscribe(root, "hers", session_id=a["id"])  # may name anyone's session


@pytest.mark.gen_test(timeout=20)
async def test_new_scopes_on_an_open_connection_decide_which_events_it_gets(alice, bob, ctx, ws_connect):
    """A SIGHUP reload gives an open connection its key's new scopes
    (``Daemon._recheck_websockets`` sets ``principal``): an admin key made
    an ordinary one stops getting other principals' events at once."""
    root = await ws_connect(bearer("root"))
    await subscribe(root, "all")
    (handler,) = ctx.websockets
    a = await alice.session()
    assert (await root.recv())["session_id"] == a["id"]
    handler.principal = Principal("root", frozenset({"read"}))  # as a reload that took admin away
    await alice.session()
    assert await ping(root, "quiet") == [{"event": "pong", "id": "quiet", "data": {}}]
