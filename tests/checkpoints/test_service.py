"""The shadow repository on its own (real git, real files): what a
checkpoint records, skips and restores, and what it never touches."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest

from roo_daemon.checkpoints.git import Git
from roo_daemon.checkpoints.service import ShadowRepo
from tests.needs import which_or_skip


@pytest.fixture
def git_bin() -> str:
    return which_or_skip("git")


def make_repo(tmp_path: Path, git_bin: str, max_bytes: int = 1 << 20, inside: list[str] | None = None) -> ShadowRepo:
    ws = tmp_path / "ws"
    ws.mkdir(exist_ok=True)
    return ShadowRepo(Git(git_bin, tmp_path / "shadow" / "git", str(ws)), max_bytes, [], inside or [])


def run(coro):  # noqa: ANN001, ANN201
    return asyncio.run(coro)


def test_first_checkpoint_then_only_changes(tmp_path: Path, git_bin: str) -> None:
    repo = make_repo(tmp_path, git_bin)
    ws = Path(repo.workspace)
    (ws / "a.txt").write_text("one\n")

    async def go() -> None:
        await repo.open()
        first = await repo.checkpoint("t1", "start", first=True)
        assert first is not None and first.files == [] and first.skipped == []
        assert await repo.checkpoint("t1", "nothing", first=False) is None
        (ws / "a.txt").write_text("two\n")
        (ws / "b.txt").write_text("new\n")
        second = await repo.checkpoint("t1", "edit", first=False)
        assert second is not None
        assert second.files == [{"path": "a.txt", "status": "modified"}, {"path": "b.txt", "status": "added"}]
        (ws / "b.txt").unlink()
        third = await repo.checkpoint("t1", "rm", first=False)
        assert third.files == [{"path": "b.txt", "status": "deleted"}]
        changed = await repo.restore("t1", second.commit, rewind=False)
        assert changed == [{"path": "b.txt", "status": "added"}]
        assert (ws / "b.txt").read_text() == "new\n"
        changed = await repo.restore("t1", first.commit, rewind=True)
        assert (ws / "a.txt").read_text() == "one\n" and not (ws / "b.txt").exists()
        assert {c["path"] for c in changed} == {"a.txt", "b.txt"}
        assert await repo.checkpoint("t1", "after restore", first=False) is None

    run(go())


def test_skips_big_unreadable_nested_and_keeps_links(tmp_path: Path, git_bin: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("do not read")
    repo = make_repo(tmp_path, git_bin, max_bytes=1000)
    ws = Path(repo.workspace)
    (ws / "small.txt").write_text("x")
    (ws / "big.txt").write_bytes(b"y" * 5000)
    os.symlink(outside / "secret", ws / "link")
    os.symlink(outside, ws / "linkdir")
    nested = ws / "sub"
    nested.mkdir()
    subprocess.run([git_bin, "init", "-q", str(nested)], check=True, env={"PATH": os.environ["PATH"]})
    (nested / "inner.txt").write_text("inner")
    os.mkfifo(ws / "fifo")

    async def go() -> None:
        await repo.open()
        snap = await repo.checkpoint("t1", "start", first=True)
        reasons = {s["path"]: s["reason"] for s in snap.skipped}
        assert set(reasons) == {"big.txt", "sub"}, reasons
        assert "max_file_bytes" in reasons["big.txt"] and "nested git repository" in reasons["sub"]
        listing = await repo.git.text("ls-tree", "-r", snap.commit)
        modes = {line.split("\t")[1]: line.split()[0] for line in listing.splitlines()}
        assert modes == {"small.txt": "100644", "link": "120000", "linkdir": "120000"}

    run(go())
    assert (outside / "secret").read_text() == "do not read"


def test_the_data_dir_inside_a_workspace_is_never_recorded_or_restored(tmp_path: Path, git_bin: str) -> None:
    repo = make_repo(tmp_path, git_bin, inside=["state dir"])
    ws = Path(repo.workspace)
    (ws / "state dir").mkdir()
    (ws / "state dir" / "roo-daemon.sqlite3").write_text("the store")
    (ws / "app.py").write_text("print(1)\n")

    async def go() -> None:
        await repo.open()
        start = await repo.checkpoint("t1", "start", first=True)
        listing = await repo.git.text("ls-tree", "-r", "--name-only", start.commit)
        assert listing.splitlines() == ["app.py"]
        (ws / "state dir" / "roo-daemon.sqlite3").write_text("the store, later")
        (ws / "app.py").write_text("print(2)\n")
        assert (await repo.checkpoint("t1", "edit", first=False)).files == [{"path": "app.py", "status": "modified"}]
        await repo.restore("t1", start.commit, rewind=False)
        assert (ws / "app.py").read_text() == "print(1)\n"
        assert (ws / "state dir" / "roo-daemon.sqlite3").read_text() == "the store, later"

    run(go())
