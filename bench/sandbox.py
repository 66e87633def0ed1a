"""Command start-up cost in the bubblewrap sandbox vs without.

Each sample is one whole ``execute_command`` run through the daemon's own
code (``run_command``: policy, spawn, output pipes, exit, the group's
clean-up), for a command that does next to nothing (``true``, ``echo hi``),
so the figure is the sandbox's start-up, not the command's work. Variants,
run side by side in alternating rounds (same minute, same load):

- ``none``: ``tools.sandbox: none`` (``/bin/sh -c`` directly);
- ``bwrap``: the sandbox, network on (the default);
- ``bwrap-offline``: the sandbox with ``sandbox.network: false`` (a network
  namespace too);
- ``bwrap-rooignore``: the sandbox in a workspace of ``--files`` files with a
  ``.rooignore`` that masks 1 in 100 (the walk and the masks included).

    python bench/sandbox.py [--rounds 200]

Reports the median and p90 per variant in ms, and each sandboxed median as a
ratio to ``none`` (and as extra ms per command).
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
from types import SimpleNamespace
from typing import Any

from common import ROOT, machine

sys.path.insert(0, str(ROOT))

from roo_daemon.engine.sandbox import SETTINGS_KEY, Sandbox  # noqa: E402
from roo_daemon.engine.tools.command import run_command  # noqa: E402

COMMANDS = ("true", "echo hi")


class Context:
    """Just what ``run_command`` uses of a task's context."""

    def __init__(self, workspace: Path, sandbox: Sandbox, network: bool = True) -> None:
        self.settings: dict[str, Any] = {"command_env_allow": ["PATH"], SETTINGS_KEY: sandbox}
        self.session = SimpleNamespace(workspace=str(workspace), sandbox={"network": network})
        self.task = SimpleNamespace(id="task_bench")

    def publish(self, name: str, data: dict[str, Any]) -> None:
        pass


def workspace_with_rooignore(root: Path, files: int) -> Path:
    ws = root / "ignored"
    for i in range(files):
        d = ws / f"pkg{i // 100}"
        d.mkdir(parents=True, exist_ok=True)
        (d / (f"secret{i}.key" if i % 100 == 0 else f"mod{i}.py")).write_text("x\n")
    (ws / ".rooignore").write_text("*.key\n")
    return ws


async def sample(ctx: Context, command: str, workdir: Path) -> float:
    started = time.perf_counter()
    code, output, timed_out = await run_command(ctx, command, workdir, 30)  # type: ignore[arg-type]
    elapsed = time.perf_counter() - started
    assert code == 0 and not timed_out, (code, output)
    return elapsed * 1000


def summary(ms: list[float]) -> dict[str, float]:
    ms = sorted(ms)
    return {"median_ms": round(statistics.median(ms), 2), "p90_ms": round(ms[int(len(ms) * 0.9)], 2)}


async def main(rounds: int, files: int) -> dict[str, Any]:
    bwrap, none = Sandbox("bwrap"), Sandbox("none")
    await bwrap.start()
    await none.start()
    if bwrap.bwrap is None:
        raise SystemExit(f"bubblewrap cannot run here: {bwrap.problem}")
    with tempfile.TemporaryDirectory(prefix="roo-bench-sandbox-") as tmp:
        plain = Path(tmp, "plain").resolve()
        plain.mkdir()
        ignored = workspace_with_rooignore(Path(tmp).resolve(), files)
        variants = {
            "none": (Context(plain, none), plain),
            "bwrap": (Context(plain, bwrap), plain),
            "bwrap-offline": (Context(plain, bwrap, network=False), plain),
            "bwrap-rooignore": (Context(ignored, bwrap), ignored),
        }
        times: dict[str, dict[str, list[float]]] = {c: {v: [] for v in variants} for c in COMMANDS}
        for command in COMMANDS:  # warm-up: page cache, imports
            for ctx, wd in variants.values():
                await sample(ctx, command, wd)
        names = list(variants)
        for i in range(rounds):
            order = names[i % len(names) :] + names[: i % len(names)]  # rotate: no variant always first
            for command in COMMANDS:
                for name in order:
                    ctx, wd = variants[name]
                    times[command][name].append(await sample(ctx, command, wd))
    report: dict[str, Any] = {"machine": machine(), "bwrap": bwrap.bwrap.binary, "rounds": rounds, "files": files}
    for command in COMMANDS:
        stats = {name: summary(ms) for name, ms in times[command].items()}
        base = stats["none"]["median_ms"]
        for name, s in stats.items():
            if name != "none":
                s["ratio_to_none"] = round(s["median_ms"] / base, 2)
                s["extra_ms"] = round(s["median_ms"] - base, 2)
        report[command] = stats
    return report


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=200)
    p.add_argument("--files", type=int, default=1000, help="files in the .rooignore variant's workspace")
    a = p.parse_args()
    print(json.dumps(asyncio.run(main(a.rounds, a.files)), indent=2))
