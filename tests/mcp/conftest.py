"""Fixtures for the MCP tests: real MCP servers (tests/mcp/servers, written
with the SDK's server side) configured into a daemon driven through its API
by the fake OpenAI/Anthropic providers (tests/engine/fakes.py).

A test names its servers with ``@pytest.mark.mcp(servers={...}, **mcp)``
(``{tmp}`` in them is the test's tmp_path); the rest of the ``mcp`` section
gets test-friendly values. The provider is
the fake OpenAI unless the test parametrizes ``fake`` (``indirect=True``).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Api, WsClient, make_config
from tests.engine.fakes import FakeProviderServer, fake_anthropic, fake_openai  # noqa: F401 (fixtures)
from tests.engine.test_tasks_with_fakes import answer, start, until  # noqa: F401 (the same flows)

SERVERS = Path(__file__).parent / "servers"
REPO = Path(__file__).resolve().parents[2]


def pytest_configure(config: Any) -> None:
    config.addinivalue_line("markers", "mcp(servers=..., **settings): the daemon's mcp section for a test")


def demo(*args: str, **entry: Any) -> dict[str, Any]:
    """A stdio entry for the demo server."""
    return {"command": sys.executable, "args": [str(SERVERS / "demo.py"), *args], **entry}


def bad(mode: str, **entry: Any) -> dict[str, Any]:
    return {"command": sys.executable, "args": [str(SERVERS / "bad.py"), mode], **entry}


@pytest.fixture
def fake(request: pytest.FixtureRequest) -> FakeProviderServer:
    kind = getattr(request, "param", "openai")
    return request.getfixturevalue(f"fake_{kind}")


@pytest.fixture
def config(tmp_path: Path, fake: FakeProviderServer, request: pytest.FixtureRequest) -> dict[str, Any]:
    marker = request.node.get_closest_marker("mcp")
    settings = dict(marker.kwargs) if marker else {}
    keys = settings.pop("keys", [])
    servers = json.loads(json.dumps(settings.pop("servers", {"demo": demo()})).replace("{tmp}", str(tmp_path)))
    mcp = {"servers": servers, "start_timeout_seconds": 60, **settings}
    cfg = make_config(
        tmp_path,
        auth={"keys": keys},
        engine={"max_concurrent_tasks": 4},
        mcp=mcp,
        # Workspace servers run in the sandbox: let it see this checkout (its .venv and
        # tests/) and the interpreter the venv points to (pyenv's lives under /root).
        tools={"sandbox_read_only_paths": sorted({str(REPO), os.path.realpath(sys.base_prefix)})},
    )
    cfg["providers"]["real"] = fake.profile()
    return cfg


async def approve_all(api: Api, s: dict, t: dict) -> list[dict]:
    """Answer every ask of the task with an approval until it ends; its asks."""
    asks: list[dict] = []
    ws = await WsClient.connect(api.base_url)
    try:
        await ws.send({"op": "subscribe", "id": "asks", "task_id": t["id"], "after": 0})
        while True:
            frame = await ws.recv()
            assert frame is not None
            if frame.get("event") == "ask":
                asks.append(frame["data"])
                await answer(api, {"id": t["id"], "session_id": s["id"], "pending_ask": frame["data"]})
            elif frame.get("event") in ("task.completed", "task.failed", "task.cancelled"):
                return asks
    finally:
        ws.close()


async def servers(api: Api) -> dict[str, dict]:
    r = await api.get("/api/v1/mcp/servers")
    assert r.status == 200, r.body
    return {s["name"]: s for s in r.json["items"]}


async def server_event(api: Api, predicate: Any, after: int = 0) -> dict:
    """The first ``mcp.server`` event matching ``predicate`` (replayed, then live)."""
    ws = await WsClient.connect(api.base_url)
    try:
        await ws.send({"op": "subscribe", "id": "mcp", "after": after})
        frames = await ws.recv_until(lambda f: f.get("event") == "mcp.server" and predicate(f["data"]))
    finally:
        ws.close()
    return frames[-1]


async def appears(path: Path, timeout: float = 60) -> None:
    """Until ``path`` exists (a server's note), without blocking the loop."""
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(path.exists):
        assert time.monotonic() < deadline, f"{path} did not appear within {timeout}s"
        await asyncio.sleep(0.05)


def tool_names(request_body: dict) -> list[str]:
    """The function names offered in a provider request (either dialect)."""
    return [t.get("name") or t["function"]["name"] for t in request_body.get("tools") or []]


def results(events: list[dict]) -> list[dict]:
    return [e["data"] for e in events if e["event"] == "tool.result"]
