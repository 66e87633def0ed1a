"""Leases and session ownership on PostgreSQL (roo_daemon/cluster): several
nodes in one process, each with its own store and ownership on one
throwaway database. A node owns the sessions it creates; only the owner's
writes for a session are stored (fencing); a node whose lease ran out has
its sessions taken over (with shared workspaces), exactly one node winning
each; a node restarted with the same id gets its sessions back."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from roo_daemon.auth import Principal
from roo_daemon.cluster.fence import Fenced
from roo_daemon.cluster.nodes import NodeIdInUse, NodeLease
from roo_daemon.cluster.ownership import Ownership
from roo_daemon.events import EventBus
from roo_daemon.store.backends import event_store
from roo_daemon.store.postgres import EVENT_SEQ_LOCK
from tests.conftest import make_config
from tests.store.conftest import StorePlace, close
from tests.waiting import until

ADMIN = Principal("admin", frozenset({"admin", "read", "write"}))


class Node:
    """One node: a store, a bus and an ownership, as a daemon has them."""

    def __init__(self, place: StorePlace, node_id: str, lease: float = 30, shared: bool = True) -> None:
        self.place, self.node_id, self.lease_seconds, self.shared = place, node_id, lease, shared

    async def start(self) -> Node:
        self.db = await self.place.open()
        self.lease = NodeLease(self.db, self.node_id, self.lease_seconds)
        await self.lease.register()
        self.ownership = Ownership(self.db, self.lease, self.shared, EVENT_SEQ_LOCK)
        self.bus = EventBus(self.db, event_store(self.db))
        self.bus.fence = self.ownership.fence_check
        self.bus.on_fenced = self.ownership.lost
        await self.bus.open()
        self.released: list[str] = []
        self.acquired: list[str] = []
        self.ownership.on_release.append(self.released.append)
        self.ownership.on_acquire.append(self.acquired.append)
        self.started = await self.ownership.start()
        return self

    async def create_session(self, session_id: str) -> None:
        """A session row and its owner row in one transaction, as SessionManager.create writes them."""

        def insert(c: Any) -> None:
            c.execute("INSERT INTO sessions (id, owner, doc) VALUES (?, 'admin', '{}')", (session_id,))

        claim = self.ownership.claim_new(session_id)
        await self.db.write(lambda c: (insert(c), claim(c)))
        self.ownership.committed_new(session_id)

    async def stop(self) -> None:
        await self.ownership.close()
        await self.db.close()


def expire(place: StorePlace, lease: NodeLease) -> None:
    """The node's lease runs out now (by the database's clock), and it no
    longer renews: as a node that died or lost the database."""
    lease._task.cancel()  # type: ignore[union-attr]
    conn = place.connect()
    try:
        conn.execute("UPDATE nodes SET lease_until = 0 WHERE id = ?", (lease.node_id,))
    finally:
        close(conn)


def owners(place: StorePlace) -> dict[str, tuple[str, int]]:
    conn = place.connect()
    try:
        return {r[0]: (r[1], r[2]) for r in conn.execute("SELECT session_id, node_id, fence FROM session_owners")}
    finally:
        close(conn)


def count_events(place: StorePlace, session_id: str) -> int:
    conn = place.connect()
    try:
        return conn.execute("SELECT count(*) FROM events WHERE session_id = ?", (session_id,)).fetchone()[0]
    finally:
        close(conn)


@pytest.fixture
def place(tmp_path: Path, pg_dsn: str) -> StorePlace:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    return StorePlace("postgresql", data_dir, pg_dsn)


@pytest.mark.gen_test(timeout=60)
async def test_the_creating_node_owns_a_session_and_the_others_see_it_alive(place: StorePlace) -> None:
    a, b = await Node(place, "a").start(), await Node(place, "b").start()
    try:
        await a.create_session("ses_1")
        assert a.ownership.is_local("ses_1") and not b.ownership.is_local("ses_1")
        assert owners(place) == {"ses_1": ("a", 1)}
        owner = await b.ownership.owner("ses_1")
        assert owner is not None and owner.node_id == "a" and owner.alive
        assert await b.ownership.owner("ses_none") is None
        assert a.acquired == ["ses_1"]
        # Deleting it deletes the owner row (the owner's delete is fenced too).
        release = a.ownership.release("ses_1")
        await a.db.write(release)
        a.ownership.committed_release("ses_1")
        assert owners(place) == {} and not a.ownership.is_local("ses_1") and a.released == ["ses_1"]
    finally:
        await a.stop()
        await b.stop()


@pytest.mark.gen_test(timeout=60)
async def test_the_same_node_id_twice_is_refused(place: StorePlace) -> None:
    a = await Node(place, "a").start()
    try:
        with pytest.raises(NodeIdInUse, match="already runs as node 'a'"):
            await Node(place, "a").start()
    finally:
        await a.stop()


@pytest.mark.gen_test(timeout=60)
async def test_a_fenced_write_stores_nothing(place: StorePlace) -> None:
    """Once another node took a session over, the old owner's writes for it
    are refused whole: a task's status change with its event, a streamed
    event (in a batch with another session's, which is stored), a write
    with no event. The old owner forgets the session."""
    a, b = await Node(place, "a").start(), await Node(place, "b").start()
    try:
        await a.create_session("ses_1")
        await a.create_session("ses_2")
        await a.bus.append("task.status", {"n": 1}, session_id="ses_1", task_id="tsk_1")
        assert count_events(place, "ses_1") == 1
        expire(place, a.lease)
        assert sorted(await b.ownership.take_over()) == ["ses_1", "ses_2"]
        assert owners(place) == {"ses_1": ("b", 2), "ses_2": ("b", 2)}
        assert b.ownership.is_local("ses_1") and sorted(b.acquired) == ["ses_1", "ses_2"]
        # The old owner still thinks it owns them: its writes are refused in the store.
        assert a.ownership.is_local("ses_1")
        with pytest.raises(Fenced, match="no longer owns session ses_1"):
            await a.bus.append("task.status", {"n": 2}, session_id="ses_1", task_id="tsk_1", write=lambda c: None)
        assert count_events(place, "ses_1") == 1
        assert not a.ownership.is_local("ses_1") and a.released == ["ses_1"]
        # Streamed events share one batch: only the fenced session's rows fail.
        b_owned = b.bus.publish("message.delta", {"n": 1}, session_id="ses_1", task_id="tsk_1")
        a_late = a.bus.publish("message.delta", {"n": 2}, session_id="ses_2", task_id="tsk_2")
        results = await asyncio.gather(b_owned, a_late, return_exceptions=True)
        assert results[0] is None and isinstance(results[1], Fenced)
        assert count_events(place, "ses_1") == 2 and count_events(place, "ses_2") == 0
        # A write with no event (a conversation's rows) is fenced too.
        await b.bus.fenced_write(lambda c: None, "ses_1")
        with pytest.raises(Fenced):
            await a.bus.fenced_write(lambda c: c.execute("DELETE FROM sessions"), "ses_1")
        conn = place.connect()
        try:
            assert conn.execute("SELECT count(*) FROM sessions").fetchone()[0] == 2
        finally:
            close(conn)
        assert a.ownership.local_ids() == set()
    finally:
        await a.stop()
        await b.stop()


@pytest.mark.gen_test(timeout=60)
async def test_of_nodes_taking_over_at_once_exactly_one_wins_each_session(place: StorePlace) -> None:
    a = await Node(place, "a").start()
    others = [await Node(place, name).start() for name in ("b", "c", "d")]
    try:
        for i in range(20):
            await a.create_session(f"ses_{i}")
        expire(place, a.lease)
        won = await asyncio.gather(*(n.ownership.take_over() for n in others))
        flat = [s for w in won for s in w]
        assert sorted(flat) == sorted(f"ses_{i}" for i in range(20))  # each once
        stored = owners(place)
        for node, sessions in zip(others, won, strict=True):
            assert all(stored[s] == (node.node_id, 2) for s in sessions)
            assert node.ownership.local_ids() == set(sessions)
    finally:
        for node in (a, *others):
            await node.stop()


@pytest.mark.gen_test(timeout=60)
async def test_without_shared_workspaces_no_one_takes_over(place: StorePlace) -> None:
    """Renewals take over only with workspaces.shared: otherwise a dead
    node's sessions wait for it (its workspaces are on its own disk)."""
    a = await Node(place, "a").start()
    b = await Node(place, "b", lease=3, shared=False).start()
    try:
        await a.create_session("ses_1")
        expire(place, a.lease)
        assert await b.lease.renew()
        await asyncio.sleep(0.2)
        assert owners(place) == {"ses_1": ("a", 1)}
        owner = await b.ownership.owner("ses_1")
        assert owner is not None and owner.node_id == "a" and not owner.alive
    finally:
        await a.stop()
        await b.stop()


@pytest.mark.gen_test(timeout=60)
async def test_a_renewal_takes_over_with_shared_workspaces(place: StorePlace) -> None:
    a = await Node(place, "a").start()
    b = await Node(place, "b", lease=3).start()
    recovered: list[list[str]] = []

    async def recover(ids: list[str]) -> None:
        recovered.append(sorted(ids))

    b.ownership.recover = recover
    try:
        await a.create_session("ses_1")
        expire(place, a.lease)
        deadline = time.monotonic() + 20
        while not recovered:  # the renewal loop (every second here) finds it
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        assert recovered == [["ses_1"]] and owners(place) == {"ses_1": ("b", 2)}
    finally:
        await a.stop()
        await b.stop()


@pytest.mark.gen_test(timeout=60)
async def test_a_restarted_node_reclaims_its_sessions_and_fences_its_previous_run(place: StorePlace) -> None:
    a = await Node(place, "a").start()
    await a.create_session("ses_1")
    old_check = a.ownership.fence_check("ses_1")
    await a.stop()
    # Sessions stored before leases existed have no owner: a starting node claims them.
    conn = place.connect()
    try:
        conn.execute("INSERT INTO sessions (id, owner, doc) VALUES ('ses_old', 'admin', '{}')")
    finally:
        close(conn)
    again = await Node(place, "a").start()
    try:
        assert sorted(again.started) == ["ses_1", "ses_old"]
        assert owners(place) == {"ses_1": ("a", 2), "ses_old": ("a", 1)}
        with pytest.raises(Fenced):
            await again.db.write(old_check)  # the previous incarnation's late write
        await again.db.write(again.ownership.fence_check("ses_1"))
    finally:
        await again.stop()


@pytest.mark.gen_test(timeout=60)
async def test_a_lease_not_renewed_in_time_is_lost_and_stops_new_work(place: StorePlace) -> None:
    a = await Node(place, "a", lease=30).start()
    try:
        await a.create_session("ses_1")
        a.lease._task.cancel()  # type: ignore[union-attr]
        a.lease.deadline = time.monotonic() - 1  # as if the database had not answered for a whole lease
        a.lease.check()
        assert not a.lease.held and a.ownership.local_ids() == set() and a.released == ["ses_1"]
        with pytest.raises(Exception, match="takes no new work"):
            a.ownership.claim_new("ses_2")
        # The database answers again: the node renews and reclaims what is still its own.
        assert await a.lease.renew()
        deadline = time.monotonic() + 10
        while not a.ownership.is_local("ses_1"):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        assert owners(place) == {"ses_1": ("a", 2)} and a.acquired == ["ses_1", "ses_1"]
    finally:
        await a.stop()


# -- whole daemons (contexts) ------------------------------------------------


def daemon_config(tmp_path: Path, name: str, node: str, **cluster: Any) -> dict[str, Any]:
    (tmp_path / name).mkdir(exist_ok=True)
    cfg = make_config(
        tmp_path / name,
        store={"backend": "postgresql", "dsn_env": "ROO_TEST_PG_SHARED"},
        cluster={"node_id": node, **cluster},
        workspaces={"shared": True, "managed_dir": str(tmp_path / "managed")},
    )
    cfg["providers"]["write"] = {
        "kind": "scripted",
        "turns": [
            {"tool_calls": [{"name": "write_to_file", "args": {"path": "a.txt", "content": "a"}}]},
            {"tool_calls": [{"name": "attempt_completion", "args": {"result": "written"}}]},
        ],
    }
    return cfg


@pytest.mark.gen_test(timeout=90)
async def test_daemons_own_their_sessions_and_take_over_a_waiting_task(
    tmp_path: Path, pg_dsn: str, monkeypatch: Any
) -> None:
    """Two daemons on one database: each recovers only its own sessions'
    tasks at start; when A's lease runs out, B takes its session over, and
    the task waiting there is answerable on B and completes; A, which did
    not notice, can no longer write for it."""
    from roo_daemon.context import open_context

    monkeypatch.setenv("ROO_TEST_PG_SHARED", pg_dsn)
    a = await open_context(daemon_config(tmp_path, "a", "node-a"))
    b = await open_context(daemon_config(tmp_path, "b", "node-b", lease_seconds=3))
    try:
        session, _ = await a.sessions.create(ADMIN, {"provider": "write"}, None)
        assert session.workspace.startswith(str(tmp_path / "managed"))
        task, _ = await a.tasks.create(ADMIN, session.id, {"prompt": "write a"}, None)
        await until(lambda: (run := a.runner.live(task.id)) is not None and run.task.status == "waiting")
        assert a.ownership.is_local(session.id) and not b.ownership.is_local(session.id)
        assert b.runner.live(task.id) is None  # B runs nothing of A's

        expire(StorePlace("postgresql", tmp_path, pg_dsn), a.ownership.lease)  # type: ignore[union-attr]
        await until(lambda: b.runner.live(task.id) is not None, 30)
        parked = b.runner.live(task.id)
        assert parked is not None and parked.task.status == "waiting" and b.ownership.is_local(session.id)

        # A still holds the run in memory: its answer is refused by the fence, and it drops the run.
        ask = parked.task.pending_ask["id"]
        with pytest.raises(Fenced):
            await a.tasks.respond(ADMIN, session.id, task.id, ask, True, None)
        assert not a.ownership.is_local(session.id)
        await until(lambda: a.runner.live(task.id) is None)  # its loop stops, writing nothing

        answered = await b.tasks.respond(ADMIN, session.id, task.id, ask, True, None)
        assert answered.status in ("running", "queued")
        await until(lambda: b.runner.live(task.id) is None)
        done = await b.tasks.get(ADMIN, session.id, task.id)
        assert done.status == "completed" and done.result == "written"
        assert (Path(session.workspace) / "a.txt").read_text() == "a"
    finally:
        await a.close()
        await b.close()


@pytest.mark.gen_test(timeout=90)
async def test_a_restarted_daemon_recovers_only_its_own_sessions(tmp_path: Path, pg_dsn: str, monkeypatch: Any) -> None:
    from roo_daemon.context import open_context

    monkeypatch.setenv("ROO_TEST_PG_SHARED", pg_dsn)
    a = await open_context(daemon_config(tmp_path, "a", "node-a"))
    session, _ = await a.sessions.create(ADMIN, {"provider": "write"}, None)
    task, _ = await a.tasks.create(ADMIN, session.id, {"prompt": "write a"}, None)
    await until(lambda: (run := a.runner.live(task.id)) is not None and run.task.status == "waiting")
    await a.close()
    b = await open_context(daemon_config(tmp_path, "b", "node-b"))  # A's lease still runs
    try:
        assert b.recovered["waiting"] == 0 and b.runner.live(task.id) is None
        again = await open_context(daemon_config(tmp_path, "a", "node-a"))
        try:
            assert again.recovered["waiting"] == 1 and again.runner.live(task.id) is not None
            assert owners(StorePlace("postgresql", tmp_path, pg_dsn)) == {session.id: ("node-a", 2)}
        finally:
            await again.close()
    finally:
        await b.close()


@pytest.mark.gen_test(timeout=90)
async def test_a_daemon_that_lost_its_lease_is_not_ready_and_says_so_in_metrics(
    tmp_path: Path, pg_dsn: str, monkeypatch: Any
) -> None:
    from tornado.httpserver import HTTPServer
    from tornado.testing import bind_unused_port

    from roo_daemon.app import make_app
    from roo_daemon.context import open_context
    from tests.conftest import Api

    monkeypatch.setenv("ROO_TEST_PG_SHARED", pg_dsn)
    a = await open_context(daemon_config(tmp_path, "a", "node-a"))
    sock, port = bind_unused_port()
    server = HTTPServer(make_app(a))
    server.add_sockets([sock])
    api = Api(f"http://127.0.0.1:{port}")
    sample = a.metrics.registry.get_sample_value
    try:
        session, _ = await a.sessions.create(ADMIN, {}, None)
        assert (await api.get("/readyz")).status == 200
        assert sample("cluster_node_serving") == 1 and sample("cluster_sessions_owned") == 1
        assert 0 < sample("cluster_lease_seconds_left") <= 15
        lease = a.ownership.lease  # type: ignore[union-attr]
        lease._task.cancel()
        lease.deadline = time.monotonic() - 1  # as if the database had not answered for a whole lease
        lease.check()
        r = await api.get("/readyz")
        assert r.status == 503 and r.json["type"] == "urn:roo-daemon:problem:lease-lost"
        assert sample("cluster_node_serving") == 0 and sample("cluster_sessions_owned") == 0
        assert sample("cluster_lease_seconds_left") == 0
        assert await lease.renew()
        await until(lambda: a.ownership.is_local(session.id))
        assert (await api.get("/readyz")).status == 200
        assert sample("cluster_lease_renewals_total", {"outcome": "ok"}) >= 1
        assert sample("cluster_sessions_taken_over_total") == 1  # reclaimed
    finally:
        server.stop()
        await a.close()


@pytest.mark.gen_test(timeout=90)
async def test_a_running_task_taken_over_resumes_on_the_new_owner(
    tmp_path: Path, pg_dsn: str, monkeypatch: Any
) -> None:
    """A's lease runs out while its task streams: B takes the session over
    and resumes the task from its stored conversation (running on B); A's
    loop, which did not notice, gets nothing stored: its next write is
    refused and it drops the run."""
    from roo_daemon.context import open_context

    monkeypatch.setenv("ROO_TEST_PG_SHARED", pg_dsn)
    a = await open_context(daemon_config(tmp_path, "a", "node-a"))
    b = await open_context(daemon_config(tmp_path, "b", "node-b", lease_seconds=3))
    place = StorePlace("postgresql", tmp_path, pg_dsn)
    try:
        session, _ = await a.sessions.create(ADMIN, {"provider": "hang"}, None)
        task, _ = await a.tasks.create(ADMIN, session.id, {"prompt": "go slowly"}, None)
        await until(lambda: (run := a.runner.live(task.id)) is not None and run.task.status == "running")
        on_a = a.runner.live(task.id)
        expire(place, a.ownership.lease)  # type: ignore[union-attr]
        await until(lambda: (run := b.runner.live(task.id)) is not None and run.task.status == "running", 30)
        assert b.ownership.is_local(session.id)
        stored = await b.tasks.get(ADMIN, session.id, task.id)
        assert stored.status == "running" and stored.state.get("resume") == "interrupted"
        before = count_events(place, session.id)
        # A's loop is still alive here: what it writes now is refused, and it stops.
        assert on_a is not None and a.runner.live(task.id) is on_a
        on_a.publish("message.delta", {"text": "late"})
        await until(lambda: a.runner.live(task.id) is None)
        assert not a.ownership.is_local(session.id)
        conn = place.connect()
        try:
            late = conn.execute(
                "SELECT count(*) FROM events WHERE session_id = ? AND frame LIKE '%late%'", (session.id,)
            ).fetchone()[0]
        finally:
            close(conn)
        assert late == 0 and count_events(place, session.id) >= before
        cancelled = await b.tasks.cancel(ADMIN, session.id, task.id)
        assert cancelled.status == "cancelled"
    finally:
        await a.close()
        await b.close()


@pytest.mark.gen_test(timeout=60)
async def test_each_renewal_measures_the_clock_offset_again(place: StorePlace) -> None:
    """The notification-lag metric turns the database's commit times into
    this node's clock by an offset; a node's clock that is stepped (NTP,
    a resumed VM) after start must not skew it until the next restart, so
    every lease renewal measures the offset again."""
    a = await Node(place, "a").start()
    try:
        a.db.clock_offset = 3600.0  # as if this node's clock had been stepped back an hour since
        assert await a.lease.renew()
        assert abs(a.db.clock_offset) < 1  # one machine: one clock
    finally:
        await a.stop()
