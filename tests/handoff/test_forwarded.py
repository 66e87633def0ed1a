"""Requests for a session another node owns, through the REST API: two
daemons (in-process: each its own context, store connections, data dir and
HTTP server) on one PostgreSQL database. Every mutation sent to the node
that does not own the session answers exactly as the owner would, and is
run by the owner; every response is checked against ``openapi.yaml``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from roo_daemon.app import make_app
from roo_daemon.context import open_context
from roo_daemon.store.postgres import PgConnection
from tests.checkpoints.helpers import AUTO, write
from tests.conftest import Api, WsClient, make_config, wait_status

DSN_ENV = "ROO_TEST_HANDOFF_DSN"


class Node:
    def __init__(self, ctx: Any, server: HTTPServer, port: int) -> None:
        self.ctx, self.server = ctx, server
        self.api = Api(f"http://127.0.0.1:{port}")


class TwoNodes:
    def __init__(self, tmp_path: Any, monkeypatch: Any, pg_dsn: str) -> None:
        monkeypatch.setenv(DSN_ENV, pg_dsn)
        self.tmp_path = tmp_path
        self.dsn = pg_dsn
        self.nodes: dict[str, Node] = {}

    async def open(self, name: str, **sections: Any) -> Node:
        place = self.tmp_path / name
        place.mkdir()
        sections["cluster"] = {"node_id": name, **sections.get("cluster", {})}
        cfg = make_config(place, store={"backend": "postgresql", "dsn_env": DSN_ENV}, **sections)
        cfg["providers"]["followup"]["turns"].insert(0, {"text": "Let me ask.", **write("a.txt", "one\n")})
        ctx = await open_context(cfg)
        sock, port = bind_unused_port()
        server = HTTPServer(make_app(ctx))
        server.add_sockets([sock])
        node = self.nodes[name] = Node(ctx, server, port)
        return node

    async def session(self, owner: str, **body: Any) -> dict[str, Any]:
        """A session made on (and so owned by) ``owner``."""
        doc = await self.nodes[owner].api.session(**body)
        assert self.nodes[owner].ctx.ownership.is_local(doc["id"])
        return doc

    async def stop(self, name: str) -> None:
        """Stop a node (its lease is left to run out)."""
        node = self.nodes.pop(name)
        node.server.stop()
        await node.ctx.close()

    def sql(self, statement: str, *args: Any) -> None:
        conn = PgConnection(psycopg.connect(self.dsn, autocommit=True))
        try:
            conn.execute(statement, args)
        finally:
            conn.conn.close()

    async def close(self) -> None:
        for name in list(self.nodes):
            await self.stop(name)


@pytest.fixture
def nodes(tmp_path: Any, monkeypatch: Any, pg_dsn: str, io_loop: Any) -> Any:
    two = TwoNodes(tmp_path, monkeypatch, pg_dsn)
    yield two
    io_loop.run_sync(two.close)


def tasks_path(session_id: str) -> str:
    return f"/api/v1/sessions/{session_id}/tasks"


@pytest.mark.gen_test(timeout=120)
async def test_a_task_created_on_another_node_runs_on_the_owner_once_per_key(nodes: TwoNodes) -> None:
    a, b = await nodes.open("a"), await nodes.open("b")
    ses = await nodes.session("a", provider="instant")
    key = {"Idempotency-Key": "create-1"}
    r = await b.api.post(tasks_path(ses["id"]), {"prompt": "go"}, headers=key)
    assert r.status == 202, r.body
    task = r.json
    assert r.headers["Location"] == f"{tasks_path(ses['id'])}/{task['id']}"
    assert "Idempotent-Replayed" not in r.headers
    done = await wait_status(b.api, ses["id"], task["id"], {"completed"})  # B sees A's events live
    assert done["result"] == "ok"
    # Run by A: A's store has it as A's runner finished it; B never ran it.
    assert b.ctx.runner.runs == {}
    # The same key replays, on either node, with the same task.
    for node in (b, a):
        again = await node.api.post(tasks_path(ses["id"]), {"prompt": "go"}, headers=key)
        assert (again.status, again.json["id"], again.headers.get("Idempotent-Replayed")) == (
            202,
            task["id"],
            "true",
        )
    other = await b.api.post(tasks_path(ses["id"]), {"prompt": "something else"}, headers=key)
    assert other.status == 422 and other.json["errors"][0]["pointer"] == "/headers/Idempotency-Key"
    listed = await a.api.get(tasks_path(ses["id"]))
    assert [t["id"] for t in listed.json["items"]] == [task["id"]]


@pytest.mark.gen_test(timeout=120)
async def test_answer_and_message_on_another_node(nodes: TwoNodes) -> None:
    a, b = await nodes.open("a"), await nodes.open("b")
    ses = await nodes.session("a", provider="followup", auto_approve=AUTO)
    task = await a.api.task(ses["id"])
    path = f"{tasks_path(ses['id'])}/{task['id']}"
    waiting = await wait_status(b.api, ses["id"], task["id"], {"waiting"})
    ask = waiting["pending_ask"]
    # A message while it waits: the owner's 409 task-waiting, with its ask.
    r = await b.api.post(f"{path}/messages", {"text": "hello"})
    assert (r.status, r.json["type"], r.json["ask_id"]) == (409, "urn:roo-daemon:problem:task-waiting", ask["id"])
    # A stale ask id: the owner's 409.
    r = await b.api.post(f"{path}/responses", {"ask_id": "ask_stale", "approve": True, "text": "Go"})
    assert r.status == 409, r.body
    # The answer, given on B, reaches the run on A.
    r = await b.api.post(f"{path}/responses", {"ask_id": ask["id"], "approve": True, "text": "Go"})
    assert r.status == 200, r.body
    assert r.json["id"] == task["id"]
    done = await wait_status(b.api, ses["id"], task["id"], {"completed"})
    assert done["result"] == "answered"
    # Continue it from B: it runs again on A (with its key, once).
    r = await b.api.post(f"{path}/messages", {"text": "more"}, headers={"Idempotency-Key": "m1"})
    assert (r.status, r.json["id"]) == (202, task["id"]), r.body
    again = await b.api.post(f"{path}/messages", {"text": "more"}, headers={"Idempotency-Key": "m1"})
    assert (again.status, again.headers.get("Idempotent-Replayed")) == (202, "true")
    await wait_status(b.api, ses["id"], task["id"], {"failed"})  # the script has no more turns
    messages = (await a.api.get(f"{path}/messages?after=0&limit=100")).json["items"]
    assert len([m for m in messages if m["role"] == "user" and "more" in m["content"]]) == 1
    assert b.ctx.runner.runs == {}


@pytest.mark.gen_test(timeout=120)
async def test_cancel_on_another_node(nodes: TwoNodes) -> None:
    a, b = await nodes.open("a"), await nodes.open("b")
    ses = await nodes.session("a", provider="hang")
    task = await a.api.task(ses["id"])
    path = f"{tasks_path(ses['id'])}/{task['id']}"
    await wait_status(b.api, ses["id"], task["id"], {"running"})
    r = await b.api.delete(path)
    assert r.status == 202, r.body
    assert r.json["id"] == task["id"]
    await wait_status(b.api, ses["id"], task["id"], {"cancelled"})
    assert task["id"] not in a.ctx.runner.runs
    # Cancelling a finished task: the owner's 409, with its status.
    r = await b.api.delete(path)
    assert (r.status, r.json["task_status"]) == (409, "cancelled")


@pytest.mark.gen_test(timeout=120)
async def test_patch_and_delete_a_session_on_another_node(nodes: TwoNodes) -> None:
    a, b = await nodes.open("a"), await nodes.open("b")
    ses = await nodes.session("a", name="before")
    path = f"/api/v1/sessions/{ses['id']}"
    r = await b.api.request("PATCH", path, {"name": "after", "auto_approve": {"write": True}})
    assert r.status == 200, r.body
    assert (r.json["name"], r.json["auto_approve"]["write"]) == ("after", True)
    # Both nodes' copies say so at once: the owner's (its live tasks'), and B's.
    assert a.ctx.sessions.sessions[ses["id"]].name == "after"
    assert (await b.api.get(path)).json["name"] == "after"
    r = await b.api.request("PATCH", path, {"mode": "no-such-mode"})
    assert r.status == 422 and r.json["errors"][0]["pointer"] == "/body/mode"
    r = await b.api.delete(path)
    assert r.status == 204
    assert (await b.api.get(path)).status == 404
    assert (await a.api.get(path)).status == 404
    assert ses["id"] not in a.ctx.sessions.sessions


@pytest.mark.gen_test(timeout=120)
async def test_a_checkpoint_restored_on_another_node(nodes: TwoNodes) -> None:
    a, b = await nodes.open("a"), await nodes.open("b")
    ses = await nodes.session("a", provider="followup", auto_approve=AUTO)
    task = await a.api.task(ses["id"])
    waiting = await wait_status(b.api, ses["id"], task["id"], {"waiting"})
    # Answered over B's WebSocket this time: the op goes through the same manager method.
    ws = await WsClient.connect(b.api.base_url)
    try:
        frame = {"op": "respond", "id": "r-1", "session_id": ses["id"], "task_id": task["id"], "approve": True}
        await ws.send({**frame, "ask_id": "ask_stale", "text": "Go"})
        error = (await ws.recv_until(lambda f: f.get("id") == "r-1"))[-1]
        assert (error["event"], error["data"]["code"]) == ("error", "conflict")  # the owner's 409
        await ws.send({**frame, "ask_id": waiting["pending_ask"]["id"], "text": "Go"})
        assert (await ws.recv_until(lambda f: f.get("id") == "r-1"))[-1]["event"] == "responded"
    finally:
        ws.close()
    await wait_status(b.api, ses["id"], task["id"], {"completed"})
    # The diff (the owner's shadow repository), read through B: as on A.
    diff = f"{tasks_path(ses['id'])}/{task['id']}/diff"
    on_a, on_b = await a.api.get(diff), await b.api.get(diff)
    assert (on_b.status, on_b.body) == (200, on_a.body) and b"+one" in on_b.body
    on_a = await a.api.get(diff, headers={"Accept": "application/json"})
    on_b = await b.api.get(diff, headers={"Accept": "application/json"})
    assert (on_b.status, on_b.json) == (200, on_a.json)
    listed = await b.api.get(f"{tasks_path(ses['id'])}/{task['id']}/checkpoints")
    first = listed.json["items"][-1]
    path = f"{tasks_path(ses['id'])}/{task['id']}/checkpoints/{first['id']}/restore"
    r = await b.api.post(path, {"scope": "files"}, headers={"Idempotency-Key": "r1"})
    assert r.status == 200, r.body
    again = await b.api.post(path, {"scope": "files"}, headers={"Idempotency-Key": "r1"})
    assert (again.status, again.headers.get("Idempotent-Replayed"), again.json) == (200, "true", r.json)


REVIEWER = "customModes:\n  - {slug: reviewer, name: Reviewer, roleDefinition: You review., groups: [read]}\n"


@pytest.mark.gen_test(timeout=120)
async def test_a_sessions_modes_read_through_another_node(nodes: TwoNodes) -> None:
    """Without shared workspaces the session's ``.roomodes`` is on its
    owner's disk only (here one machine, so B could open the path, but in a
    cluster it is another directory, or none): the owner reads it."""
    a, b = await nodes.open("a"), await nodes.open("b")
    ses = await nodes.session("a")
    Path(ses["workspace"], ".roomodes").write_text(REVIEWER)
    path = f"/api/v1/modes?session_id={ses['id']}"
    on_a, on_b = await a.api.get(path), await b.api.get(path)
    assert (on_b.status, on_b.json) == (200, on_a.json)
    assert "reviewer" in [m["slug"] for m in on_b.json["items"]]
    Path(ses["workspace"], ".roomodes").write_text("customModes: [ {slug: : }")
    r = await b.api.get(path)
    assert r.status == 409 and ".roomodes" in r.json["detail"], r.body  # the owner's 409
    metrics = (await b.api.get("/metrics")).body.decode()
    assert 'cluster_handoffs_total{op="list_modes",outcome="ok"} 1.0' in metrics
    assert 'cluster_handoffs_total{op="list_modes",outcome="problem"} 1.0' in metrics


@pytest.mark.gen_test(timeout=120)
async def test_with_shared_workspaces_any_node_reads_a_sessions_modes(nodes: TwoNodes) -> None:
    """Shared workspaces are the same files on every node: no hand-off."""
    shared = {"workspaces": {"shared": True, "managed_dir": str(nodes.tmp_path / "managed")}}
    await nodes.open("a", **shared)
    b = await nodes.open("b", **shared)
    ses = await nodes.session("a")
    Path(ses["workspace"], ".roomodes").write_text(REVIEWER)
    r = await b.api.get(f"/api/v1/modes?session_id={ses['id']}")
    assert r.status == 200 and "reviewer" in [m["slug"] for m in r.json["items"]], r.body
    metrics = (await b.api.get("/metrics")).body.decode()
    assert 'cluster_handoffs_total{op="list_modes",outcome="ok"} 0.0' in metrics


@pytest.mark.gen_test(timeout=120)
async def test_a_session_whose_node_is_down_is_503_owner_unavailable(nodes: TwoNodes) -> None:
    """Without shared workspaces a dead node's sessions wait for it: every
    mutation is 503 at once, and nothing is done."""
    await nodes.open("a")
    b = await nodes.open("b")
    ses = await nodes.session("a", provider="instant")
    await nodes.stop("a")
    nodes.sql("UPDATE nodes SET lease_until = 0 WHERE id = 'a'")  # its lease has run out
    for method, path, body in (
        ("POST", tasks_path(ses["id"]), {"prompt": "go"}),
        ("PATCH", f"/api/v1/sessions/{ses['id']}", {"name": "x"}),
        ("DELETE", f"/api/v1/sessions/{ses['id']}", None),
        ("GET", f"/api/v1/modes?session_id={ses['id']}", None),  # its .roomodes is on the dead node's disk
    ):
        r = await b.api.request(method, path, body)
        assert r.status == 503, (method, path, r.body)
        assert r.json["type"] == "urn:roo-daemon:problem:owner-unavailable"
        assert r.json["node_id"] == "a" and r.headers["Retry-After"] == "5"
        assert "nothing was done" in r.json["detail"]
    # Nothing was done: the session is as it was, with no task.
    assert (await b.api.get(f"/api/v1/sessions/{ses['id']}")).json["name"] is None
    assert json.loads((await b.api.get(tasks_path(ses["id"]))).body)["items"] == []
    metrics = (await b.api.get("/metrics")).body.decode()
    assert 'cluster_handoffs_total{op="create_task",outcome="owner_unavailable"} 1.0' in metrics


@pytest.mark.gen_test(timeout=120)
async def test_a_node_that_takes_no_requests_is_503_after_the_timeout(nodes: TwoNodes) -> None:
    """The owner's lease looks alive but it does not claim (here: its
    hand-off is stopped): after cluster.handoff_timeout_seconds the request
    is withdrawn and answered 503, and it never runs later."""
    a = await nodes.open("a")
    b = await nodes.open("b", cluster={"handoff_timeout_seconds": 1})
    ses = await nodes.session("a", name="kept")
    assert a.ctx.handoff is not None
    await a.ctx.handoff.close()
    r = await b.api.request("PATCH", f"/api/v1/sessions/{ses['id']}", {"name": "changed"})
    assert (r.status, r.json["type"]) == (503, "urn:roo-daemon:problem:owner-unavailable")
    assert "did not take the request within 1 s" in r.json["detail"]
    await a.ctx.handoff.scan()
    assert (await a.api.get(f"/api/v1/sessions/{ses['id']}")).json["name"] == "kept"
