"""MCP server lifecycles in a real daemon process: a server and what it
started end when SIGHUP removes the server and when the daemon stops (no
orphans, even a grandchild that left the process group); SIGHUP reloads
``mcp.servers``; an idle server is stopped and starts again when needed."""

from __future__ import annotations

import signal

import pytest

from tests.conftest import Api, make_config
from tests.engine.fakes import FakeProviderServer, Turn, call
from tests.mcp.conftest import demo, results, server_event, servers, start, until
from tests.procs import unique_seconds, wait_gone, wait_running
from tests.server.daemon_process import DaemonProcess
from tests.tasks.helpers import all_events

DONE = Turn(tool_calls=[call("attempt_completion", result="done")])


def daemon_config(tmp_path, fake: FakeProviderServer, servers: dict) -> dict:
    cfg = make_config(tmp_path, mcp={"servers": servers, "start_timeout_seconds": 60})
    cfg["providers"]["real"] = fake.profile()
    return {k: v for k, v in cfg.items() if not k.startswith("_")}


@pytest.mark.gen_test(timeout=240)
async def test_reload_and_shutdown_leave_no_orphans(tmp_path, fake_openai: FakeProviderServer) -> None:
    fake = fake_openai
    first, second = unique_seconds(), unique_seconds()
    daemon = DaemonProcess(tmp_path, daemon_config(tmp_path, fake, {"demo": demo()}), tmp_path / "data")
    try:
        await daemon.astart(60)
        api = Api(daemon.base_url)
        fake.script(Turn(tool_calls=[call("mcp--demo--spawn", seconds=first)]), DONE)
        s, t = await start(api, auto_approve={"mcp": True})
        assert (await until(api, s, t))["status"] == "completed"
        await wait_running(first)  # the server's detached grandchild

        # SIGHUP with the server gone and another one added.
        daemon.config_path.write_text(daemon.config_path.read_text().replace("demo:", "other:", 1))
        daemon.send_signal(signal.SIGHUP)
        await daemon.await_log("mcp.servers reloaded: changed demo, other", 30)
        await wait_gone(first, 30)
        listed = await servers(api)
        assert set(listed) == {"other"} and listed["other"]["status"] == "stopped"

        fake.script(Turn(tool_calls=[call("mcp--other--spawn", seconds=second)]), DONE)
        s2, t2 = await start(api, auto_approve={"mcp": True})
        assert (await until(api, s2, t2))["status"] == "completed"
        assert results(await all_events(api, s2["id"], t2["id"]))[0]["content"] == "spawned"
        await wait_running(second)
        daemon.send_signal(signal.SIGTERM)
        assert await daemon.await_exit(60) == 0
        await wait_gone(second, 30)
    finally:
        daemon.kill()


@pytest.mark.mcp(idle_timeout_seconds=1)
@pytest.mark.gen_test(timeout=120)
async def test_an_idle_server_stops_and_starts_again(api: Api, fake: FakeProviderServer) -> None:
    marker = unique_seconds()
    fake.script(Turn(tool_calls=[call("mcp--demo--spawn", seconds=marker)]), DONE)
    s, t = await start(api, auto_approve={"mcp": True})
    assert (await until(api, s, t))["status"] == "completed"
    stopped = await server_event(api, lambda d: d["status"] == "stopped")
    assert stopped["data"]["server"] == "demo"
    await wait_gone(marker, 30)
    fake.script(Turn(tool_calls=[call("mcp--demo--echo", text="again")]), DONE)
    s2, t2 = await start(api, auto_approve={"mcp": True})
    assert (await until(api, s2, t2))["status"] == "completed"
    assert results(await all_events(api, s2["id"], t2["id"]))[0]["content"] == "echo: again"
