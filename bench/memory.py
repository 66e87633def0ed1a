"""Memory: resident memory per idle session and per idle WebSocket connection.

A real ``roo-daemon serve``; its resident set (``VmRSS``) is read from /proc
before and after adding ``--sessions`` sessions (created over REST, each
with its managed workspace) and then ``--connections`` WebSocket
connections (each authenticated with the bench key and subscribed to every
event, as a dashboard would be, then idle). A warm-up of each kind comes
first, so one-off costs (imports on first use, caches, allocator arenas)
are not charged to the measured ones.

    python bench/memory.py [--sessions 2000] [--connections 1000]

Targets (issue #5): <= 20 KB per session, <= 64 KB per connection.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import time

from common import BENCH_KEY, daemon_process, machine, rss_bytes
from wsclient import open_many


def create_sessions(base: str, count: int) -> None:
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    headers = {"Authorization": f"Bearer {BENCH_KEY}", "Content-Type": "application/json"}
    for i in range(count):
        conn.request("POST", "/api/v1/sessions", body=json.dumps({"name": f"idle-{i}"}), headers=headers)
        r = conn.getresponse()
        r.read()
        assert r.status == 201, r.status
    conn.close()


async def open_idle(port: int, count: int) -> list:
    conns = await open_many("127.0.0.1", port, count, token=BENCH_KEY)
    for i, c in enumerate(conns):
        c.send_text(json.dumps({"op": "subscribe", "id": f"all-{i}"}))
    for c in conns:
        reply = json.loads(await c.read_text())
        assert reply["event"] == "subscribed", reply
    return conns


def settled_rss(pid: int) -> int:
    """RSS once the daemon has finished what the last requests started
    (group commits, buffers): the lowest of a few reads a moment apart."""
    reads = []
    for _ in range(5):
        time.sleep(0.1)  # sampling a process's memory: there is nothing to await
        reads.append(rss_bytes(pid))
    return min(reads)


async def measure_connections(pid: int, port: int, warmup: int, count: int) -> tuple[int, int, int]:
    warm = await open_idle(port, warmup)
    before = await asyncio.to_thread(settled_rss, pid)
    conns = await open_idle(port, count)
    after = await asyncio.to_thread(settled_rss, pid)
    for c in warm + conns:
        c.close()
    return before, after, len(conns)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--sessions", type=int, default=2000)
    p.add_argument("--connections", type=int, default=1000)
    a = p.parse_args()
    with daemon_process() as (base, proc):
        port = int(base.rsplit(":", 1)[1])
        start_rss = settled_rss(proc.pid)
        create_sessions(base, 200)  # warm-up
        s0 = settled_rss(proc.pid)
        create_sessions(base, a.sessions)
        s1 = settled_rss(proc.pid)
        c0, c1, opened = asyncio.run(measure_connections(proc.pid, port, 50, a.connections))
    per_session = (s1 - s0) / a.sessions
    per_connection = (c1 - c0) / opened
    report = {
        "benchmark": "resident memory per idle session and per idle WebSocket connection",
        "machine": machine(),
        "rss_at_start_mb": round(start_rss / 2**20, 1),
        "sessions": a.sessions,
        "rss_before_after_sessions_mb": [round(s0 / 2**20, 1), round(s1 / 2**20, 1)],
        "kb_per_session": round(per_session / 1024, 1),
        "connections": opened,
        "rss_before_after_connections_mb": [round(c0 / 2**20, 1), round(c1 / 2**20, 1)],
        "kb_per_connection": round(per_connection / 1024, 1),
        "target": "<= 20 KB per session, <= 64 KB per connection",
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
