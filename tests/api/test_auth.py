"""Bearer-key authentication, scopes and per-principal visibility."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Api, make_config

SESSIONS = "/api/v1/sessions"
TOKENS = {
    "alice": "alice-secret-token",
    "bob": "bob-secret-token",
    "reader": "reader-secret-token",
    "root": "root-secret-token",
}
SCOPES = {"alice": ["read", "write"], "bob": ["read", "write"], "reader": ["read"], "root": ["admin"]}


def sha256hex(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@pytest.fixture
def config(tmp_path: Path) -> dict[str, Any]:
    keys = [{"name": name, "sha256": sha256hex(TOKENS[name]), "scopes": SCOPES[name]} for name in TOKENS]
    return make_config(tmp_path, auth={"keys": keys})


@pytest.fixture
def as_(api: Api) -> Any:
    """``as_("alice")``: a spec-checking client authenticated as that key."""
    return lambda name: Api(api.base_url, TOKENS[name])


def assert_401(r: Any) -> None:
    assert r.status == 401, r.body
    assert r.json["status"] == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.gen_test(timeout=10)
async def test_missing_key_is_401_with_challenge(api: Api) -> None:
    """No Authorization header: 401 problem with a Bearer challenge, on reads and writes."""
    assert_401(await api.get(SESSIONS))
    assert_401(await api.post(SESSIONS, {}))
    assert_401(await api.get(f"{SESSIONS}/ses_{'0' * 32}"))
    assert_401(await api.delete(f"{SESSIONS}/ses_{'0' * 32}"))


@pytest.mark.gen_test(timeout=10)
async def test_wrong_key_is_401(api: Api) -> None:
    """A key nobody configured, a wrong scheme or an empty token: 401, nothing created."""
    for header in (
        "Bearer not-a-configured-key",
        f"Basic {TOKENS['alice']}",
        "Bearer ",
        TOKENS["alice"],
        f"Bearer {TOKENS['alice']}x",
    ):
        assert_401(await api.post(SESSIONS, {}, headers={"Authorization": header}))
    r = await api.get(SESSIONS, headers={"Authorization": f"Bearer {TOKENS['root']}"})
    assert r.status == 200 and r.json["items"] == []


@pytest.mark.gen_test(timeout=10)
async def test_right_key_is_accepted(as_: Any) -> None:
    """A configured key authenticates; the scheme is case-insensitive."""
    alice = as_("alice")
    created = await alice.session(name="mine")
    r = await alice.get(SESSIONS, headers={"Authorization": f"bearer {TOKENS['alice']}"})
    assert r.status == 200 and [s["id"] for s in r.json["items"]] == [created["id"]]


@pytest.mark.gen_test(timeout=10)
async def test_read_only_key_cannot_write(as_: Any) -> None:
    """A read-scoped key may GET but POST/DELETE are 403 problems."""
    reader, alice = as_("reader"), as_("alice")
    assert (await reader.get(SESSIONS)).status == 200
    r = await reader.post(SESSIONS, {"name": "nope"})
    assert r.status == 403 and r.json["status"] == 403
    assert "write" in r.json["detail"]
    session = await alice.session()
    r = await reader.delete(f"{SESSIONS}/{session['id']}")
    assert r.status == 403
    assert (await alice.get(f"{SESSIONS}/{session['id']}")).status == 200


@pytest.mark.gen_test(timeout=10)
async def test_probes_and_spec_need_no_key(api: Api) -> None:
    """Health, readiness, metrics and the spec are open; the API is not."""
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.yaml", "/openapi.json"):
        r = await api.get(path)
        assert r.status == 200, (path, r.body)
    assert (await api.get(SESSIONS)).status == 401


@pytest.mark.gen_test(timeout=10)
async def test_sessions_of_others_are_invisible(as_: Any) -> None:
    """Bob cannot see, list or delete Alice's session: 404 (not 403), so
    ids leak nothing; Alice's session survives."""
    alice, bob = as_("alice"), as_("bob")
    mine = await alice.session(name="alice's")
    bobs = await bob.session(name="bob's")
    path = f"{SESSIONS}/{mine['id']}"
    r = await bob.get(path)
    assert r.status == 404 and r.json["status"] == 404
    r = await bob.delete(path)
    assert r.status == 404
    listed = await bob.get(SESSIONS)
    assert [s["id"] for s in listed.json["items"]] == [bobs["id"]]
    listed = await alice.get(SESSIONS)
    assert [s["id"] for s in listed.json["items"]] == [mine["id"]]
    assert (await alice.get(path)).json == mine
    # Nor can Bob reach Alice's session's tasks.
    r = await bob.post(f"{path}/tasks", {"prompt": "steal"})
    assert r.status == 404


@pytest.mark.gen_test(timeout=10)
async def test_admin_sees_everyone(as_: Any) -> None:
    """An admin key lists, reads and deletes every principal's sessions."""
    alice, bob, root = as_("alice"), as_("bob"), as_("root")
    a = await alice.session(name="a")
    b = await bob.session(name="b")
    listed = await root.get(SESSIONS)
    assert {s["id"] for s in listed.json["items"]} == {a["id"], b["id"]}
    assert (await root.get(f"{SESSIONS}/{a['id']}")).json == a
    assert (await root.delete(f"{SESSIONS}/{b['id']}")).status == 204
    assert (await bob.get(f"{SESSIONS}/{b['id']}")).status == 404
    assert (await bob.get(SESSIONS)).json["items"] == []
