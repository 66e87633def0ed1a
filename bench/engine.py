"""The engine's own cost, against a fake OpenAI-compatible server
(``fake_openai.py``) so no model time is in the numbers:

1. overhead per turn: task time minus time spent in provider requests,
   divided by the requests made (from the daemon's own metrics
   ``task_duration_seconds`` and ``llm_request_duration_seconds``), for tasks
   run one at a time;
2. concurrency: N tasks streaming at once (deltas paced like a real model);
   every ``message.delta`` is timed from the daemon's event timestamp to its
   arrival at a WebSocket subscriber: p50/p99 delay over the whole run (the
   burst of N task creations included), and p99 while all N tasks stream at
   once (``all_streaming``: a task streams from its first delta to its end;
   the report says how long that window lasted, so a run whose tasks never
   overlapped cannot pass for a concurrent one).

    python bench/engine.py [--tasks 200] [--turns 3] [--deltas 100] [--delta-ms 20]

Targets (issue #3): 200 concurrent streaming tasks, event-to-WebSocket p99 < 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import sys
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

from common import BENCH_KEY, ROOT, call, daemon, machine
from tornado.httpclient import AsyncHTTPClient
from wsclient import WsClosed, WsConn

FINAL = {"completed", "failed", "cancelled", "interrupted"}


def fake(deltas: int, delta_ms: float, turns: int) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "bench" / "fake_openai.py"),
            "--deltas",
            str(deltas),
            "--delta-ms",
            str(delta_ms),
            "--turns",
            str(turns),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    return proc, json.loads(proc.stdout.readline())["port"]  # type: ignore[union-attr]


def config(port: int, max_tasks: int) -> str:
    return (
        f"engine: {{default_provider: fake, max_concurrent_tasks: {max_tasks}, max_requests: null}}\n"
        "providers:\n"
        f"  fake: {{kind: openai, base_url: 'http://127.0.0.1:{port}/v1', model: bench, max_retries: 0}}\n"
    )


def metric_sum(text: str, name: str) -> float:
    return sum(float(m.group(1)) for m in re.finditer(rf"^{name}(?:{{[^}}]*}})? ([0-9.e+-]+)$", text, re.M))


def scrape(base: str) -> str:
    req = urllib.request.Request(base + "/metrics", headers={"Authorization": f"Bearer {BENCH_KEY}"})
    return urllib.request.urlopen(req, timeout=10).read().decode()


async def follow(base: str, expected: int, deltas: list[tuple[float, int]], done: asyncio.Future) -> None:
    """Subscribe to everything; time every delta; resolve ``done`` when
    ``expected`` tasks have ended. Each delay is recorded with the number of
    tasks streaming when it arrived. Arrival is the time of the socket read
    that brought the frame, taken before any parsing: with Tornado's client
    (about 40 us per frame) the last frames of a 200-event commit were
    stamped several ms late, which is the client's time, not the daemon's."""
    host, port = urlsplit(base).hostname, urlsplit(base).port
    conn = await WsConn.open(host or "127.0.0.1", port or 80, token=BENCH_KEY)
    conn.send_text(json.dumps({"op": "subscribe", "id": "all"}))
    ended = 0
    streaming: set[str] = set()
    try:
        while ended < expected:
            received, frames = await conn.read_frames()
            for frame in frames:
                doc = json.loads(frame)
                if doc.get("event") == "message.delta":
                    streaming.add(doc["task_id"])
                    ts = datetime.fromisoformat(doc["ts"].replace("Z", "+00:00")).timestamp()
                    deltas.append((received - ts, len(streaming)))
                elif doc.get("event") in ("task.completed", "task.failed", "task.cancelled"):
                    streaming.discard(doc["task_id"])
                    ended += 1
    except WsClosed:
        pass
    conn.close()
    done.set_result(ended)


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))] if values else float("nan")


async def concurrent(base: str, n: int) -> dict:
    sid = call("POST", base + "/api/v1/sessions", {"name": "bench"})["id"]
    deltas: list[tuple[float, int]] = []
    done: asyncio.Future = asyncio.get_running_loop().create_future()
    watcher = asyncio.ensure_future(follow(base, n, deltas, done))
    await asyncio.sleep(0.2)  # let the subscription settle before the first task
    started = time.perf_counter()
    # Created with the loop's own client (no thread beside the WebSocket reader,
    # whose timestamps must not wait on a GIL).
    http = AsyncHTTPClient()
    headers = {"Authorization": f"Bearer {BENCH_KEY}", "Content-Type": "application/json"}
    for _ in range(n):
        await http.fetch(
            f"{base}/api/v1/sessions/{sid}/tasks", method="POST", headers=headers, body=json.dumps({"prompt": "bench"})
        )
    ended = await asyncio.wait_for(done, 600)
    elapsed = time.perf_counter() - started
    await watcher
    text = await asyncio.get_running_loop().run_in_executor(None, scrape, base)
    delays = [d for d, _ in deltas]
    together = [d for d, k in deltas if k >= n]  # while all n tasks streamed
    commits = metric_sum(text, "event_store_write_seconds_count")
    commit_s = metric_sum(text, "event_store_write_seconds_sum")
    return {
        "tasks": n,
        "tasks_ended": ended,
        "seconds": round(elapsed, 2),
        "deltas_received": len(deltas),
        "delta_delay_p50_ms": round(pct(delays, 0.5) * 1000, 2),
        "delta_delay_p99_ms": round(pct(delays, 0.99) * 1000, 2),
        "peak_tasks_streaming": max((k for _, k in deltas), default=0),
        "all_streaming_deltas": len(together),
        "all_streaming_delta_delay_p99_ms": round(pct(together, 0.99) * 1000, 2),
        "store_commits": int(commits),
        "store_commit_mean_ms": round(commit_s / commits * 1000, 3) if commits else None,
    }


def overhead(base: str, tasks: int) -> dict:
    sid = call("POST", base + "/api/v1/sessions", {"name": "overhead"})["id"]
    for _ in range(tasks):
        tid = call("POST", f"{base}/api/v1/sessions/{sid}/tasks", {"prompt": "bench"})["id"]
        while call("GET", f"{base}/api/v1/sessions/{sid}/tasks/{tid}")["status"] not in FINAL:
            time.sleep(0.01)  # polling from outside the daemon; not part of what is measured
    text = scrape(base)
    task_s = metric_sum(text, "task_duration_seconds_sum")
    llm_s = metric_sum(text, "llm_request_duration_seconds_sum")
    requests = metric_sum(text, "llm_request_duration_seconds_count")
    return {
        "tasks": tasks,
        "provider_requests": int(requests),
        "ms_per_turn_total": round(task_s / requests * 1000, 3),
        "ms_per_turn_in_provider": round(llm_s / requests * 1000, 3),
        "engine_overhead_ms_per_turn": round((task_s - llm_s) / requests * 1000, 3),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--tasks", type=int, default=200)
    p.add_argument("--turns", type=int, default=3)
    p.add_argument("--deltas", type=int, default=100)
    p.add_argument("--delta-ms", type=float, default=20)
    p.add_argument("--overhead-tasks", type=int, default=20)
    a = p.parse_args()
    report: dict = {"benchmark": "engine overhead and concurrent streaming", "machine": machine()}
    if a.overhead_tasks:
        proc, port = fake(20, 0, 10)
        try:
            with daemon(extra_config=config(port, 4)) as base:
                report["overhead"] = overhead(base, a.overhead_tasks)
        finally:
            proc.terminate()
    proc, port = fake(a.deltas, a.delta_ms, a.turns)
    try:
        with daemon(extra_config=config(port, a.tasks)) as base:
            report["concurrent"] = asyncio.run(concurrent(base, a.tasks))
    finally:
        proc.terminate()
    report["target"] = f"{a.tasks} concurrent streaming tasks, delta p99 < 50 ms"
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
