"""Event log: events/s appended durably while replaying to a reconnecting client.

A real ``roo-daemon serve`` (``store.synchronous: full``, the default: every
group commit is fsynced) runs ``--tasks`` tasks at once (4, the default
``engine.max_concurrent_tasks``) whose scripted provider streams a long text
in small deltas, one ``message.delta`` event per delta, as fast as the agent
loop goes. ``events_appended_total`` (counted after each commit)
is read from ``/metrics`` at the edges of two windows of ``--seconds``:

1. alone: nothing else runs;
2. replaying: a client follows the session over the WebSocket, and every
   ``--outage`` seconds drops the connection, stays away as long, and
   reconnects with ``after`` = the last seq it saw: the daemon replays what it
   missed from the store (its reader thread) while the writer keeps appending.
   Each replay must continue at exactly the next seq (checked).

    python bench/eventlog_replay.py [--seconds 6] [--outage 1] [--tasks 4]

Target (issue #5): >= 20,000 events/s appended while replaying.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
import urllib.request
from datetime import datetime

from common import BENCH_KEY, call, daemon, machine, yaml_sections
from wsclient import WsClosed, WsConn

DELTAS = 300_000  # far more than the windows need: every task must still be streaming at the end
CHUNK = 4


def appended(base: str) -> float:
    text = urllib.request.urlopen(base + "/metrics", timeout=10).read().decode()
    return float(re.search(r"^events_appended_total (\S+)$", text, re.M).group(1))  # type: ignore[union-attr]


def task_status(base: str, session_id: str, task_id: str) -> str:
    return call("GET", f"{base}/api/v1/sessions/{session_id}/tasks/{task_id}")["status"]


async def follow(port: int, session_id: str, stop_at: float, outage: float) -> dict:
    """Follow the task with reconnects: online ``outage`` seconds, offline as
    long, then resume with ``after``. Events stamped before the reconnect
    are the replay; every resumption must continue at exactly the next seq."""
    last = reconnects = replayed = live = 0
    gaps: list[tuple[int, int]] = []  # (expected seq, received seq)
    closes: list[int] = []
    while time.monotonic() < stop_at:
        conn = await WsConn.open("127.0.0.1", port, token=BENCH_KEY)
        connected_at = time.time()
        frame: dict = {"op": "subscribe", "id": "f", "session_id": session_id}
        if last:
            frame["after"] = last
        conn.send_text(json.dumps(frame))
        online_until = min(time.monotonic() + outage, stop_at)
        try:
            while (left := online_until - time.monotonic()) > 0:
                try:
                    _, frames = await asyncio.wait_for(conn.read_frames(), left)
                except TimeoutError:
                    break
                for raw in frames:
                    doc = json.loads(raw)
                    seq = doc.get("seq")
                    if seq is None:
                        continue  # the subscribe reply
                    if last and seq != last + 1:
                        gaps.append((last + 1, seq))
                    last = seq
                    stamped = datetime.fromisoformat(doc["ts"].replace("Z", "+00:00")).timestamp()
                    if reconnects and stamped < connected_at:
                        replayed += 1
                    else:
                        live += 1
        except WsClosed as e:
            closes.append(e.code)  # 1013: the daemon dropped the client for lag; it resumes with after
        conn.close()
        await asyncio.sleep(outage)  # offline: the log grows meanwhile
        reconnects += 1
    return {
        "reconnects": reconnects - 1,
        "events_replayed": replayed,
        "events_live": live,
        "seq_discontinuities": gaps,
        "closed_by_daemon": closes,
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=6, help="length of each window")
    p.add_argument("--outage", type=float, default=1.0, help="seconds offline (and online) per reconnect cycle")
    p.add_argument("--tasks", type=int, default=4, help="tasks streaming at once (engine.max_concurrent_tasks: 4)")
    a = p.parse_args()
    provider = {
        "providers": {
            "demo": {"kind": "scripted"},
            "stream": {
                "kind": "scripted",
                "chunk_chars": CHUNK,
                "turns": [{"text": "abcd" * DELTAS, "hang": True}],
            },
        }
    }
    with daemon(extra_config=yaml_sections(provider)) as base:
        port = int(base.rsplit(":", 1)[1])
        sid = call("POST", base + "/api/v1/sessions", {"name": "eventlog"})["id"]
        tasks = [
            call("POST", f"{base}/api/v1/sessions/{sid}/tasks", {"prompt": "stream", "provider": "stream"})["id"]
            for _ in range(a.tasks)
        ]
        while appended(base) < 1000:  # streaming has begun
            time.sleep(0.05)

        n0, t0 = appended(base), time.monotonic()
        time.sleep(a.seconds)
        n1, t1 = appended(base), time.monotonic()
        alone = (n1 - n0) / (t1 - t0)

        n2, t2 = appended(base), time.monotonic()
        follower = asyncio.run(follow(port, sid, t2 + a.seconds, a.outage))
        n3, t3 = appended(base), time.monotonic()
        replaying = (n3 - n2) / (t3 - t2)
        statuses = [task_status(base, sid, t) for t in tasks]
        for t in tasks:
            call("DELETE", f"{base}/api/v1/sessions/{sid}/tasks/{t}")
    assert set(statuses) == {"running"}, f"a task stopped streaming before the end ({statuses}): raise DELTAS"
    report = {
        "benchmark": "durable event appends/s while replaying to a reconnecting client",
        "machine": machine(),
        "store_synchronous": "full",
        "streaming_tasks": a.tasks,
        "events_per_second_alone": round(alone),
        "events_per_second_while_replaying": round(replaying),
        "ratio_replaying_vs_alone": round(replaying / alone, 3),
        "follower": follower,
        "target": ">= 20,000 events/s while replaying",
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
