"""Schema versioning: a data dir made by the first release (schema 1, kept in
``fixtures/v1``: a session with a completed, a failed, a waiting, a running
and a queued task, made by that release's code and killed with SIGKILL) opens
after the upgrade, migrated in place; a data dir from a newer release is
refused with exit status 2 and one line."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from roo_daemon.context import DB_FILE, open_context
from roo_daemon.store.schema import SCHEMA_VERSION
from tests.conftest import Api, make_config, wait_status
from tests.server.daemon_process import REPO_ROOT
from tests.tasks.helpers import all_events, follow, task_path

FIXTURE = Path(__file__).parent / "fixtures" / "v1"
IDS = json.loads((FIXTURE / "ids.json").read_text())


def v1_data_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir(parents=True, exist_ok=True)
    shutil.copy(FIXTURE / DB_FILE, data / DB_FILE)
    return data


def version(path: Path) -> int | None:
    with sqlite3.connect(path) as c:
        row = c.execute("SELECT v FROM meta WHERE k = 'schema_version'").fetchone()
    return int(row[0]) if row else None


@pytest.fixture
def config(tmp_path: Path) -> dict[str, Any]:
    v1_data_dir(tmp_path)
    # SQLite's own migrations from a first-release file (PostgreSQL's: test_postgresql.py).
    return make_config(tmp_path, store={"backend": "sqlite"}, engine={"resume_interrupted": False})


def test_the_fixture_is_a_first_release_store() -> None:
    assert version(FIXTURE / DB_FILE) is None  # the first release recorded no version
    with sqlite3.connect(FIXTURE / DB_FILE) as c:
        tables = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "messages" not in tables and {"sessions", "tasks", "events"} <= tables


@pytest.mark.gen_test(timeout=30)
async def test_a_first_release_data_dir_is_migrated_in_place(api: Api, config: dict, tmp_path: Path) -> None:
    assert version(tmp_path / "data" / DB_FILE) == SCHEMA_VERSION
    sid = IDS["session"]
    session = (await api.get(f"/api/v1/sessions/{sid}")).json
    assert session["name"] == "v1-fixture" and session["ask_timeouts"] == {}
    done = (await api.get(task_path(sid, IDS["completed"]))).json
    assert done["status"] == "completed" and done["result"] == "ok" and done["ask_timeouts"] == {}
    assert (await api.get(task_path(sid, IDS["failed"]))).json["status"] == "failed"
    events = await all_events(api, sid, IDS["completed"])
    assert [e["event"] for e in events][0] == "task.created" and events[-1]["event"] == "task.completed"
    # Its conversation was not stored by that release: an empty page, not an error.
    r = await api.get(task_path(sid, IDS["completed"], "/messages"))
    assert r.status == 200 and r.json == {"items": [], "next_after": 0, "has_more": False}
    # The task left running by the crash is interrupted; the queued one runs.
    assert (await api.get(task_path(sid, IDS["running"]))).json["status"] == "interrupted"
    assert (await wait_status(api, sid, IDS["queued"], {"completed"}))["result"] == "ok"
    # The waiting one still waits with its ask, and an answer is taken
    # (that release kept no conversation, so the task starts over from its prompt).
    waiting = (await api.get(task_path(sid, IDS["waiting"]))).json
    assert waiting["status"] == "waiting" and waiting["pending_ask"]["kind"] == "followup"
    r = await api.post(
        task_path(sid, IDS["waiting"], "/responses"),
        {"ask_id": waiting["pending_ask"]["id"], "approve": True, "text": "Python"},
    )
    assert r.status == 200, r.body
    asks = 0

    def second_ask(frame: dict[str, Any]) -> bool:
        nonlocal asks
        asks += frame["event"] == "ask"
        return asks == 2

    await follow(api, IDS["waiting"], second_ask)
    assert (await api.get(task_path(sid, IDS["waiting"]))).json["status"] == "waiting"
    # A finished task of that release can be continued.
    r = await api.post(task_path(sid, IDS["failed"], "/messages"), {"text": "try again"})
    assert r.status == 202


@pytest.mark.gen_test(timeout=30)
async def test_migration_is_idempotent(io_loop: Any, tmp_path: Path) -> None:
    data = v1_data_dir(tmp_path / "again")
    (tmp_path / "again").mkdir(exist_ok=True)
    cfg = make_config(
        tmp_path / "again", store={"data_dir": str(data), "backend": "sqlite"}, engine={"resume_interrupted": False}
    )
    for _ in range(2):
        ctx = await open_context(cfg)
        await ctx.close()
    assert version(data / DB_FILE) == SCHEMA_VERSION


def test_a_newer_release_data_dir_is_refused_with_exit_2(tmp_path: Path) -> None:
    data = v1_data_dir(tmp_path)
    with sqlite3.connect(data / DB_FILE) as c:
        c.execute("INSERT INTO meta (k, v) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION + 1),))
    before = (data / DB_FILE).read_bytes()
    proc = subprocess.run(
        [sys.executable, "-m", "roo_daemon", "serve", "--port", "0", "--data-dir", str(data)],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("roo-daemon: configuration error: store.data_dir: ")
    assert f"schema version {SCHEMA_VERSION + 1}" in lines[0] and "newer roo-daemon" in lines[0]
    assert (data / DB_FILE).read_bytes() == before  # nothing was written
