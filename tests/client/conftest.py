"""A real daemon process with API keys, scripted providers and a slow
OpenAI-compatible fake (``bench/fake_openai.py``, its own process), and a
way to run the client commands against it as real processes."""

from __future__ import annotations

import codecs
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from roo_daemon.auth import hash_key, new_key
from tests.conftest import PROVIDERS
from tests.server.daemon_process import REPO_ROOT, TIMEOUT, DaemonProcess

DENY_THEN_DONE = {
    "kind": "scripted",
    "turns": [
        {
            "text": "I'll write a file.",
            "tool_calls": [{"name": "write_to_file", "args": {"path": "x.txt", "content": "x\n"}}],
        },
        {"text": "Understood.", "tool_calls": [{"name": "attempt_completion", "args": {"result": "not written"}}]},
    ],
}


ORCHESTRATE = {
    "kind": "scripted",
    "scripts": [
        {
            "match": "child work",
            "turns": [
                {
                    "text": "Child here.",
                    "tool_calls": [{"name": "attempt_completion", "args": {"result": "child done"}}],
                }
            ],
        }
    ],
    "turns": [
        {
            "text": "Delegating.",
            "tool_calls": [{"name": "new_task", "args": {"mode": "code", "message": "child work"}}],
        },
        {"text": "Back.", "tool_calls": [{"name": "attempt_completion", "args": {"result": "parent done"}}]},
    ],
}


TWICE = {  # a task, then its continuation
    "kind": "scripted",
    "turns": [
        {"text": "First.", "tool_calls": [{"name": "attempt_completion", "args": {"result": "first"}}]},
        {"text": "Second.", "tool_calls": [{"name": "attempt_completion", "args": {"result": "second"}}]},
    ],
}


@dataclass
class Daemon:
    proc: DaemonProcess
    token: str
    readonly_token: str
    roots: Path
    children: list[Child] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.proc.base_url

    def env(self, **extra: str) -> dict[str, str]:
        """The environment a client command runs in: URL and key set."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("ROO_DAEMON_") and k != "NO_COLOR"}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        env["PYTHONUNBUFFERED"] = "1"
        env.update({"ROO_DAEMON_URL": self.url, "ROO_DAEMON_TOKEN": self.token, **extra})
        return env

    def cli(
        self, *args: str, input: str | None = None, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "roo_daemon", *args],
            env=env if env is not None else self.env(),
            cwd=cwd or self.roots,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=TIMEOUT * 2,
        )

    def start(self, *args: str, env: dict[str, str] | None = None) -> Child:
        """A command left running; killed at the test's end if still alive."""
        child = Child(
            subprocess.Popen(
                [sys.executable, "-m", "roo_daemon", *args],
                env=env if env is not None else self.env(),
                cwd=self.roots,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
        self.children.append(child)
        return child


@pytest.fixture(scope="module")
def slow_model() -> Iterator[int]:
    """An OpenAI-compatible server streaming 10,000 deltas 50 ms apart: a
    task on it runs for minutes unless cancelled."""
    proc = subprocess.Popen(
        [sys.executable, str(REPO_ROOT / "bench" / "fake_openai.py"), "--deltas", "10000", "--delta-ms", "50"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        yield json.loads(proc.stdout.readline())["port"]
    finally:
        proc.kill()
        proc.wait(TIMEOUT)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory, slow_model: int) -> Iterator[Daemon]:
    base = tmp_path_factory.mktemp("client")
    roots = base / "roots"
    roots.mkdir()
    token, readonly = new_key(), new_key()
    providers: dict[str, Any] = {name: PROVIDERS[name] for name in ("demo", "hang", "instant", "followup", "broken")}
    providers["deny-then-done"] = DENY_THEN_DONE
    providers["orchestrate"] = ORCHESTRATE
    providers["twice"] = TWICE
    providers["slow"] = {
        "kind": "openai",
        "base_url": f"http://127.0.0.1:{slow_model}/v1",
        "model": "bench",
        "max_retries": 0,
    }
    config = {
        "providers": providers,
        "auth": {
            "keys": [
                {"name": "cli", "sha256": hash_key(token), "scopes": ["read", "write"]},
                {"name": "viewer", "sha256": hash_key(readonly), "scopes": ["read"]},
            ]
        },
        "workspaces": {"roots": [str(roots)]},
        "websocket": {"ping_interval_seconds": 0},
        "engine": {"delta_coalesce_ms": 0},
    }
    proc = DaemonProcess(base, config, base / "data")
    try:
        proc.start()
        yield Daemon(proc, token, readonly, roots)
    finally:
        proc.kill()


@pytest.fixture(autouse=True)
def _stop_children(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "daemon" in request.fixturenames:
        d = request.getfixturevalue("daemon")
        for child in d.children:
            child.stop()
        d.children.clear()


def one_error_line(proc: subprocess.CompletedProcess[str], code: int, *needles: str) -> str:
    """The command failed with ``code`` and exactly one line on stderr, no traceback."""
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def rest(daemon: Daemon, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """A plain HTTP call (urllib), independent of the client under test."""
    import urllib.request

    req = urllib.request.Request(
        daemon.url + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {daemon.token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
        data = resp.read()
    return json.loads(data) if data else None


def settle(daemon: Daemon, session_id: str, task_id: str, *statuses: str) -> dict[str, Any]:
    """Poll the task until its status is one of ``statuses``."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        task = rest(daemon, "GET", f"/api/v1/sessions/{session_id}/tasks/{task_id}")
        if task["status"] in statuses:
            return task
        assert time.monotonic() < deadline, f"task stuck in {task['status']}, wanted {statuses}"
        time.sleep(0.05)


class Child:
    """A client command running as a process, its output read by threads
    so a test waits on output with a deadline instead of blocking forever.
    ``text`` holds everything so far (streamed text need not end a line)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.text: dict[str, str] = {"stdout": "", "stderr": ""}
        self._cond = threading.Condition()
        self._open = 2
        for name in ("stdout", "stderr"):
            threading.Thread(target=self._read, args=(name,), daemon=True).start()

    @property
    def lines(self) -> dict[str, list[str]]:
        with self._cond:
            return {name: text.splitlines() for name, text in self.text.items()}

    def _read(self, name: str) -> None:
        fd = getattr(self.proc, name).fileno()
        decoder = codecs.getincrementaldecoder("utf-8")()
        while chunk := os.read(fd, 65536):
            with self._cond:
                self.text[name] += decoder.decode(chunk)
                self._cond.notify_all()
        with self._cond:
            self._open -= 1
            self._cond.notify_all()

    def expect(self, name: str, predicate: Callable[[str], bool], timeout: float = TIMEOUT) -> str:
        """The first line of ``name`` (so far or to come, the last one
        perhaps unfinished) that matches."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = next((line for line in self.text[name].splitlines() if predicate(line)), None)
                if found is not None:
                    return found
                left = deadline - time.monotonic()
                if left <= 0 or (self._open == 0):
                    raise AssertionError(
                        f"no such {name} line; stdout {self.text['stdout'][-500:]!r}, "
                        f"stderr {self.text['stderr'][-500:]!r}, exit {self.proc.poll()}"
                    )
                self._cond.wait(left)

    def write(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text)
        self.proc.stdin.flush()

    def wait(self, timeout: float = TIMEOUT) -> int:
        rc = self.proc.wait(timeout)
        with self._cond:
            self._cond.wait_for(lambda: self._open == 0, timeout)
        return rc

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(TIMEOUT)
