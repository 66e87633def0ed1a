"""REST throughput: ``GET /api/v1/sessions/{id}`` on roo-daemon (bearer auth,
openapi validation of the path parameter, Prometheus metrics, the access
logger) against a bare Tornado handler serving the same pre-serialised body, in
the same run, alternating rounds so both see the same machine load.

    python bench/rest_ratio.py [--seconds 3] [--rounds 3] [--connections 16]

Target (issue #2): ratio >= 0.6.
"""

from __future__ import annotations

import argparse
import json
import statistics

from common import BENCH_KEY, bare_server, call, daemon, loadgen, machine


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=3)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--log-level", default="warning", help="daemon log level (info logs every request)")
    a = p.parse_args()
    auth = [f"Authorization: Bearer {BENCH_KEY}"]
    results: dict[str, list[float]] = {"roo-daemon": [], "bare tornado": []}
    with daemon(a.log_level) as base, bare_server() as bare:
        sid = call("POST", base + "/api/v1/sessions", {"name": "bench"})["id"]
        ours = f"{base}/api/v1/sessions/{sid}"
        theirs = f"{bare}/api/v1/sessions/{sid}"
        loadgen(ours, 1, a.connections, auth)  # warm up both
        loadgen(theirs, 1, a.connections)
        for _ in range(a.rounds):
            r1 = loadgen(ours, a.seconds, a.connections, auth)
            r2 = loadgen(theirs, a.seconds, a.connections)
            assert r1["errors"] == 0 and r2["errors"] == 0, (r1, r2)
            results["roo-daemon"].append(r1["rps"])
            results["bare tornado"].append(r2["rps"])
    ours_rps = statistics.median(results["roo-daemon"])
    bare_rps = statistics.median(results["bare tornado"])
    report = {
        "benchmark": "GET /api/v1/sessions/{id} vs bare Tornado",
        "machine": machine(),
        "daemon_log_level": a.log_level,
        "rounds_rps": results,
        "roo_daemon_rps": ours_rps,
        "bare_tornado_rps": bare_rps,
        "ratio": round(ours_rps / bare_rps, 3),
        "target": ">= 0.6",
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
