"""``roo-daemon serve`` as a real subprocess, for tests of its lifecycle.

The daemon logs one JSON object per line on stdout (stdout is a pipe, so
``log.format: auto`` picks JSON). A reader thread collects the records; tests
wait for a record instead of sleeping, and read the port from the
``listening on`` record.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 15.0
LogMatch = Callable[[dict[str, Any]], bool]


def has_msg(text: str) -> LogMatch:
    """A log-record predicate: the message contains ``text``."""
    return lambda rec: text in str(rec.get("msg", ""))


class DaemonProcess:
    """One run of the daemon on a config file and a data dir.

    Make a new instance for each (re)start on the same ``data_dir``."""

    def __init__(
        self,
        workdir: Path,
        config: dict[str, Any],
        data_dir: Path,
        extra_args: list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.data_dir = data_dir
        self.config_path = workdir / "daemon.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.extra_args = extra_args or []
        self.extra_env = env or {}  # ROO_DAEMON_* from the test's own environment are dropped
        self.proc: subprocess.Popen[str] | None = None
        self.records: list[dict[str, Any]] = []
        self.stderr_lines: list[str] = []
        self._cond = threading.Condition()
        self._eof = False
        self._threads: list[threading.Thread] = []
        self.port: int | None = None

    # -- start ------------------------------------------------------------

    # Subclasses may run the daemon under a wrapper and hand it descriptors.
    prefix: list[str] = []
    pass_fds: tuple[int, ...] = ()
    dropped_env: frozenset[str] = frozenset()

    def launch(self) -> None:
        """Start the process and its log readers, without waiting for it to listen."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("ROO_DAEMON_") and k not in self.dropped_env}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        env["PYTHONUNBUFFERED"] = "1"
        env.update(self.extra_env)
        cmd = [sys.executable, "-m", "roo_daemon", "serve", "--port", "0", "--data-dir", str(self.data_dir)]
        cmd += ["--config", str(self.config_path), *self.extra_args]
        self.proc = subprocess.Popen(
            self.prefix + cmd,
            cwd=self.workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
            pass_fds=self.pass_fds,
        )
        self._threads = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for t in self._threads:
            t.start()

    def start(self, timeout: float = TIMEOUT) -> int:
        """Start the daemon and wait for its ``listening on`` record; return the port."""
        self.launch()
        rec = self.wait_for_log(lambda r: "port" in r and has_msg("listening on")(r), timeout)
        self.port = int(rec["port"])
        return self.port

    async def astart(self, timeout: float = TIMEOUT) -> int:
        return await asyncio.get_running_loop().run_in_executor(None, self.start, timeout)

    @property
    def base_url(self) -> str:
        assert self.port is not None, "the daemon has not started"
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    # -- output -----------------------------------------------------------

    def _read_stdout(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            if not line:
                continue
            try:
                rec = json.loads(line)
                if not isinstance(rec, dict):
                    rec = {"raw": line}
            except ValueError:
                rec = {"raw": line}
            with self._cond:
                self.records.append(rec)
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._cond:
                self.stderr_lines.append(line.rstrip("\n"))

    def find_log(self, match: LogMatch) -> dict[str, Any] | None:
        with self._cond:
            return next((r for r in self.records if match(r)), None)

    def wait_for_log(self, match: LogMatch | str, timeout: float = TIMEOUT) -> dict[str, Any]:
        """The first record (seen so far or to come) that matches; a string matches the message."""
        pred = has_msg(match) if isinstance(match, str) else match
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = next((r for r in self.records if pred(r)), None)
                if found is not None:
                    return found
                left = deadline - time.monotonic()
                if self._eof or left <= 0:
                    why = "the daemon's stdout closed" if self._eof else f"no match within {timeout}s"
                    raise AssertionError(f"{why}; log tail: {self.records[-5:]}; stderr: {self.stderr_lines[-10:]}")
                self._cond.wait(left)

    async def await_log(self, match: LogMatch | str, timeout: float = TIMEOUT) -> dict[str, Any]:
        return await asyncio.get_running_loop().run_in_executor(None, self.wait_for_log, match, timeout)

    # -- stop -------------------------------------------------------------

    def send_signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float = TIMEOUT) -> int:
        """The exit status (negative: killed by that signal); fails if it takes longer."""
        assert self.proc is not None
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the daemon did not exit within {timeout}s; log tail: {self.records[-5:]}") from None
        for t in self._threads:
            t.join(timeout)  # the pipes are at EOF once the process is gone
        return rc

    async def await_exit(self, timeout: float = TIMEOUT) -> int:
        return await asyncio.get_running_loop().run_in_executor(None, self.wait_exit, timeout)

    def kill(self) -> None:
        """SIGKILL, if still running (teardown safety net)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(TIMEOUT)
