"""Several nodes on one PostgreSQL: a session's webhooks are delivered by
its owner alone, and when another node comes to own it (a takeover) that
node goes on from the cursor stored in the database: every event arrives,
in order, nothing skipped; only a delivery in flight at the hand-over may
come twice (the same ``X-Roo-Delivery``), as across a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from roo_daemon.events import EventBus
from roo_daemon.metrics import Metrics
from roo_daemon.models import Session, now_iso
from roo_daemon.webhooks import WebhookDispatcher
from tests.conftest import make_config
from tests.store.conftest import StorePlace
from tests.waiting import until
from tests.webhooks.conftest import FAST, hook
from tests.webhooks.receiver import Receiver


class Node:
    """A node's bus and dispatcher, owning the sessions in ``owned``."""

    def __init__(self, bus: EventBus, settings: dict[str, Any], sessions: dict[str, Session]) -> None:
        self.bus = bus
        self.owned: set[str] = set()
        self.webhooks = WebhookDispatcher(settings, bus.db, Metrics())
        self.webhooks.is_local = lambda session_id: session_id in self.owned
        self.webhooks.session_of = sessions.get
        self.webhooks.last_seq = lambda: bus.last_seq
        bus.subscribe(self.webhooks)

    async def publish(self, session: Session, n: int, label: str) -> None:
        for i in range(n):
            await self.bus.append("test.event", {"i": f"{label}{i}"}, session_id=session.id, owner=session.owner)


@pytest.mark.gen_test(timeout=90)
async def test_only_the_owner_delivers_and_a_new_owner_goes_on_from_the_stored_cursor(
    tmp_path: Path, pg_dsn: str, receiver: Receiver
) -> None:
    place = StorePlace("postgresql", tmp_path, pg_dsn)
    settings = make_config(tmp_path, webhooks=FAST)["webhooks"]
    session = Session(
        id="ses_" + "a" * 32,
        workspace=str(tmp_path),
        workspace_managed=False,
        mode="code",
        provider="demo",
        provider_kind="scripted",
        created_at=now_iso(),
        owner="local",
        webhooks=[hook(receiver)],
    )
    sessions = {session.id: session}
    a = Node(await place.open_bus(), settings, sessions)
    b = Node(await place.open_bus(), settings, sessions)
    try:
        a.owned.add(session.id)
        await a.webhooks.start([], a.bus.last_seq)
        await b.webhooks.start([], b.bus.last_seq)
        # Created on A, as SessionManager.create does: cursors in its transaction, A's workers.
        await a.bus.append(
            "session.created",
            {"id": session.id},
            session_id=session.id,
            owner=session.owner,
            write=a.webhooks.start_cursors(session),
        )
        a.webhooks.acquired(session.id)  # the create's on_acquire: starts A's workers once
        await a.publish(session, 5, "a")
        await receiver.wait_for(lambda r: len(r.acked) == 6)
        assert b.webhooks.workers == {}  # B's bus saw every event too, and delivered none

        # The next delivery hangs at the receiver; meanwhile B takes the session over.
        receiver.hold = asyncio.Event()
        receiver.arrived.clear()
        await a.publish(session, 1, "in-flight")
        await asyncio.wait_for(receiver.arrived.wait(), 20)
        a.owned.discard(session.id)
        a.webhooks.released(session.id)  # A's on_release
        b.owned.add(session.id)
        b.webhooks.acquired(session.id)  # B's on_acquire after the takeover
        receiver.hold.set()
        receiver.hold = None
        await b.publish(session, 4, "b")

        stored = await a.bus.store.page(0, 100)
        every = [seq for seq, _ in stored]
        await receiver.wait_for(lambda r: len({d.frame["seq"] for d in r.acked}) == len(every))
        seqs = [d.frame["seq"] for d in receiver.acked]
        # In order, nothing skipped; at most the event in flight at the hand-over twice.
        deduped = [s for i, s in enumerate(seqs) if i == 0 or s != seqs[i - 1]]
        assert deduped == every, seqs
        assert len(seqs) - len(deduped) <= 1, seqs
        assert a.webhooks.workers == {} and list(b.webhooks.workers) == [session.id]
        (worker,) = b.webhooks.workers[session.id]
        await until(lambda: worker.waiting and worker.persisted == every[-1])  # its last cursor stored
        # A, no longer the owner, answers GET .../webhooks with what B stored.
        (item,) = await a.webhooks.states(session, admin=True)
        assert item["cursor"] == every[-1] and item["status"] == "idle"
        assert item["last_delivered_seq"] == every[-1] and item["delivered"] >= len(every)
    finally:
        for node in (a, b):
            await node.webhooks.close()
            await node.bus.db.close()


@pytest.mark.gen_test(timeout=60)
async def test_a_node_starts_workers_only_for_the_sessions_it_owns(
    tmp_path: Path, pg_dsn: str, receiver: Receiver
) -> None:
    place = StorePlace("postgresql", tmp_path, pg_dsn)
    settings = make_config(tmp_path, webhooks=FAST)["webhooks"]
    mine, theirs = (
        Session(
            id="ses_" + c * 32,
            workspace=str(tmp_path),
            workspace_managed=False,
            mode="code",
            provider="demo",
            provider_kind="scripted",
            created_at=now_iso(),
            owner="local",
            webhooks=[hook(receiver)],
        )
        for c in "bc"
    )
    node = Node(await place.open_bus(), settings, {mine.id: mine, theirs.id: theirs})
    node.owned.add(mine.id)
    try:
        await node.webhooks.start([mine, theirs], node.bus.last_seq)
        assert list(node.webhooks.workers) == [mine.id]
        await node.publish(theirs, 2, "theirs")
        await node.publish(mine, 1, "mine")
        await receiver.wait_for(lambda r: len(r.acked) == 1)
        assert receiver.acked[0].frame["session_id"] == mine.id
    finally:
        await node.webhooks.close()
        await node.bus.db.close()


@pytest.mark.gen_test(timeout=120)
async def test_a_daemon_taking_a_session_over_goes_on_with_its_webhooks(
    tmp_path: Path, pg_dsn: str, receiver: Receiver, monkeypatch: Any
) -> None:
    """Whole daemons: A owns a session with a webhook and delivers; A loses
    its lease (as a node that died: it stops, and its lease runs out in the
    database) with a delivery in flight; B takes the session over and goes on
    from the stored cursor, with its own task's events after A's."""
    from roo_daemon.auth import Principal
    from roo_daemon.context import open_context

    admin = Principal("admin", frozenset({"admin", "read", "write"}))
    monkeypatch.setenv("ROO_TEST_PG_SHARED", pg_dsn)

    def daemon_config(name: str, **cluster: Any) -> dict[str, Any]:
        (tmp_path / name).mkdir()
        return make_config(
            tmp_path / name,
            store={"backend": "postgresql", "dsn_env": "ROO_TEST_PG_SHARED"},
            cluster={"node_id": f"node-{name}", **cluster},
            workspaces={"shared": True, "managed_dir": str(tmp_path / "managed")},
            webhooks=FAST,
        )

    a = await open_context(daemon_config("a"))
    b = await open_context(daemon_config("b", lease_seconds=3))
    try:
        session, _ = await a.sessions.create(admin, {"webhooks": [hook(receiver)]}, None)
        task, _ = await a.tasks.create(admin, session.id, {"prompt": "one", "provider": "instant"}, None)
        await until(lambda: a.runner.live(task.id) is None)
        count = len(await a.events.page(0, 1000))
        await receiver.wait_for(lambda r: len(r.acked) == count)
        assert b.webhooks is not None and b.webhooks.workers == {}  # B's bus saw them all, B sent none

        receiver.hold = asyncio.Event()  # the next delivery hangs at the receiver
        receiver.arrived.clear()
        await a.bus.append("test.event", {"i": "in-flight"}, session_id=session.id, owner=session.owner)
        await asyncio.wait_for(receiver.arrived.wait(), 20)
        lease = a.ownership.lease  # type: ignore[union-attr]
        lease._task.cancel()  # A stops renewing, as a node that died...
        lease.deadline = 0
        lease.check()  # ...and, past its deadline, gives its sessions up
        await b.db.write(lambda c: c.execute("UPDATE nodes SET lease_until = 0 WHERE id = 'node-a'"))
        await until(lambda: b.ownership.is_local(session.id), 30)  # B's next renewal takes it over
        receiver.hold.set()
        receiver.hold = None

        task_b, _ = await b.tasks.create(admin, session.id, {"prompt": "two", "provider": "instant"}, None)
        await until(lambda: b.runner.live(task_b.id) is None)
        every = [seq for seq, _ in await b.events.page(0, 1000)]
        await receiver.wait_for(lambda r: {d.frame["seq"] for d in r.acked} == set(every), 30)
        seqs = [d.frame["seq"] for d in receiver.acked]
        deduped = [s for i, s in enumerate(seqs) if i == 0 or s != seqs[i - 1]]
        assert deduped == every, seqs  # in order, nothing skipped
        assert len(seqs) - len(deduped) <= 1, seqs  # only the one in flight at the hand-over, twice
        assert a.webhooks is not None and a.webhooks.workers == {}
        assert list(b.webhooks.workers) == [session.id]
    finally:
        await a.close()
        await b.close()
