"""The README walk-through, run as the script it is against a real daemon
whose model is slow (the demo script with a pause before each delta): it
must wait for the states it needs instead of assuming the demo's speed."""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

from tests.server.daemon_process import REPO_ROOT, DaemonProcess


def walkthrough_script() -> str:
    """The walk-through's curl block, as the README has it."""
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Walk-through", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.DOTALL)
    script = next(b for b in blocks if "curl" in b and "SID=" in b)
    return script


def get(base: str, path: str) -> Any:
    with urllib.request.urlopen(base + path, timeout=10) as r:
        return json.load(r)


def test_the_walkthrough_runs_as_a_script_against_a_slow_model(tmp_path: Path) -> None:
    # The built-in demo script, slow enough that a script assuming its usual
    # speed finds the task still running where it expects an ask or a result.
    slow = {"kind": "scripted", "delta_ms": 150, "chunk_chars": 8}
    config = {"providers": {"demo": slow}, "websocket": {"ping_interval_seconds": 0}}
    d = DaemonProcess(tmp_path, config, tmp_path / ".roo-daemon")  # the README's default data dir
    port = d.start()
    try:
        script = walkthrough_script().replace("localhost:3000", f"127.0.0.1:{port}")
        proc = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", script + '\necho; echo "SID=$SID TID=$TID"\n'],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
        ids = dict(pair.split("=") for pair in proc.stdout.strip().splitlines()[-1].split())
        assert "Hello from roo-daemon!" in proc.stdout  # step 5's cat
        base = d.base_url
        task = get(base, f"/api/v1/sessions/{ids['SID']}/tasks/{ids['TID']}")
        assert task["status"] == "completed" and task["result"].startswith("Continued"), task
        assert (tmp_path / ".roo-daemon" / "workspaces" / ids["SID"] / "hello.txt").is_file()
    finally:
        d.kill()
