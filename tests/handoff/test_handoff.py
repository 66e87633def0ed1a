"""Hand-off through the database (PostgreSQL): two stores on one database
stand for two daemons, each with its own ``Handoff``; a stand-in ownership
says which sessions each owns. The ops registered here are small
coroutines, so these tests are about the mechanism: claim, run, reply,
problems carried over, 503 when the owner is away, 504 when it is slow,
and the poll that makes up for lost notifications or a takeover."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from roo_daemon.auth import Principal
from roo_daemon.cluster.handoff import Handoff
from roo_daemon.problems import Problem
from tests.store.conftest import StorePlace
from tests.waiting import until

ALICE = Principal("alice", frozenset({"read", "write"}), ("/srv/ws/alice",))


@dataclass
class Owner:
    node_id: str
    alive: bool


@dataclass
class Nodes:
    """Stand-in for ``cluster.ownership``: who owns what, who is alive."""

    owners: dict[str, str] = field(default_factory=dict)  # session -> node
    dead: set[str] = field(default_factory=set)

    def view(self, node_id: str) -> Any:
        nodes = self

        class View:
            def __init__(self) -> None:
                self.node_id = node_id

            def is_local(self, session_id: str) -> bool:
                return nodes.owners.get(session_id) == node_id

            async def owner(self, session_id: str) -> Owner:
                owner = nodes.owners[session_id]
                return Owner(owner, owner not in nodes.dead)

        return View()


class Cluster:
    def __init__(self, tmp_path: Any, dsn: str) -> None:
        self.place = StorePlace("postgresql", tmp_path, dsn)
        self.nodes = Nodes()
        self.dbs: list[Any] = []
        self.handoffs: list[Handoff] = []

    async def node(self, node_id: str, *, timeout: float = 30.0, start: bool = True, poll: float = 1.0) -> Handoff:
        db = await self.place.open()
        self.dbs.append(db)
        handoff = Handoff(db, self.nodes.view(node_id), timeout_seconds=timeout, poll_seconds=poll)
        self.handoffs.append(handoff)
        if start:
            await handoff.start()
        return handoff

    def rows(self) -> list[tuple]:
        conn = self.place.connect()
        try:
            return conn.execute("SELECT id, session_id, op, claimed_by, reply FROM node_requests").fetchall()
        finally:
            conn.conn.close()

    async def close(self) -> None:
        for h in self.handoffs:
            await h.close()
        for db in self.dbs:
            await db.close()


@pytest.fixture
def cluster(tmp_path: Any, pg_dsn: str, io_loop: Any) -> Any:
    c = Cluster(tmp_path, pg_dsn)
    yield c
    io_loop.run_sync(c.close)


@pytest.mark.gen_test(timeout=60)
async def test_a_request_runs_on_the_owner_and_its_result_comes_back(cluster: Cluster) -> None:
    a, b = await cluster.node("a"), await cluster.node("b")
    cluster.nodes.owners["ses_1"] = "a"
    ran: list[tuple[str, Principal, dict]] = []

    def op(node: str) -> Any:
        async def run(principal: Principal, args: dict[str, Any]) -> Any:
            ran.append((node, principal, args))
            return {"id": "tsk_1", "prompt": args["body"]["prompt"], "replayed": False}

        return run

    a.register("createTask", op("a"))
    b.register("createTask", op("b"))
    outcomes: list[tuple[str, str]] = []
    runs: list[str] = []
    b.on_outcome = lambda op, outcome, seconds: outcomes.append((op, outcome))
    a.on_run = runs.append
    args = {"session_id": "ses_1", "body": {"prompt": "hi"}, "key": "k1"}
    result = await b.forward("ses_1", "createTask", ALICE, args)
    assert result == {"id": "tsk_1", "prompt": "hi", "replayed": False}
    assert (outcomes, runs) == ([("createTask", "ok")], ["createTask"])  # the metrics' hooks
    # Run once, on the owner, as the same principal with the same arguments.
    assert ran == [("a", ALICE, args)]
    assert cluster.rows() == []  # the requester deleted the row


@pytest.mark.gen_test(timeout=60)
async def test_a_problem_on_the_owner_is_the_requesters_answer(cluster: Cluster) -> None:
    a, b = await cluster.node("a"), await cluster.node("b")
    cluster.nodes.owners["ses_1"] = "a"

    async def waiting(principal: Principal, args: dict[str, Any]) -> Any:
        raise Problem(409, "task tsk_1 is waiting", slug="task-waiting", task_status="waiting", ask_id="ask_1")

    async def limited(principal: Principal, args: dict[str, Any]) -> Any:
        raise Problem(429, "too many", headers={"Retry-After": "5"})

    async def broken(principal: Principal, args: dict[str, Any]) -> Any:
        raise RuntimeError("a bug")

    a.register("postMessage", waiting)
    a.register("createTask", limited)
    a.register("cancelTask", broken)
    with pytest.raises(Problem) as raised:
        await b.forward("ses_1", "postMessage", ALICE, {})
    p = raised.value
    assert (p.status_code, p.slug, p.detail) == (409, "task-waiting", "task tsk_1 is waiting")
    assert p.extra == {"task_status": "waiting", "ask_id": "ask_1"}
    assert p.body() == {
        "type": "urn:roo-daemon:problem:task-waiting",
        "title": "Conflict",
        "status": 409,
        "detail": "task tsk_1 is waiting",
        "task_status": "waiting",
        "ask_id": "ask_1",
    }
    with pytest.raises(Problem) as raised:
        await b.forward("ses_1", "createTask", ALICE, {})
    assert (raised.value.status_code, raised.value.headers) == (429, {"Retry-After": "5"})
    with pytest.raises(Problem) as raised:
        await b.forward("ses_1", "cancelTask", ALICE, {})
    assert raised.value.status_code == 500 and "a bug" not in raised.value.detail  # nothing internal leaks
    assert cluster.rows() == []


@pytest.mark.gen_test(timeout=60)
async def test_an_owner_known_dead_is_503_at_once_and_nothing_is_stored(cluster: Cluster) -> None:
    b = await cluster.node("b")
    cluster.nodes.owners["ses_1"] = "a"
    cluster.nodes.dead.add("a")
    outcomes: list[tuple[str, str]] = []
    b.on_outcome = lambda op, outcome, seconds: outcomes.append((op, outcome))
    with pytest.raises(Problem) as raised:
        await b.forward("ses_1", "cancelTask", ALICE, {})
    assert outcomes == [("cancelTask", "owner_unavailable")]
    p = raised.value
    assert (p.status_code, p.slug, p.headers) == (503, "owner-unavailable", {"Retry-After": "5"})
    assert p.extra == {"node_id": "a"}
    assert "'a'" in p.detail and "nothing was done" in p.detail
    assert cluster.rows() == []


@pytest.mark.gen_test(timeout=60)
async def test_an_unclaimed_request_is_503_and_can_never_run_later(cluster: Cluster) -> None:
    """The owner's lease still looks alive but it takes nothing (hung, or
    cut off): after the timeout the row is deleted, so when the owner comes
    back it does not run what the client was told was not done."""
    a = await cluster.node("a", start=False)
    b = await cluster.node("b", timeout=0.5)
    cluster.nodes.owners["ses_1"] = "a"
    ran: list[Any] = []

    async def cancel(principal: Principal, args: dict[str, Any]) -> Any:
        ran.append(args)
        return {}

    a.register("cancelTask", cancel)
    with pytest.raises(Problem) as raised:
        await b.forward("ses_1", "cancelTask", ALICE, {"task_id": "tsk_1"})
    assert (raised.value.status_code, raised.value.slug) == (503, "owner-unavailable")
    assert "did not take the request within 0.5 s" in raised.value.detail
    assert cluster.rows() == []
    await a.start()
    await a.scan()
    assert ran == []


@pytest.mark.gen_test(timeout=60)
async def test_a_claimed_request_unanswered_in_time_is_504(cluster: Cluster) -> None:
    a = await cluster.node("a")
    b = await cluster.node("b", timeout=0.5)
    cluster.nodes.owners["ses_1"] = "a"
    release = asyncio.Event()
    started = asyncio.Event()

    async def slow(principal: Principal, args: dict[str, Any]) -> Any:
        started.set()
        await release.wait()
        return {}

    a.register("deleteSession", slow)
    with pytest.raises(Problem) as raised:
        await b.forward("ses_1", "deleteSession", ALICE, {})
    p = raised.value
    assert (p.status_code, p.slug, p.extra) == (504, "owner-timeout", {"node_id": "a"})
    assert "may still take effect" in p.detail and "Idempotency-Key" in p.detail
    assert started.is_set()
    assert cluster.rows() == []  # the late reply has nowhere to go
    release.set()
    await asyncio.sleep(0.2)
    assert cluster.rows() == []


@pytest.mark.gen_test(timeout=60)
async def test_a_request_made_before_the_owner_listens_is_found_by_its_poll(cluster: Cluster) -> None:
    """A lost notification (here: the owner was not listening yet) costs
    only the poll's delay."""
    a = await cluster.node("a", start=False, poll=0.2)
    b = await cluster.node("b")
    cluster.nodes.owners["ses_1"] = "a"

    async def respond(principal: Principal, args: dict[str, Any]) -> Any:
        return {"answered": args["ask_id"]}

    a.register("respond", respond)
    pending = asyncio.ensure_future(b.forward("ses_1", "respond", ALICE, {"ask_id": "ask_1"}))
    await until(lambda: len(cluster.rows()) == 1)
    assert not pending.done()
    await a.start()
    assert await pending == {"answered": "ask_1"}


@pytest.mark.gen_test(timeout=60)
async def test_a_session_taken_over_has_its_waiting_requests_run_by_the_new_owner(cluster: Cluster) -> None:
    """Owner a stops taking requests; b takes ses_1 over while c's request
    waits: b runs it (c's wait goes on), woken by the takeover (ownership's
    on_acquire calls ``wake``; its poll would find it too, later)."""
    a = await cluster.node("a", start=False)
    b = await cluster.node("b", poll=600)
    c = await cluster.node("c")
    cluster.nodes.owners["ses_1"] = "a"
    ran: list[str] = []

    def op(node: str) -> Any:
        async def run(principal: Principal, args: dict[str, Any]) -> Any:
            ran.append(node)
            return node

        return run

    for node, h in (("a", a), ("b", b), ("c", c)):
        h.register("updateSession", op(node))
    pending = asyncio.ensure_future(c.forward("ses_1", "updateSession", ALICE, {}))
    await until(lambda: len(cluster.rows()) == 1)
    cluster.nodes.owners["ses_1"] = "b"  # the takeover
    b.wake("ses_1")
    assert await pending == "b"
    assert ran == ["b"]


@pytest.mark.gen_test(timeout=60)
async def test_of_two_nodes_that_both_think_they_own_a_session_one_runs_the_request(cluster: Cluster) -> None:
    """The claim is a conditional UPDATE: exactly one winner, even in the
    moment a takeover leaves two nodes believing they own a session."""
    a, b = await cluster.node("a", poll=0.05), await cluster.node("b", poll=0.05)
    c = await cluster.node("c")
    ran: list[str] = []
    both = {"a", "b"}

    class Both:
        def __init__(self, node_id: str) -> None:
            self.node_id = node_id

        def is_local(self, session_id: str) -> bool:
            return self.node_id in both

        async def owner(self, session_id: str) -> Owner:
            return Owner("a", True)

    a.ownership, b.ownership = Both("a"), Both("b")
    cluster.nodes.owners["ses_1"] = "a"  # as c sees it

    def op(node: str) -> Any:
        async def run(principal: Principal, args: dict[str, Any]) -> Any:
            ran.append(node)
            return args["i"]

        return run

    a.register("cancelTask", op("a"))
    b.register("cancelTask", op("b"))
    results = await asyncio.gather(*(c.forward("ses_1", "cancelTask", ALICE, {"i": i}) for i in range(20)))
    assert results == list(range(20))
    assert len(ran) == 20


@pytest.mark.gen_test(timeout=60)
async def test_replies_reach_the_requester_after_its_listener_reconnects(cluster: Cluster) -> None:
    """The listener connection (one for every channel) is cut while a
    request waits: the reply still arrives (the reconnect re-reads)."""
    a = await cluster.node("a")
    b = await cluster.node("b", poll=60)  # no poll: only the reconnect can find the reply
    cluster.nodes.owners["ses_1"] = "a"
    release = asyncio.Event()

    async def slow(principal: Principal, args: dict[str, Any]) -> Any:
        await release.wait()
        return "done"

    a.register("restoreCheckpoint", slow)
    pending = asyncio.ensure_future(b.forward("ses_1", "restoreCheckpoint", ALICE, {}))
    await until(lambda: any(r[3] == "a" for r in cluster.rows()))
    conn = cluster.place.connect()
    try:
        # b's listener only (a's must hear nothing missed): by its backend pid.
        pids = [
            r[0]
            for r in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE query LIKE 'LISTEN%' AND datname = current_database()"
            ).fetchall()
        ]
        assert len(pids) == 2  # one listener connection per node, for every channel
        assert b.db.listener_pid in pids
        conn.execute("SELECT pg_terminate_backend(?)", (b.db.listener_pid,))
        release.set()  # answered while b has no listener
    finally:
        conn.conn.close()
    assert await pending == "done"


@pytest.mark.gen_test(timeout=60)
async def test_rows_nobody_will_delete_are_pruned(cluster: Cluster) -> None:
    """A requester that died while waiting leaves its row (answered or not):
    a polling node removes it once it is several timeouts old."""
    await cluster.node("a", timeout=2, poll=0.05)
    conn = cluster.place.connect()
    try:
        conn.execute(
            "INSERT INTO node_requests (id, session_id, op, doc, created_at, claimed_by, reply)"
            " VALUES ('req_old', 'ses_1', 'cancelTask', '{}', extract(epoch from clock_timestamp()) - 100, 'a', '{}'),"
            " ('req_new', 'ses_2', 'cancelTask', '{}', extract(epoch from clock_timestamp()), 'a', NULL)"
        )
    finally:
        conn.conn.close()
    await until(lambda: [r[0] for r in cluster.rows()] == ["req_new"])
