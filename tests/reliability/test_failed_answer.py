"""A failed write must not wedge a task (issue #9, item 2).

Answering an ask used to claim it in memory (``pending_ask = None``) before
its ``ask.answered`` event was written: when that write failed (input the
store refused, a full disk), the task stayed ``waiting`` with no pending ask
forever, and every later answer was a 409. Now the ask is only held while
the write is in flight, and given back if it fails: the task still waits,
and the client can answer again."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from roo_daemon.events import UnstorableEvent
from tests.conftest import wait_status


async def waiting_task(api: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    session = await api.session(provider="followup")
    task = await api.task(session["id"])
    return session, await wait_status(api, session["id"], task["id"], {"waiting"})


def fail_next_commit(ctx: Any, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The store's next transaction fails as a full disk would; later ones work."""
    original = ctx.db._apply
    failed: list[int] = []

    def apply(fns: list) -> list:
        if not failed:
            failed.append(len(fns))
            raise sqlite3.OperationalError("database or disk is full")
        return original(fns)

    monkeypatch.setattr(ctx.db, "_apply", apply)
    return failed


@pytest.mark.gen_test(timeout=30)
async def test_an_answer_whose_write_fails_leaves_the_ask_pending(api: Any, ctx: Any, monkeypatch: Any) -> None:
    session, task = await waiting_task(api)
    ask = task["pending_ask"]
    url = f"/api/v1/sessions/{session['id']}/tasks/{task['id']}"
    failed = fail_next_commit(ctx, monkeypatch)
    r = await api.post(f"{url}/responses", {"ask_id": ask["id"], "approve": True, "text": "Python"})
    assert failed, "the answer's write did not reach the store"
    assert r.status >= 500, r.body
    again = (await api.get(url)).json
    assert again["status"] == "waiting" and again["pending_ask"] == ask, again
    r = await api.post(f"{url}/responses", {"ask_id": ask["id"], "approve": True, "text": "Python"})
    assert r.status == 200, r.body
    assert (await wait_status(api, session["id"], task["id"], {"completed"}))["status"] == "completed"


@pytest.mark.gen_test(timeout=30)
async def test_an_answer_the_store_cannot_take_leaves_the_ask_pending(api: Any, ctx: Any) -> None:
    """Past the API edge (which refuses a lone surrogate with 422): the run
    itself gives the ask back when the event cannot be encoded."""
    session, task = await waiting_task(api)
    ask = task["pending_ask"]
    run = ctx.runner.live(task["id"])
    with pytest.raises(UnstorableEvent):
        await run.answer(ask["id"], True, "bad \ud800")
    url = f"/api/v1/sessions/{session['id']}/tasks/{task['id']}"
    again = (await api.get(url)).json
    assert again["status"] == "waiting" and again["pending_ask"] == ask, again
    r = await api.post(f"{url}/responses", {"ask_id": ask["id"], "approve": True, "text": "Go"})
    assert r.status == 200, r.body
    assert (await wait_status(api, session["id"], task["id"], {"completed"}))["status"] == "completed"
