"""MCP tools end to end: a daemon with a real MCP server (stdio, then
Streamable HTTP), driven through its API by the fake OpenAI and Anthropic
providers: discovery, a call with approval, alwaysAllow, auto_approve.mcp,
a resource read, images, an error result, list_changed, and modes."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from roo_daemon.app import make_app
from roo_daemon.context import open_context
from roo_daemon.engine.prompts import MCP_CAPABILITY
from tests.checkpoints.helpers import checkpoints
from tests.conftest import Api, make_config
from tests.engine.fakes import FakeProviderServer, Turn, call
from tests.mcp.conftest import SERVERS, answer, demo, results, servers, start, tool_names, until
from tests.tasks.helpers import all_events

DONE = Turn(tool_calls=[call("attempt_completion", result="done")])


@pytest.mark.parametrize("fake", ["openai", "anthropic"], indirect=True)
@pytest.mark.gen_test(timeout=120)
async def test_discovery_and_a_call_with_approval(api: Api, fake: FakeProviderServer) -> None:
    before = await servers(api)
    assert before["demo"]["status"] == "stopped" and before["demo"]["tools"] == []
    fake.script(Turn(tool_calls=[call("mcp--demo--echo", text="hi there")]), DONE)
    s, t = await start(api)
    waiting = await until(api, s, t, "waiting")
    ask = waiting["pending_ask"]
    assert ask["kind"] == "mcp"
    assert (ask["server"], ask["tool"], ask["args"], ask["source"]) == ("demo", "echo", {"text": "hi there"}, "config")
    # The model was offered the server's tools with Roo's names and the server's schemas.
    offered = fake.requests[0].body["tools"]
    names = tool_names(fake.requests[0].body)
    assert "mcp--demo--echo" in names and "access_mcp_resource" in names and "read_file" in names
    echo = next(t for t in offered if (t.get("name") or t["function"]["name"]) == "mcp--demo--echo")
    schema = echo.get("input_schema") or echo["function"]["parameters"]
    assert schema["properties"]["text"]["type"] == "string" and schema["required"] == ["text"]
    assert "mcp--demo--broken" not in names
    # Roo's CAPABILITIES line about MCP servers is in the system prompt.
    assert MCP_CAPABILITY.split(". ")[0] in str(fake.requests[0].body)
    await answer(api, waiting)
    done = await until(api, s, t)
    assert done["status"] == "completed", done
    res = results(await all_events(api, s["id"], t["id"]))
    assert res[0] == {"id": res[0]["id"], "tool": "mcp--demo--echo", "is_error": False, "content": "echo: hi there"}
    assert "echo: hi there" in str(fake.requests[1].body)
    after = (await servers(api))["demo"]
    assert after["status"] == "connected" and after["last_error"] is None
    assert {
        "name": "echo",
        "function": "mcp--demo--echo",
        "description": "Echo the text back.",
        "always_allow": False,
    } in after["tools"]
    assert after["resources"] == 1


@pytest.mark.gen_test(timeout=120)
async def test_a_denied_call_is_not_made(api: Api, fake: FakeProviderServer) -> None:
    fake.script(Turn(tool_calls=[call("mcp--demo--add", a=1, b=2)]), DONE)
    s, t = await start(api)
    await answer(api, await until(api, s, t, "waiting"), approve=False, text="not now")
    assert (await until(api, s, t))["status"] == "completed"
    res = results(await all_events(api, s["id"], t["id"]))
    assert res[0]["is_error"] and "not now" in res[0]["content"]
    # The call was not made: no tool result the model gets holds its sum. (Only
    # the tool results: the environment details after them hold a time and a cost.)
    results_sent = [str(m["content"]) for m in fake.requests[1].body["messages"] if "tool" in str(m.get("role"))]
    results_sent += [
        str(block)
        for m in fake.requests[1].body["messages"]
        if isinstance(m.get("content"), list)
        for block in m["content"]
        if isinstance(block, dict) and block.get("type") == "tool_result"
    ]
    assert results_sent and any("not now" in r for r in results_sent), results_sent
    assert not any("3.0" in r for r in results_sent), results_sent


@pytest.mark.mcp(servers={"demo": demo(alwaysAllow=["add"])})
@pytest.mark.gen_test(timeout=120)
async def test_always_allow_runs_without_asking(api: Api, fake: FakeProviderServer) -> None:
    fake.script(
        Turn(tool_calls=[call("mcp--demo--add", a=2, b=3)]), Turn(tool_calls=[call("mcp--demo--echo", text="x")]), DONE
    )
    s, t = await start(api)
    waiting = await until(api, s, t, "waiting")  # add ran at once; echo is not in alwaysAllow
    assert waiting["pending_ask"]["tool"] == "echo"
    assert "5.0" in str(fake.requests[1].body)
    await answer(api, waiting)
    assert (await until(api, s, t))["status"] == "completed"
    listed = {x["name"]: x["always_allow"] for x in (await servers(api))["demo"]["tools"]}
    assert listed["add"] is True and listed["echo"] is False


@pytest.mark.gen_test(timeout=120)
async def test_auto_approve_mcp_and_a_resource_read(api: Api, fake: FakeProviderServer) -> None:
    fake.script(
        Turn(tool_calls=[call("access_mcp_resource", server_name="demo", uri="demo://greeting")]),
        Turn(tool_calls=[call("access_mcp_resource", server_name="nope", uri="x://y")]),
        Turn(tool_calls=[call("mcp--demo--embedded")]),
        Turn(tool_calls=[call("mcp--demo--fail")]),
        DONE,
    )
    s, t = await start(api, auto_approve={"mcp": True})
    done = await until(api, s, t)
    assert done["status"] == "completed", done
    res = results(await all_events(api, s["id"], t["id"]))
    assert res[0]["content"] == "hello from a resource" and not res[0]["is_error"]
    assert res[1]["is_error"] and '"unknown_server"' in res[1]["content"] and '"demo"' in res[1]["content"]
    # An embedded resource is shown as its JSON, without a blob (Roo's processToolContent).
    assert '"uri": "demo://notes"' in res[2]["content"] and '"text": "n1"' in res[2]["content"]
    # The server's own error result: an error for the model, not for the task.
    assert res[3]["is_error"] and res[3]["content"].startswith("Error:\n") and "fail" in res[3]["content"]


@pytest.mark.parametrize("fake", ["openai", "anthropic"], indirect=True)
@pytest.mark.gen_test(timeout=120)
async def test_an_image_result_reaches_the_model(api: Api, fake: FakeProviderServer) -> None:
    fake.script(Turn(tool_calls=[call("mcp--demo--picture")]), DONE)
    s, t = await start(api, auto_approve={"mcp": True})
    assert (await until(api, s, t))["status"] == "completed"
    sent = fake.requests[1].body["messages"]
    if fake.kind == "anthropic":
        block = next(b for m in sent for b in m["content"] if isinstance(b, dict) and b.get("type") == "tool_result")
        kinds = [c["type"] for c in block["content"]]
        assert kinds == ["text", "image"] and block["content"][1]["source"]["media_type"] == "image/png"
    else:
        tool = next(m for m in sent if m["role"] == "tool")
        assert "a red dot" in tool["content"]
        image = next(m for m in sent if m["role"] == "user" and isinstance(m["content"], list))
        assert image["content"][-1]["image_url"]["url"].startswith("data:image/png;base64,")


@pytest.mark.gen_test(timeout=120)
async def test_list_changed_refreshes_the_tools(api: Api, fake: FakeProviderServer) -> None:
    fake.script(Turn(tool_calls=[call("mcp--demo--grow")]), Turn(tool_calls=[call("mcp--demo--extra")]), DONE)
    s, t = await start(api, auto_approve={"mcp": True})
    done = await until(api, s, t)
    assert done["status"] == "completed", done
    assert "mcp--demo--extra" not in tool_names(fake.requests[0].body)
    assert "mcp--demo--extra" in tool_names(fake.requests[1].body)
    res = results(await all_events(api, s["id"], t["id"]))
    assert res[1]["content"] == "extra tool here"
    assert "extra" in [x["name"] for x in (await servers(api))["demo"]["tools"]]


@pytest.mark.gen_test(timeout=120)
async def test_modes_without_the_mcp_group_get_no_mcp_tools(api: Api, fake: FakeProviderServer) -> None:
    fake.script(Turn(tool_calls=[call("mcp--demo--echo", text="x")]), DONE)
    s, t = await start(api, mode="orchestrator", auto_approve={"mcp": True})
    assert (await until(api, s, t))["status"] == "completed"
    names = tool_names(fake.requests[0].body)
    assert not [n for n in names if n.startswith("mcp") or n == "access_mcp_resource"]
    assert MCP_CAPABILITY.split(". ")[0] not in str(fake.requests[0].body)
    res = results(await all_events(api, s["id"], t["id"]))
    assert res[0]["is_error"] and "not allowed in orchestrator mode" in res[0]["content"]


@pytest.mark.gen_test(timeout=120)
async def test_models_that_write_underscores_still_reach_the_tool(api: Api, fake: FakeProviderServer) -> None:
    fake.script(Turn(tool_calls=[call("mcp__demo__echo", text="mangled")]), DONE)
    s, t = await start(api, auto_approve={"mcp": True})
    assert (await until(api, s, t))["status"] == "completed"
    assert results(await all_events(api, s["id"], t["id"]))[0]["content"] == "echo: mangled"


@pytest.fixture
def mcp_http_port():
    """The demo server over Streamable HTTP, in its own process on 127.0.0.1."""
    proc = subprocess.Popen([sys.executable, str(SERVERS / "demo.py"), "--http"], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()  # "PORT n", once it listens
        assert line.startswith("PORT "), line
        yield int(line.split()[1])
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.gen_test(timeout=120)
async def test_a_streamable_http_server(tmp_path, fake: FakeProviderServer, mcp_http_port: int) -> None:
    """The same flow against the demo server over Streamable HTTP on 127.0.0.1."""
    cfg = make_config(
        tmp_path,
        mcp={
            "servers": {"web": {"type": "streamable-http", "url": f"http://127.0.0.1:{mcp_http_port}/mcp"}},
            "start_timeout_seconds": 60,
        },
    )
    cfg["providers"]["real"] = fake.profile()
    ctx = await open_context(cfg)
    sockets = bind_sockets(0, "127.0.0.1")
    server = HTTPServer(make_app(ctx))
    server.add_sockets(sockets)
    api = Api(f"http://127.0.0.1:{sockets[0].getsockname()[1]}")
    try:
        fake.script(Turn(tool_calls=[call("mcp--web--add", a=40, b=2)]), DONE)
        s, t = await start(api, auto_approve={"mcp": True})
        assert (await until(api, s, t))["status"] == "completed"
        assert results(await all_events(api, s["id"], t["id"]))[0]["content"] == "42.0"
        web = (await servers(api))["web"]
        assert web["transport"] == "streamable-http" and web["status"] == "connected"
        assert web["url"] == f"http://127.0.0.1:{mcp_http_port}/mcp"
    finally:
        server.stop()
        await ctx.close()
        await asyncio.sleep(0)


@pytest.mark.gen_test(timeout=120)
async def test_tools_that_may_change_files_get_checkpoints(api: Api, fake: FakeProviderServer) -> None:
    """Every MCP tool may change files unless it says readOnlyHint (the MCP
    spec's default): a checkpoint follows its call, as after an edit."""
    s = await api.session(provider="real", auto_approve={"mcp": True})
    ws = s["workspace"]
    fake.script(
        Turn(tool_calls=[call("mcp--demo--write", path=f"{ws}/a.txt", text="one")]),
        Turn(tool_calls=[call("mcp--demo--liar", path=f"{ws}/b.txt")]),
        DONE,
    )
    t = await api.task(s["id"], "write")
    assert (await until(api, s, t))["status"] == "completed"
    items = await checkpoints(api, s["id"], t["id"])
    assert [c["after_tool"] for c in items] == [None, "mcp--demo--write"]
    assert items[1]["files_changed"] == [{"path": "a.txt", "status": "added"}]
