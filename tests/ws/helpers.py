"""Helpers for the WebSocket tests: subscribing, reading events, and the
REST view of a task's stored events to compare against."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.conftest import Api, WsClient


async def subscribe(ws: WsClient, sub_id: str, **fields: Any) -> dict[str, Any]:
    """Send a subscribe op and check its ``subscribed`` reply."""
    await ws.send({"op": "subscribe", "id": sub_id, **fields})
    reply = await ws.recv()
    expected_data = {"after": fields["after"]} if fields.get("after") is not None else {}
    assert reply == {"event": "subscribed", "id": sub_id, "data": expected_data}, reply
    return reply


async def ping(ws: WsClient, ping_id: str = "p") -> list[dict[str, Any]]:
    """Send a ping; return every frame received up to and including the pong.
    Frames are in order, so anything the server sent before the pong is here."""
    await ws.send({"op": "ping", "id": ping_id})
    return await ws.recv_until(lambda f: f.get("event") == "pong" and f.get("id") == ping_id)


async def stored_events(api: Api, session_id: str, task_id: str, after: int = 0) -> list[dict[str, Any]]:
    """The task's stored events with ``seq > after``, through the REST pages."""
    items: list[dict[str, Any]] = []
    while True:
        r = await api.get(f"/api/v1/sessions/{session_id}/tasks/{task_id}/events?after={after}&limit=1000")
        assert r.status == 200, r.body
        items += r.json["items"]
        after = r.json["next_after"]
        if not r.json["has_more"]:
            return items


def is_event(f: dict[str, Any]) -> bool:
    return "seq" in f


def final(task_id: str, name: str = "task.completed") -> Callable[[dict[str, Any]], bool]:
    return lambda f: is_event(f) and f["task_id"] == task_id and f["event"] == name


def status_is(task_id: str, status: str) -> Callable[[dict[str, Any]], bool]:
    return lambda f: (
        is_event(f) and f["task_id"] == task_id and f["event"] == "task.status" and f["data"]["status"] == status
    )
