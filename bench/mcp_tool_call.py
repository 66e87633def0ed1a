"""The cost of one MCP tool call: the daemon's whole path to a stdio server
vs calling the same function in-process.

The MCP call is what a task's call runs after its approval: the tool the
daemon offers (``roo_daemon.mcp.tools``), the connection (``connection.py``:
the SDK's ClientSession, our stdio transport), the server process
(bench/mcp_server.py, the SDK's server side, in its own PID namespace when
bubblewrap works, as config servers run), the answer parsed, formatted as
Roo formats it and capped. The in-process call is ``add(2, 3)`` itself.
Rounds alternate the two (same minute, same load); the server is started
and warmed up first (its start is not part of a call).

    python bench/mcp_tool_call.py [--calls 2000]

(Not ``bench/mcp.py``: a script's directory comes first on ``sys.path``, so that
name would shadow the SDK package for every script in bench/.)

Reports the median and p90 of each in µs, the ratio, and the overhead per
call in µs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from types import SimpleNamespace
from typing import Any

from common import ROOT, machine
from mcp_server import add

sys.path.insert(0, str(ROOT))

from roo_daemon.engine.sandbox import Sandbox  # noqa: E402
from roo_daemon.mcp import McpToolSource, build_hub  # noqa: E402


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * q))]


async def main(calls: int) -> dict[str, Any]:
    sandbox = Sandbox("bwrap")
    await sandbox.start()
    if sandbox.bwrap is None:
        sandbox = None  # type: ignore[assignment]
    server = {"command": sys.executable, "args": [str(ROOT / "bench" / "mcp_server.py")], "alwaysAllow": ["add"]}
    cfg = {"mcp": {"servers": {"bench": server}}, "tools": {}, "_config_dir": str(ROOT)}
    hub = build_hub(cfg, sandbox)
    source = McpToolSource(hub)
    ctx = SimpleNamespace(
        session=SimpleNamespace(id="ses_bench", workspace=str(ROOT), owner="bench", auto_approve={}, sandbox={})
    )
    try:
        started = time.perf_counter()
        tools = {t.name: t for t in await source.tools(ctx)}  # type: ignore[arg-type]
        start_ms = (time.perf_counter() - started) * 1000
        tool = tools["mcp--bench--add"]
        for _ in range(50):  # warm-up: the server's and our code paths
            await tool.run(ctx, {"a": 2.0, "b": 3.0})  # type: ignore[arg-type]
        remote: list[float] = []
        local: list[float] = []
        for _ in range(calls):
            t0 = time.perf_counter()
            outcome = await tool.run(ctx, {"a": 2.0, "b": 3.0})  # type: ignore[arg-type]
            t1 = time.perf_counter()
            value = add(2.0, 3.0)
            t2 = time.perf_counter()
            assert outcome.content == value == "5.0", (outcome.content, value)
            remote.append((t1 - t0) * 1e6)
            local.append((t2 - t1) * 1e6)
    finally:
        await hub.close()
    remote_median, local_median = statistics.median(remote), statistics.median(local)
    return {
        "machine": machine(),
        "calls": calls,
        "contained": sandbox is not None,
        "server_start_ms": round(start_ms, 1),
        "mcp_call_us": {"median": round(remote_median, 1), "p90": round(percentile(remote, 0.9), 1)},
        "in_process_us": {"median": round(local_median, 3), "p90": round(percentile(local, 0.9), 3)},
        "ratio": round(remote_median / local_median),
        "overhead_us": round(remote_median - local_median, 1),
    }


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=2000)
    a = p.parse_args()
    print(json.dumps(asyncio.run(main(a.calls)), indent=2))
