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
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH_KEY = "roo_bench_key_not_secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 15, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except Exception:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"the daemon exited with status {proc.returncode} before answering") from None
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
    with daemon_process(log_level, extra_config) as (base, _):
        yield base


@contextlib.contextmanager
def daemon_process(
    log_level: str = "warning", extra_config: str = "", source: Path | None = None
) -> Iterator[tuple[str, subprocess.Popen]]:
    """Like :func:`daemon`, yielding ``(base URL, the process)``; ``source``
    runs the ``roo_daemon`` of another source tree (an older commit's, for
    a before/after in one run)."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="roo-bench-") as tmp:
        cfg = Path(tmp, "roo-daemon.yaml")
        cfg.write_text(
            f"server: {{host: 127.0.0.1, port: {port}}}\n"
            f"store: {{data_dir: {tmp}/data}}\n"
            f"log: {{level: {log_level}, format: json}}\n"
            "auth:\n  keys:\n"
            f"    - {{name: bench, sha256: {hashlib.sha256(BENCH_KEY.encode()).hexdigest()}, scopes: [read, write]}}\n"
            + yaml_sections(unlimited())  # one bench key must not hit the per-principal limits
            + extra_config
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "roo_daemon", "serve", "--config", str(cfg)],
            stdout=subprocess.DEVNULL,
            cwd=tmp,
            env={**os.environ, "PYTHONPATH": str(source or ROOT)},
        )
        try:
            base = f"http://127.0.0.1:{port}"
            wait_http(base + "/healthz", proc=proc)
            yield base, proc
        finally:
            proc.terminate()
            proc.wait(15)


@contextlib.contextmanager
def bare_server() -> Iterator[str]:
    with bare_server_process() as (base, _):
        yield base


@contextlib.contextmanager
def bare_server_process() -> Iterator[tuple[str, subprocess.Popen]]:
    """Like :func:`bare_server`, yielding ``(base URL, the process)``."""
    proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "bare_server.py")], stdout=subprocess.PIPE, text=True)
    try:
        port = json.loads(proc.stdout.readline())["port"]  # type: ignore[union-attr]
        yield f"http://127.0.0.1:{port}", proc
    finally:
        proc.terminate()
        proc.wait(15)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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


def wrk_path() -> str | None:
    """``wrk`` if installed (Debian: ``apt-get install wrk``): a C load
    generator that outruns a bare Tornado handler, so a ratio against one is
    not compressed by the client's own ceiling as with ``loadgen.py``."""
    import shutil

    return shutil.which("wrk")


_WRK_REPORT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "seconds": %.3f, "errors": %d, "non2xx": %d, "p50_ms": %.3f, "p99_ms": %.3f}\\n',
    summary.requests, summary.duration / 1e6, e.connect + e.read + e.write + e.timeout + e.status,
    e.status, latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""


def wrk(url: str, seconds: float, connections: int, headers: list[str] | None = None) -> dict:
    """One ``wrk -t1`` run (one thread, as the server has one loop), reported
    in :func:`loadgen`'s shape (requests, seconds, rps, errors, p50/p99)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(_WRK_REPORT)
        script.flush()
        args = [wrk_path() or "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "-s", script.name]
        for h in headers or []:
            args += ["-H", h]
        out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    doc = json.loads(out.strip().splitlines()[-1])
    doc["rps"] = round(doc["requests"] / doc["seconds"], 1)
    return doc


def unlimited() -> dict[str, dict]:
    """Config sections that lift the per-principal rate and connection limits
    (when this version has them): a benchmark measures the daemon's capacity,
    not its abuse limits, from one principal."""
    import yaml

    schema = yaml.safe_load((ROOT / "roo_daemon" / "config_schema.yaml").read_text())
    limits = schema["properties"].get("limits", {}).get("properties", {})
    out: dict[str, object] = {}
    for key, spec in limits.items():
        if spec.get("$ref", "").endswith("/bucket"):
            out[key] = {"rate": 0, "burst": 1}  # rate 0: unlimited
        elif spec.get("type") == "integer":
            out[key] = spec.get("maximum", 1_000_000)
    return {"limits": out} if out else {}


def rss_bytes(pid: int) -> int:
    """Resident memory of a process (VmRSS), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def yaml_sections(sections: dict) -> str:
    """Config sections as YAML, to append to a benchmark daemon's config."""
    import yaml

    return yaml.safe_dump(sections, default_flow_style=False, width=1 << 20)


def machine() -> str:
    import platform

    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def inprocess_config(prefix: str) -> tuple[tempfile.TemporaryDirectory, dict]:
    """Configuration for a daemon run inside a benchmark's own process: a
    temporary data dir, any free port, no per-key limits, quiet logs on
    stderr (stdout is the report), and the scripted ``demo`` and ``hang``
    providers. Returns the directory (keep it alive) and the config."""
    import logging

    from roo_daemon.config import load_config
    from roo_daemon.logs import setup_logging

    setup_logging("warning", "json")
    logging.getLogger().handlers[0].setStream(sys.stderr)  # type: ignore[attr-defined]
    tmp = tempfile.TemporaryDirectory(prefix=prefix)
    overrides: dict = {"server.port": 0, "store.data_dir": f"{tmp.name}/data", "websocket.ping_interval_seconds": 0}
    for section, values in unlimited().items():
        overrides.update({f"{section}.{key}": value for key, value in values.items()})
    cfg = load_config(None, env={}, overrides=overrides)
    cfg["providers"] = {
        "demo": {"kind": "scripted"},
        "hang": {"kind": "scripted", "turns": [{"text": "Streaming...", "hang": True}]},
    }
    return tmp, cfg


@contextlib.contextmanager
def throwaway_postgresql(durable: bool = False) -> Iterator[Any]:
    """A started throwaway PostgreSQL server (tests/pgserver.py), stopped
    after; exits saying so when PostgreSQL is not installed."""
    sys.path.insert(0, str(ROOT))
    from tests.pgserver import PgServer, bin_dir

    bindir = bin_dir()
    if bindir is None:
        raise SystemExit("PostgreSQL is not installed (apt-get install postgresql)")
    server = PgServer(bindir)
    server.durable = durable
    server.start()
    try:
        yield server
    finally:
        server.stop()
