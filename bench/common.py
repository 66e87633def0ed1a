"""Helpers shared by the benchmarks: start a daemon or a baseline server as a
subprocess on a free loopback port, and wait until it answers."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_KEY = "roo_bench_key_not_secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)  # polling a starting process: there is nothing to await


def call(method: str, url: str, body: dict | None = None, token: str = BENCH_KEY) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as r:
        raw = r.read()
        return json.loads(raw) if raw else {}


@contextlib.contextmanager
def daemon(log_level: str = "warning", extra_config: str = "") -> Iterator[str]:
    """A real ``roo-daemon serve`` with auth on; yields its base URL."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="roo-bench-") as tmp:
        cfg = Path(tmp, "roo-daemon.yaml")
        cfg.write_text(
            f"server: {{host: 127.0.0.1, port: {port}}}\n"
            f"store: {{data_dir: {tmp}/data}}\n"
            f"log: {{level: {log_level}, format: json}}\n"
            "auth:\n  keys:\n"
            f"    - {{name: bench, sha256: {hashlib.sha256(BENCH_KEY.encode()).hexdigest()}, scopes: [read, write]}}\n"
            + extra_config
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "roo_daemon", "serve", "--config", str(cfg)],
            stdout=subprocess.DEVNULL,
            cwd=tmp,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        try:
            base = f"http://127.0.0.1:{port}"
            wait_http(base + "/healthz")
            yield base
        finally:
            proc.terminate()
            proc.wait(15)


@contextlib.contextmanager
def bare_server() -> Iterator[str]:
    proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "bare_server.py")], stdout=subprocess.PIPE, text=True)
    try:
        port = json.loads(proc.stdout.readline())["port"]  # type: ignore[union-attr]
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(15)


def loadgen(url: str, seconds: float, connections: int, headers: list[str] | None = None) -> dict:
    args = [
        sys.executable,
        str(ROOT / "bench" / "loadgen.py"),
        url,
        "--seconds",
        str(seconds),
        "--connections",
        str(connections),
    ]
    for h in headers or []:
        args += ["--header", h]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def machine() -> str:
    import platform

    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
