"""Event log: events/s appended durably while replaying to a reconnecting client.

The daemon runs in this process (its real ``Daemon``: SQLite store with group
commit, event bus, WebSocket handlers, on a loopback port). ``--tasks``
producers (4, the default ``engine.max_concurrent_tasks``), one per real
running task, publish ``message.delta`` events through the ``EventBus`` as a
streaming task does, each awaiting durability every ``--window`` events (so
what is in flight stays bounded, as it does for a task awaiting its emits).
Events appended (``events_appended_total``, counted after each commit) are
measured over two windows of ``--seconds``:

1. alone: nothing else runs;
2. replaying: a client in another process follows the session over the
   WebSocket and, every ``--outage`` seconds, drops the connection, stays
   away as long, and reconnects with ``after`` = the last seq it saw: the
   daemon replays what it missed from the store (its reader thread) while
   the writer keeps appending. Each replay must continue at exactly the next
   seq (checked; a drop for lag, close code 1013, is counted and resumed).

    python bench/eventlog_replay.py [--seconds 5] [--outage 1] [--tasks 4] [--window 64]

Target (issue #5): >= 20,000 events/s appended while replaying.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import datetime
from pathlib import Path

from common import ROOT, inprocess_config, machine

PAYLOAD_TEXT = "The quick brown fox jumps over the lazy dog. "  # a typical delta, 45 characters


# -- the follower's process ----------------------------------------------------


async def follow(port: int, session_id: str, seconds: float, outage: float) -> dict:
    """Follow the session with reconnects: online ``outage`` seconds, offline
    as long, then resume with ``after``. Events stamped before the reconnect
    are the replay; every resumption must continue at exactly the next seq."""
    from wsclient import WsClosed, WsConn

    stop_at = time.monotonic() + seconds
    last = reconnects = replayed = live = 0
    gaps: list[tuple[int, int]] = []  # (expected seq, received seq)
    closes: list[int] = []
    while time.monotonic() < stop_at:
        conn = await WsConn.open("127.0.0.1", port)
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
            closes.append(e.code)  # 1013: dropped for lag; the next cycle resumes with after
        conn.close()
        reconnects += 1
        if time.monotonic() + outage < stop_at:
            await asyncio.sleep(outage)  # offline: the log grows meanwhile
    return {
        "reconnects": reconnects - 1,
        "events_replayed": replayed,
        "events_live": live,
        "seq_discontinuities": gaps,
        "closed_by_daemon": closes,
    }


# -- the daemon's process --------------------------------------------------------


async def run(args: argparse.Namespace) -> dict:
    from tornado.httpclient import AsyncHTTPClient

    from roo_daemon.server import Daemon

    tmp, cfg = inprocess_config("roo-bench-eventlog-")
    cfg["engine"]["max_concurrent_tasks"] = max(cfg["engine"]["max_concurrent_tasks"], args.tasks)
    daemon = Daemon(cfg)
    await daemon.start()
    ctx = daemon.ctx
    assert ctx is not None and daemon.port is not None
    http = AsyncHTTPClient()

    async def post(path: str, body: dict) -> dict:
        r = await http.fetch(
            f"http://127.0.0.1:{daemon.port}{path}",
            method="POST",
            body=json.dumps(body),
            headers={"Content-Type": "application/json"},
        )
        return json.loads(r.body)

    session = await post("/api/v1/sessions", {"name": "eventlog"})
    tasks = [
        await post(f"/api/v1/sessions/{session['id']}/tasks", {"prompt": "go", "provider": "hang"})
        for _ in range(args.tasks)
    ]
    running = True

    async def produce(task_id: str) -> None:
        ids = {"session_id": session["id"], "task_id": task_id, "owner": "local"}
        while running:
            for _ in range(args.window - 1):
                ctx.bus.publish("message.delta", {"text": PAYLOAD_TEXT}, **ids)
            await ctx.bus.publish("message.delta", {"text": PAYLOAD_TEXT}, **ids)  # durable: wait for the commit

    def appended() -> float:
        return ctx.metrics.registry.get_sample_value("events_appended_total") or 0.0

    producers = [asyncio.ensure_future(produce(t["id"])) for t in tasks]
    await asyncio.sleep(0.5)  # warm-up

    n0, t0 = appended(), time.monotonic()
    await asyncio.sleep(args.seconds)
    alone = (appended() - n0) / (time.monotonic() - t0)

    follower = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__)),
        "--follower",
        str(daemon.port),
        session["id"],
        str(args.seconds),
        str(args.outage),
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT / "bench",
    )
    n1, t1 = appended(), time.monotonic()
    out, _ = await follower.communicate()
    replaying = (appended() - n1) / (time.monotonic() - t1)

    running = False
    await asyncio.gather(*producers)
    await daemon.stop()
    tmp.cleanup()
    return {
        "benchmark": "durable event appends/s while replaying to a reconnecting client",
        "machine": machine(),
        "store_synchronous": cfg["store"]["synchronous"],
        "producers": args.tasks,
        "events_per_second_alone": round(alone),
        "events_per_second_while_replaying": round(replaying),
        "ratio_replaying_vs_alone": round(replaying / alone, 3),
        "follower": json.loads(out),
        "target": ">= 20,000 events/s while replaying",
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--follower":
        port, session_id, seconds, outage = int(sys.argv[2]), sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
        print(json.dumps(asyncio.run(follow(port, session_id, seconds, outage))))
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=5, help="length of each window")
    p.add_argument("--outage", type=float, default=1.0, help="seconds offline (and online) per reconnect cycle")
    p.add_argument("--tasks", type=int, default=4, help="producers, one per running task")
    p.add_argument("--window", type=int, default=64, help="events a producer publishes per durable wait")
    args = p.parse_args()
    sys.path.insert(0, str(ROOT))
    print(json.dumps(asyncio.run(run(args)), indent=2))


if __name__ == "__main__":
    main()
