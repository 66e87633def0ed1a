"""REST throughput: ``GET /api/v1/sessions/{id}`` on roo-daemon (bearer auth,
openapi validation of the path parameter, Prometheus metrics, the access
logger) against a bare Tornado handler serving the same pre-serialised body, in
the same run, alternating rounds so both see the same machine load.

    python bench/rest_ratio.py [--seconds 3] [--rounds 3] [--connections 16]
        [--log-level info] [--client auto|wrk|loadgen]

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
import json
import statistics

from common import BENCH_KEY, bare_server_process, call, cpu_seconds, daemon_process, loadgen, machine, wrk, wrk_path


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=3)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--log-level", default="info", help="daemon log level (info, the default, logs every request)")
    p.add_argument("--client", choices=["auto", "wrk", "loadgen"], default="auto")
    a = p.parse_args()
    client = a.client if a.client != "auto" else ("wrk" if wrk_path() else "loadgen")
    load = wrk if client == "wrk" else loadgen
    auth = [f"Authorization: Bearer {BENCH_KEY}"]
    results: dict[str, list[float]] = {"roo-daemon": [], "bare tornado": []}
    cpu_us: dict[str, list[float]] = {"roo-daemon": [], "bare tornado": []}

    def measure(name: str, url: str, pid: int, headers: list[str] | None = None) -> None:
        before = cpu_seconds(pid)
        r = load(url, a.seconds, a.connections, headers)
        used = cpu_seconds(pid) - before
        assert r["errors"] == 0, r
        results[name].append(r["rps"])
        cpu_us[name].append(round(used / r["requests"] * 1e6, 1))

    with daemon_process(a.log_level) as (base, ours_proc), bare_server_process() as (bare, bare_proc):
        sid = call("POST", base + "/api/v1/sessions", {"name": "bench"})["id"]
        ours = f"{base}/api/v1/sessions/{sid}"
        theirs = f"{bare}/api/v1/sessions/{sid}"
        load(ours, 1, a.connections, auth)  # warm up both
        load(theirs, 1, a.connections)
        for _ in range(a.rounds):
            measure("roo-daemon", ours, ours_proc.pid, auth)
            measure("bare tornado", theirs, bare_proc.pid)
    ours_rps = statistics.median(results["roo-daemon"])
    bare_rps = statistics.median(results["bare tornado"])
    ours_cpu = statistics.median(cpu_us["roo-daemon"])
    bare_cpu = statistics.median(cpu_us["bare tornado"])
    report = {
        "benchmark": "GET /api/v1/sessions/{id} vs bare Tornado",
        "machine": machine(),
        "daemon_log_level": a.log_level,
        "client": client,
        "rounds_rps": results,
        "rounds_cpu_us_per_request": cpu_us,
        "roo_daemon_rps": ours_rps,
        "bare_tornado_rps": bare_rps,
        "ratio": round(ours_rps / bare_rps, 3),
        "cpu_ratio": round(bare_cpu / ours_cpu, 3),
        "target": ">= 0.8",
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
