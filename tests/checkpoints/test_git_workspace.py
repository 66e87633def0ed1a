"""A workspace that is itself a git repository: checkpoints never touch its
``.git``. Its status, log, branches, stash, index and config are the same
before a task, after it, and after a restore; none of its hooks runs."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.checkpoints.helpers import AUTO, DONE, checkpoints, command, restore, run_to_end, write
from tests.conftest import Api, make_config
from tests.needs import which_or_skip

HOOKS = ("pre-commit", "post-commit", "post-checkout", "post-index-change", "reference-transaction", "pre-auto-gc")


def git(repo: Path, *args: str) -> str:
    env = {"PATH": os.environ["PATH"], "HOME": str(repo.parent), "GIT_CONFIG_NOSYSTEM": "1"}
    env |= {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(["git", "-C", str(repo), *args], env=env, check=True, capture_output=True, text=True).stdout


def dot_git(repo: Path) -> dict[str, str]:
    """Every file under .git with its content digest."""
    out = {}
    for dirpath, _, files in os.walk(repo / ".git"):
        for name in files:
            path = Path(dirpath) / name
            out[str(path.relative_to(repo))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def state(repo: Path) -> dict[str, Any]:
    # --no-optional-locks: looking must not refresh the index we compare.
    look = ("--no-optional-locks",)
    return {
        "status": git(repo, *look, "status", "--porcelain=v2", "--branch", "--untracked-files=all"),
        "log": git(repo, *look, "log", "--all", "--format=%H %P %s"),
        "branches": git(repo, *look, "branch", "-a", "-v"),
        "stash": git(repo, *look, "stash", "list"),
        "files": dot_git(repo),
    }


@pytest.fixture
def config(tmp_path: Path) -> dict[str, Any]:
    cfg = make_config(tmp_path)
    cfg["providers"]["edits"] = {
        "kind": "scripted",
        "turns": [
            write("tracked.txt", "changed by the agent\n"),
            write("src/new.py", "print('new')\n"),
            command("rm other.txt && mkdir -p made && touch made/empty"),
            DONE,
        ],
    }
    return cfg


@pytest.mark.gen_test(timeout=120)
async def test_the_workspace_repository_is_untouched(api: Api, tmp_path: Path) -> None:
    which_or_skip("git")
    repo = tmp_path / "roots" / "project"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "tracked.txt").write_text("original\n")
    (repo / "other.txt").write_text("other\n")
    (repo / ".gitignore").write_text("ignored.log\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "first")
    git(repo, "checkout", "-q", "-b", "feature")
    (repo / "tracked.txt").write_text("work in progress\n")  # an uncommitted change of the user's
    (repo / "untracked.txt").write_text("user's untracked file\n")
    marker = tmp_path / "hook-ran"
    for hook in HOOKS:
        path = repo / ".git" / "hooks" / hook
        path.write_text(f"#!/bin/sh\necho {hook} >> {marker}\n")
        path.chmod(0o755)
    before = state(repo)

    session = await api.session(provider="edits", workspace=str(repo), auto_approve=AUTO)
    task = await run_to_end(api, session["id"])
    assert (repo / "tracked.txt").read_text() == "changed by the agent\n"
    assert not (repo / "other.txt").exists()
    middle = state(repo)
    assert middle["log"] == before["log"] and middle["branches"] == before["branches"]
    assert middle["stash"] == before["stash"]
    assert {k: v for k, v in middle["files"].items() if k != ".git/index"} == {
        k: v for k, v in before["files"].items() if k != ".git/index"
    }
    assert middle["files"][".git/index"] == before["files"][".git/index"]

    items = await checkpoints(api, session["id"], task["id"])
    r = await restore(api, session["id"], task["id"], items[0]["id"])
    assert r.status == 200, r.body
    after = state(repo)
    assert after == before
    assert (repo / "tracked.txt").read_text() == "work in progress\n"
    assert (repo / "untracked.txt").read_text() == "user's untracked file\n"
    assert not (repo / "src").exists() and not (repo / "made").exists()
    assert not marker.exists(), marker.read_text()
