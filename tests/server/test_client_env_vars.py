"""The client CLI's variables (``ROO_DAEMON_TOKEN``, ``ROO_DAEMON_URL``) share
the configuration's ``ROO_DAEMON_`` prefix. A shell that exports them for
``roo-daemon run`` must still be able to start ``serve`` (and
``check-config``): they are not configuration sections."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from tests.server.conftest import DaemonFactory
from tests.server.daemon_process import REPO_ROOT

CLIENT_ENV = {"ROO_DAEMON_TOKEN": "roo_client_side_key_not_a_config_key", "ROO_DAEMON_URL": "http://127.0.0.1:1"}


def test_serve_starts_with_the_client_variables_set(daemon_factory: DaemonFactory) -> None:
    d = daemon_factory()
    d.extra_env.update(CLIENT_ENV)
    d.start()
    d.send_signal(signal.SIGTERM)
    assert d.wait_exit() == 0


def test_check_config_accepts_the_client_variables(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "roo_daemon", "check-config"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT), **CLIENT_ENV},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    # A real typo with the same prefix is still an error.
    bad = subprocess.run(
        [sys.executable, "-m", "roo_daemon", "check-config"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT), "ROO_DAEMON_TOKENS": "x"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "ROO_DAEMON_TOKENS" in bad.stderr
