"""A daemon without git: it says so once at start, its tasks run, and the
checkpoint API answers 409 saying why."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from roo_daemon.app import make_app
from roo_daemon.context import open_context
from tests.checkpoints.helpers import AUTO, run_to_end, saved_events
from tests.checkpoints.test_unavailable import assert_409, with_edits
from tests.conftest import Api, make_config


@pytest.fixture
def no_git_app(io_loop: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: Any) -> Any:
    """A daemon whose PATH has no git (bwrap is found by its absolute path)."""
    empty = tmp_path / "empty-path"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    caplog.set_level(logging.INFO, "roo_daemon.checkpoints")
    cfg = with_edits(make_config(tmp_path, tools={"sandbox": "none"}))
    context = io_loop.run_sync(lambda: open_context(cfg))
    yield make_app(context)
    io_loop.run_sync(context.close)


@pytest.fixture
def app(no_git_app: Any) -> Any:
    return no_git_app


@pytest.mark.gen_test(timeout=60)
async def test_without_git_the_daemon_says_so_once_and_tasks_run(api: Api, caplog: Any) -> None:
    lines = [r.getMessage() for r in caplog.get_records("setup") if r.name == "roo_daemon.checkpoints"]
    assert lines == ["checkpoints: git not found on PATH; running without checkpoints"]
    session = await api.session(provider="edits", auto_approve=AUTO)
    for _ in range(2):
        task = await run_to_end(api, session["id"])
    assert (Path(session["workspace"]) / "a.txt").read_text() == "one\n"
    assert await saved_events(api, session["id"], task["id"]) == []
    await assert_409(api, session["id"], task["id"], "git is not installed")
    assert [r.getMessage() for r in caplog.records if r.name == "roo_daemon.checkpoints"] == []  # said once
