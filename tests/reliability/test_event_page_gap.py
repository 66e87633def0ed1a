"""A REST event page for a range retention has pruned says so, as the
WebSocket's ``gap`` frame does, instead of being silently short or empty."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import wait_status


async def finished_task(api: Any) -> tuple[str, dict[str, Any]]:
    session = await api.session(provider="instant")
    task = await api.task(session["id"])
    return session["id"], await wait_status(api, session["id"], task["id"], {"completed"})


async def page(api: Any, session_id: str, task_id: str, after: int) -> dict[str, Any]:
    r = await api.get(f"/api/v1/sessions/{session_id}/tasks/{task_id}/events?after={after}")
    assert r.status == 200, r.body
    return r.json


@pytest.mark.gen_test(timeout=30)
async def test_a_page_over_a_pruned_range_says_so(api: Any, ctx: Any) -> None:
    old_sid, old = await finished_task(api)
    events = (await page(api, old_sid, old["id"], 0))["items"]
    assert len(events) > 3 and "gap" not in await page(api, old_sid, old["id"], 0)
    # Retention keeps only the newest three events: most of the task's history goes.
    assert await ctx.bus.prune(3, 10**9) > 0
    floor = ctx.bus.pruned_through
    assert events[0]["seq"] <= floor < events[-1]["seq"]

    doc = await page(api, old_sid, old["id"], 0)
    assert doc["gap"] == {"after": 0, "first_seq": floor + 1}
    assert [e["seq"] for e in doc["items"]] == [e["seq"] for e in events if e["seq"] > floor]
    # From the gap on, nothing is missing: no gap.
    assert "gap" not in await page(api, old_sid, old["id"], floor)


@pytest.mark.gen_test(timeout=30)
async def test_a_task_pruned_whole_gets_an_empty_page_with_a_gap(api: Any, ctx: Any) -> None:
    old_sid, old = await finished_task(api)
    await finished_task(api)  # newer events, so the first task's can all go
    await ctx.bus.prune(3, 10**9)
    doc = await page(api, old_sid, old["id"], 0)
    assert doc["items"] == [] and doc["has_more"] is False
    assert doc["gap"] == {"after": 0, "first_seq": ctx.bus.pruned_through + 1}
    assert doc["next_after"] == ctx.bus.pruned_through


@pytest.mark.gen_test(timeout=30)
async def test_a_task_newer_than_the_pruned_range_has_no_gap(api: Any, ctx: Any) -> None:
    await finished_task(api)
    await ctx.bus.prune(1, 10**9)
    sid, new = await finished_task(api)  # all of it after the floor
    doc = await page(api, sid, new["id"], 0)
    assert doc["items"][0]["event"] == "task.created"
    assert "gap" not in doc
