"""Streaming tasks on 1 node vs 2 nodes of one PostgreSQL, side by side, and
REST read throughput through 2 nodes vs 1.

For each task count (200, 300, 400) the same load runs on one node, then on
two nodes sharing a fresh database of one local PostgreSQL (durable:
``fsync`` and ``synchronous_commit`` on, as in production): N tasks stream
at once from a fake OpenAI-compatible server (``fake_openai.py``: 100 deltas
20 ms apart per turn, 3 turns), spread over 4 sessions. Each session is
created on node ``i % nodes`` (its owner, which runs its tasks), and its
tasks are posted there. One WebSocket per session follows it; on two nodes
half of them are connected to the owner and half to the other node, so half
of the events reach their client through the other node's notification
(LISTEN/NOTIFY, read from the log by seq). Every ``message.delta`` is timed
from its ``ts`` (the writing node's clock; one machine) to the socket read
that brought it (``wsclient.py``). Reported per run: p50/p99 delay over the
whole run and while all N stream, deltas received per second, the time for
all N to end, and on two nodes the p99 of local and of cross-node watchers.

Then REST reads: ``GET /api/v1/sessions/{id}`` with keep-alive, through one
node (one client, 32 connections), then through two nodes at once (one
client per node, 16 connections each): requests per second, summed.
``wrk -t1`` when installed, else ``loadgen.py``.

    PYTHONPATH=. python bench/cluster_streams.py [--tasks 200,300,400] [--nodes 1,2] [--rest-seconds 5]

Two nodes on one database need session leases (``cluster.node_id``); on a
version without them only ``--nodes 1`` runs. On a 2-core machine the two
nodes, PostgreSQL, the fake model and the client share the cores: the
figures say how far a second process on the same machine carries, not what
two machines do.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import BENCH_KEY, ROOT, call, free_port, loadgen, machine, unlimited, wait_http, wrk, wrk_path  # noqa: E402
from engine import fake, metric_sum, pct, scrape  # noqa: E402
from tornado.httpclient import AsyncHTTPClient  # noqa: E402
from wsclient import WsClosed, WsConn  # noqa: E402

from tests.pgserver import PgServer, bin_dir  # noqa: E402

DSN_ENV = "ROO_BENCH_DSN"
SESSIONS = 4
ENDED = ("task.completed", "task.failed", "task.cancelled")


def schema_keys() -> set[str]:
    schema = yaml.safe_load((ROOT / "roo_daemon" / "config_schema.yaml").read_text())
    return {f"{s}.{k}" for s, spec in schema["properties"].items() for k in (spec.get("properties") or {})}


def node_config(name: str, port: int, tmp: Path, fake_port: int, max_tasks: int, sqlite: bool = False) -> dict:
    keys = schema_keys()
    store = {"backend": "postgresql", "dsn_env": DSN_ENV, "pool_size": 4, "data_dir": str(tmp / name)}
    if sqlite:  # the baseline: one daemon on its embedded store
        store = {"data_dir": str(tmp / name)}
    cfg: dict = {
        "server": {"host": "127.0.0.1", "port": port},
        "store": store,
        "log": {"level": "warning", "format": "json"},
        "auth": {
            "keys": [
                {"name": "bench", "sha256": hashlib.sha256(BENCH_KEY.encode()).hexdigest(), "scopes": ["read", "write"]}
            ]
        },
        "engine": {"default_provider": "fake", "max_concurrent_tasks": max_tasks, "max_requests": None},
        "providers": {
            "fake": {
                "kind": "openai",
                "base_url": f"http://127.0.0.1:{fake_port}/v1",
                "model": "bench",
                "max_retries": 0,
            }
        },
        **unlimited(),
    }
    if sqlite:
        return cfg
    if "cluster.node_id" in keys:
        cfg["cluster"] = {"node_id": name}
    if "workspaces.managed_dir" in keys:
        cfg["workspaces"] = {"managed_dir": str(tmp / "managed")}
    return cfg


@contextlib.contextmanager
def nodes(count: int, dsn: str, fake_port: int, max_tasks: int, sqlite: bool = False) -> Iterator[list[str]]:
    """``count`` daemons on database ``dsn`` (or one on SQLite); yields their base URLs."""
    if count > 1 and "cluster.node_id" not in schema_keys():
        raise SystemExit("several nodes on one database need session leases (cluster.node_id): use --nodes 1")
    procs: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory(prefix="roo-bench-cluster-") as tmp:
        try:
            bases = []
            for i in range(count):
                port = free_port()
                cfg_path = Path(tmp, f"node{i}.yaml")
                cfg_path.write_text(
                    yaml.safe_dump(node_config(f"node{i}", port, Path(tmp), fake_port, max_tasks, sqlite))
                )
                proc = subprocess.Popen(
                    [sys.executable, "-m", "roo_daemon", "serve", "--config", str(cfg_path)],
                    stdout=subprocess.DEVNULL,
                    cwd=tmp,
                    env={**os.environ, "PYTHONPATH": str(ROOT), DSN_ENV: dsn},
                )
                procs.append(proc)
                base = f"http://127.0.0.1:{port}"
                wait_http(base + "/healthz", timeout=60, proc=proc)
                bases.append(base)
            yield bases
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(30)


class Watcher:
    """One WebSocket following one session; times every delta."""

    def __init__(self, base: str, session_id: str, cross: bool) -> None:
        self.base, self.session_id, self.cross = base, session_id, cross
        self.delays: list[tuple[float, int]] = []  # (delay, tasks streaming cluster-wide at arrival)
        self.ended = 0

    async def run(self, expected: int, streaming: set[str], ready: asyncio.Event) -> None:
        host, port = self.base.removeprefix("http://").split(":")
        conn = await WsConn.open(host, int(port), token=BENCH_KEY)
        conn.send_text(json.dumps({"op": "subscribe", "id": "s", "session_id": self.session_id}))
        await conn.read_frames()  # subscribed
        ready.set()
        try:
            while self.ended < expected:
                received, frames = await conn.read_frames()
                for frame in frames:
                    doc = json.loads(frame)
                    event = doc.get("event")
                    if event == "message.delta":
                        streaming.add(doc["task_id"])
                        ts = datetime.fromisoformat(doc["ts"].replace("Z", "+00:00")).timestamp()
                        self.delays.append((received - ts, len(streaming)))
                    elif event in ENDED:
                        streaming.discard(doc["task_id"])
                        self.ended += 1
        except WsClosed:
            pass
        conn.close()


async def post(http: AsyncHTTPClient, url: str, body: dict) -> dict:
    headers = {"Authorization": f"Bearer {BENCH_KEY}", "Content-Type": "application/json"}
    r = await http.fetch(url, method="POST", headers=headers, body=json.dumps(body))
    return json.loads(r.body)


async def streams(bases: list[str], n: int) -> dict:
    http = AsyncHTTPClient(max_clients=64)
    k = len(bases)
    owners = [bases[s % k] for s in range(SESSIONS)]
    sessions = [
        (await post(http, owners[s] + "/api/v1/sessions", {"name": f"bench{s}"}))["id"] for s in range(SESSIONS)
    ]
    # Watcher s on node (s // 2) % k: on two nodes, sessions 0 and 3 are
    # watched on their owner, 1 and 2 on the other node.
    watchers = [Watcher(bases[(s // 2) % k], sessions[s], bases[(s // 2) % k] != owners[s]) for s in range(SESSIONS)]
    per_session = [len(range(s, n, SESSIONS)) for s in range(SESSIONS)]
    streaming: set[str] = set()
    readies = [asyncio.Event() for _ in watchers]
    runs = [asyncio.ensure_future(w.run(per_session[s], streaming, readies[s])) for s, w in enumerate(watchers)]
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 30)
    await asyncio.sleep(0.5)  # every node's bus settled before the first task
    started = time.perf_counter()
    for i in range(n):
        s = i % SESSIONS
        await post(http, f"{owners[s]}/api/v1/sessions/{sessions[s]}/tasks", {"prompt": "bench"})
    await asyncio.wait_for(asyncio.gather(*runs), 900)
    elapsed = time.perf_counter() - started
    every = [d for w in watchers for d in w.delays]
    delays = [d for d, _ in every]
    together = [d for d, c in every if c >= n]
    out = {
        "nodes": k,
        "tasks": n,
        "tasks_ended": sum(w.ended for w in watchers),
        "seconds_to_all_ended": round(elapsed, 2),
        "deltas_received": len(delays),
        "deltas_per_second": round(len(delays) / elapsed),
        "delta_delay_p50_ms": round(pct(delays, 0.5) * 1000, 1),
        "delta_delay_p99_ms": round(pct(delays, 0.99) * 1000, 1),
        "peak_tasks_streaming": max((c for _, c in every), default=0),
        "all_streaming_deltas": len(together),
        "all_streaming_delta_delay_p99_ms": round(pct(together, 0.99) * 1000, 1),
    }
    texts = [await asyncio.get_running_loop().run_in_executor(None, scrape, base) for base in bases]
    commits = [metric_sum(t, "event_store_write_seconds_count") for t in texts]
    commit_s = [metric_sum(t, "event_store_write_seconds_sum") for t in texts]
    out["store_commits_per_node"] = [int(c) for c in commits]
    out["store_commit_mean_ms_per_node"] = [
        round(s / c * 1000, 2) if c else None for s, c in zip(commit_s, commits, strict=True)
    ]
    if k > 1:
        local = [d for w in watchers if not w.cross for d, _ in w.delays]
        cross = [d for w in watchers if w.cross for d, _ in w.delays]
        out["local_watchers_p99_ms"] = round(pct(local, 0.99) * 1000, 1)
        out["cross_node_watchers_p99_ms"] = round(pct(cross, 0.99) * 1000, 1)
    return out


def rest(bases: list[str], seconds: float, connections: int) -> dict:
    """Keep-alive GETs of one session through every node at once; rps summed."""
    sid = call("POST", bases[0] + "/api/v1/sessions", {"name": "rest"})["id"]
    per_node = max(1, connections // len(bases))
    header = [f"Authorization: Bearer {BENCH_KEY}"]
    client = wrk if wrk_path() else loadgen
    threads = []
    results: list[dict] = [{} for _ in bases]

    def one(i: int) -> None:
        results[i] = client(f"{bases[i]}/api/v1/sessions/{sid}", seconds, per_node, header)

    for i in range(len(bases)):
        t = threading.Thread(target=one, args=(i,))
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    return {
        "nodes": len(bases),
        "client": "wrk -t1" if wrk_path() else "loadgen.py",
        "connections": per_node * len(bases),
        "rps": round(sum(r["rps"] for r in results)),
        "errors": sum(r["errors"] for r in results),
        "p99_ms": max(r["p99_ms"] for r in results),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--tasks", default="200,300,400", help="task counts, comma-separated")
    p.add_argument("--nodes", default="1,2", help="node counts to compare, comma-separated")
    p.add_argument("--turns", type=int, default=3)
    p.add_argument("--deltas", type=int, default=100)
    p.add_argument("--delta-ms", type=float, default=20)
    p.add_argument("--rest-seconds", type=float, default=5, help="0: no REST part")
    p.add_argument("--rest-connections", type=int, default=32)
    p.add_argument("--sqlite-baseline", action="store_true", help="also one node on SQLite, for each task count")
    a = p.parse_args()
    counts = [int(x) for x in a.tasks.split(",") if x]
    node_counts = [int(x) for x in a.nodes.split(",") if x]
    bindir = bin_dir()
    if bindir is None:
        raise SystemExit("PostgreSQL is not installed (apt-get install postgresql)")
    server = PgServer(bindir)
    server.durable = not os.environ.get("BENCH_PG_NO_FSYNC")
    server.start()
    fake_proc, fake_port = fake(a.deltas, a.delta_ms, a.turns)
    report: dict = {"benchmark": "streaming tasks and REST reads, 1 node vs 2 nodes on one PostgreSQL"}
    report["machine"] = machine()
    report["streams"] = []
    report["rest"] = []
    try:
        for n in counts:
            if a.sqlite_baseline:
                with nodes(1, "", fake_port, n, sqlite=True) as bases:
                    run = {"store": "sqlite", **asyncio.run(streams(bases, n))}
                print(json.dumps(run), file=sys.stderr)
                report["streams"].append(run)
            for k in node_counts:
                with nodes(k, server.fresh_database(), fake_port, n) as bases:
                    run = {"store": "postgresql", **asyncio.run(streams(bases, n))}
                print(json.dumps(run), file=sys.stderr)
                report["streams"].append(run)
        if a.rest_seconds:
            for k in node_counts:
                with nodes(k, server.fresh_database(), fake_port, 4) as bases:
                    run = rest(bases, a.rest_seconds, a.rest_connections)
                print(json.dumps(run), file=sys.stderr)
                report["rest"].append(run)
    finally:
        fake_proc.terminate()
        server.stop()
    print(table(report))
    print(json.dumps(report, indent=2))


def table(report: dict) -> str:
    """The side-by-side Markdown table docs/performance.md holds."""
    lines = [
        "| tasks | store, nodes | delta p99 (while all stream) | p50 | deltas/s | peak streaming | all ended after |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in report["streams"]:
        together = f"{r['all_streaming_delta_delay_p99_ms']} ms" if r["all_streaming_deltas"] else "never all at once"
        extra = ""
        if "cross_node_watchers_p99_ms" in r:
            local, cross = r["local_watchers_p99_ms"], r["cross_node_watchers_p99_ms"]
            extra = f"; watchers on the owner {local} ms, on the other node {cross} ms"
        lines.append(
            f"| {r['tasks']} | {r.get('store', 'postgresql')}, {r['nodes']} | {r['delta_delay_p99_ms']} ms "
            f"({together}{extra}) | {r['delta_delay_p50_ms']} ms | {r['deltas_per_second']:,} "
            f"| {r['peak_tasks_streaming']} | {r['seconds_to_all_ended']} s ({r['tasks_ended']} ended) |"
        )
    if report["rest"]:
        lines += ["", "| REST reads through | rps | p99 | client |", "| --- | --- | --- | --- |"]
        for r in report["rest"]:
            lines.append(
                f"| {r['nodes']} node(s), {r['connections']} connections | {r['rps']:,} | {r['p99_ms']} ms "
                f"| {r['client']} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
