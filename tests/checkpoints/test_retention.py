"""Checkpoints go with their session: rows, the task chains, and the shadow
repository once no session works in its workspace. A start-up sweep
finishes what a crash interrupted."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from roo_daemon.checkpoints.retention import Retention
from tests.checkpoints.helpers import AUTO, DONE, checkpoints, run_to_end, write
from tests.conftest import Api, make_config


@pytest.fixture
def config(tmp_path: Path) -> dict[str, Any]:
    cfg = make_config(tmp_path)
    cfg["providers"]["edits"] = {"kind": "scripted", "turns": [write("a.txt", "one\n"), DONE]}
    cfg["providers"]["edits2"] = {"kind": "scripted", "turns": [write("b.txt", "two\n"), DONE]}
    return cfg


async def rows(ctx: Any, session_id: str) -> int:
    return await ctx.db.read(
        lambda c: c.execute("SELECT COUNT(*) FROM checkpoints WHERE session_id = ?", (session_id,)).fetchone()[0]
    )


def refs(repo: Path) -> list[str]:
    out = subprocess.run(
        ["git", "--git-dir", str(repo), "for-each-ref", "--format=%(refname)"],
        check=True,
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"]},
    ).stdout
    return out.split()


async def until(predicate: Any) -> None:
    for _ in range(500):
        if await predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met")


@pytest.mark.gen_test(timeout=90)
async def test_a_deleted_session_takes_its_checkpoints_along(api: Api, ctx: Any) -> None:
    session = await api.session(provider="edits", auto_approve=AUTO)
    await run_to_end(api, session["id"])
    assert await rows(ctx, session["id"]) == 2
    (repo,) = (ctx.data_dir / "checkpoints").iterdir()
    assert (repo / "workspace").read_text().strip() == session["workspace"]

    assert (await api.delete(f"/api/v1/sessions/{session['id']}")).status == 204

    async def gone() -> bool:
        return await rows(ctx, session["id"]) == 0 and not repo.exists()

    await until(gone)


@pytest.mark.gen_test(timeout=90)
async def test_a_shared_workspace_keeps_its_repository_for_the_other_session(
    api: Api, ctx: Any, tmp_path: Path
) -> None:
    ws = tmp_path / "roots" / "shared"
    ws.mkdir()
    one = await api.session(provider="edits", workspace=str(ws), auto_approve=AUTO)
    two = await api.session(provider="edits2", workspace=str(ws), auto_approve=AUTO)
    task_one = await run_to_end(api, one["id"])
    task_two = await run_to_end(api, two["id"])
    (repo,) = (ctx.data_dir / "checkpoints").iterdir()
    assert sorted(refs(repo / "git")) == sorted([f"refs/roo/{task_one['id']}", f"refs/roo/{task_two['id']}"])

    assert (await api.delete(f"/api/v1/sessions/{one['id']}")).status == 204

    async def pruned() -> bool:
        return await rows(ctx, one["id"]) == 0 and refs(repo / "git") == [f"refs/roo/{task_two['id']}"]

    await until(pruned)
    # The other session's checkpoints still diff and restore.
    items = await checkpoints(api, two["id"], task_two["id"])
    r = await api.get(f"/api/v1/sessions/{two['id']}/tasks/{task_two['id']}/diff")
    assert r.status == 200 and "+two" in r.body.decode()
    r = await api.post(
        f"/api/v1/sessions/{two['id']}/tasks/{task_two['id']}/checkpoints/{items[0]['id']}/restore", {"scope": "files"}
    )
    assert r.status == 200 and not (ws / "b.txt").exists()


@pytest.mark.gen_test(timeout=90)
async def test_the_start_sweep_removes_what_a_crash_left(api: Api, ctx: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    session = await api.session(provider="edits", auto_approve=AUTO)
    await run_to_end(api, session["id"])
    (repo,) = (ctx.data_dir / "checkpoints").iterdir()
    stray = ctx.data_dir / "checkpoints" / "0123456789abcdef01234567"
    stray.mkdir()  # a repository of a workspace no session uses
    monkeypatch.setattr(Retention, "deliver", lambda self, event: None)  # the daemon "crashes" before it acts
    assert (await api.delete(f"/api/v1/sessions/{session['id']}")).status == 204
    assert await rows(ctx, session["id"]) == 2 and repo.exists()

    await ctx.checkpoints.retention.sweep()  # what the next start runs
    assert await rows(ctx, session["id"]) == 0
    assert not repo.exists() and not stray.exists()
