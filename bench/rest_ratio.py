"""REST throughput: ``GET /api/v1/sessions/{id}`` on roo-daemon (bearer auth,
openapi validation of the path parameter, Prometheus metrics, the access
logger) against a bare Tornado handler serving the same pre-serialised body, in
the same run, alternating rounds so both see the same machine load.

    python bench/rest_ratio.py [--seconds 3] [--rounds 3] [--connections 16]
        [--log-level info] [--client auto|wrk|loadgen] [--before DIR]

``--before DIR`` also runs the daemon of another source tree (e.g. ``git
worktree add /tmp/before <commit>``) in the same rounds, so a change is
measured before and after against the same bare handler on the same load.

The daemon runs at its default log level (info: one access line per request,
JSON, to /dev/null). The client is ``wrk -t1`` when installed (Debian:
``apt-get install wrk``), else ``bench/loadgen.py``, which tops out below what a
bare Tornado handler serves and so compresses the ratio.

Besides requests/s, each server's CPU time per request (``/proc``) is reported:
on a shared machine whose load changes between rounds it is the steadier
measure of the same thing (a single-threaded server's saturated throughput is
the inverse of its CPU time per request).

Target (issue #14): ratio >= 0.8 with wrk.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
from pathlib import Path

from common import BENCH_KEY, bare_server_process, call, cpu_seconds, daemon_process, loadgen, machine, wrk, wrk_path


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=3)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--log-level", default="info", help="daemon log level (info, the default, logs every request)")
    p.add_argument("--client", choices=["auto", "wrk", "loadgen"], default="auto")
    p.add_argument("--before", type=Path, help="another source tree whose daemon runs in the same rounds")
    a = p.parse_args()
    client = a.client if a.client != "auto" else ("wrk" if wrk_path() else "loadgen")
    load = wrk if client == "wrk" else loadgen
    auth = [f"Authorization: Bearer {BENCH_KEY}"]
    names = ["roo-daemon", "bare tornado"] + (["roo-daemon before"] if a.before else [])
    results: dict[str, list[float]] = {name: [] for name in names}
    cpu_us: dict[str, list[float]] = {name: [] for name in names}

    def measure(name: str, url: str, pid: int, headers: list[str] | None = None) -> None:
        before = cpu_seconds(pid)
        r = load(url, a.seconds, a.connections, headers)
        used = cpu_seconds(pid) - before
        assert r["errors"] == 0, r
        results[name].append(r["rps"])
        cpu_us[name].append(round(used / r["requests"] * 1e6, 1))

    with contextlib.ExitStack() as stack:
        base, ours_proc = stack.enter_context(daemon_process(a.log_level))
        bare, bare_proc = stack.enter_context(bare_server_process())
        targets = []
        for name, (url, proc) in [("roo-daemon", (base, ours_proc))] + (
            [("roo-daemon before", stack.enter_context(daemon_process(a.log_level, source=a.before)))]
            if a.before
            else []
        ):
            sid = call("POST", url + "/api/v1/sessions", {"name": "bench"})["id"]
            targets.append((name, f"{url}/api/v1/sessions/{sid}", proc.pid, auth))
        targets.append(("bare tornado", f"{bare}/api/v1/sessions/{sid}", bare_proc.pid, None))
        for _, url, _, headers in targets:
            load(url, 1, a.connections, headers)  # warm up
        for _ in range(a.rounds):
            for name, url, pid, headers in targets:
                measure(name, url, pid, headers)
    rps = {name: statistics.median(results[name]) for name in names}
    cpu = {name: statistics.median(cpu_us[name]) for name in names}
    report = {
        "benchmark": "GET /api/v1/sessions/{id} vs bare Tornado",
        "machine": machine(),
        "daemon_log_level": a.log_level,
        "client": client,
        "rounds_rps": results,
        "rounds_cpu_us_per_request": cpu_us,
        "roo_daemon_rps": rps["roo-daemon"],
        "bare_tornado_rps": rps["bare tornado"],
        "ratio": round(rps["roo-daemon"] / rps["bare tornado"], 3),
        "cpu_ratio": round(cpu["bare tornado"] / cpu["roo-daemon"], 3),
        "target": ">= 0.8",
    }
    if a.before:
        report["before"] = {
            "source": str(a.before),
            "rps": rps["roo-daemon before"],
            "ratio": round(rps["roo-daemon before"] / rps["bare tornado"], 3),
            "cpu_ratio": round(cpu["bare tornado"] / cpu["roo-daemon before"], 3),
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
