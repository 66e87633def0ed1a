"""Helpers for the WebSocket tests: subscribing, reading events, the REST
and store views of the stored events to compare against, a long stream of
events to subscribe into, and events whose fan-out the test releases."""

from __future__ import annotations

import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import Api, WsClient, make_config

# A "model" that streams one character per delta, then waits until cancelled:
# a long run of small events to subscribe into the middle of.
CHATTY_TEXT = (string.ascii_letters + string.digits) * 48 + "!"  # 2,977 deltas, "!" is the last
PONG = {"event": "pong", "id": "p", "data": {}}


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


def all_final(task_ids: list[str], name: str = "task.completed") -> Callable[[dict[str, Any]], bool]:
    """True at the frame that ends the last of these tasks, whichever order
    they end in. A session's tasks run side by side
    (``tasks.max_concurrent_tasks``), so a later one may end first: waiting
    for each in turn with :func:`final` would read past that one's end while
    waiting for an earlier one, then wait for it forever."""
    left = set(task_ids)

    def ends_the_last(f: dict[str, Any]) -> bool:
        if is_event(f) and f["event"] == name:
            left.discard(f["task_id"])
        return not left

    return ends_the_last


def status_is(task_id: str, status: str) -> Callable[[dict[str, Any]], bool]:
    return lambda f: (
        is_event(f) and f["task_id"] == task_id and f["event"] == "task.status" and f["data"]["status"] == status
    )


def chatty_config(tmp_path: Path) -> dict[str, Any]:
    """The ``chatty`` provider streams far faster than a test reads, and some
    clients pause on purpose: no client may be dropped for lag."""
    cfg = make_config(tmp_path, websocket={"send_queue_max": 10**6})
    cfg["providers"]["chatty"] = {"kind": "scripted", "chunk_chars": 1, "turns": [{"text": CHATTY_TEXT, "hang": True}]}
    return cfg


def deltas(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [f for f in frames if is_event(f) and f["event"] == "message.delta"]


def delta_is(text: str) -> Callable[[dict[str, Any]], bool]:
    return lambda f: len(deltas([f])) == 1 and f["data"]["text"] == text


def past(seq: int) -> Callable[[dict[str, Any]], bool]:
    """A frame beyond ``seq``, or the stream's last delta (whichever comes first)."""
    return lambda f: is_event(f) and (f["seq"] > seq or (f["event"] == "message.delta" and f["data"]["text"] == "!"))


async def cancel(api: Api, session_id: str, task_id: str) -> None:
    r = await api.delete(f"/api/v1/sessions/{session_id}/tasks/{task_id}")
    assert r.status == 202, r.body


def seqs(frames: list[dict[str, Any]]) -> list[int]:
    """The seqs of the event frames, in the order received."""
    return [f["seq"] for f in frames if is_event(f)]


async def store_seqs(ctx: Any, session_id: str | None = None, task_id: str | None = None, after: int = 0) -> list[int]:
    """The seqs the store holds after ``after`` for these filters, in order:
    what replays read (the REST view has no session-wide list)."""
    return [seq for seq, _ in await ctx.events.page(after, 10**6, session_id, task_id)]


def hold_fan_out(ctx: Any) -> Callable[[], list[Callable[[], None]]]:
    """From now on, events commit as usual but their fan-out waits: the
    returned function restores the store and hands back one callback per
    held event, in seq order, each fanning its event out when called. This
    recreates the window where a replay reads an event before its live copy
    leaves, without timing luck."""
    held: list[Callable[[], None]] = []
    write_row = ctx.db.write_row

    def delaying_write_row(sql: str, row: tuple, after: Callable[[], None] | None = None, **kw: Any) -> Any:
        return write_row(sql, row, after=(lambda: held.append(after)) if after is not None else None, **kw)

    ctx.db.write_row = delaying_write_row

    def release() -> list[Callable[[], None]]:
        ctx.db.write_row = write_row
        return held

    return release
