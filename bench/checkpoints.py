"""Checkpoint cost: one checkpoint of a large workspace, and what they add
to a tool call.

1. ``ShadowRepo.checkpoint`` (the daemon's own code: ``git status``, the
   skip scan, ``git add``, ``write-tree``, ``commit-tree``, ``update-ref``,
   the diff for ``files_changed``) on a workspace of ``--files`` small files
   (100 directories), after one file changed, ``--rounds`` times; also the
   first checkpoint (a new shadow repository: every file hashed) and one
   after no change at all.
2. Per tool call, through the daemon in-process with the scripted provider:
   tasks of ``--calls`` ``write_to_file`` calls each, in sessions with
   checkpoints on and off, alternating, in a small workspace and in the
   ``--files`` one. Each call creates a file (a real change to record).
   The figure is the task's time per call; the cost a checkpoint adds is
   the difference between on and off.

    python bench/checkpoints.py [--files 10000] [--rounds 30] [--calls 20] [--tasks 6]

Target: a checkpoint of 10,000 files with one changed under 300 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import ROOT, machine

sys.path.insert(0, str(ROOT))

from roo_daemon.auth import LOCAL  # noqa: E402
from roo_daemon.checkpoints.git import Git, find_git  # noqa: E402
from roo_daemon.checkpoints.service import ShadowRepo  # noqa: E402
from roo_daemon.config import load_config  # noqa: E402
from roo_daemon.context import open_context  # noqa: E402

TARGET_MS = 300


def make_workspace(root: Path, files: int) -> Path:
    for i in range(files):
        d = root / f"pkg{i // 100:03d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"mod{i}.py").write_text(f"VALUE = {i}\n")
    return root


def summary(ms: list[float]) -> dict[str, float]:
    ms = sorted(ms)
    return {"median_ms": round(statistics.median(ms), 1), "p90_ms": round(ms[int(len(ms) * 0.9)], 1)}


async def one_checkpoint(tmp: Path, files: int, rounds: int) -> dict[str, Any]:
    git = find_git()
    if git is None:
        raise SystemExit("git is not installed")
    ws = make_workspace(tmp / "large", files)
    repo = ShadowRepo(Git(git, tmp / "shadow" / "git", str(ws)), 10 * 2**20, [], [])
    await repo.open()
    started = time.perf_counter()
    await repo.checkpoint("bench", "start", first=True)
    first_ms = (time.perf_counter() - started) * 1000
    changed, unchanged = [], []
    target = ws / "pkg050" / "mod5000.py"
    for i in range(rounds):
        target.write_text(f"VALUE = {i}  # changed\n")
        started = time.perf_counter()
        snap = await repo.checkpoint("bench", f"round {i}", first=False)
        changed.append((time.perf_counter() - started) * 1000)
        assert snap is not None and [f["path"] for f in snap.files] == ["pkg050/mod5000.py"], snap
        started = time.perf_counter()
        assert await repo.checkpoint("bench", "nothing", first=False) is None
        unchanged.append((time.perf_counter() - started) * 1000)
    one = summary(changed)
    return {
        "files": files,
        "rounds": rounds,
        "first_checkpoint_ms": round(first_ms, 1),
        "one_file_changed": one,
        "nothing_changed": summary(unchanged),
        "target_ms": TARGET_MS,
        "met": one["median_ms"] < TARGET_MS,
    }


class Finished:
    """A bus subscriber: resolves a task's future on its final event."""

    def __init__(self) -> None:
        self.waiting: dict[str, asyncio.Future] = {}

    def deliver(self, event: Any) -> None:
        if event.name in ("task.completed", "task.failed") and event.task_id in self.waiting:
            self.waiting.pop(event.task_id).set_result(event.name)


async def per_call(tmp: Path, files: int, calls: int, tasks: int) -> dict[str, Any]:
    roots = tmp / "roots"
    small = make_workspace(roots / "small", 100)
    large = roots / "large"
    make_workspace(large, files)
    turns = [
        {"tool_calls": [{"name": "write_to_file", "args": {"path": f"gen/f{i}.txt", "content": f"{i}\n"}}]}
        for i in range(calls)
    ]
    turns.append({"tool_calls": [{"name": "attempt_completion", "args": {"result": "done"}}]})
    overrides = {"store.data_dir": str(tmp / "data"), "workspaces.roots": [str(roots)], "log.level": "warning"}
    cfg = load_config(None, env={}, overrides=overrides)
    cfg["providers"] = {"writes": {"kind": "scripted", "turns": turns}}
    ctx = await open_context(cfg)
    finished = Finished()
    ctx.bus.subscribe(finished)
    try:
        sessions = {}
        for ws_name, ws in (("small", small), ("large", large)):
            for on in (True, False):
                body = {"provider": "writes", "workspace": str(ws), "auto_approve": {"write": True}}
                body["checkpoints"] = {"enabled": on}
                sessions[(ws_name, on)] = (await ctx.sessions.create(LOCAL, body, None))[0]
        times: dict[tuple[str, bool], list[float]] = {k: [] for k in sessions}
        for round_ in range(tasks + 1):  # the first round warms up (repository creation, page cache)
            keys = list(sessions)
            if round_ % 2:
                keys.reverse()
            for key in keys:
                # Each call then creates a file: a real change to record, every task.
                await asyncio.to_thread(shutil.rmtree, Path(sessions[key].workspace) / "gen", True)
                fut = asyncio.get_running_loop().create_future()
                started = time.perf_counter()
                task, _ = await ctx.tasks.create(LOCAL, sessions[key].id, {"prompt": "write"}, None)
                finished.waiting[task.id] = fut
                assert await fut == "task.completed"
                if round_:
                    times[key].append((time.perf_counter() - started) * 1000 / calls)
    finally:
        await ctx.close()
    out: dict[str, Any] = {"calls_per_task": calls, "tasks": tasks}
    for ws_name, count in (("small", 100), ("large", files)):
        on, off = statistics.median(times[(ws_name, True)]), statistics.median(times[(ws_name, False)])
        out[ws_name] = {
            "files": count,
            "ms_per_call_checkpoints_on": round(on, 1),
            "ms_per_call_checkpoints_off": round(off, 1),
            "added_ms_per_call": round(on - off, 1),
        }
    return out


async def main(files: int, rounds: int, calls: int, tasks: int) -> dict[str, Any]:
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="roo-bench-checkpoints-") as tmp:
        report = {"machine": machine(), "checkpoint": await one_checkpoint(Path(tmp), files, rounds)}
        report["per_tool_call"] = await per_call(Path(tmp), files, calls, tasks)
    return report


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--files", type=int, default=10000)
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--calls", type=int, default=20, help="write_to_file calls per task")
    p.add_argument("--tasks", type=int, default=6, help="tasks per variant (after one warm-up round)")
    a = p.parse_args()
    print(json.dumps(asyncio.run(main(a.files, a.rounds, a.calls, a.tasks)), indent=2))
