"""Per-principal caps hold for the cluster (PostgreSQL): two daemons in
this process on one database, each with its own data dir, HTTP server and
node id. What a key holds on one node counts on the other: live tasks,
sessions and WebSocket connections, each counted in the database inside
the transaction that adds one (roo_daemon/cluster/caps.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from roo_daemon.app import make_app
from roo_daemon.context import AppContext, open_context
from tests.conftest import PG_DSN_ENV, Api, WsClient
from tests.security.conftest import TOKENS, bearer, secure_config, subscribe_ok

SESSIONS = "/api/v1/sessions"
TASK_CAP = 2
SESSION_CAP = 3
CONN_CAP = 2


@dataclass
class Node:
    ctx: AppContext
    server: HTTPServer
    base_url: str

    def as_(self, name: str) -> Api:
        return Api(self.base_url, TOKENS[name])


@pytest.fixture
def nodes(io_loop: Any, tmp_path: Path, pg_dsn: str, monkeypatch: Any) -> Iterator[list[Node]]:
    monkeypatch.setenv(PG_DSN_ENV, pg_dsn)
    started: list[Node] = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        cfg = secure_config(
            tmp_path / name,
            store={"backend": "postgresql", "dsn_env": PG_DSN_ENV},
            limits={
                "max_live_tasks_per_principal": TASK_CAP,
                "max_sessions_per_principal": SESSION_CAP,
                "ws_connections_per_principal": CONN_CAP,
            },
            engine={"max_concurrent_tasks": 8},
        )
        cfg["cluster"]["node_id"] = f"node-{name}"
        ctx = io_loop.run_sync(lambda cfg=cfg: open_context(cfg))
        sock, port = bind_unused_port()
        server = HTTPServer(make_app(ctx))
        server.add_sockets([sock])
        started.append(Node(ctx, server, f"http://127.0.0.1:{port}"))
    yield started

    async def close() -> None:
        for node in started:
            node.server.stop()
            for ws in list(node.ctx.websockets):
                ws.close(1001)
            await node.ctx.close()

    io_loop.run_sync(close)


def assert_cap_429(r: Any) -> None:
    assert r.status == 429, r.body
    assert r.json["type"] == "urn:roo-daemon:problem:too-many-requests"
    assert int(r.headers["Retry-After"]) >= 1


async def eventually(attempt: Any, seconds: float = 20) -> Any:
    """``attempt()`` until it returns something truthy: what another node
    did is committed at once, but a closed socket's row goes a moment later."""
    deadline = time.monotonic() + seconds
    while True:
        result = await attempt()
        if result:
            return result
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


@pytest.mark.gen_test(timeout=60)
async def test_live_tasks_on_one_node_count_on_the_other(nodes: list[Node]) -> None:
    a, b = nodes[0].as_("alice"), nodes[1].as_("alice")
    on_a, on_b = await a.session(provider="hang"), await b.session(provider="hang")
    running = [(await a.task(on_a["id"], f"job {i}"))["id"] for i in range(TASK_CAP)]

    r = await b.post(f"{SESSIONS}/{on_b['id']}/tasks", {"prompt": "one too many"})
    assert_cap_429(r)
    assert (await b.get(f"{SESSIONS}/{on_b['id']}/tasks")).json["items"] == []  # nothing stored
    # Per principal: bob on the same nodes is not affected.
    bobs = await nodes[1].as_("bob").session(provider="hang")
    await nodes[1].as_("bob").task(bobs["id"])

    # A task ending on A makes room on B.
    assert (await a.delete(f"{SESSIONS}/{on_a['id']}/tasks/{running[0]}")).status == 202
    ws = await WsClient.connect(a.base_url, bearer("alice"))
    await subscribe_ok(ws, "c", task_id=running[0], after=0)
    await ws.recv_until(lambda f: f.get("event") == "task.cancelled")
    ws.close()
    await b.task(on_b["id"], "now it fits")
    assert_cap_429(await a.post(f"{SESSIONS}/{on_a['id']}/tasks", {"prompt": "full again"}))


@pytest.mark.gen_test(timeout=60)
async def test_concurrent_creates_on_both_nodes_cannot_overshoot(nodes: list[Node]) -> None:
    a, b = nodes[0].as_("alice"), nodes[1].as_("alice")
    on_a, on_b = await a.session(provider="hang"), await b.session(provider="hang")
    posts = [a.post(f"{SESSIONS}/{on_a['id']}/tasks", {"prompt": f"a{i}"}) for i in range(4)]
    posts += [b.post(f"{SESSIONS}/{on_b['id']}/tasks", {"prompt": f"b{i}"}) for i in range(4)]
    codes = sorted(r.status for r in await asyncio.gather(*posts))
    assert codes == [202] * TASK_CAP + [429] * (8 - TASK_CAP), codes
    stored = (await a.get(f"/api/v1/tasks?session_id={on_a['id']}")).json["items"]
    stored += (await b.get(f"/api/v1/tasks?session_id={on_b['id']}")).json["items"]
    assert len(stored) == TASK_CAP


@pytest.mark.gen_test(timeout=60)
async def test_sessions_on_one_node_count_on_the_other(nodes: list[Node]) -> None:
    a, b = nodes[0].as_("alice"), nodes[1].as_("alice")
    results = await asyncio.gather(
        *(node.post(SESSIONS, {"name": f"s{i}"}) for i in range(SESSION_CAP + 1) for node in (a, b))
    )
    codes = sorted(r.status for r in results)
    assert codes == [201] * SESSION_CAP + [429] * (SESSION_CAP + 2), codes
    for r in results:
        if r.status == 429:
            assert_cap_429(r)
    await nodes[0].as_("bob").session()  # per principal
    # Deleting one (on the node that made it) makes room on either.
    made = next(r.json for r in results if r.status == 201)
    maker = a if nodes[0].ctx.ownership.is_local(made["id"]) else b
    assert (await maker.delete(f"{SESSIONS}/{made['id']}")).status == 204
    other = b if maker is a else a
    await other.session(name="fits again")
    assert_cap_429(await maker.post(SESSIONS, {"name": "full again"}))


@pytest.mark.gen_test(timeout=60)
async def test_websocket_connections_on_one_node_count_on_the_other(nodes: list[Node]) -> None:
    a_url, b_url = nodes[0].base_url, nodes[1].base_url
    held = [await WsClient.connect(a_url, bearer("alice")) for _ in range(CONN_CAP)]
    with pytest.raises(HTTPClientError) as refused:
        await WsClient.connect(b_url, bearer("alice"))
    assert refused.value.code == 429
    assert int(refused.value.response.headers["Retry-After"]) >= 1

    # Over the cap by an auth op (a browser's way) on B: refused there too.
    late = await WsClient.connect(b_url)
    await late.send({"op": "auth", "token": TOKENS["alice"]})
    frame = await late.recv()
    assert frame is not None and frame["event"] == "error" and frame["data"]["code"] == "too-many-requests"
    assert await late.recv() is None  # closed (1008)

    await WsClient.connect(b_url, bearer("bob"))  # per principal

    # A connection closed on A makes room on B.
    held[0].close()

    async def connect_b() -> WsClient | None:
        try:
            return await WsClient.connect(b_url, bearer("alice"))
        except HTTPClientError as e:
            assert e.code == 429
            return None

    on_b = await eventually(connect_b)
    await on_b.send({"op": "ping", "id": "p"})
    assert (await on_b.recv())["event"] == "pong"


@pytest.mark.gen_test(timeout=60)
async def test_a_restarted_node_forgets_its_old_connections(nodes: list[Node]) -> None:
    """A node's rows from its previous run (a crash left them) are deleted
    when it starts again, so they stop counting."""
    caps = nodes[0].ctx.caps
    held = [await caps.open_connection("alice", CONN_CAP) for _ in range(CONN_CAP)]  # type: ignore[union-attr]
    assert held
    with pytest.raises(HTTPClientError) as refused:
        await WsClient.connect(nodes[1].base_url, bearer("alice"))
    assert refused.value.code == 429
    await caps.start()  # what node-a does when it starts again
    ws = await WsClient.connect(nodes[1].base_url, bearer("alice"))
    ws.close()


@pytest.mark.gen_test(timeout=60)
async def test_connections_of_a_node_whose_lease_ran_out_stop_counting(nodes: list[Node]) -> None:
    """Rows of a dead node (its lease run out, or its row gone) are not
    counted, though nobody deleted them; a live node's are."""
    db = nodes[0].ctx.db

    async def rows_of(node: str) -> None:
        for i in range(CONN_CAP):
            await db.write(
                lambda c, i=i: c.execute(
                    "INSERT INTO ws_connections (id, node_id, principal, opened_at) VALUES (?, ?, 'alice', 0)",
                    (f"wsc_{node}_{i}", node),
                )
            )

    await rows_of("node-gone")  # no nodes row at all
    ws = await WsClient.connect(nodes[1].base_url, bearer("alice"))
    ws.close()
    await db.write(
        lambda c: c.execute(
            "INSERT INTO nodes (id, incarnation, lease_until, started_at, doc)"
            " VALUES ('node-gone', 'x', extract(epoch from clock_timestamp()) + 60, 0, '{}')"
        )
    )  # alive again (as far as the database knows): its rows count

    async def refused() -> bool:
        try:
            (await WsClient.connect(nodes[1].base_url, bearer("alice"))).close()
        except HTTPClientError as e:
            assert e.code == 429
            return True
        return False

    assert await eventually(refused)
    await db.write(lambda c: c.execute("UPDATE nodes SET lease_until = 0 WHERE id = 'node-gone'"))  # ran out
    ws = await WsClient.connect(nodes[1].base_url, bearer("alice"))
    ws.close()
