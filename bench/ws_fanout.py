"""WebSocket fan-out: one task's events to 1,000 subscribers.

The daemon runs in this process (its real ``Daemon``: store, event bus,
WebSocket handlers, on a loopback port); the subscribers run in a second
process (``bench/wsclient.py``, a lean client), so each side has a core.
Each subscriber subscribes to the task by ``task_id``. The task is real (a
session and a ``hang`` task created over REST, running); its
``message.delta`` events are published through the daemon's ``EventBus``
exactly as the agent loop's streaming does (``TaskRun.publish``): the
scripted provider streams without pacing, a real model streams at a rate.

Phases, one run, each starting once every subscriber has the previous one:

- ``paced@R``: R events/s for ``--seconds`` (``--rates``, default 10 and 50;
  50 events/s to 1,000 subscribers is the issue's target load, 50,000
  messages/s offered);
- ``burst``: ``--burst`` events as fast as the loop publishes them (one per
  loop turn, as the scripted provider streams): the fan-out capacity.

Delivery delay is the subscriber's receive time minus the event's ``ts``
(stamped at publish, before the commit; both processes read one clock).
Messages/s is messages delivered over the time from the phase's first
publish to its last delivery.

    python bench/ws_fanout.py [--clients 1000] [--rates 10,50] [--seconds 5] [--burst 300]

Targets (issue #5): >= 50,000 messages/s delivered, p99 <= 100 ms.
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


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


# -- the subscribers' process ------------------------------------------------


class Subscribers:
    """``count`` connections subscribed to one task, recording every event
    frame as (receive time, seq, ts)."""

    def __init__(self, conns: list) -> None:
        self.conns = conns
        self.received: list[list[tuple[float, int, float]]] = [[] for _ in conns]
        self.closed: dict[int, int] = {}
        self._parsed: dict[bytes, tuple[int, float]] = {}  # the same bytes go to everyone: parse once
        self._progress = asyncio.Event()
        self.pumps = [asyncio.ensure_future(self._pump(i)) for i in range(len(conns))]

    async def _pump(self, i: int) -> None:
        from wsclient import WsClosed

        conn, log = self.conns[i], self.received[i]
        try:
            while True:
                at, frames = await conn.read_frames()
                for raw in frames:
                    hit = self._parsed.get(raw)
                    if hit is None:
                        doc = json.loads(raw)
                        ts = datetime.fromisoformat(doc["ts"].replace("Z", "+00:00")).timestamp()
                        hit = self._parsed[raw] = (doc["seq"], ts)
                    log.append((at, hit[0], hit[1]))
                self._progress.set()
        except WsClosed as e:
            self.closed[i] = e.code
            self._progress.set()

    async def reach(self, seq: int, timeout: float = 180) -> None:
        """Until every connection has received ``seq`` (or was closed)."""
        deadline = time.monotonic() + timeout
        pending = set(range(len(self.conns)))
        while pending:
            pending = {
                i for i in pending if i not in self.closed and not (self.received[i] and self.received[i][-1][1] >= seq)
            }
            if not pending:
                return
            self._progress.clear()
            await asyncio.wait_for(self._progress.wait(), max(0.001, deadline - time.monotonic()))

    def raw(self, phase: dict) -> dict:
        """This process's share of a phase: every delay (tenths of a ms) and
        the last arrival, for the parent to merge across processes."""
        last_at, delays = 0.0, []
        for log in self.received:
            for at, seq, ts in log:
                if phase["first"] <= seq <= phase["last"]:
                    last_at = max(last_at, at)
                    delays.append(round((at - ts) * 10_000))
        return {"last_at": last_at, "delays": delays, "connections": len(self.conns)}


def merge(phase: dict, shares: list[dict]) -> dict:
    delays = sorted(d / 10_000 for share in shares for d in share["delays"])
    last_at = max(share["last_at"] for share in shares)
    events = phase["last"] - phase["first"] + 1
    seconds = max(last_at - phase["published_at"], 1e-9)
    return {
        "events": events,
        "messages_delivered": len(delays),
        "messages_expected": events * sum(share["connections"] for share in shares),
        "seconds": round(seconds, 3),
        "messages_per_second": round(len(delays) / seconds),
        "delay_p50_ms": round(percentile(delays, 0.50) * 1000, 1),
        "delay_p99_ms": round(percentile(delays, 0.99) * 1000, 1),
        "delay_max_ms": round(max(delays, default=float("nan")) * 1000, 1),
    }


async def subscribers_main(port: int, task_id: str, count: int) -> None:
    """Commands on stdin, one JSON object a line: ``{"reach": seq}`` (answered
    ``{"reached": seq}``) and ``{"phases": [...]}`` (answered with figures)."""
    from wsclient import open_many

    conns = await open_many("127.0.0.1", port, count)
    for i, c in enumerate(conns):
        c.send_text(json.dumps({"op": "subscribe", "id": f"s{i}", "task_id": task_id}))
    for c in conns:
        reply = json.loads(await c.read_text())
        assert reply["event"] == "subscribed", reply
    subs = Subscribers(conns)
    print(json.dumps({"ready": len(conns)}), flush=True)
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        command = json.loads(line)
        if "reach" in command:
            await subs.reach(command["reach"])
            print(json.dumps({"reached": command["reach"]}), flush=True)
        else:
            out = {p["name"]: subs.raw(p) for p in command["phases"]}
            print(json.dumps({"phases": out, "closed": {str(k): v for k, v in subs.closed.items()}}), flush=True)
            break
    for p in subs.pumps:
        p.cancel()
    for c in conns:
        c.close()


# -- the daemon's process -----------------------------------------------------


async def run(args: argparse.Namespace) -> dict:
    from tornado.httpclient import AsyncHTTPClient

    from roo_daemon.server import Daemon

    tmp, cfg = inprocess_config("roo-bench-fanout-")
    daemon = Daemon(cfg)
    await daemon.start()
    assert daemon.ctx is not None and daemon.port is not None
    base = f"http://127.0.0.1:{daemon.port}"
    http = AsyncHTTPClient()

    async def post(path: str, body: dict) -> dict:
        r = await http.fetch(
            base + path, method="POST", body=json.dumps(body), headers={"Content-Type": "application/json"}
        )
        return json.loads(r.body)

    session = await post("/api/v1/sessions", {"name": "fanout"})
    task = await post(f"/api/v1/sessions/{session['id']}/tasks", {"prompt": "go", "provider": "hang"})
    ids = {"session_id": session["id"], "task_id": task["id"], "owner": "local"}

    # The subscribers are split over several processes: one Python process
    # reading 50,000 frames/s is itself the bottleneck, not the daemon.
    share = [
        args.clients // args.client_procs + (i < args.clients % args.client_procs) for i in range(args.client_procs)
    ]
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            str(Path(__file__)),
            "--subscribers",
            str(daemon.port),
            task["id"],
            str(n),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT / "bench",
            limit=256 * 2**20,  # the last answer carries every delay: megabytes on one line
        )
        for n in share
    ]

    async def ask_one(proc: asyncio.subprocess.Process, command: dict) -> dict:
        proc.stdin.write((json.dumps(command) + "\n").encode())  # type: ignore[union-attr]
        await proc.stdin.drain()  # type: ignore[union-attr]
        return json.loads(await proc.stdout.readline())  # type: ignore[union-attr]

    async def ask(command: dict) -> list[dict]:
        return list(await asyncio.gather(*(ask_one(p, command) for p in procs)))

    for proc, n in zip(procs, share, strict=True):
        ready = json.loads(await proc.stdout.readline())  # type: ignore[union-attr]
        assert ready["ready"] == n, ready
    bus = daemon.ctx.bus
    phases = []
    for rate in args.rates:
        first, started = bus.last_seq + 1, time.time()
        for i in range(int(rate * args.seconds)):
            delay = started + i / rate - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            bus.publish("message.delta", {"text": PAYLOAD_TEXT}, **ids)
        phases.append({"name": f"paced@{rate:g}", "first": first, "last": bus.last_seq, "published_at": started})
        await ask({"reach": bus.last_seq})
    first, started = bus.last_seq + 1, time.time()
    for _ in range(args.burst):
        bus.publish("message.delta", {"text": PAYLOAD_TEXT}, **ids)
        await asyncio.sleep(0)  # one event per loop turn, like the scripted provider's stream
    phases.append({"name": "burst", "first": first, "last": bus.last_seq, "published_at": started})
    await ask({"reach": bus.last_seq})
    results = await ask({"phases": phases})
    for proc in procs:
        await proc.wait()
    dropped = daemon.ctx.metrics.registry.get_sample_value("websocket_clients_dropped_total")
    await daemon.stop()
    tmp.cleanup()
    figures = {p["name"]: merge(p, [r["phases"][p["name"]] for r in results]) for p in phases}
    closed = {k: v for r in results for k, v in r["closed"].items()}
    target = figures.get("paced@50", figures[phases[-2]["name"]] if len(phases) > 1 else figures["burst"])
    return {
        "benchmark": f"WebSocket fan-out of one task's events to {args.clients} subscribers",
        "machine": machine(),
        "subscribers": args.clients,
        "phases": figures,
        "clients_dropped_by_daemon": dropped,
        "connections_closed": closed,
        "subscriber_processes": args.client_procs,
        "messages_per_second": figures["burst"]["messages_per_second"],
        "p99_delay_ms_at_50k_offered": target["delay_p99_ms"],
        "target": ">= 50,000 messages/s, p99 <= 100 ms",
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--subscribers":
        asyncio.run(subscribers_main(int(sys.argv[2]), sys.argv[3], int(sys.argv[4])))
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--client-procs", type=int, default=2, help="processes the subscribers are spread over")
    p.add_argument("--rates", default="10,50", help="events/s of the paced phases, comma-separated")
    p.add_argument("--seconds", type=float, default=5, help="length of each paced phase")
    p.add_argument("--burst", type=int, default=300, help="events in the burst phase")
    args = p.parse_args()
    args.rates = [float(r) for r in args.rates.split(",") if r]
    sys.path.insert(0, str(ROOT))
    print(json.dumps(asyncio.run(run(args)), indent=2))


if __name__ == "__main__":
    main()
