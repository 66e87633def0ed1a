"""Start and stop: time to ``READY=1`` and time to exit after SIGTERM with 100
idle WebSockets connected.

Each run starts ``python -m roo_daemon serve`` as systemd would, with
``NOTIFY_SOCKET`` pointing at a datagram socket this script owns: start time
is from ``Popen`` to the ``READY=1`` datagram (the interpreter's start-up,
imports, opening the store and binding included). Then ``--websockets``
clients connect and subscribe; stop time is from SIGTERM to the process's
exit, every WebSocket closed with 1001 and the store checkpointed. Runs
reuse one data dir, so all but the first are restarts on existing data.

    python bench/startstop.py [--runs 5] [--websockets 100]

Targets (issue #5): <= 1 s each.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, machine, unlimited, yaml_sections
from wsclient import WsClosed, open_many


async def hold_websockets(port: int, count: int) -> list:
    conns = await open_many("127.0.0.1", port, count)
    for i, c in enumerate(conns):
        c.send_text(json.dumps({"op": "subscribe", "id": f"idle-{i}"}))
    for c in conns:
        assert json.loads(await c.read_text())["event"] == "subscribed"
    return conns


async def close_codes(conns: list) -> list[int]:
    async def one(c) -> int:  # noqa: ANN001
        try:
            while True:
                await c.read_frames()
        except WsClosed as e:
            return e.code

    return await asyncio.gather(*[asyncio.wait_for(one(c), 15) for c in conns])


async def one_run(config: Path, notify_path: Path, websockets: int) -> dict:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(notify_path))
        notify.setblocking(False)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "NOTIFY_SOCKET": str(notify_path)}
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "roo_daemon", "serve", "--config", str(config)],
            env=env,
            stdout=subprocess.DEVNULL,
            cwd=config.parent,
        )
        loop = asyncio.get_running_loop()
        while True:
            msg = (await asyncio.wait_for(loop.sock_recv(notify, 4096), 30)).decode()
            if "READY=1" in msg.split("\n"):
                ready = time.perf_counter() - started
                break
        port = int(next(f for f in msg.split("\n") if f.startswith("STATUS=")).rsplit(":", 1)[1])
        conns = await hold_websockets(port, websockets)
        codes = asyncio.ensure_future(close_codes(conns))
        signalled = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        status = await loop.run_in_executor(None, proc.wait, 30)
        stopped = time.perf_counter() - signalled
        closed = await codes
        for c in conns:
            c.writer.close()
    notify_path.unlink()
    return {"ready_seconds": ready, "exit_seconds": stopped, "exit_status": status, "close_codes": sorted(set(closed))}


async def run(runs: int, websockets: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="roo-bench-ss-") as tmp:
        config = Path(tmp, "roo-daemon.yaml")
        config.write_text(
            f"server: {{host: 127.0.0.1, port: 0}}\nstore: {{data_dir: {tmp}/data}}\n"
            "log: {level: warning, format: json}\n" + yaml_sections(unlimited())
        )
        results = [await one_run(config, Path(tmp, "notify"), websockets) for _ in range(runs)]
    assert all(r["exit_status"] == 0 and r["close_codes"] == [1001] for r in results), results
    ready = [r["ready_seconds"] for r in results]
    stop = [r["exit_seconds"] for r in results]
    return {
        "benchmark": f"time to READY=1, and to exit after SIGTERM with {websockets} idle WebSockets",
        "machine": machine(),
        "runs": runs,
        "ready_seconds": [round(x, 3) for x in ready],
        "exit_seconds": [round(x, 3) for x in stop],
        "ready_median_seconds": round(statistics.median(ready), 3),
        "ready_max_seconds": round(max(ready), 3),
        "exit_median_seconds": round(statistics.median(stop), 3),
        "exit_max_seconds": round(max(stop), 3),
        "target": "<= 1 s each",
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--websockets", type=int, default=100)
    a = p.parse_args()
    print(json.dumps(asyncio.run(run(a.runs, a.websockets)), indent=2))


if __name__ == "__main__":
    main()
