"""``roo-daemon continue TASK TEXT`` (``POST .../tasks/{id}/messages``): a
finished task runs again from its conversation and the command follows the
continuation live; a waiting task is refused with a hint."""

from __future__ import annotations

from tests.client.conftest import Daemon, one_error_line, rest, settle
from tests.client.test_run import task_id_from


def test_continue_runs_a_finished_task_again_and_follows_it(daemon: Daemon) -> None:
    first = daemon.cli("run", "--provider", "twice", "Do it")
    assert first.returncode == 0, first.stderr
    tid, sid = task_id_from(first.stderr)
    proc = daemon.cli("continue", tid, "Once more")
    assert proc.returncode == 0, proc.stderr
    assert "you: Once more" in proc.stdout
    assert "Second." in proc.stdout and proc.stdout.rstrip().endswith("✔ completed: second")
    assert "First." not in proc.stdout  # only the continuation: it is followed live
    task = rest(daemon, "GET", f"/api/v1/sessions/{sid}/tasks/{tid}")
    assert (task["status"], task["result"]) == ("completed", "second")


def test_continue_detached_returns_at_once(daemon: Daemon) -> None:
    session = rest(daemon, "POST", "/api/v1/sessions", {"provider": "twice"})
    sid = session["id"]
    task = rest(daemon, "POST", f"/api/v1/sessions/{sid}/tasks", {"prompt": "Do it"})
    settle(daemon, sid, task["id"], "completed")
    proc = daemon.cli("continue", task["id"], "Again", "--detach", "--session", sid)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"task {task['id']}: message sent (status ")
    assert settle(daemon, sid, task["id"], "completed", "failed")["result"] == "second"


def test_continue_a_waiting_task_is_one_line(daemon: Daemon) -> None:
    waiting = daemon.cli("run", "--no-input", "Create hello.txt")
    assert waiting.returncode == 4
    tid, _ = task_id_from(waiting.stderr)
    one_error_line(daemon.cli("continue", tid, "hello?"), 2, "409")
    one_error_line(daemon.cli("continue", "tsk_" + "0" * 32, "hello?"), 2, "no task")
