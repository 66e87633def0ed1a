"""What MCP servers may see and who sees them: secrets from env_from stay out
of events, logs and results; workspace servers are off by default and, when
allowed, run in the command sandbox; the server list per principal; the
metrics."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import sys
import time

import pytest

from roo_daemon.engine.sandbox import SETTINGS_KEY
from tests.conftest import Api
from tests.engine.fakes import FakeProviderServer, Turn, call
from tests.mcp.conftest import SERVERS, approve_all, demo, results, server_event, servers, start, until
from tests.needs import missing
from tests.tasks.helpers import all_events

DONE = Turn(tool_calls=[call("attempt_completion", result="done")])
SECRET = "s3cr3t-value-0123456789abcdef"
WORKSPACE_FILE = {
    "mcpServers": {
        "ws": {"command": sys.executable, "args": [str(SERVERS / "demo.py")], "env": {"FROM_FILE": "yes"}},
    }
}


def write_workspace_file(workspace: str, doc: dict) -> None:
    os.makedirs(os.path.join(workspace, ".roo"), exist_ok=True)
    with open(os.path.join(workspace, ".roo", "mcp.json"), "w") as f:
        json.dump(doc, f)


def need_bwrap(ctx) -> None:
    sandbox = ctx.runner.settings[SETTINGS_KEY]
    if sandbox.bwrap is None:
        missing(f"bubblewrap cannot run here: {sandbox.problem}")


@pytest.mark.mcp(servers={"demo": demo("--stderr-env", "TOKEN", env_from={"TOKEN": "ROO_TEST_MCP_TOKEN"})})
@pytest.mark.gen_test(timeout=120)
async def test_secrets_reach_the_server_and_nothing_else(api: Api, fake: FakeProviderServer, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("ROO_TEST_MCP_TOKEN", SECRET)
    fake.script(Turn(tool_calls=[call("mcp--demo--env", var="TOKEN")]), DONE)
    s, t = await start(api, auto_approve={"mcp": True})
    assert (await until(api, s, t))["status"] == "completed"
    events = await all_events(api, s["id"], t["id"])
    # The server got the value (it returned it, and the daemon scrubbed it).
    assert results(events)[0]["content"] == "[redacted]"
    assert SECRET not in json.dumps(events)
    assert SECRET not in str(fake.requests[1].body)
    assert SECRET not in json.dumps((await api.get("/api/v1/mcp/servers")).json)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "starting with [redacted]" in logged and SECRET not in logged


@pytest.mark.mcp(servers={})
@pytest.mark.gen_test(timeout=120)
async def test_workspace_servers_are_off_by_default(api: Api, fake: FakeProviderServer) -> None:
    s = await api.session(provider="real", auto_approve={"mcp": True})
    write_workspace_file(s["workspace"], WORKSPACE_FILE)
    fake.script(Turn(tool_calls=[call("mcp--ws--echo", text="x")]), DONE)
    t = await api.task(s["id"], "try it")
    assert (await until(api, s, t))["status"] == "completed"
    assert not [n for n in str(fake.requests[0].body.get("tools")).split("'") if n.startswith("mcp--")]
    res = results(await all_events(api, s["id"], t["id"]))
    assert res[0]["is_error"] and '"unknown_server"' in res[0]["content"]
    assert await servers(api) == {}


@pytest.mark.mcp(servers={"demo": demo()}, allow_workspace_servers=True)
@pytest.mark.gen_test(timeout=120)
async def test_workspace_servers_run_in_the_command_sandbox(api: Api, fake: FakeProviderServer, ctx) -> None:
    need_bwrap(ctx)
    s = await api.session(provider="real")
    workspace = s["workspace"]
    write_workspace_file(workspace, WORKSPACE_FILE)
    store = str(ctx.data_dir / "roo-daemon.sqlite3")
    fake.script(
        Turn(tool_calls=[call("mcp--ws--look", paths=[store, os.path.join(workspace, ".roo")])]),
        Turn(tool_calls=[call("mcp--ws--env_names")]),
        DONE,
    )
    t = await api.task(s["id"], "look around")
    asks = await approve_all(api, s, t)
    assert [(a["kind"], a["server"], a["source"]) for a in asks] == [("mcp", "ws", "workspace")] * 2
    assert (await until(api, s, t))["status"] == "completed"
    res = [r["content"] for r in results(await all_events(api, s["id"], t["id"]))]
    # Its working directory is the workspace; the daemon's store does not exist for it.
    assert os.path.exists(store)
    assert res[0].startswith(f"cwd={os.path.realpath(workspace)} ")
    assert f"{store}=False" in res[0] and ".roo=True" in res[0]
    # Its environment: the commands' allowed variables and the file's own, nothing of the daemon's.
    names = set(res[1].split())
    assert "FROM_FILE" in names and fake.api_key_env not in names
    assert names <= {"PATH", "LANG", "LC_ALL", "TZ", "TERM", "FROM_FILE", "PWD", "SHLVL", "_", "LC_CTYPE"}, names
    listed = await servers(api)
    assert listed["ws"]["source"] == "workspace" and listed["ws"]["session_id"] == s["id"]
    assert listed["demo"]["source"] == "config"
    event = await server_event(api, lambda d: d["server"] == "ws" and d["status"] == "connected")
    assert event["session_id"] == s["id"]


@pytest.mark.mcp(servers={}, allow_workspace_servers=True)
@pytest.mark.gen_test(timeout=120)
async def test_a_workspace_file_cannot_ask_for_secrets(api: Api, fake: FakeProviderServer, caplog) -> None:
    s = await api.session(provider="real", auto_approve={"mcp": True})
    doc = {"mcpServers": {"ws": {**WORKSPACE_FILE["mcpServers"]["ws"], "env_from": {"K": fake.api_key_env}}}}
    write_workspace_file(s["workspace"], doc)
    fake.script(DONE)
    t = await api.task(s["id"], "try it")
    assert (await until(api, s, t))["status"] == "completed"
    assert await servers(api) == {}
    assert any("env_from is for the daemon config only" in r.getMessage() for r in caplog.records)


def _key(name: str, scopes: list[str]) -> dict:
    return {"name": name, "sha256": hashlib.sha256(f"{name}-token".encode()).hexdigest(), "scopes": scopes}


@pytest.mark.mcp(
    servers={"demo": demo()},
    allow_workspace_servers=True,
    keys=[_key("alice", ["read", "write"]), _key("bob", ["read", "write"]), _key("root", ["admin"])],
)
@pytest.mark.gen_test(timeout=120)
async def test_who_sees_which_servers(api: Api, fake: FakeProviderServer, ctx) -> None:
    need_bwrap(ctx)
    alice, bob, root = (Api(api.base_url, f"{n}-token") for n in ("alice", "bob", "root"))
    s = await alice.session(provider="real")
    write_workspace_file(s["workspace"], WORKSPACE_FILE)
    fake.script(DONE)
    t = await alice.task(s["id"], "discover")
    deadline = time.monotonic() + 90
    while (await alice.get(f"/api/v1/sessions/{s['id']}/tasks/{t['id']}")).json["status"] != "completed":
        assert time.monotonic() < deadline, "the task did not complete"
        await asyncio.sleep(0.1)  # REST polling: this daemon's WebSocket wants the key first
    assert set(await servers(alice)) == {"demo", "ws"}
    assert set(await servers(bob)) == {"demo"}
    assert set(await servers(root)) == {"demo", "ws"}
    assert (await api.get("/api/v1/mcp/servers")).status == 401


@pytest.mark.gen_test(timeout=120)
async def test_metrics(api: Api, fake: FakeProviderServer) -> None:
    fake.script(Turn(tool_calls=[call("mcp--demo--echo", text="m")]), DONE)
    s, t = await start(api, auto_approve={"mcp": True})
    assert (await until(api, s, t))["status"] == "completed"
    text = (await api.get("/metrics")).body.decode()
    assert 'mcp_tool_calls_total{outcome="ok",server="demo",tool="echo"} 1.0' in text
    assert 'mcp_server_starts_total{outcome="ok",server="demo"} 1.0' in text
    assert 'mcp_servers{state="connected"} 1.0' in text
    assert 'mcp_tool_call_duration_seconds_count{server="demo"} 1.0' in text
    assert 'tool_calls_total{outcome="ok",tool="mcp"} 1.0' in text
