"""Requests for a session another node owns, through the REST API: two
daemons (in-process: each its own context, store connections, data dir and
HTTP server) on one PostgreSQL database. Every mutation sent to the node
that does not own the session answers exactly as the owner would, and is
run by the owner; every response is checked against ``openapi.yaml``."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from roo_daemon.app import make_app
from roo_daemon.cluster.remote import start
from roo_daemon.config import SCHEMA
from roo_daemon.context import open_context
from roo_daemon.models import Session
from tests.checkpoints.helpers import AUTO, write
from tests.conftest import Api, make_config, wait_status

DSN_ENV = "ROO_TEST_HANDOFF_DSN"


class Owners:
    """Stand-in for cluster.ownership until it lands: who owns what."""

    def __init__(self) -> None:
        self.owners: dict[str, str] = {}
        self.dead: set[str] = set()

    def view(self, node_id: str) -> Any:
        owners = self

        class Owner:
            def __init__(self, node: str, alive: bool) -> None:
                self.node_id, self.alive = node, alive

        class View:
            def __init__(self) -> None:
                self.node_id = node_id

            def is_local(self, session_id: str) -> bool:
                return owners.owners.get(session_id, node_id) == node_id

            async def owner(self, session_id: str) -> Any:
                node = owners.owners.get(session_id)
                return None if node is None else Owner(node, node not in owners.dead)

        return View()


class Node:
    def __init__(self, ctx: Any, server: HTTPServer, port: int, handoff: Any) -> None:
        self.ctx, self.server, self.handoff = ctx, server, handoff
        self.api = Api(f"http://127.0.0.1:{port}")


class TwoNodes:
    def __init__(self, tmp_path: Any, monkeypatch: Any, pg_dsn: str) -> None:
        monkeypatch.setenv(DSN_ENV, pg_dsn)
        import roo_daemon.context

        async def no_claim(db: Any) -> None:  # until leases: one daemon per database
            return None

        monkeypatch.setattr(roo_daemon.context, "claim", no_claim, raising=False)
        self.tmp_path = tmp_path
        self.owners = Owners()
        self.nodes: dict[str, Node] = {}

    async def open(self, name: str, **sections: Any) -> Node:
        place = self.tmp_path / name
        place.mkdir()
        if "cluster" in SCHEMA["properties"]:  # leases: each node its own id
            sections["cluster"] = {"node_id": name}
        cfg = make_config(place, store={"backend": "postgresql", "dsn_env": DSN_ENV}, **sections)
        cfg["providers"]["followup"]["turns"].insert(0, {"text": "Let me ask.", **write("a.txt", "one\n")})
        ctx = await open_context(cfg)
        handoff = await start(ctx.db, self.owners.view(name), ctx.sessions, ctx.tasks, ctx.checkpoints, 10)
        sock, port = bind_unused_port()
        server = HTTPServer(make_app(ctx))
        server.add_sockets([sock])
        node = self.nodes[name] = Node(ctx, server, port, handoff)
        return node

    async def session(self, owner: str, **body: Any) -> dict[str, Any]:
        """A session made on ``owner``, known to every node (as the session
        cache does across nodes)."""
        doc = await self.nodes[owner].api.session(**body)
        self.owners.owners[doc["id"]] = owner
        session = self.nodes[owner].ctx.sessions.sessions[doc["id"]]
        for name, node in self.nodes.items():
            if name != owner:
                node.ctx.sessions.sessions[doc["id"]] = Session.from_doc(session.to_doc())
        return doc

    async def close(self) -> None:
        for node in self.nodes.values():
            node.server.stop()
            await node.handoff.close()
            await node.ctx.close()


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
    r = await b.api.post(
        f"{tasks_path(ses['id'])}/{task['id']}/responses",
        {"ask_id": waiting["pending_ask"]["id"], "approve": True, "text": "Go"},
    )
    assert r.status == 200
    await wait_status(b.api, ses["id"], task["id"], {"completed"})
    listed = await b.api.get(f"{tasks_path(ses['id'])}/{task['id']}/checkpoints")
    first = listed.json["items"][-1]
    path = f"{tasks_path(ses['id'])}/{task['id']}/checkpoints/{first['id']}/restore"
    r = await b.api.post(path, {"scope": "files"}, headers={"Idempotency-Key": "r1"})
    assert r.status == 200, r.body
    again = await b.api.post(path, {"scope": "files"}, headers={"Idempotency-Key": "r1"})
    assert (again.status, again.headers.get("Idempotent-Replayed"), again.json) == (200, "true", r.json)


@pytest.mark.gen_test(timeout=120)
async def test_a_session_whose_node_is_down_is_503_owner_unavailable(nodes: TwoNodes) -> None:
    a, b = await nodes.open("a"), await nodes.open("b")
    ses = await nodes.session("a", provider="instant")
    nodes.owners.dead.add("a")
    for method, path, body in (
        ("POST", tasks_path(ses["id"]), {"prompt": "go"}),
        ("PATCH", f"/api/v1/sessions/{ses['id']}", {"name": "x"}),
        ("DELETE", f"/api/v1/sessions/{ses['id']}", None),
    ):
        r = await b.api.request(method, path, body)
        assert r.status == 503, (method, path, r.body)
        assert r.json["type"] == "urn:roo-daemon:problem:owner-unavailable"
        assert r.json["node_id"] == "a" and r.headers["Retry-After"] == "5"
        assert "nothing was done" in r.json["detail"]
    # Nothing was done: the session is as it was, with no task.
    assert (await a.api.get(f"/api/v1/sessions/{ses['id']}")).json["name"] is None
    assert json.loads((await a.api.get(tasks_path(ses["id"]))).body)["items"] == []
