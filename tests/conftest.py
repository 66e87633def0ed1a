"""Shared fixtures: a daemon (app + context) on a temporary data dir, and an
HTTP client whose every response is checked against ``openapi.yaml``."""

from __future__ import annotations

import itertools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import websocket_connect

from roo_daemon.app import make_app
from roo_daemon.config import load_config
from roo_daemon.context import open_context
from tests.contract import check_response, check_ws_frame

# Scripted providers the tests use; each turn list is a deterministic "model".
PROVIDERS: dict[str, Any] = {
    "demo": {"kind": "scripted"},
    "hang": {"kind": "scripted", "turns": [{"text": "Working on it, slowly...", "hang": True}]},
    "followup": {
        "kind": "scripted",
        "turns": [
            {
                "text": "I need to know one thing.",
                "tool_calls": [
                    {
                        "name": "ask_followup_question",
                        "args": {"question": "Which language?", "follow_up": ["Python", "Go"]},
                    }
                ],
            },
            {"text": "Thanks.", "tool_calls": [{"name": "attempt_completion", "args": {"result": "answered"}}]},
        ],
    },
    "instant": {
        "kind": "scripted",
        "turns": [
            {
                "text": "Done at once.",
                "tool_calls": [{"name": "attempt_completion", "args": {"result": "ok"}}],
                "usage": {"tokens_in": 10, "tokens_out": 5, "cost_usd": 0.001},
            }
        ],
    },
    "broken": {"kind": "scripted", "turns": [{"error": "the scripted model is down"}]},
}


# ROO_TEST_STORE=postgresql runs the tests that build their config with
# make_config on the PostgreSQL store (a fresh database per test) instead of
# SQLite: .ci/run does so for the areas that use the store.
PG_DSN_ENV = "ROO_TEST_PG_DSN"


def on_postgresql() -> bool:
    return os.environ.get("ROO_TEST_STORE", "sqlite") == "postgresql"


@pytest.fixture(autouse=True)
def _store_backend(request: Any, monkeypatch: Any) -> None:
    if on_postgresql():
        monkeypatch.setenv(PG_DSN_ENV, request.getfixturevalue("pg_dsn"))


def make_config(tmp_path: Path, **sections: dict[str, Any]) -> dict[str, Any]:
    roots = tmp_path / "roots"
    roots.mkdir(exist_ok=True)
    overrides = {
        "store.data_dir": str(tmp_path / "data"),
        "workspaces.roots": [str(roots)],
        "websocket.ping_interval_seconds": 0,
        # One message.delta per provider delta: tests count and order them.
        "engine.delta_coalesce_ms": 0,
    }
    if on_postgresql():
        # The whole suite on the PostgreSQL store: the autouse fixture
        # _store_backend has put a fresh database's DSN in PG_DSN_ENV.
        overrides["store.backend"] = "postgresql"
        overrides["store.dsn_env"] = PG_DSN_ENV
    for section, values in sections.items():
        for key, value in values.items():
            overrides[f"{section}.{key}"] = value
    cfg = load_config(None, env={}, overrides=overrides)
    cfg["providers"] = json.loads(json.dumps(PROVIDERS))
    return cfg


@pytest.fixture
def config(tmp_path: Path) -> dict[str, Any]:
    return make_config(tmp_path)


@pytest.fixture
def ctx(io_loop: Any, config: dict[str, Any]) -> Any:
    context = io_loop.run_sync(lambda: open_context(config))
    yield context

    async def close() -> None:
        for ws in list(context.websockets):
            ws.close(1001)
        await context.close()

    io_loop.run_sync(close)


@pytest.fixture
def app(ctx: Any) -> Any:
    return make_app(ctx)


@dataclass
class Response:
    status: int
    headers: Any
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class Api:
    """An HTTP client for the daemon under test. Every response is checked
    against the spec before the test sees it."""

    def __init__(self, base_url: str, token: str | None = None) -> None:
        self.base_url = base_url
        self.token = token
        self.client = AsyncHTTPClient()

    async def request(
        self,
        method: str,
        path: str,
        json_body: Any = None,
        *,
        body: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        check: bool = True,
    ) -> Response:
        hdrs = dict(headers or {})
        if self.token and "Authorization" not in hdrs:
            hdrs["Authorization"] = f"Bearer {self.token}"
        if json_body is not None:
            body = json.dumps(json_body)
            hdrs.setdefault("Content-Type", "application/json")
        if body is None and method in ("POST", "PUT", "PATCH"):
            body = b""
        req = HTTPRequest(
            self.base_url + path,
            method=method,
            body=body,
            headers=hdrs,
            allow_nonstandard_methods=True,
            request_timeout=30,
            follow_redirects=False,  # a redirect is an answer to check, like any other
        )
        r = await self.client.fetch(req, raise_error=False)
        if r.code == 599:
            raise r.error  # type: ignore[misc]
        resp = Response(r.code, r.headers, r.body or b"")
        if check:
            check_response(method, path, resp.status, resp.headers, resp.body)
        return resp

    async def get(self, path: str, **kw: Any) -> Response:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, json_body: Any = None, **kw: Any) -> Response:
        return await self.request("POST", path, json_body, **kw)

    async def delete(self, path: str, **kw: Any) -> Response:
        return await self.request("DELETE", path, **kw)

    # Conveniences for the common flows.

    async def session(self, **body: Any) -> dict[str, Any]:
        r = await self.post("/api/v1/sessions", body)
        assert r.status == 201, r.body
        return r.json

    async def task(self, session_id: str, prompt: str = "do it", **body: Any) -> dict[str, Any]:
        r = await self.post(f"/api/v1/sessions/{session_id}/tasks", {"prompt": prompt, **body})
        assert r.status == 202, r.body
        return r.json


@pytest.fixture
def api(http_server: Any, base_url: str) -> Api:
    return Api(base_url)


class WsClient:
    """A WebSocket client whose every received frame is checked against the spec."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    @classmethod
    async def connect(cls, base_url: str, headers: dict[str, str] | None = None) -> WsClient:
        url = base_url.replace("http://", "ws://") + "/ws"
        conn = await websocket_connect(HTTPRequest(url, headers=headers or {}))
        return cls(conn)

    async def send(self, frame: dict[str, Any] | str) -> None:
        await self.conn.write_message(frame if isinstance(frame, str) else json.dumps(frame))

    async def recv(self) -> dict[str, Any] | None:
        msg = await self.conn.read_message()
        return None if msg is None else check_ws_frame(msg)

    async def recv_until(self, predicate: Any) -> list[dict[str, Any]]:
        """Frames up to and including the first one matching ``predicate``."""
        frames = []
        while True:
            frame = await self.recv()
            assert frame is not None, f"connection closed before the expected frame; got {frames[-3:]}"
            frames.append(frame)
            if predicate(frame):
                return frames

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def ws_connect(http_server: Any, base_url: str) -> Any:
    clients: list[WsClient] = []

    async def connect(headers: dict[str, str] | None = None) -> WsClient:
        client = await WsClient.connect(base_url, headers)
        clients.append(client)
        return client

    yield connect
    for c in clients:
        c.close()


_wait_ids = itertools.count(1)


async def wait_status(api: Api, session_id: str, task_id: str, statuses: set[str], ws: WsClient | None = None) -> dict:
    """Wait for a task to reach one of ``statuses`` by following its events
    (no sleeping): replay from the start, then live."""
    own_ws = ws is None
    if own_ws:
        ws = await WsClient.connect(api.base_url)
    try:
        await ws.send({"op": "subscribe", "id": f"wait-{next(_wait_ids)}", "task_id": task_id, "after": 0})
        await ws.recv_until(
            lambda f: f.get("event") == "task.status" and f["task_id"] == task_id and f["data"]["status"] in statuses
        )
    finally:
        if own_ws:
            ws.close()
    r = await api.get(f"/api/v1/sessions/{session_id}/tasks/{task_id}")
    return r.json


@pytest.fixture(scope="session")
def pg_server() -> Any:
    """A throwaway PostgreSQL for the session (tests/pgserver.py), started
    by the first test that needs it; skips (fails in CI) without one."""
    from tests.pgserver import start_or_skip

    server = start_or_skip()
    yield server
    server.stop()


@pytest.fixture
def pg_dsn(pg_server: Any) -> str:
    """A fresh, empty database of its own for one test."""
    return pg_server.fresh_database()
