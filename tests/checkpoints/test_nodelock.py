"""Two nodes writing one shadow repository (``checkpoints.dir`` on shared
storage): each node's ``ShadowRepo`` with its own ``RepoLocks`` (its own
PostgreSQL connection), on one throwaway database. Real git, real files."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from roo_daemon.checkpoints import service
from roo_daemon.checkpoints.git import Git
from roo_daemon.checkpoints.nodelock import RepoLocks
from roo_daemon.checkpoints.service import ShadowRepo
from tests.needs import which_or_skip
from tests.store.conftest import StorePlace

KEY = "0123456789abcdef01234567"


@pytest.fixture
def git_bin() -> str:
    return which_or_skip("git")


@asynccontextmanager
async def two_nodes(tmp_path: Path, dsn: str, git_bin: str) -> AsyncIterator[tuple[ShadowRepo, ShadowRepo]]:
    """Node 1's and node 2's view of one repository of one shared workspace."""
    data = tmp_path / "data"
    data.mkdir()
    db = await StorePlace("postgresql", data, dsn).open()
    ws = tmp_path / "ws"
    ws.mkdir()
    locks = [RepoLocks(db), RepoLocks(db)]  # a connection each: as two nodes
    repos = [
        ShadowRepo(Git(git_bin, tmp_path / "shared" / KEY / "git", str(ws)), 1 << 20, [], [], lk, KEY) for lk in locks
    ]
    try:
        for repo in repos:
            await repo.open()
        yield repos[0], repos[1]
    finally:
        for lk in locks:
            await lk.close()
        await db.close()


def count_tries(locks: RepoLocks) -> Callable[[], int]:
    """How often ``locks`` has tried PostgreSQL's lock (and how many were refused)."""
    tries = {"n": 0}
    real = locks._try

    def counted(key: int) -> bool:
        tries["n"] += 1
        return real(key)

    locks._try = counted  # type: ignore[method-assign]
    return lambda: tries["n"]


def tree_files(repo: ShadowRepo, commit: str) -> set[str]:
    out = subprocess.run(
        ["git", "ls-tree", "-r", "--name-only", commit], env=repo.git.env, capture_output=True, check=True
    )
    return set(out.stdout.decode().split())


@pytest.mark.gen_test(timeout=120)
async def test_a_node_waits_while_another_holds_the_repository(tmp_path: Path, pg_dsn: str, git_bin: str) -> None:
    async with two_nodes(tmp_path, pg_dsn, git_bin) as (one, two):
        ws = Path(one.workspace)
        (ws / "a.txt").write_text("a\n")
        tries = count_tries(two.cross)
        async with one.locked():
            saving = asyncio.ensure_future(two.checkpoint("t2", "start", first=True))
            while tries() < 3:  # refused, and refused again: node 1 holds it
                await asyncio.sleep(0.01)
            assert not saving.done()
        snap = await saving  # node 1 let go: node 2 goes on
        assert snap is not None and tree_files(two, snap.commit) == {"a.txt"}


@pytest.mark.gen_test(timeout=180)
async def test_two_nodes_checkpointing_one_repository_at_once_all_succeed(
    tmp_path: Path, pg_dsn: str, git_bin: str
) -> None:
    """Without the nodes' lock their ``git add``s meet on index.lock (one
    fails) or one commits what the other staged."""
    async with two_nodes(tmp_path, pg_dsn, git_bin) as (one, two):
        ws = Path(one.workspace)

        async def work(repo: ShadowRepo, name: str) -> list[Any]:
            snaps = [await repo.checkpoint(name, "start", first=True)]
            for i in range(8):
                (ws / f"{name}-{i}.txt").write_text(f"{i}\n" * 200)
                snaps.append(await repo.checkpoint(name, f"step {i}", first=False))
            return snaps

        a, b = await asyncio.gather(work(one, "ta"), work(two, "tb"))
        for repo, snaps, name in ((one, a, "ta"), (two, b, "tb")):
            last = [s for s in snaps if s is not None][-1]
            # A node's last checkpoint holds every file of its own written before it.
            assert {f"{name}-{i}.txt" for i in range(8)} <= tree_files(repo, last.commit)
        final = await one.checkpoint("ta", "end", first=False) or await one.checkpoint("tc", "all", first=True)
        assert tree_files(one, final.commit) == {f"{n}-{i}.txt" for n in ("ta", "tb") for i in range(8)}


@pytest.mark.gen_test(timeout=120)
async def test_a_node_does_not_trust_what_it_remembers_of_a_shared_repository(
    tmp_path: Path, pg_dsn: str, git_bin: str
) -> None:
    """Node 1 remembers the index's tree after its last staging; node 2
    then stages a new file. Node 1's next checkpoint, with nothing changed
    since node 2's, must still see that file."""
    async with two_nodes(tmp_path, pg_dsn, git_bin) as (one, two):
        ws = Path(one.workspace)
        (ws / "a.txt").write_text("a\n")
        await one.checkpoint("t1", "start", first=True)
        (ws / "b.txt").write_text("b\n")
        await two.checkpoint("t2", "start", first=True)
        snap = await one.checkpoint("t1", "after", first=False)
        assert snap is not None and snap.files == [{"path": "b.txt", "status": "added"}]


@pytest.mark.gen_test(timeout=120)
async def test_a_lock_file_a_dead_node_left_is_cleared(
    tmp_path: Path, pg_dsn: str, git_bin: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node killed mid-``git add`` leaves ``index.lock`` behind: under the
    nodes' lock it is nobody's, and the next checkpoint clears it."""
    monkeypatch.setattr(service, "STALE_LOCK_SECONDS", 0.2)
    async with two_nodes(tmp_path, pg_dsn, git_bin) as (one, two):
        ws = Path(one.workspace)
        await one.checkpoint("t1", "start", first=True)
        (two.git.git_dir / "index.lock").write_text("")
        (ws / "a.txt").write_text("a\n")
        snap = await two.checkpoint("t1", "after", first=False)
        assert snap is not None and snap.files == [{"path": "a.txt", "status": "added"}]


@pytest.mark.gen_test(timeout=120)
async def test_a_repository_another_node_removed_is_made_again(tmp_path: Path, pg_dsn: str, git_bin: str) -> None:
    """Node 2 removed the repository (its last session in the workspace was
    deleted) while node 1 had it open, for a session node 2 had not heard of."""
    async with two_nodes(tmp_path, pg_dsn, git_bin) as (one, two):
        ws = Path(one.workspace)
        await one.checkpoint("t1", "start", first=True)
        async with two.locked():
            two.remove()
        (ws / "a.txt").write_text("a\n")
        snap = await one.checkpoint("t2", "start", first=True)
        assert snap is not None and tree_files(one, snap.commit) == {"a.txt"}


@pytest.mark.gen_test(timeout=120)
async def test_only_the_first_node_to_hear_of_a_deletion_drops_the_chains(
    tmp_path: Path, pg_dsn: str, git_bin: str
) -> None:
    """Every node hears ``session.deleted``; in a shared repository only the
    first finds the tasks' chains, so one ``gc --prune=now`` runs, not one per node."""
    async with two_nodes(tmp_path, pg_dsn, git_bin) as (one, two):
        await one.checkpoint("t1", "start", first=True)
        assert await two.forget(["t1"]) is True
        assert await one.forget(["t1"]) is False
        assert await one.checkpoint("t1", "again", first=False) is not None  # a new chain: from nothing
