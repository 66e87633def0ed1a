"""``roo-daemon run | attach | approve | deny | answer | tasks`` as real
processes against a real daemon: the transcript, asks answered at the
terminal or from another command, exit statuses, Ctrl-C, ``--json``."""

from __future__ import annotations

import json
import signal

from tests.client.conftest import Daemon, one_error_line, rest, settle


def task_id_from(stderr: str) -> tuple[str, str]:
    """The ``task tsk_… in session ses_…`` line run prints first."""
    words = next(line for line in stderr.splitlines() if line.startswith("task tsk_")).split()
    return words[1], words[4]


def test_run_yes_completes_with_exit_0(daemon: Daemon) -> None:
    """The demo writes hello.txt: with --yes nothing waits; the file is in
    the --workspace directory and the transcript shows text, tool and result."""
    ws = daemon.roots / "yes"
    ws.mkdir()
    proc = daemon.cli("run", "--yes", "--workspace", str(ws), "Create hello.txt")
    assert proc.returncode == 0, proc.stderr
    assert (ws / "hello.txt").read_text() == "Hello from roo-daemon!\n"
    out = proc.stdout
    assert "I'll create hello.txt in the workspace." in out
    assert "▸ write_to_file(path=hello.txt, content=Hello from roo-daemon!)" in out
    assert out.rstrip().endswith("✔ completed: Created hello.txt with a greeting.")
    assert "\x1b[" not in out  # not a terminal: no colour
    assert "Traceback" not in proc.stderr
    tid, sid = task_id_from(proc.stderr)
    assert rest(daemon, "GET", f"/api/v1/sessions/{sid}/tasks/{tid}")["status"] == "completed"


def test_a_denied_approval_at_the_prompt(daemon: Daemon) -> None:
    """The person answers "n" with a reason: the model is told, the file is
    not written, and the task goes on to complete."""
    ws = daemon.roots / "deny"
    ws.mkdir()
    proc = daemon.cli("run", "--workspace", str(ws), "--provider", "deny-then-done", "Write x.txt", input="not today\n")
    assert proc.returncode == 0, proc.stderr
    assert "? approve write_to_file" in proc.stdout
    assert "+x" in proc.stdout  # the diff was shown before the question
    assert "✗ denied: not today" in proc.stdout
    assert "✔ completed: not written" in proc.stdout
    assert "approve? [y]es, [n]o, or type why not: not today" in proc.stderr
    assert not (ws / "x.txt").exists()
    tid, sid = task_id_from(proc.stderr)
    events = rest(daemon, "GET", f"/api/v1/sessions/{sid}/tasks/{tid}/events?limit=1000")["items"]
    answered = [e["data"] for e in events if e["event"] == "ask.answered"]
    assert answered == [{"ask_id": answered[0]["ask_id"], "kind": "tool", "approve": False, "text": "not today"}]


def test_no_input_exits_4_and_approve_then_attach_finish_it(daemon: Daemon) -> None:
    proc = daemon.cli("run", "--no-input", "Create hello.txt")
    assert proc.returncode == 4, proc.stderr
    tid, sid = task_id_from(proc.stderr)
    assert f"task {tid} is waiting for an answer (tool): roo-daemon approve|deny {tid}" in proc.stderr
    assert rest(daemon, "GET", f"/api/v1/sessions/{sid}/tasks/{tid}")["status"] == "waiting"

    waiting = daemon.cli("tasks", "--status", "waiting")
    assert waiting.returncode == 0 and tid in waiting.stdout
    assert all("waiting" in line for line in waiting.stdout.splitlines())

    approved = daemon.cli("approve", tid, "--text", "go ahead")
    assert approved.returncode == 0, approved.stderr
    assert approved.stdout == f"approved the tool ask of task {tid}\n"
    settle(daemon, sid, tid, "completed")

    attached = daemon.cli("attach", tid)  # a finished task: its transcript, then its status
    assert attached.returncode == 0, attached.stderr
    assert "✓ approved: go ahead" in attached.stdout
    assert attached.stdout.rstrip().endswith("✔ completed: Created hello.txt with a greeting.")

    again = daemon.cli("approve", tid)
    one_error_line(again, 2, f"task {tid} has no pending ask (status completed)")


def test_a_followup_answered_by_number_and_by_the_answer_command(daemon: Daemon) -> None:
    proc = daemon.cli("run", "--provider", "followup", "Pick one", input="2\n")
    assert proc.returncode == 0, proc.stderr
    assert "? Which language?\n  1. Python\n  2. Go\n" in proc.stdout
    assert "answer: Go" in proc.stdout and "✔ completed: answered" in proc.stdout

    waiting = daemon.cli("run", "--provider", "followup", "--no-input", "Pick one")
    assert waiting.returncode == 4
    tid, sid = task_id_from(waiting.stderr)
    assert f"roo-daemon answer {tid}" in waiting.stderr
    one_error_line(daemon.cli("approve", tid), 2, f"roo-daemon answer {tid} TEXT")
    answered = daemon.cli("answer", tid, "Rust", "--session", sid)
    assert answered.returncode == 0, answered.stderr
    assert settle(daemon, sid, tid, "completed")["result"] == "answered"


def test_a_failed_task_exits_1(daemon: Daemon) -> None:
    proc = daemon.cli("run", "--provider", "broken", "Anything")
    assert proc.returncode == 1, proc.stderr
    assert "✘ failed: " in proc.stdout and "the scripted model is down" in proc.stdout


def test_json_output_is_one_event_per_line(daemon: Daemon) -> None:
    proc = daemon.cli("run", "--json", "--yes", "Create hello.txt")
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    tid, _ = task_id_from(proc.stderr)
    assert {e["task_id"] for e in events} == {tid}
    assert events[0]["event"] == "task.created" and events[-1]["event"] == "task.completed"
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(set(seqs))  # in order, none twice


def test_a_subtask_is_shown_with_its_label(daemon: Daemon) -> None:
    proc = daemon.cli("run", "--yes", "--provider", "orchestrate", "--mode", "orchestrator", "Delegate it")
    assert proc.returncode == 0, proc.stderr
    child = next(line for line in proc.stdout.splitlines() if line.startswith("subtask tsk_")).split()[1]
    assert f"[{child[:12]}] Child here." in proc.stdout
    assert f"[{child[:12]}] ✔ completed: child done" in proc.stdout
    assert proc.stdout.rstrip().endswith("✔ completed: parent done")


def test_ctrl_c_cancels_the_task(daemon: Daemon) -> None:
    """SIGINT to the CLI while the slow model streams: the task is cancelled
    on the daemon and the command exits 3."""
    child = daemon.start("run", "--provider", "slow", "Take your time")
    child.expect("stdout", lambda s: "word" in s)  # streaming
    tid, sid = task_id_from("\n".join(child.lines["stderr"]))
    child.proc.send_signal(signal.SIGINT)
    assert child.wait() == 3
    assert child.lines["stdout"][-1] == "cancelled"
    assert any(f"cancelling task {tid}" in line for line in child.lines["stderr"])
    assert rest(daemon, "GET", f"/api/v1/sessions/{sid}/tasks/{tid}")["status"] == "cancelled"


def test_ctrl_c_on_attach_leaves_the_task_running(daemon: Daemon) -> None:
    session = rest(daemon, "POST", "/api/v1/sessions", {"provider": "slow"})
    task = rest(daemon, "POST", f"/api/v1/sessions/{session['id']}/tasks", {"prompt": "Go slowly"})
    child = daemon.start("attach", task["id"])
    child.expect("stdout", lambda s: "word" in s)
    child.proc.send_signal(signal.SIGINT)
    assert child.wait() == 3
    assert f"reattach with: roo-daemon attach {task['id']}" in child.lines["stderr"][-1]
    assert rest(daemon, "GET", f"/api/v1/sessions/{session['id']}/tasks/{task['id']}")["status"] == "running"
    rest(daemon, "DELETE", f"/api/v1/sessions/{session['id']}/tasks/{task['id']}")


def test_a_second_ctrl_c_stops_waiting_and_says_how_to_reattach(daemon: Daemon) -> None:
    """The first Ctrl-C asks the daemon to cancel and waits for the task's
    end; a second one stops waiting at once (exit 3) and prints how to
    reattach. The daemon is frozen in between, so the end cannot arrive first."""
    child = daemon.start("run", "--provider", "slow", "Take your time")
    child.expect("stdout", lambda s: "word" in s)
    tid, sid = task_id_from("\n".join(child.lines["stderr"]))
    daemon.proc.send_signal(signal.SIGSTOP)
    try:
        child.proc.send_signal(signal.SIGINT)
        child.expect("stderr", lambda s: f"cancelling task {tid}" in s)
        child.proc.send_signal(signal.SIGINT)
        assert child.wait() == 3
    finally:
        daemon.proc.send_signal(signal.SIGCONT)
    assert f"left task {tid} as it is; reattach with: roo-daemon attach {tid}" in child.lines["stderr"][-1]
    assert "Traceback" not in "\n".join(child.lines["stderr"])
    # Whether the first Ctrl-C's cancel left the CLI before it exited depends on
    # the scheduler; either way the task is left as the daemon has it.
    path = f"/api/v1/sessions/{sid}/tasks/{tid}"
    if rest(daemon, "GET", path)["status"] == "running":
        rest(daemon, "DELETE", path)
    settle(daemon, sid, tid, "cancelled")


def test_diffs_are_coloured_when_stdout_is_a_terminal(daemon: Daemon) -> None:
    """stdout on a pseudo-terminal: the proposed edit's diff has its added
    lines green and its header bold; NO_COLOR turns colour off again."""
    import os
    import pty
    import subprocess
    import sys

    def run_on_a_terminal(ws_name: str, **env: str) -> str:
        ws = daemon.roots / ws_name
        ws.mkdir()
        master, slave = pty.openpty()
        proc = subprocess.Popen(
            [sys.executable, "-m", "roo_daemon", "run", "--workspace", str(ws), "--provider", "deny-then-done", "x"],
            env=daemon.env(**env),
            cwd=daemon.roots,
            stdin=subprocess.PIPE,
            stdout=slave,
            stderr=subprocess.PIPE,
        )
        os.close(slave)
        assert proc.stdin is not None
        proc.stdin.write(b"n\n")
        proc.stdin.close()
        chunks = []
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed its end
                break
            if not chunk:
                break
            chunks.append(chunk)
        os.close(master)
        assert proc.wait(60) == 0, proc.stderr.read() if proc.stderr else ""
        return b"".join(chunks).decode()

    out = run_on_a_terminal("tty-colour")
    assert "\x1b[32m+x" in out, out  # the added line, green
    assert "\x1b[1m+++" in out or "\x1b[1m---" in out, out
    plain = run_on_a_terminal("tty-no-colour", NO_COLOR="1")
    assert "+x" in plain and "\x1b[32m" not in plain, plain
