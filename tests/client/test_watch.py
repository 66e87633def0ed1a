"""``roo-daemon watch`` against a real daemon: every failure is one line and
a non-zero exit, an ``http://`` URL works, and ``--until`` waits for a live
event rather than firing on the replayed history."""

from __future__ import annotations

import json
import signal

from tests.client.conftest import Daemon, one_error_line, rest, settle

UNKNOWN_SESSION = "ses_" + "0" * 32


def ws_url(daemon: Daemon) -> str:
    return daemon.url.replace("http://", "ws://") + "/ws"


def test_a_wrong_token_is_one_line(daemon: Daemon) -> None:
    proc = daemon.cli("watch", "--url", ws_url(daemon), "--token", "not-a-key")
    one_error_line(proc, 2, "roo-daemon watch:", "401")


def test_a_url_that_is_not_the_daemons_ws_is_one_line(daemon: Daemon) -> None:
    proc = daemon.cli("watch", "--url", daemon.url.replace("http://", "ws://") + "/nope/ws")
    one_error_line(proc, 2, "404")


def test_a_refused_connection_is_one_line(daemon: Daemon) -> None:
    proc = daemon.cli("watch", "--url", "ws://127.0.0.1:1/ws")
    one_error_line(proc, 1, "cannot connect", "127.0.0.1:1")


def test_an_unknown_session_is_one_line_not_a_hang(daemon: Daemon) -> None:
    proc = daemon.cli("watch", "--url", ws_url(daemon), "--session", UNKNOWN_SESSION)
    one_error_line(proc, 2, "not-found", UNKNOWN_SESSION)


def test_an_http_url_names_the_same_daemon(daemon: Daemon) -> None:
    """``--url http://host:port`` (the REST address) works as well as ``ws://.../ws``."""
    session = rest(daemon, "POST", "/api/v1/sessions", {"name": "watched"})
    child = daemon.start("watch", "--url", daemon.url, "--session", session["id"], "--after", "0")
    line = child.expect("stdout", lambda s: "session.created" in s)
    assert json.loads(line)["session_id"] == session["id"]
    child.proc.send_signal(signal.SIGINT)
    assert child.wait() == 0
    assert "Traceback" not in "\n".join(child.lines["stderr"])


def test_until_waits_for_a_live_event_not_a_replayed_one(daemon: Daemon) -> None:
    """A session whose task already completed: replaying its history must not
    end ``--until task.completed``; the next task's completion does."""
    session = rest(daemon, "POST", "/api/v1/sessions", {"provider": "instant"})
    sid = session["id"]
    old = rest(daemon, "POST", f"/api/v1/sessions/{sid}/tasks", {"prompt": "first"})
    settle(daemon, sid, old["id"], "completed")
    child = daemon.start(
        "watch", "--url", ws_url(daemon), "--session", sid, "--after", "0", "--until", "task.completed"
    )
    child.expect("stdout", lambda s: '"task.completed"' in s and old["id"] in s)
    child.expect("stderr", lambda s: "live" in s)  # the replay is over
    assert child.proc.poll() is None, "--until fired on a replayed event"
    new = rest(daemon, "POST", f"/api/v1/sessions/{sid}/tasks", {"prompt": "second"})
    assert child.wait() == 0
    last = json.loads(child.lines["stdout"][-1])
    assert (last["event"], last["task_id"]) == ("task.completed", new["id"])
