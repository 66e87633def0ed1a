"""Restoring files and conversation, as Roo-Code's "restore files & task":
the workspace and the task's stored conversation go back to the
checkpoint; continuing the task goes on from there."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from tests.checkpoints.helpers import AUTO, DONE, checkpoints, follow_as, hold_restores, restore, run_to_end, write
from tests.conftest import Api, make_config
from tests.tasks.helpers import all_events, task_path


@pytest.fixture
def config(tmp_path: Path) -> dict[str, Any]:
    cfg = make_config(tmp_path)
    cfg["providers"]["steps"] = {
        "kind": "scripted",
        # Turn n answers the task's n-th request: the continuation gets turns 3 and 4.
        "turns": [write("a.txt", "A\n"), write("b.txt", "B\n"), DONE, write("c.txt", "C\n"), DONE],
    }
    cfg["providers"]["pair"] = {  # one message with two calls, then the rest
        "kind": "scripted",
        "turns": [
            {"tool_calls": [write("x.txt", "X\n")["tool_calls"][0], write("y.txt", "Y\n")["tool_calls"][0]]},
            DONE,
            write("z.txt", "Z\n"),
            DONE,
        ],
    }
    return cfg


async def messages(api: Api, session_id: str, task_id: str) -> list[dict[str, Any]]:
    r = await api.get(task_path(session_id, task_id, "/messages?limit=1000"))
    assert r.status == 200, r.body
    return r.json["items"]


def mentions(items: list[dict[str, Any]], text: str) -> bool:
    return text in json.dumps(items)


@pytest.mark.gen_test(timeout=120)
async def test_restore_files_and_conversation_then_continue(api: Api) -> None:
    session = await api.session(provider="steps", auto_approve=AUTO)
    sid, ws = session["id"], Path(session["workspace"])
    task = await run_to_end(api, sid)
    tid = task["id"]
    items = await checkpoints(api, sid, tid)
    assert [c["after_tool"] for c in items] == [None, "write_to_file", "write_to_file"]
    before = await messages(api, sid, tid)
    assert mentions(before, "b.txt")
    # The checkpoint after a.txt was written follows that call's stored result.
    a_result = next(m for m in before if m["role"] == "tool" and m.get("tool_call_id") == items[1]["call_id"])

    r = await restore(api, sid, tid, items[1]["id"], "files_and_conversation")
    assert r.status == 200, r.body
    done = r.json
    assert done["scope"] == "files_and_conversation"
    assert done["files_changed"] == [{"path": "b.txt", "status": "deleted"}]
    assert done["checkpoints_removed"] == 1
    assert done["messages_removed"] == len([m for m in before if m["n"] > a_result["n"]]) > 0
    assert (ws / "a.txt").read_text() == "A\n" and not (ws / "b.txt").exists()
    after = await messages(api, sid, tid)
    assert after == [m for m in before if m["n"] <= a_result["n"]]
    assert [c["id"] for c in await checkpoints(api, sid, tid)] == [c["id"] for c in items[:2]]
    restored = [e for e in await all_events(api, sid, tid) if e["event"] == "checkpoint.restored"]
    assert restored[-1]["data"] == {k: v for k, v in done.items() if k != "id"}
    # The task keeps its status until it is continued.
    assert (await api.get(task_path(sid, tid))).json["status"] == "completed"

    r = await api.post(task_path(sid, tid, "/messages"), {"text": "Write c.txt instead."})
    assert r.status == 202, r.body
    await follow_as(api, tid, lambda f: f["event"] == "task.completed" and f["seq"] > restored[-1]["seq"])
    assert sorted(p.name for p in ws.iterdir()) == ["a.txt", "c.txt"]
    final = await messages(api, sid, tid)
    assert final[: len(after)] == after  # the kept history, unchanged
    assert not mentions(final, "b.txt") and mentions(final, "Write c.txt instead.") and mentions(final, "c.txt")
    steps = await checkpoints(api, sid, tid)
    assert [c["after_tool"] for c in steps] == [None, "write_to_file", "write_to_file"]
    assert steps[2]["files_changed"] == [{"path": "c.txt", "status": "added"}]
    # The whole change now: a.txt and c.txt; b.txt never happened.
    r = await api.get(task_path(sid, tid, "/diff"), headers={"Accept": "application/json"})
    assert [f["path"] for f in r.json["files"]] == ["a.txt", "c.txt"]


@pytest.mark.gen_test(timeout=120)
async def test_back_to_the_start_keeps_only_the_prompt(api: Api) -> None:
    session = await api.session(provider="steps", auto_approve=AUTO)
    sid, ws = session["id"], Path(session["workspace"])
    task = await run_to_end(api, sid, "Make some files")
    items = await checkpoints(api, sid, task["id"])
    r = await restore(api, sid, task["id"], items[0]["id"], "files_and_conversation")
    assert r.status == 200 and r.json["checkpoints_removed"] == 2
    assert list(ws.iterdir()) == []
    (only,) = await messages(api, sid, task["id"])
    assert only["n"] == 1 and only["role"] == "user" and "Make some files" in only["content"]
    # Files only changes no conversation and removes no checkpoint.
    r = await restore(api, sid, task["id"], items[0]["id"], "files")
    assert (r.json["messages_removed"], r.json["checkpoints_removed"]) == (0, 0)


@pytest.mark.gen_test(timeout=120)
async def test_continuing_a_task_waits_for_a_restore(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    session = await api.session(provider="steps", auto_approve=AUTO)
    sid = session["id"]
    task = await run_to_end(api, sid)
    items = await checkpoints(api, sid, task["id"])
    entered, release = hold_restores(monkeypatch)
    pending = asyncio.ensure_future(restore(api, sid, task["id"], items[1]["id"], "files_and_conversation"))
    await entered.wait()
    r = await api.post(task_path(sid, task["id"], "/messages"), {"text": "go on"})
    assert r.status == 409 and "being restored" in r.json["detail"], r.json
    release.set()
    assert (await pending).status == 200
    mark = (await all_events(api, sid, task["id"]))[-1]["seq"]
    r = await api.post(task_path(sid, task["id"], "/messages"), {"text": "go on"})
    assert r.status == 202
    await follow_as(api, task["id"], lambda f: f["event"] == "task.completed" and f["seq"] > mark)


@pytest.mark.gen_test(timeout=120)
async def test_a_cut_between_two_calls_of_one_message(api: Api) -> None:
    session = await api.session(provider="pair", auto_approve=AUTO)
    sid, ws = session["id"], Path(session["workspace"])
    task = await run_to_end(api, sid)
    items = await checkpoints(api, sid, task["id"])
    assert [c["files_changed"] for c in items[1:]] == [
        [{"path": "x.txt", "status": "added"}],
        [{"path": "y.txt", "status": "added"}],
    ]
    r = await restore(api, sid, task["id"], items[1]["id"], "files_and_conversation")
    assert r.status == 200 and not (ws / "y.txt").exists()
    kept = await messages(api, sid, task["id"])
    assert kept[-1]["role"] == "tool" and kept[-1]["tool_call_id"] == items[1]["call_id"]

    mark = (await all_events(api, sid, task["id"]))[-1]["seq"]
    r = await api.post(task_path(sid, task["id"], "/messages"), {"text": "Skip y, write z."})
    assert r.status == 202
    await follow_as(api, task["id"], lambda f: f["event"] == "task.completed" and f["seq"] > mark)
    final = await messages(api, sid, task["id"])
    y_call = items[2]["call_id"]
    (y_result,) = [m for m in final if m["role"] == "tool" and m.get("tool_call_id") == y_call]
    assert y_result["source"] == "engine" and y_result["is_error"]  # answered as interrupted, never run again
    assert sorted(p.name for p in ws.iterdir()) == ["x.txt", "z.txt"]
