"""Scripted turns and small helpers for the checkpoint tests."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from roo_daemon.checkpoints.service import ShadowRepo
from tests.conftest import Api, WsClient
from tests.tasks.helpers import all_events, follow, named, task_path

AUTO = {"write": True, "execute": True, "allowed_commands": ["*"]}


def call(name: str, **args: Any) -> dict[str, Any]:
    return {"tool_calls": [{"name": name, "args": args}]}


def write(path: str, content: str) -> dict[str, Any]:
    return call("write_to_file", path=path, content=content)


def command(line: str) -> dict[str, Any]:
    return call("execute_command", command=line)


DONE = call("attempt_completion", result="done")


async def follow_as(api: Api, task_id: str, predicate: Any) -> list[dict[str, Any]]:
    """``follow`` over a WebSocket authenticated with the client's key."""
    headers = {"Authorization": f"Bearer {api.token}"} if api.token else {}
    ws = await WsClient.connect(api.base_url, headers)
    try:
        return await follow(api, task_id, predicate, ws)
    finally:
        ws.close()


async def run_to_end(api: Api, session_id: str, prompt: str = "go", **body: Any) -> dict[str, Any]:
    """Create a task and wait until it completes."""
    task = await api.task(session_id, prompt, **body)
    frames = await follow_as(api, task["id"], lambda f: f["event"] in ("task.completed", "task.failed"))
    assert frames[-1]["event"] == "task.completed", frames[-3:]
    return task


async def checkpoints(api: Api, session_id: str, task_id: str) -> list[dict[str, Any]]:
    r = await api.get(task_path(session_id, task_id, "/checkpoints?limit=200"))
    assert r.status == 200, r.body
    return r.json["items"]


async def saved_events(api: Api, session_id: str, task_id: str) -> list[dict[str, Any]]:
    return [e for e in await all_events(api, session_id, task_id) if e["event"] == "checkpoint.saved"]


def hold_restores(monkeypatch: pytest.MonkeyPatch) -> tuple[asyncio.Event, asyncio.Event]:
    """Hold every restore inside its git work until ``release`` is set
    (``entered`` says one is there): a request made meanwhile overlaps it
    for certain."""
    entered, release = asyncio.Event(), asyncio.Event()
    real = ShadowRepo.restore

    async def held(self: ShadowRepo, *args: Any) -> Any:
        entered.set()
        await release.wait()
        return await real(self, *args)

    monkeypatch.setattr(ShadowRepo, "restore", held)
    return entered, release


async def restore(api: Api, session_id: str, task_id: str, cid: str, scope: str = "files", **kw: Any) -> Any:
    return await api.post(task_path(session_id, task_id, f"/checkpoints/{cid}/restore"), {"scope": scope}, **kw)


__all__ = ["AUTO", "DONE", "call", "command", "named", "task_path", "write"]
