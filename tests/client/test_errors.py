"""Every way a client command can fail is one line on stderr and the exit
status the README documents (2: the request or the setup is wrong; 1: the
daemon could not be reached), never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from roo_daemon.auth import hash_key
from tests.client.conftest import Daemon, one_error_line

UNKNOWN_TASK = "tsk_" + "0" * 32
UNKNOWN_SESSION = "ses_" + "0" * 32


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["attach", UNKNOWN_TASK], ["roo-daemon attach:", f"no task {UNKNOWN_TASK}"]),
        (["approve", UNKNOWN_TASK], ["roo-daemon approve:", "no task"]),
        (["deny", UNKNOWN_TASK, "--text", "no"], ["no task"]),
        (["answer", UNKNOWN_TASK, "yes"], ["no task"]),
        (["attach", UNKNOWN_TASK, "--session", UNKNOWN_SESSION], ["404 Not Found"]),
        (["attach", "not-an-id"], ["no task not-an-id"]),
        (["run", "--session", UNKNOWN_SESSION, "hi"], ["404 Not Found", UNKNOWN_SESSION]),
        (["run", "--provider", "nope", "hi"], ["422", "nope"]),
        (["run", "--mode", "nope", "hi"], ["422", "nope"]),
        (["run", "--workspace", "/", "hi"], ["422", "workspace"]),
        (["run", "--yes", "--approve-reads", "hi"], ["--approve-reads"]),
        (["run", "--session", UNKNOWN_SESSION, "--workspace", "/tmp", "hi"], ["not allowed with"]),
        (["run"], ["prompt"]),
        (["tasks", "--status", "sleeping"], ["invalid choice: 'sleeping'"]),
        (["frobnicate"], ["invalid choice"]),
    ],
    ids=[
        "attach-unknown-task",
        "approve-unknown-task",
        "deny-unknown-task",
        "answer-unknown-task",
        "attach-unknown-session",
        "malformed-task-id",
        "run-unknown-session",
        "run-unknown-provider",
        "run-unknown-mode",
        "run-workspace-outside-roots",
        "yes-and-approve-reads",
        "session-and-workspace",
        "run-without-prompt",
        "tasks-bad-status",
        "unknown-command",
    ],
)
def test_usage_errors_exit_2(daemon: Daemon, args: list[str], needles: list[str]) -> None:
    one_error_line(daemon.cli(*args), 2, *needles)


def test_a_wrong_token(daemon: Daemon) -> None:
    one_error_line(daemon.cli("run", "--token", "wrong", "hi"), 2, "roo-daemon run: 401 Unauthorized")
    one_error_line(daemon.cli("tasks", env=daemon.env(ROO_DAEMON_TOKEN="wrong")), 2, "401")


def test_a_key_without_the_write_scope(daemon: Daemon) -> None:
    one_error_line(daemon.cli("run", "--token", daemon.readonly_token, "hi"), 2, "403 Forbidden", "write")


def test_a_refused_connection(daemon: Daemon) -> None:
    one_error_line(daemon.cli("tasks", "--url", "http://127.0.0.1:1"), 1, "cannot connect to http://127.0.0.1:1")


def test_a_url_that_is_not_a_roo_daemon(daemon: Daemon, slow_model: int) -> None:
    """Another HTTP server (here the fake model's) answers 404 in HTML."""
    proc = daemon.cli("tasks", "--url", f"http://127.0.0.1:{slow_model}")
    one_error_line(proc, 2, "HTTP 404", "is the URL right?")


def test_a_path_prefix_the_daemon_does_not_have(daemon: Daemon) -> None:
    one_error_line(daemon.cli("tasks", "--url", daemon.url + "/nope"), 2, "404 Not Found", "/nope/api/v1/tasks")


@pytest.mark.parametrize("url", ["ftp://127.0.0.1:3000", "http://", "http://127.0.0.1:99999", "http://h/?a=1"])
def test_a_malformed_url(daemon: Daemon, url: str) -> None:
    one_error_line(daemon.cli("tasks", "--url", url), 2, "bad URL")


def test_a_broken_local_config_without_a_url(daemon: Daemon, tmp_path: Path) -> None:
    env = daemon.env()
    del env["ROO_DAEMON_URL"]
    env["ROO_DAEMON_CONFIG"] = str(tmp_path / "missing.yaml")
    one_error_line(daemon.cli("tasks", env=env), 2, "configuration error", "does not exist")


def test_the_local_config_names_the_daemon(daemon: Daemon, tmp_path: Path) -> None:
    """No URL: host and port come from the config file, and ROO_DAEMON_TOKEN
    in the environment is the client's, not a configuration override."""
    cfg = tmp_path / "daemon.yaml"
    keys = [{"name": "cli", "sha256": hash_key(daemon.token)}]  # a wildcard bind needs keys
    cfg.write_text(yaml.safe_dump({"server": {"host": "0.0.0.0", "port": daemon.proc.port}, "auth": {"keys": keys}}))
    env = daemon.env()
    del env["ROO_DAEMON_URL"]
    proc = daemon.cli("tasks", "--config", str(cfg), env=env)
    assert proc.returncode == 0, proc.stderr


def test_the_status_choices_are_the_contracts() -> None:
    from roo_daemon.client.api import STATUSES
    from roo_daemon.spec import load_spec_text

    assert list(STATUSES) == yaml.safe_load(load_spec_text())["components"]["schemas"]["TaskStatus"]["enum"]
