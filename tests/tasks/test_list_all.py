"""``GET /api/v1/tasks``: every task a principal may see, across its
sessions, filtered by status (the approvals inbox) and session, paged like
the other lists; tenancy as on the per-session routes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from roo_daemon.auth import hash_key
from tests.conftest import Api, WsClient, make_config
from tests.tasks.helpers import follow, named, status_is

TASKS = "/api/v1/tasks"
TOKENS = {"alice": "list-all-alice-key", "bob": "list-all-bob-key", "root": "list-all-root-key"}
SCOPES = {"alice": ["read", "write"], "bob": ["read", "write"], "root": ["admin"]}


@pytest.fixture
def config(tmp_path: Path) -> dict[str, Any]:
    keys = [{"name": n, "sha256": hash_key(TOKENS[n]), "scopes": SCOPES[n]} for n in TOKENS]
    return make_config(tmp_path, auth={"keys": keys})


@pytest.fixture
def as_(api: Api) -> Any:
    return lambda name: Api(api.base_url, TOKENS[name])


async def wait_for(api: Api, task_id: str, predicate: Any) -> None:
    """Until the task's events (over an authenticated WebSocket) reach one matching ``predicate``."""
    ws = await WsClient.connect(api.base_url, {"Authorization": f"Bearer {api.token}"})
    try:
        await follow(api, task_id, predicate, ws)
    finally:
        ws.close()


async def settle(api: Api, session_id: str, task_id: str, status: str) -> None:
    await wait_for(api, task_id, named(f"task.{status}"))


async def waiting_task(api: Api, session_id: str) -> dict[str, Any]:
    """A task that asks a followup question and waits for the answer."""
    task = await api.task(session_id, "ask me", provider="followup")
    await wait_for(api, task["id"], status_is("waiting"))
    return task


async def every_page(api: Api, query: str) -> list[dict[str, Any]]:
    items, cursor = [], None
    while True:
        r = await api.get(f"{TASKS}?{query}" + (f"&cursor={cursor}" if cursor else ""))
        assert r.status == 200, r.body
        items += r.json["items"]
        cursor = r.json["next_cursor"]
        if cursor is None:
            return items


@pytest.mark.gen_test(timeout=30)
async def test_a_principal_sees_its_own_tasks_across_sessions_newest_first(as_: Any) -> None:
    alice, bob, root = as_("alice"), as_("bob"), as_("root")
    a1, a2, b1 = await alice.session(), await alice.session(), await bob.session()
    t1 = await alice.task(a1["id"], provider="instant")
    t2 = await alice.task(a2["id"], provider="instant")
    t3 = await bob.task(b1["id"], provider="instant")
    t4 = await alice.task(a1["id"], provider="instant")
    for api, s, t in ((alice, a1, t1), (alice, a2, t2), (bob, b1, t3), (alice, a1, t4)):
        await settle(api, s["id"], t["id"], "completed")

    r = await alice.get(TASKS)
    assert r.status == 200 and r.json["next_cursor"] is None
    assert [t["id"] for t in r.json["items"]] == [t4["id"], t2["id"], t1["id"]]
    assert [t["id"] for t in (await bob.get(TASKS)).json["items"]] == [t3["id"]]
    assert [t["id"] for t in (await root.get(TASKS)).json["items"]] == [t4["id"], t3["id"], t2["id"], t1["id"]]
    # One session's tasks.
    r = await alice.get(f"{TASKS}?session_id={a1['id']}")
    assert [t["id"] for t in r.json["items"]] == [t4["id"], t1["id"]]
    # Paged one by one: the same tasks, in the same order, each once.
    assert [t["id"] for t in await every_page(alice, "limit=1")] == [t4["id"], t2["id"], t1["id"]]
    # The same task documents as the per-session route.
    one = (await alice.get(f"/api/v1/sessions/{a2['id']}/tasks/{t2['id']}")).json
    assert (await alice.get(f"{TASKS}?session_id={a2['id']}")).json["items"] == [one]


@pytest.mark.gen_test(timeout=30)
async def test_status_waiting_is_the_approvals_inbox(as_: Any) -> None:
    alice, bob = as_("alice"), as_("bob")
    a1, a2, b1 = await alice.session(), await alice.session(), await bob.session()
    w1 = await waiting_task(alice, a1["id"])
    done = await alice.task(a1["id"], provider="instant")
    await settle(alice, a1["id"], done["id"], "completed")
    w2 = await waiting_task(alice, a2["id"])
    await waiting_task(bob, b1["id"])

    inbox = (await alice.get(f"{TASKS}?status=waiting")).json["items"]
    assert [t["id"] for t in inbox] == [w2["id"], w1["id"]]
    assert all(t["status"] == "waiting" and t["pending_ask"]["kind"] == "followup" for t in inbox)
    # Answered from the inbox: it leaves the inbox.
    ask = inbox[0]["pending_ask"]["id"]
    r = await alice.post(
        f"/api/v1/sessions/{a2['id']}/tasks/{w2['id']}/responses", {"ask_id": ask, "approve": True, "text": "Go"}
    )
    assert r.status == 200, r.body
    await settle(alice, a2["id"], w2["id"], "completed")
    assert [t["id"] for t in (await alice.get(f"{TASKS}?status=waiting")).json["items"]] == [w1["id"]]
    r = await alice.get(f"{TASKS}?status=completed")
    assert [t["id"] for t in r.json["items"]] == [w2["id"], done["id"]]


@pytest.mark.gen_test(timeout=30)
async def test_another_principals_session_is_404_and_bad_parameters_are_422(as_: Any) -> None:
    alice, bob = as_("alice"), as_("bob")
    b1 = await bob.session()
    await bob.task(b1["id"], provider="instant")
    r = await alice.get(f"{TASKS}?session_id={b1['id']}")
    assert r.status == 404 and r.json["type"] == "urn:roo-daemon:problem:not-found"
    r = await alice.get(f"{TASKS}?session_id=ses_{'0' * 32}")
    assert r.status == 404
    for query, pointer in (
        ("status=sleeping", "/query/status"),
        ("session_id=nope", "/query/session_id"),
        ("limit=0", "/query/limit"),
        ("cursor=bm90LWEtY3Vyc29y", "/query/cursor"),
    ):
        r = await alice.get(f"{TASKS}?{query}")
        assert r.status == 422 and pointer in [e["pointer"] for e in r.json["errors"]], (query, r.body)
    assert (await Api(alice.base_url).get(TASKS)).status == 401
