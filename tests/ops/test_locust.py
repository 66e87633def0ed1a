"""A short headless run of ``locustfile.py`` (REST and WebSocket users)
against a real daemon with API keys on: zero failures."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.needs import module_or_skip
from tests.ops.conftest import OpsDaemonFactory

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
KEY = "roo_locust_test_key_not_secret"


def test_short_locust_run_has_no_failures(ops_daemon: OpsDaemonFactory, tmp_path: Path, short_tmp: Path) -> None:
    module_or_skip("locust", "pip install -e '.[load]'; .ci/run does")
    module_or_skip("websocket", "pip install -e '.[load]'; .ci/run does")
    key = {"name": "load", "sha256": hashlib.sha256(KEY.encode()).hexdigest(), "scopes": ["read", "write"]}
    # One key is one principal: its rate limits would turn the load into 429s.
    unlimited = {"rate": 0, "burst": 1}
    limits = {name: unlimited for name in ("read", "write", "task_create", "ws_frames")}
    d = ops_daemon(auth={"keys": [key]}, log={"level": "warning", "format": "json"}, limits=limits)
    port = d.start_notified(short_tmp)  # at `warning` there is no "listening on" line to wait for
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(ROOT / "locustfile.py"),
            "--headless",
            "--users",
            "6",
            "--spawn-rate",
            "6",
            "--run-time",
            "10s",
            "--stop-timeout",
            "5",
            "--host",
            f"http://127.0.0.1:{port}",
            "--only-summary",
            "--json",
        ],
        cwd=tmp_path,
        env={"ROO_DAEMON_TOKEN": KEY, "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=90,
    )
    stats = {(s["method"], s["name"]): s for s in json.loads(proc.stdout)}
    failures = {k: s["num_failures"] for k, s in stats.items() if s["num_failures"]}
    assert not failures, f"{failures}\n{proc.stderr[-3000:]}"
    assert proc.returncode == 0, proc.stderr[-3000:]
    for key_ in [
        ("POST", "/api/v1/sessions"),
        ("POST", "/api/v1/sessions/{session_id}/tasks"),
        ("GET", "/api/v1/sessions/{session_id}/tasks/{task_id}"),
        ("GET", "/api/v1/sessions/{session_id}/tasks?limit=20"),
        ("DELETE", "/api/v1/sessions/{session_id}/tasks/{task_id}"),
        ("WS", "subscribe"),
        ("WS", "event"),
    ]:
        assert stats.get(key_, {}).get("num_requests", 0) > 0, f"{key_} never ran: {sorted(stats)}"
    d.send_signal(signal.SIGTERM)
    assert d.wait_exit() == 0
