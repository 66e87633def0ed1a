"""Who may do what: 401 with a Bearer challenge for a missing or wrong key,
403 for a missing scope (REST, WebSocket ops, a protected /metrics), and an
admin key that sees and acts on every principal's sessions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from tests.conftest import Api, WsClient
from tests.security.conftest import TOKENS, bearer, secure_config, subscribe_ok

SESSIONS = "/api/v1/sessions"


@pytest.fixture
def config(tmp_path: Path) -> dict[str, Any]:
    return secure_config(tmp_path, auth={"protect_metrics": True})


def assert_401(r: Any) -> None:
    assert r.status == 401, r.body
    assert r.headers["Content-Type"].startswith("application/problem+json")
    assert r.json["type"] == "urn:roo-daemon:problem:unauthorized"
    assert r.headers["WWW-Authenticate"].startswith("Bearer")


def assert_403(r: Any, scope: str) -> None:
    assert r.status == 403, r.body
    assert r.headers["Content-Type"].startswith("application/problem+json")
    assert r.json["type"] == "urn:roo-daemon:problem:forbidden"
    assert scope in r.json["detail"]
    assert "WWW-Authenticate" not in r.headers


@pytest.mark.gen_test(timeout=15)
async def test_missing_and_wrong_keys_are_401_with_a_bearer_challenge(api: Api, as_: Any) -> None:
    session = await as_("alice").session()
    paths = [
        ("GET", SESSIONS),
        ("POST", SESSIONS),
        ("GET", f"{SESSIONS}/{session['id']}"),
        ("DELETE", f"{SESSIONS}/{session['id']}"),
        ("POST", f"{SESSIONS}/{session['id']}/tasks"),
    ]
    for method, path in paths:
        for headers in ({}, {"Authorization": "Bearer roo_wrong"}, {"Authorization": f"Basic {TOKENS['alice']}"}):
            body = {"prompt": "x"} if method == "POST" else None
            assert_401(await api.request(method, path, body, headers=headers))
    assert (await as_("alice").get(f"{SESSIONS}/{session['id']}")).status == 200  # untouched


@pytest.mark.gen_test(timeout=15)
async def test_a_missing_scope_is_403(as_: Any) -> None:
    alice, reader, writer = as_("alice"), as_("reader"), as_("writer")
    session = await alice.session()
    # read-only: GETs yes, writes no.
    assert (await reader.get(SESSIONS)).status == 200
    assert_403(await reader.post(SESSIONS, {}), "write")
    # write-only: creates, but cannot read.
    created = await writer.session()
    assert_403(await writer.get(SESSIONS), "read")
    assert_403(await writer.get(f"{SESSIONS}/{created['id']}"), "read")
    # A missing scope is checked before ownership: 403 even for someone else's id.
    assert_403(await reader.delete(f"{SESSIONS}/{session['id']}"), "write")
    assert (await alice.get(f"{SESSIONS}/{session['id']}")).status == 200


@pytest.mark.gen_test(timeout=15)
async def test_websocket_handshake_with_a_wrong_key_is_401(api: Api) -> None:
    with pytest.raises(HTTPClientError) as err:
        await WsClient.connect(api.base_url, {"Authorization": "Bearer roo_wrong"})
    assert err.value.code == 401
    assert err.value.response.headers["WWW-Authenticate"].startswith("Bearer")
    assert err.value.response.headers["Content-Type"].startswith("application/problem+json")


@pytest.mark.gen_test(timeout=15)
async def test_websocket_ops_check_scopes(as_: Any, ws_as: Any) -> None:
    """``subscribe`` needs read, ``respond`` needs write; the refusal is an
    error frame with code ``forbidden`` and the connection stays open."""
    alice = as_("alice")
    session = await alice.session(provider="followup")
    task = await alice.task(session["id"])
    reader = await ws_as("reader")
    await reader.send(
        {"op": "respond", "id": "r", "session_id": session["id"], "task_id": task["id"], "ask_id": "a", "approve": True}
    )
    err = await reader.recv()
    assert err["event"] == "error" and err["id"] == "r" and err["data"]["code"] == "forbidden", err
    assert "write" in err["data"]["detail"]
    await subscribe_ok(reader, "s")  # still open, and reading is allowed

    writer = await ws_as("writer")
    await writer.send({"op": "subscribe", "id": "s"})
    err = await writer.recv()
    assert err["event"] == "error" and err["id"] == "s" and err["data"]["code"] == "forbidden", err
    assert "read" in err["data"]["detail"]


@pytest.mark.gen_test(timeout=15)
async def test_protected_metrics_need_an_admin_key(api: Api, as_: Any) -> None:
    assert_401(await api.get("/metrics"))
    assert_401(await api.get("/metrics", headers={"Authorization": "Bearer roo_wrong"}))
    for name in ("alice", "reader"):
        r = await as_(name).get("/metrics")
        assert r.status == 403 and "admin" in r.json["detail"], r.body
    r = await as_("root").get("/metrics")
    assert r.status == 200 and b"http_requests_total" in r.body
    # The probes stay open: an orchestrator has no key.
    assert (await api.get("/healthz")).status == 200
    assert (await api.get("/readyz")).status == 200


@pytest.mark.gen_test(timeout=20)
async def test_admin_sees_and_acts_on_everything(as_: Any, ws_as: Any) -> None:
    alice, root = as_("alice"), as_("root")
    session = await alice.session(provider="followup")
    task = await alice.task(session["id"])
    tpath = f"{SESSIONS}/{session['id']}/tasks/{task['id']}"
    admin_ws = await ws_as("root")
    await subscribe_ok(admin_ws, "all", after=0)
    await admin_ws.recv_until(lambda f: f.get("event") == "ask" and f.get("task_id") == task["id"])
    listed = await root.get(SESSIONS)
    assert session["id"] in {s["id"] for s in listed.json["items"]}
    got = await root.get(tpath)
    assert got.status == 200 and got.json["status"] == "waiting"
    assert (await root.get(f"{tpath}/events?after=0")).json["items"]
    r = await root.post(f"{tpath}/responses", {"ask_id": got.json["pending_ask"]["id"], "approve": True, "text": "Go"})
    assert r.status == 200, r.body
    await admin_ws.recv_until(lambda f: f.get("event") == "task.completed" and f.get("task_id") == task["id"])
    assert (await root.delete(f"{SESSIONS}/{session['id']}")).status == 204
    assert (await alice.get(f"{SESSIONS}/{session['id']}")).status == 404


@pytest.mark.gen_test(timeout=15)
async def test_a_key_works_only_as_a_bearer_token(api: Api) -> None:
    """Not as a query parameter, not in another header, not with extra text."""
    token = TOKENS["alice"]
    assert_401(await api.get(f"{SESSIONS}?access_token={token}", check=False))
    assert_401(await api.get(SESSIONS, headers={"X-API-Key": token}))
    assert_401(await api.get(SESSIONS, headers={"Authorization": f"Bearer {token} extra"}))
    assert (await api.get(SESSIONS, headers=bearer("alice"))).status == 200
