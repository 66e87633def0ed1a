"""What the nodes' lock costs a checkpoint (a failover cluster's shared
``checkpoints.dir``): side by side, alternating round by round, the same
one-file-changed ``ShadowRepo.checkpoint`` in a workspace of ``--files``
small files, alone (one machine) and under ``nodelock.RepoLocks`` on a
throwaway PostgreSQL (``tests/pgserver.py``): a try of the advisory lock and
its release, a look for a stale ``index.lock``, and no cached index tree or
task tip (another node may have written the repository).

    python bench/checkpoints_shared.py [--files 10000] [--rounds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from checkpoints import make_workspace, summary
from common import ROOT, machine, throwaway_postgresql

sys.path.insert(0, str(ROOT))

from roo_daemon.checkpoints.git import Git, find_git  # noqa: E402
from roo_daemon.checkpoints.nodelock import RepoLocks  # noqa: E402
from roo_daemon.checkpoints.service import ShadowRepo  # noqa: E402
from roo_daemon.store.backends import make_database  # noqa: E402

KEY = "0123456789abcdef01234567"


async def side_by_side(tmp: Path, dsn: str, files: int, rounds: int) -> dict[str, Any]:
    git = find_git()
    if git is None:
        raise SystemExit("git is not installed")
    db = make_database({"backend": "postgresql", "dsn_env": "DSN", "pool_size": 1}, tmp / "data", env={"DSN": dsn})
    await db.open()
    locks = RepoLocks(db)
    repos: dict[str, tuple[ShadowRepo, Path]] = {}
    for name, cross in (("alone", None), ("nodes_lock", locks)):
        ws = make_workspace(tmp / name / "ws", files)
        repo = ShadowRepo(Git(git, tmp / name / "shadow" / "git", str(ws)), 10 * 2**20, [], [], cross, KEY)
        await repo.open()
        await repo.checkpoint("bench", "start", first=True)
        repos[name] = (repo, ws / "pkg000" / "mod0.py")
    ms: dict[str, list[float]] = {name: [] for name in repos}
    try:
        for i in range(rounds):
            for name, (repo, target) in repos.items():
                target.write_text(f"VALUE = {i}  # changed\n")
                started = time.perf_counter()
                snap = await repo.checkpoint("bench", f"round {i}", first=False)
                ms[name].append((time.perf_counter() - started) * 1000)
                assert snap is not None and [f["path"] for f in snap.files] == ["pkg000/mod0.py"], snap
    finally:
        await locks.close()
        await db.close()
    result: dict[str, Any] = {"files": files, "rounds": rounds, **{name: summary(v) for name, v in ms.items()}}
    result["ratio_median"] = round(result["nodes_lock"]["median_ms"] / result["alone"]["median_ms"], 2)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--files", type=int, default=10000)
    p.add_argument("--rounds", type=int, default=30)
    a = p.parse_args()
    with throwaway_postgresql() as server, tempfile.TemporaryDirectory(prefix="roo-bench-ckpt-") as tmp:
        run = asyncio.run(side_by_side(Path(tmp), server.fresh_database(), a.files, a.rounds))
    report = {"benchmark": "one checkpoint, alone vs under the nodes' lock", "machine": machine(), **run}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
