"""``Idempotency-Key`` is scoped: by principal (another tenant's key never
replays or refuses your request, nor tells you it was used), and, for tasks,
by session (one key in two sessions creates two tasks)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Api

SESSIONS = "/api/v1/sessions"
KEY = {"Idempotency-Key": "shared-key-0001"}


async def listed_ids(api: Api, path: str) -> list[str]:
    r = await api.get(f"{path}?limit=200")
    assert r.status == 200, r.body
    return [item["id"] for item in r.json["items"]]


@pytest.mark.parametrize("bobs_name", ["bob's own", "alice's"], ids=["other-body", "same-body"])
@pytest.mark.gen_test(timeout=20)
async def test_two_principals_with_one_key_create_two_sessions(as_: Any, bobs_name: str) -> None:
    """Alice and Bob send the same key: each gets his own 201, neither a
    replay of the other's session nor a 422 saying the key was used."""
    alice, bob = as_("alice"), as_("bob")
    a = await alice.post(SESSIONS, {"name": "alice's"}, headers=KEY)
    b = await bob.post(SESSIONS, {"name": bobs_name}, headers=KEY)
    assert (a.status, b.status) == (201, 201), b.body
    assert "Idempotent-Replayed" not in a.headers and "Idempotent-Replayed" not in b.headers
    assert a.json["id"] != b.json["id"]
    assert b.json["name"] == bobs_name
    assert await listed_ids(alice, SESSIONS) == [a.json["id"]]
    assert await listed_ids(bob, SESSIONS) == [b.json["id"]]
    # Each still replays his own.
    again = await bob.post(SESSIONS, {"name": bobs_name}, headers=KEY)
    assert again.status == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json["id"] == b.json["id"]


@pytest.mark.gen_test(timeout=20)
async def test_one_task_key_in_two_sessions_creates_two_tasks(as_: Any) -> None:
    """The task key's scope is the session: the same key and body in two
    sessions are two requests, two 202s, two tasks."""
    alice = as_("alice")
    sessions = [await alice.session(name=f"s{i}", provider="hang") for i in range(2)]
    created = []
    for s in sessions:
        r = await alice.post(f"{SESSIONS}/{s['id']}/tasks", {"prompt": "same"}, headers=KEY)
        assert r.status == 202, r.body
        assert "Idempotent-Replayed" not in r.headers
        assert r.json["session_id"] == s["id"]
        created.append(r.json["id"])
    assert created[0] != created[1]
    for s, task_id in zip(sessions, created, strict=True):
        assert await listed_ids(alice, f"{SESSIONS}/{s['id']}/tasks") == [task_id]
        again = await alice.post(f"{SESSIONS}/{s['id']}/tasks", {"prompt": "same"}, headers=KEY)
        assert again.status == 202 and again.headers["Idempotent-Replayed"] == "true"
        assert again.json["id"] == task_id
