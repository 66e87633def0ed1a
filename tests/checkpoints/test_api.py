"""Checkpoints through the API with the scripted provider: files written,
commands that create and delete files, the list, both diff formats, and
restores of files (with Idempotency-Key)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.checkpoints.helpers import AUTO, DONE, checkpoints, command, restore, run_to_end, saved_events, write
from tests.checkpoints.test_unavailable import assert_409
from tests.conftest import Api, make_config
from tests.tasks.helpers import all_events, task_path


@pytest.fixture
def config(tmp_path: Path) -> dict[str, Any]:
    cfg = make_config(tmp_path)
    cfg["providers"]["edits"] = {
        "kind": "scripted",
        "turns": [
            write("a.txt", "one\n"),
            command("cp keep.txt b.txt && rm keep.txt && cp /bin/true blob.xyz"),
            command("echo nothing changes"),
            write("a.txt", "changed\n"),
            DONE,
        ],
    }
    return cfg


@pytest.mark.gen_test(timeout=90)
async def test_each_file_change_is_a_checkpoint_with_its_event(api: Api) -> None:
    session = await api.session(provider="edits", auto_approve=AUTO)
    ws = Path(session["workspace"])
    (ws / "keep.txt").write_text("keep me\n")
    task = await run_to_end(api, session["id"])
    items = await checkpoints(api, session["id"], task["id"])
    # The start, then one per call that changed something: the command that
    # only echoes changes nothing and leaves no checkpoint.
    assert [c["after_tool"] for c in items] == [None, "write_to_file", "execute_command", "write_to_file"]
    assert items[0]["files_changed"] == []
    assert items[1]["files_changed"] == [{"path": "a.txt", "status": "added"}]
    assert items[2]["files_changed"] == [
        {"path": "b.txt", "status": "added"},
        {"path": "blob.xyz", "status": "added"},
        {"path": "keep.txt", "status": "deleted"},
    ]
    assert items[3]["files_changed"] == [{"path": "a.txt", "status": "modified"}]
    assert all(c["skipped"] == [] and c["files_changed_count"] == len(c["files_changed"]) for c in items)

    events = await all_events(api, session["id"], task["id"])
    saved = [e for e in events if e["event"] == "checkpoint.saved"]
    assert [e["data"]["checkpoint_id"] for e in saved] == [c["id"] for c in items]
    for event, item in zip(saved, items, strict=True):
        assert event["data"]["files_changed"] == item["files_changed"]
        assert event["seq"] == item["seq"] + 1  # the checkpoint follows the event before its own
    # Each tool's checkpoint comes right after that call's result.
    for event in saved[1:]:
        before = events[events.index(event) - 1]
        assert before["event"] == "tool.result" and before["data"]["id"] == event["data"]["call_id"], before


@pytest.mark.gen_test(timeout=90)
async def test_diff_as_unified_text_and_as_json(api: Api) -> None:
    session = await api.session(provider="edits", auto_approve=AUTO)
    (Path(session["workspace"]) / "keep.txt").write_text("keep me\n")
    task = await run_to_end(api, session["id"])
    items = await checkpoints(api, session["id"], task["id"])
    base = task_path(session["id"], task["id"], "/diff")

    whole = await api.get(base)
    assert whole.status == 200 and whole.headers["Content-Type"].startswith("text/x-diff")
    text = whole.body.decode()
    assert "+++ b/a.txt\n@@ -0,0 +1 @@\n+changed\n" in text
    assert "--- a/keep.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-keep me\n" in text
    assert "Binary files /dev/null and b/blob.xyz differ" in text and "\x7fELF" not in text

    r = await api.get(base, headers={"Accept": "application/json"})
    assert r.status == 200 and r.headers["Content-Type"].startswith("application/json")
    files = {f["path"]: f for f in r.json["files"]}
    assert sorted(files) == ["a.txt", "b.txt", "blob.xyz", "keep.txt"]
    assert (files["a.txt"]["status"], files["a.txt"]["additions"], files["a.txt"]["deletions"]) == ("added", 1, 0)
    assert files["keep.txt"]["status"] == "deleted" and files["keep.txt"]["deletions"] == 1
    assert files["blob.xyz"]["binary"] is True and "Binary files" in files["blob.xyz"]["patch"]
    assert files["b.txt"]["patch"].startswith("diff --git a/b.txt b/b.txt\n")

    # One step: what the last write did.
    r = await api.get(f"{base}?from={items[2]['id']}&to={items[3]['id']}", headers={"Accept": "application/json"})
    assert [(f["path"], f["status"], f["additions"], f["deletions"]) for f in r.json["files"]] == [
        ("a.txt", "modified", 1, 1)
    ]
    # Only `from`: up to the last; only `to`: from the first.
    r = await api.get(f"{base}?to={items[1]['id']}", headers={"Accept": "application/json"})
    assert [f["path"] for f in r.json["files"]] == ["a.txt"]
    r = await api.get(f"{base}?from={items[3]['id']}")
    assert r.status == 200 and r.body == b""


@pytest.mark.gen_test(timeout=90)
async def test_restore_files_and_replay_with_idempotency_key(api: Api) -> None:
    session = await api.session(provider="edits", auto_approve=AUTO)
    ws = Path(session["workspace"])
    (ws / "keep.txt").write_text("keep me\n")
    (ws / "node_modules").mkdir()
    (ws / "node_modules" / "dep.js").write_text("excluded, never touched")
    task = await run_to_end(api, session["id"])
    items = await checkpoints(api, session["id"], task["id"])
    (ws / "later.txt").write_text("made after the task")

    key = {"Idempotency-Key": "undo-1"}
    r = await restore(api, session["id"], task["id"], items[0]["id"], headers=key)
    assert r.status == 200, r.body
    done = r.json
    assert done["scope"] == "files" and done["checkpoint_id"] == items[0]["id"]
    assert {(f["path"], f["status"]) for f in done["files_changed"]} == {
        ("a.txt", "deleted"),
        ("b.txt", "deleted"),
        ("blob.xyz", "deleted"),
        ("later.txt", "deleted"),
        ("keep.txt", "added"),
    }
    assert sorted(p.name for p in ws.iterdir()) == ["keep.txt", "node_modules"]
    assert (ws / "keep.txt").read_text() == "keep me\n"
    assert (ws / "node_modules" / "dep.js").read_text() == "excluded, never touched"

    (ws / "keep.txt").write_text("edited again")
    again = await restore(api, session["id"], task["id"], items[0]["id"], headers=key)
    assert again.status == 200 and again.headers.get("Idempotent-Replayed") == "true"
    assert again.json == done
    assert (ws / "keep.txt").read_text() == "edited again"  # a replay restores nothing
    other_body = await api.post(
        task_path(session["id"], task["id"], f"/checkpoints/{items[0]['id']}/restore"),
        {"scope": "files", "x": 1},
        headers=key,
    )
    assert other_body.status == 422

    # Files only: every checkpoint stays, and the last one can be restored too.
    assert [c["id"] for c in await checkpoints(api, session["id"], task["id"])] == [c["id"] for c in items]
    r = await restore(api, session["id"], task["id"], items[-1]["id"])
    assert r.status == 200 and r.json["id"] != done["id"]
    assert (ws / "a.txt").read_text() == "changed\n" and not (ws / "keep.txt").exists()
    restored = [e for e in await all_events(api, session["id"], task["id"]) if e["event"] == "checkpoint.restored"]
    assert [e["data"]["checkpoint_id"] for e in restored] == [items[0]["id"], items[-1]["id"]]
    assert restored[0]["data"] == {k: v for k, v in done.items() if k != "id"}


@pytest.mark.gen_test(timeout=90)
async def test_a_task_after_a_restore_measures_from_the_restored_state(api: Api) -> None:
    session = await api.session(provider="edits", auto_approve=AUTO)
    ws = Path(session["workspace"])
    (ws / "keep.txt").write_text("keep me\n")
    first = await run_to_end(api, session["id"])
    items = await checkpoints(api, session["id"], first["id"])
    assert (await restore(api, session["id"], first["id"], items[0]["id"])).status == 200
    second = await run_to_end(api, session["id"])
    again = await checkpoints(api, session["id"], second["id"])
    assert again[1]["files_changed"] == [{"path": "a.txt", "status": "added"}]
    assert (await saved_events(api, session["id"], second["id"]))[0]["data"]["after_tool"] is None


@pytest.mark.gen_test(timeout=90)
async def test_a_session_can_turn_checkpoints_off(api: Api) -> None:
    off = await api.session(provider="edits", auto_approve=AUTO, checkpoints={"enabled": False})
    assert off["checkpoints"] == {"enabled": False}
    (Path(off["workspace"]) / "keep.txt").write_text("keep me\n")
    task = await run_to_end(api, off["id"])
    assert await saved_events(api, off["id"], task["id"]) == []
    await assert_409(api, off["id"], task["id"], f"turned off for session {off['id']}")
    on = await api.session(provider="edits", auto_approve=AUTO)
    assert on["checkpoints"] == {"enabled": True}
