"""Small helpers shared by the task tests: paths, event pages, and waiting
on a task's events over the WebSocket (never by sleeping)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from tests.conftest import Api, WsClient

_sub_ids = itertools.count(1)


def task_path(session_id: str, task_id: str, suffix: str = "") -> str:
    return f"/api/v1/sessions/{session_id}/tasks/{task_id}{suffix}"


async def all_events(api: Api, session_id: str, task_id: str) -> list[dict[str, Any]]:
    """Every stored event of a task, through the REST pages."""
    items: list[dict[str, Any]] = []
    after = 0
    while True:
        r = await api.get(task_path(session_id, task_id, f"/events?after={after}&limit=1000"))
        assert r.status == 200, r.body
        page = r.json
        items += page["items"]
        after = page["next_after"]
        if not page["has_more"]:
            return items


async def follow(
    api: Api, task_id: str, predicate: Callable[[dict[str, Any]], bool], ws: WsClient | None = None
) -> list[dict[str, Any]]:
    """The task's event frames (replayed from the start, then live) up to and
    including the first one matching ``predicate``."""
    own = ws is None
    client = ws or await WsClient.connect(api.base_url)
    try:
        sub = f"follow-{next(_sub_ids)}"
        await client.send({"op": "subscribe", "id": sub, "task_id": task_id, "after": 0})
        first = await client.recv()
        assert first == {"event": "subscribed", "id": sub, "data": {"after": 0}}, first
        frames = await client.recv_until(lambda f: "seq" in f and predicate(f))
        if not own:
            await client.send({"op": "unsubscribe", "id": sub})
            await client.recv_until(lambda f: f.get("event") == "unsubscribed" and f.get("id") == sub)
        return frames
    finally:
        if own:
            client.close()


def named(name: str) -> Callable[[dict[str, Any]], bool]:
    return lambda f: f["event"] == name


def status_is(*statuses: str) -> Callable[[dict[str, Any]], bool]:
    return lambda f: f["event"] == "task.status" and f["data"]["status"] in statuses


async def settle(api: Api, session_id: str, task_id: str, status: str) -> dict[str, Any]:
    """Wait for the task's last event, ``task.<status>`` (it follows the
    ``task.status`` change), then return the task as fetched."""
    frames = await follow(api, task_id, named(f"task.{status}"))
    assert frames[-1]["data"]["status"] == status
    r = await api.get(task_path(session_id, task_id))
    assert r.status == 200 and r.json["status"] == status, r.json
    return r.json
