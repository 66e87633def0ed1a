"""MCP servers that fail, through the API: a crash and the restart, a call
that hangs past its timeout, a cancelled task's call, servers that do not
start, speak garbage or hang in initialize, a 10 MB result, a tool with an
invalid schema. Each is a clear tool error; the task, the other server and
the daemon carry on; the log names the server."""

from __future__ import annotations

import logging

import pytest

from tests.conftest import Api
from tests.engine.fakes import FakeProviderServer, Turn, call
from tests.mcp.conftest import appears, bad, demo, results, server_event, servers, start, until
from tests.tasks.helpers import all_events

DONE = Turn(tool_calls=[call("attempt_completion", result="done")])


@pytest.mark.gen_test(timeout=120)
async def test_a_crash_is_a_tool_error_and_the_server_restarts(api: Api, fake: FakeProviderServer) -> None:
    fake.script(
        Turn(tool_calls=[call("mcp--demo--crash")]),
        Turn(tool_calls=[call("mcp--demo--echo", text="back again")]),
        DONE,
    )
    s, t = await start(api, auto_approve={"mcp": True})
    done = await until(api, s, t)
    assert done["status"] == "completed", done
    res = results(await all_events(api, s["id"], t["id"]))
    assert res[0]["is_error"]
    assert "The MCP server 'demo' is not available" in res[0]["content"]
    assert "exited with status 3" in res[0]["content"]
    assert res[1] == {**res[1], "is_error": False, "content": "echo: back again"}
    error = await server_event(api, lambda d: d["status"] == "error")
    assert error["session_id"] is None and "exited with status 3" in error["data"]["error"]
    await server_event(api, lambda d: d["status"] == "connected" and d["restarts"] == 1)
    demo_now = (await servers(api))["demo"]
    assert demo_now["restarts"] == 1 and demo_now["status"] == "connected"


@pytest.mark.mcp(servers={"demo": demo(timeout=2)})
@pytest.mark.gen_test(timeout=120)
async def test_a_hanging_call_times_out_and_the_server_carries_on(api: Api, fake: FakeProviderServer, tmp_path) -> None:
    fake.script(
        Turn(tool_calls=[call("mcp--demo--hang", seconds=300)]),
        Turn(tool_calls=[call("mcp--demo--echo", text="still here")]),
        DONE,
    )
    s, t = await start(api, auto_approve={"mcp": True})
    done = await until(api, s, t)
    assert done["status"] == "completed", done
    res = results(await all_events(api, s["id"], t["id"]))
    assert res[0]["is_error"] and "The MCP tool 'hang' of server 'demo' timed out" in res[0]["content"]
    assert "no answer within 2 s" in res[0]["content"]
    assert res[1]["content"] == "echo: still here"
    assert (await servers(api))["demo"]["restarts"] == 0


@pytest.mark.mcp(servers={"demo": demo("--marker", "{tmp}")})
@pytest.mark.gen_test(timeout=120)
async def test_cancelling_the_task_cancels_its_call(api: Api, fake: FakeProviderServer, tmp_path) -> None:
    fake.script(Turn(tool_calls=[call("mcp--demo--hang", seconds=300)]), DONE)
    s, t = await start(api, auto_approve={"mcp": True})
    await appears(tmp_path / "hang-started")
    r = await api.delete(f"/api/v1/sessions/{s['id']}/tasks/{t['id']}")
    assert r.status == 202 and r.json["status"] == "cancelled"
    # The SDK told the server (notifications/cancelled), which stopped the tool.
    await appears(tmp_path / "hang-cancelled")
    assert (await servers(api))["demo"]["status"] == "connected"


BROKEN = {
    "missing": {"command": "/nonexistent/mcp-server"},
    "garbage": bad("garbage"),
    "silent": bad("silent"),
    "exits": bad("exit"),
    "demo": demo("--invalid-schema"),
}


# Long enough for the demo server to start on a loaded machine; the bad ones use all of it.
@pytest.mark.mcp(servers=BROKEN, start_timeout_seconds=15)
@pytest.mark.gen_test(timeout=180)
async def test_bad_servers_are_clear_tool_errors(api: Api, fake: FakeProviderServer, caplog) -> None:
    caplog.set_level(logging.INFO, "roo_daemon.mcp")
    fake.script(
        Turn(
            tool_calls=[
                call("mcp--missing--anything"),
                call("mcp--garbage--anything"),
                call("mcp--silent--anything"),
                call("mcp--exits--anything"),
                call("mcp--demo--broken", x=1),
                call("mcp--demo--nope"),
                call("mcp--demo--big", size=10 * 1024 * 1024),
                call("mcp--demo--echo", text="the good one"),
            ]
        ),
        DONE,
    )
    s, t = await start(api, auto_approve={"mcp": True})
    done = await until(api, s, t)
    assert done["status"] == "completed", done
    res = [r["content"] for r in results(await all_events(api, s["id"], t["id"]))]
    assert res[0] == (
        "The MCP server 'missing' is not available: cannot start '/nonexistent/mcp-server': "
        "no such program (looked in its PATH and cwd)"
    )
    assert "The MCP server 'garbage' is not available: no answer to initialize within 15 s" in res[1]
    assert "not JSON-RPC, the first: 'this is not JSON-RPC, it is garbage'" in res[1]
    assert "The MCP server 'silent' is not available: no answer to initialize within 15 s" in res[2]
    assert "The MCP server 'exits' is not available" in res[3] and "exited with status 1" in res[3]
    assert "fatal: GITHUB_TOKEN is not set" in res[3]
    assert "offers a tool 'broken' that cannot be used: its inputSchema is not a valid JSON Schema" in res[4]
    assert '"unknown_tool"' in res[5] and '"echo"' in res[5]
    assert "returned 10.0 MiB" in res[6] and "mcp.max_result_bytes" in res[6]
    assert res[7] == "echo: the good one"
    listed = await servers(api)
    # The bad ones are retried with backoff: each is in error, or starting again, and says why.
    assert listed["demo"]["status"] == "connected"
    for name in ("missing", "garbage", "silent", "exits"):
        assert listed[name]["status"] in ("error", "starting") and listed[name]["last_error"], listed[name]
    assert listed["demo"]["invalid_tools"][0]["name"] == "broken"
    # Each failure is logged under the server's name.
    logged = [r.getMessage() for r in caplog.records if r.name == "roo_daemon.mcp"]
    for name in ("missing", "garbage", "silent", "exits"):
        assert any(f"MCP server '{name}' failed" in m for m in logged), (name, logged)
    assert any("'demo': tool 'broken' is not offered" in m for m in logged)
    # The daemon is fine: another task runs.
    fake.script(DONE)
    s2, t2 = await start(api)
    assert (await until(api, s2, t2))["status"] == "completed"
