"""Per-principal caps on live tasks and on sessions: over the cap, 429 with
``Retry-After``; nothing queued or running is evicted to make room, and
concurrent requests cannot overshoot the cap."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Api, WsClient
from tests.security.conftest import bearer, secure_config, subscribe_ok

SESSIONS = "/api/v1/sessions"
TASK_CAP = 2
SESSION_CAP = 3


@pytest.fixture
def config(tmp_path: Path) -> dict[str, Any]:
    return secure_config(
        tmp_path,
        limits={"max_live_tasks_per_principal": TASK_CAP, "max_sessions_per_principal": SESSION_CAP},
        engine={"max_concurrent_tasks": 8},
    )


def assert_cap_429(r: Any) -> None:
    assert r.status == 429, r.body
    assert r.json["type"] == "urn:roo-daemon:problem:too-many-requests"
    assert int(r.headers["Retry-After"]) >= 1


async def wait_running(api: Api, task_ids: list[str]) -> None:
    ws = await WsClient.connect(api.base_url, bearer("alice"))
    try:
        await subscribe_ok(ws, "run", after=0)
        pending = set(task_ids)
        while pending:
            f = await ws.recv()
            assert f is not None
            if f.get("event") == "message.delta":  # the hang turn is streaming: running
                pending.discard(f["task_id"])
    finally:
        ws.close()


@pytest.mark.gen_test(timeout=20)
async def test_live_tasks_over_the_cap_are_refused_and_nothing_is_evicted(as_: Any) -> None:
    alice, bob = as_("alice"), as_("bob")
    session = await alice.session(provider="hang")
    tasks_path = f"{SESSIONS}/{session['id']}/tasks"
    running = [(await alice.task(session["id"], f"job {i}"))["id"] for i in range(TASK_CAP)]
    await wait_running(alice, running)

    r = await alice.post(tasks_path, {"prompt": "one too many"})
    assert_cap_429(r)
    # Both still run; no third task was stored.
    listed = (await alice.get(tasks_path)).json["items"]
    assert sorted(t["id"] for t in listed) == sorted(running)
    assert {t["status"] for t in listed} == {"running"}
    # The cap is per principal: bob is not affected.
    bobs = await bob.session(provider="hang")
    await bob.task(bobs["id"])

    # When one ends, there is room again.
    assert (await alice.delete(f"{tasks_path}/{running[0]}")).status == 202
    ws = await WsClient.connect(alice.base_url, bearer("alice"))
    await subscribe_ok(ws, "c", task_id=running[0], after=0)
    await ws.recv_until(lambda f: f.get("event") == "task.cancelled")
    ws.close()
    await alice.task(session["id"], "now it fits")
    r = await alice.get(f"{tasks_path}/{running[1]}")
    assert r.json["status"] == "running"


@pytest.mark.gen_test(timeout=20)
async def test_concurrent_task_creation_cannot_overshoot_the_cap(as_: Any) -> None:
    alice = as_("alice")
    session = await alice.session(provider="hang")
    tasks_path = f"{SESSIONS}/{session['id']}/tasks"
    results = await asyncio.gather(*(alice.post(tasks_path, {"prompt": f"p{i}"}) for i in range(6)))
    codes = sorted(r.status for r in results)
    assert codes == [202] * TASK_CAP + [429] * (6 - TASK_CAP), codes
    assert len((await alice.get(tasks_path)).json["items"]) == TASK_CAP


@pytest.mark.gen_test(timeout=20)
async def test_sessions_over_the_cap_are_refused(as_: Any) -> None:
    alice, bob = as_("alice"), as_("bob")
    results = await asyncio.gather(*(alice.post(SESSIONS, {"name": f"s{i}"}) for i in range(SESSION_CAP + 3)))
    codes = sorted(r.status for r in results)
    assert codes == [201] * SESSION_CAP + [429] * 3, codes
    for r in results:
        if r.status == 429:
            assert_cap_429(r)
    mine = (await alice.get(SESSIONS)).json["items"]
    assert len(mine) == SESSION_CAP
    await bob.session()  # per principal
    # Deleting one makes room; the others are untouched.
    assert (await alice.delete(f"{SESSIONS}/{mine[0]['id']}")).status == 204
    await alice.session(name="fits again")
    assert len((await alice.get(SESSIONS)).json["items"]) == SESSION_CAP
