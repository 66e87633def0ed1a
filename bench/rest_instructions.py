"""Instructions per request, counted exactly: ``GET /api/v1/sessions/{id}``
on the daemon (in-process: bearer key, spec checks, metrics, the access line
at ``info`` to /dev/null) and on a bare Tornado handler, under callgrind.

    python bench/rest_instructions.py [--batches 20] [--log-level info] [--source DIR]

Timings on a shared machine move with its load; the number of instructions a
request executes does not (about 1% run to run), so a change to the hot path
can be measured on a busy machine, before and after (``--source``: another
source tree, e.g. a checkout of an older commit). A client in the same
process sends 16 pipelined requests per batch on one connection; only the
requests are counted (``callgrind_control`` switches counting on and off
around them). Needs valgrind (Debian: ``apt-get install valgrind``).
Instructions are not time: see bench/rest_ratio.py for the requests/s ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import hashlib
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEPTH = 16


def _counting(label: str) -> None:
    for args in (["-d", label], ["-i", "off"]) if label else (["-i", "on"],):
        subprocess.run(["callgrind_control", *args, str(os.getpid())], capture_output=True, check=False)


async def _client(port: int, path: str, headers: str):  # type: ignore[no-untyped-def]
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{headers}\r\n".encode() * DEPTH
    loop = asyncio.get_running_loop()
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setblocking(False)

    async def run(batches: int) -> None:
        for _ in range(batches):
            await loop.sock_sendall(sock, request)
            answer = b""
            while answer.count(b"HTTP/1.1 ") < DEPTH:
                chunk = await loop.sock_recv(sock, 1 << 20)
                assert chunk, "the server closed the connection"
                answer += chunk
            assert answer.count(b"HTTP/1.1 200 ") == DEPTH, answer[:300]

    return run


async def _measure(batches: int, level: str) -> None:
    """In the process valgrind runs: start both servers, count each."""
    import tornado.web
    from tornado.httpclient import AsyncHTTPClient

    sys.path.insert(0, str(HERE))
    import bare_server
    from common import BENCH_KEY, unlimited

    from roo_daemon.config import load_config
    from roo_daemon.logs import setup_logging
    from roo_daemon.server import Daemon

    setup_logging(level, "json")
    logging.getLogger().handlers[0].setStream(open(os.devnull, "w"))  # type: ignore[attr-defined]  # noqa: SIM115
    tmp = tempfile.mkdtemp(prefix="roo-instr-")
    overrides: dict = {"server.port": 0, "store.data_dir": f"{tmp}/data"}
    for section, values in unlimited().items():
        overrides.update({f"{section}.{key}": value for key, value in values.items()})
    cfg = load_config(None, env={}, overrides=overrides)
    key = {"name": "bench", "sha256": hashlib.sha256(BENCH_KEY.encode()).hexdigest(), "scopes": ["read", "write"]}
    cfg["auth"]["keys"] = [key]
    daemon = Daemon(cfg)
    await daemon.start()
    app = tornado.web.Application([(r"/api/v1/sessions/([^/]+)", bare_server.Bare)], log_function=lambda h: None)
    bare = app.listen(0, "127.0.0.1")
    bare_port = next(iter(bare._sockets.values())).getsockname()[1]
    auth = {"Authorization": f"Bearer {BENCH_KEY}"}
    made = await AsyncHTTPClient().fetch(
        f"http://127.0.0.1:{daemon.port}/api/v1/sessions",
        method="POST",
        body=json.dumps({"name": "bench"}),
        headers={**auth, "Content-Type": "application/json"},
    )
    path = f"/api/v1/sessions/{json.loads(made.body)['id']}"
    ours = await _client(daemon.port, path, f"Authorization: Bearer {BENCH_KEY}\r\n")  # type: ignore[arg-type]
    theirs = await _client(bare_port, path, "")
    await ours(20)  # warm up: caches, the interpreter's specialisation
    await theirs(20)
    _counting("")
    await ours(batches)
    _counting("roo-daemon")
    _counting("")
    await theirs(batches)
    _counting("bare tornado")
    os._exit(0)  # the daemon's clean-up is not measured


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--batches", type=int, default=20, help=f"batches of {DEPTH} pipelined requests")
    p.add_argument("--log-level", default="info")
    p.add_argument("--source", type=Path, help="another source tree's roo_daemon (before/after)")
    p.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.inside:
        asyncio.run(_measure(a.batches, a.log_level))
        return
    if not (shutil.which("valgrind") and shutil.which("callgrind_control")):
        sys.exit("rest_instructions.py needs valgrind (apt-get install valgrind)")
    source = (a.source or HERE.parent).resolve()
    with tempfile.TemporaryDirectory(prefix="roo-callgrind-") as out:
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--instr-atstart=no",
                f"--callgrind-out-file={out}/cg.out",
                sys.executable,
                __file__,
                "--inside",
                f"--batches={a.batches}",
                f"--log-level={a.log_level}",
            ],
            env={**os.environ, "PYTHONPATH": str(source)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        counts = {}
        for dump in glob.glob(f"{out}/cg.out.*"):
            text = Path(dump).read_text(errors="replace")
            label = next(line for line in text.splitlines() if line.startswith("desc: Trigger")).split("dump ", 1)[1]
            total = int(next(line for line in text.splitlines() if line.startswith("totals:")).split()[1])
            counts[label] = round(total / (a.batches * DEPTH))
    if set(counts) != {"roo-daemon", "bare tornado"}:
        sys.exit(f"callgrind produced no counts for both servers: {counts}")
    print(
        json.dumps(
            {
                "benchmark": "instructions per GET /api/v1/sessions/{id}, in-process, 16 pipelined",
                "source": str(source),
                "daemon_log_level": a.log_level,
                "requests": a.batches * DEPTH,
                "roo_daemon_instructions": counts["roo-daemon"],
                "bare_tornado_instructions": counts["bare tornado"],
                "ratio": round(counts["bare tornado"] / counts["roo-daemon"], 3),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
