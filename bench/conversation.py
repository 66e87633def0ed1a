"""Per-turn engine overhead late in one long task vs early in fresh ones,
measured in alternating blocks: a stored conversation must not make each
turn slower as it grows.

The daemon's context runs in this process (the real store, event bus,
runner and agent loop) with scripted providers that answer at once: a long
task of ``--turns`` turns of ``update_todo_list`` (each with usage, under a
large ``context_window``, so the context check runs every turn), then
``attempt_completion``. Each turn's overhead is the time from the start of
one provider request to the start of the next, less the time spent inside
the provider: storing the answer and the tool result with their events,
running the tool, the context estimate, building the next request. The
ratio compares CPU time (the process's, every thread: the loop and the
store's writer), which waiting for a busy machine's cores does not
inflate; wall-clock medians are reported beside it.

Over its last ``ROUNDS * BLOCK`` turns the long task is held (inside its
provider, so the hold is not counted) every ``BLOCK`` turns while a fresh
task runs alone; the report compares the fresh tasks' turns 5-25 with the
long task's turns between the holds. Early and late turns thus alternate
within seconds, alone on the loop each, so a change in the machine's load
hits both (comparing turns 5-25 with the last twenty of one task, once,
made the ratio swing 0.7-1.5 on a busy machine).

    python bench/conversation.py [--turns 1000]

Target (issue #10): late / early <= 1.2.
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

EARLY_FROM, EARLY_TO = 5, 25  # each fresh task's turns compared
ROUNDS, BLOCK = 5, 20  # the long task's last turns, in blocks between fresh tasks
WALL, CPU = 0, 1  # the clocks: CPU time (all the process's threads) is what the ratio compares


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
    cfg["providers"] = {
        name: {"kind": "scripted", "turns": script(n), "context_window": 100_000_000}
        for name, n in (("long", turns), ("fresh", EARLY_TO + 5))
    }
    ctx = await open_context(cfg)
    holds = {turns - (ROUNDS - k) * BLOCK: asyncio.Event() for k in range(ROUNDS)}
    long_t = timed(ctx.providers["long"], holds)
    fresh_t = timed(ctx.providers["fresh"], {})
    session = Session(
        id=new_id("ses"),
        workspace=tempfile.mkdtemp(prefix="roo-bench-ws-"),
        workspace_managed=False,
        mode="code",
        provider="long",
        provider_kind="scripted",
        created_at=now_iso(),
        owner="local",
    )
    ctx.sessions.sessions[session.id] = session
    started = time.perf_counter()
    long_run = await start(ctx, session, "long")
    early: list[list[float]] = [[], []]  # wall, CPU
    late: list[list[float]] = [[], []]
    statuses = []
    for turn, resume in holds.items():
        while len(long_t.starts) <= turn and not long_run.done.is_set():
            await asyncio.sleep(0.005)  # the long task is held at ``turn``
        fresh_t.reset()
        fresh_run = await start(ctx, session, "fresh")
        await fresh_run.done.wait()
        statuses.append(fresh_run.task.status)
        for clock in (WALL, CPU):
            early[clock] += fresh_t.overheads(clock)[EARLY_FROM:EARLY_TO]
        resume.set()
    await long_run.done.wait()
    elapsed = time.perf_counter() - started
    statuses.append(long_run.task.status)
    await ctx.close()
    for clock in (WALL, CPU):
        overheads = long_t.overheads(clock)
        for turn in holds:  # the turns after each hold, up to the next (the held turn itself left out)
            late[clock] += overheads[turn + 1 : turn + BLOCK]
    e, late_ms = (statistics.median(early[CPU]) * 1000, statistics.median(late[CPU]) * 1000)
    wall_e, wall_late = (statistics.median(early[WALL]) * 1000, statistics.median(late[WALL]) * 1000)
    return {
        "turns": turns,
        "statuses": sorted(set(statuses)),
        "seconds": round(elapsed, 2),
        "early": f"turns {EARLY_FROM}-{EARLY_TO} of {ROUNDS} fresh tasks ({len(early[CPU])} turns)",
        "late": f"turns {turns - ROUNDS * BLOCK}-{turns} of the long task, between them ({len(late[CPU])} turns)",
        "cpu_ms_early": round(e, 3),
        "cpu_ms_late": round(late_ms, 3),
        "ratio_late_to_early": round(late_ms / e, 3),
        "wall_ms_early": round(wall_e, 3),
        "wall_ms_late": round(wall_late, 3),
        "wall_ratio": round(wall_late / wall_e, 3),
        "target": "ratio <= 1.2",
        "met": late_ms / e <= 1.2,
    }


class timed:
    """Wraps a provider's ``stream``: when each request starts and how long
    the provider took over it; a request whose turn is in ``holds`` waits
    for that event first (counted as the provider's time)."""

    def __init__(self, provider: Any, holds: dict[int, asyncio.Event]) -> None:
        self.starts: list[tuple[float, float]] = []  # (wall, CPU)
        self.inside: list[tuple[float, float]] = []
        stream = provider.stream

        async def wrapped(request: Any) -> Any:
            began = (time.perf_counter(), time.process_time())
            self.starts.append(began)
            if request.turn in holds:
                await holds[request.turn].wait()
            async for chunk in stream(request):
                yield chunk
            self.inside.append((time.perf_counter() - began[0], time.process_time() - began[1]))

        provider.stream = wrapped

    def reset(self) -> None:
        self.starts.clear()
        self.inside.clear()

    def overheads(self, clock: int) -> list[float]:
        """Each turn's overhead on ``clock`` (0 wall, 1 CPU): to the next
        request, less the provider's time."""
        s, i = self.starts, self.inside
        return [s[n + 1][clock] - s[n][clock] - i[n][clock] for n in range(len(s) - 1)]


async def start(ctx: Any, session: Session, provider: str) -> Any:
    from roo_daemon.store import TaskStore

    task = Task(new_id("tsk"), session.id, f"a task on {provider}", "code", provider, "scripted", now_iso())
    await ctx.db.write(TaskStore.insert(task, {"images": []}))
    return ctx.runner.submit(task, session, [])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--turns", type=int, default=1000)
    a = p.parse_args()
    report = asyncio.run(run(a.turns))
    print(
        json.dumps({"benchmark": "per-turn overhead, late in a long task vs early in fresh ones", **report}, indent=2)
    )


if __name__ == "__main__":
    main()
