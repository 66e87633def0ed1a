"""``Idempotency-Key`` retention: a key is kept (and replays) for
``KEY_TTL_SECONDS`` and then forgotten; the running daemon prunes it; and a
key committed before a ``kill -9`` still replays after the restart."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from roo_daemon.context import DB_FILE
from roo_daemon.idempotency import KEY_TTL_SECONDS, IdempotencyGuard
from roo_daemon.store import Database, IdempotencyStore
from tests.conftest import Api
from tests.security.conftest import FakeClock
from tests.server.conftest import DaemonFactory
from tests.server.daemon_process import TIMEOUT

SESSIONS = "/api/v1/sessions"


# -- the prune, with an injected clock -------------------------------------------


@pytest.mark.gen_test(timeout=30)
async def test_prune_keeps_a_key_younger_than_the_ttl_and_drops_an_older_one(tmp_path: Path) -> None:
    db = Database(tmp_path / "keys.sqlite3")
    await db.open()
    clock = FakeClock(1_000_000.0)
    guard = IdempotencyGuard(IdempotencyStore(db), clock=clock)
    made: list[str] = []

    async def create(record):  # commits the key with the "resource", as the managers do
        rid = f"res-{len(made)}"
        made.append(rid)
        await db.write(record(rid))
        return rid

    try:
        assert await guard.create_once("alice", "createSession", "old", {"n": 1}, create) == ("res-0", False)
        clock.advance(2 * 3600)
        assert await guard.create_once("alice", "createSession", "young", {"n": 2}, create) == ("res-1", False)

        clock.advance(KEY_TTL_SECONDS - 2 * 3600 - 1)  # "old" is a second short of the TTL
        assert await guard.prune() == 0
        assert await guard.create_once("alice", "createSession", "old", {"n": 1}, create) == ("res-0", True)

        clock.advance(2)  # "old" is past the TTL, "young" is 22 h old
        assert await guard.prune() == 1
        assert await guard.create_once("alice", "createSession", "young", {"n": 2}, create) == ("res-1", True)
        # Forgotten: the same key and body are a new request now.
        assert await guard.create_once("alice", "createSession", "old", {"n": 1}, create) == ("res-2", False)
    finally:
        await db.close()


# -- the real daemon -------------------------------------------------------------


def age_key(data_dir: Path, key: str, seconds: float) -> int:
    """Make the stored key ``seconds`` older, from outside the daemon (SQLite
    serialises this write with the daemon's own)."""
    conn = sqlite3.connect(data_dir / DB_FILE, timeout=TIMEOUT)
    try:
        with conn:
            return conn.execute("UPDATE idempotency SET created = created - ? WHERE key = ?", (seconds, key)).rowcount
    finally:
        conn.close()


def stored_keys(data_dir: Path) -> set[str]:
    conn = sqlite3.connect(data_dir / DB_FILE, timeout=TIMEOUT)
    try:
        return {row[0] for row in conn.execute("SELECT key FROM idempotency")}
    finally:
        conn.close()


@pytest.mark.gen_test(timeout=60)
async def test_the_running_daemon_prunes_expired_keys_and_keeps_young_ones(
    daemon_factory: DaemonFactory, tmp_path: Path
) -> None:
    """With a pruner running every second, a key aged past the TTL
    disappears from the store (a retry with it creates anew), while a young
    one keeps replaying."""
    d = daemon_factory(events={"prune_interval_seconds": 1})
    await d.astart()
    api = Api(d.base_url)
    old = await api.post(SESSIONS, {"name": "old"}, headers={"Idempotency-Key": "expiring-key"})
    young = await api.post(SESSIONS, {"name": "young"}, headers={"Idempotency-Key": "young-key"})
    assert (old.status, young.status) == (201, 201)
    data_dir = tmp_path / "data"
    assert await asyncio.to_thread(age_key, data_dir, "expiring-key", KEY_TTL_SECONDS + 60) == 1

    deadline = time.monotonic() + TIMEOUT
    while "expiring-key" in await asyncio.to_thread(stored_keys, data_dir):
        assert time.monotonic() < deadline, "the daemon did not prune the expired key"
        await asyncio.sleep(0.2)
    assert "young-key" in await asyncio.to_thread(stored_keys, data_dir)

    retry_old = await api.post(SESSIONS, {"name": "old"}, headers={"Idempotency-Key": "expiring-key"})
    assert retry_old.status == 201 and "Idempotent-Replayed" not in retry_old.headers
    assert retry_old.json["id"] != old.json["id"]
    retry_young = await api.post(SESSIONS, {"name": "young"}, headers={"Idempotency-Key": "young-key"})
    assert retry_young.headers["Idempotent-Replayed"] == "true"
    assert retry_young.json["id"] == young.json["id"]
    d.send_signal(signal.SIGTERM)
    assert await d.await_exit() == 0


@pytest.mark.gen_test(timeout=60)
async def test_a_keyed_post_retried_after_kill_9_replays_the_committed_resource(
    daemon_factory: DaemonFactory,
) -> None:
    """The client got its 201 (or lost it in the crash): SIGKILL, restart, the
    retry with the same key and body replays the same session and task."""
    d = daemon_factory()
    await d.astart()
    api = Api(d.base_url)
    session_key, task_key = {"Idempotency-Key": "crash-session"}, {"Idempotency-Key": "crash-task"}
    first = await api.post(SESSIONS, {"name": "before the crash"}, headers=session_key)
    assert first.status == 201
    tasks = f"{SESSIONS}/{first.json['id']}/tasks"
    task = await api.post(tasks, {"prompt": "keep me", "provider": "instant"}, headers=task_key)
    assert task.status == 202

    d.send_signal(signal.SIGKILL)
    assert await d.await_exit() == -signal.SIGKILL

    d2 = daemon_factory()
    await d2.astart()
    api2 = Api(d2.base_url)
    again = await api2.post(SESSIONS, {"name": "before the crash"}, headers=session_key)
    assert again.status == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json["id"] == first.json["id"]
    assert again.headers["Location"] == first.headers["Location"]
    listed = await api2.get(f"{SESSIONS}?limit=200")
    assert [s["id"] for s in listed.json["items"]] == [first.json["id"]]

    task_again = await api2.post(tasks, {"prompt": "keep me", "provider": "instant"}, headers=task_key)
    assert task_again.status == 202
    assert task_again.headers["Idempotent-Replayed"] == "true"
    assert task_again.json["id"] == task.json["id"]
    d2.send_signal(signal.SIGTERM)
    assert await d2.await_exit() == 0
