"""Per-turn engine overhead early and late in one long task: a stored
conversation must not make each turn slower as it grows.

The daemon's context runs in this process (the real store, event bus,
runner and agent loop) with a scripted provider that answers at once:
``--turns`` turns of ``update_todo_list`` (each with usage, under a large
``context_window``, so the context check runs every turn), then
``attempt_completion``. Each turn's overhead is the time from the start of
one provider request to the start of the next, less the time spent inside
the provider: storing the answer and the tool result with their events,
running the tool, the context estimate, building the next request. The
report compares the median over turns 5-25 with the median over the last
twenty turns before ``--turns``, measured side by side in one task.

    python bench/conversation.py [--turns 1000]

Target (issue #10): turn 1,000 / turn 10 <= 1.2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from roo_daemon.config import load_config  # noqa: E402
from roo_daemon.context import open_context  # noqa: E402
from roo_daemon.models import Session, Task, new_id, now_iso  # noqa: E402


def script(turns: int) -> list[dict[str, Any]]:
    def turn(n: int) -> dict[str, Any]:
        # Each call differs (the step number): identical calls in a row would
        # trip Roo's tool-repetition detector, and the task would stop to ask.
        todo = {"name": "update_todo_list", "args": {"todos": f"[x] step {n} of a long task\n[ ] step {n + 1}"}}
        return {
            "text": "Working on the next step of the task. " * 4,
            "tool_calls": [todo],
            "usage": {"tokens_in": 5000, "tokens_out": 50, "cost_usd": 0.0},
        }

    done = {"tool_calls": [{"name": "attempt_completion", "args": {"result": "done"}}]}
    return [turn(n) for n in range(turns)] + [done]


async def run(turns: int) -> dict[str, Any]:
    data = tempfile.mkdtemp(prefix="roo-bench-conv-")
    cfg = load_config(
        None,
        env={},
        overrides={
            "store.data_dir": data,
            "engine.max_requests": None,
            "engine.delta_coalesce_ms": 30,
            "log.level": "warning",
        },
    )
    cfg["providers"] = {"bench": {"kind": "scripted", "turns": script(turns), "context_window": 100_000_000}}
    ctx = await open_context(cfg)
    provider = ctx.providers["bench"]
    starts: list[float] = []
    inside: list[float] = []
    stream = provider.stream

    async def timed(request: Any) -> Any:
        starts.append(time.perf_counter())
        began = starts[-1]
        async for chunk in stream(request):
            yield chunk
        inside.append(time.perf_counter() - began)

    provider.stream = timed  # type: ignore[method-assign]
    session = Session(
        id=new_id("ses"),
        workspace=tempfile.mkdtemp(prefix="roo-bench-ws-"),
        workspace_managed=False,
        mode="code",
        provider="bench",
        provider_kind="scripted",
        created_at=now_iso(),
        owner="local",
    )
    ctx.sessions.sessions[session.id] = session
    task = Task(new_id("tsk"), session.id, "a long task", "code", "bench", "scripted", now_iso())
    from roo_daemon.store import TaskStore

    await ctx.db.write(TaskStore.insert(task, {"images": []}))
    run_ = ctx.runner.submit(task, session, [])
    started = time.perf_counter()
    await run_.done.wait()
    elapsed = time.perf_counter() - started
    status = task.status
    await ctx.close()
    overheads = [starts[i + 1] - starts[i] - inside[i] for i in range(len(starts) - 1)]
    early = overheads[5:25]
    late = overheads[turns - 21 : turns - 1]
    e, late_ms = statistics.median(early) * 1000, statistics.median(late) * 1000
    return {
        "turns": turns,
        "status": status,
        "seconds": round(elapsed, 2),
        "overhead_ms_turns_5_25": round(e, 3),
        f"overhead_ms_turns_{turns - 20}_{turns}": round(late_ms, 3),
        "ratio_late_to_early": round(late_ms / e, 3),
        "target": "ratio <= 1.2",
        "met": late_ms / e <= 1.2,
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--turns", type=int, default=1000)
    a = p.parse_args()
    report = asyncio.run(run(a.turns))
    print(json.dumps({"benchmark": "per-turn overhead, turn 10 vs turn N of one task", **report}, indent=2))


if __name__ == "__main__":
    main()
