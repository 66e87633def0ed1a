"""Commands, end to end through a task: the daemon's ``tools.denied_commands``
win even over a session that auto-approves every command, a session's own
denied prefixes too, wherever the shell would run the command (after a quoted
newline, inside ``<(...)``/``>(...)``), a line the allowlist does not cover is
asked about rather than run, and commands see an environment allowlist, never
the daemon's own environment (where provider keys live)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Api, WsClient
from tests.security.conftest import bearer, secure_config, subscribe_ok

QUOTED_NEWLINES = "echo 'a\necho b' ; {} ; echo '\necho c'"  # issue #9 item 7
SECRET_NAME = "ROO_TEST_DAEMON_SECRET"
SECRET_VALUE = "daemon-only-secret-4c1e"


def run_command(command: str) -> dict[str, Any]:
    return {"tool_calls": [{"name": "execute_command", "args": {"command": command}}]}


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv(SECRET_NAME, SECRET_VALUE)
    cfg = secure_config(
        tmp_path,
        tools={"denied_commands": ["touch"], "command_env_allow": ["PATH"], "command_env_set": {"CI": "1"}},
    )
    cfg["providers"]["commands"] = {
        "kind": "scripted",
        "turns": [
            run_command("touch pwned-by-global.txt"),
            run_command("env"),
            run_command("rm -f keep.txt"),
            run_command("FOO=1 touch pwned-by-prefix.txt"),
            {"tool_calls": [{"name": "attempt_completion", "args": {"result": "done"}}]},
        ],
    }
    cfg["providers"]["hidden"] = {
        "kind": "scripted",
        "turns": [
            run_command(QUOTED_NEWLINES.format("touch pwned-newline.txt")),  # global deny
            run_command(QUOTED_NEWLINES.format("rm -f keep.txt")),  # session deny
            run_command("diff <(touch pwned-proc.txt) /dev/null"),  # global deny, issue #16 item 4
            run_command("diff <(rm -f keep.txt) keep.txt"),  # session deny
            run_command("cat keep.txt >(rm -f keep.txt)"),
            {"tool_calls": [{"name": "attempt_completion", "args": {"result": "done"}}]},
        ],
    }
    cfg["providers"]["allowlist"] = {
        "kind": "scripted",
        "turns": [
            run_command(QUOTED_NEWLINES.format("mkdir pwned-dir")),
            {"tool_calls": [{"name": "attempt_completion", "args": {"result": "done"}}]},
        ],
    }
    return cfg


async def task_frames(alice: Api, session: dict[str, Any], until: tuple[str, ...]) -> list[dict[str, Any]]:
    """Start a task and collect its frames up to the first ``until`` event."""
    task = await alice.task(session["id"], "run things")
    ws = await WsClient.connect(alice.base_url, bearer("alice"))
    try:
        await subscribe_ok(ws, "t", task_id=task["id"], after=0)
        return await ws.recv_until(lambda f: f.get("event") in until)
    finally:
        ws.close()


async def run_permissive(alice: Api, provider: str) -> tuple[Path, list[dict[str, Any]], list[dict[str, Any]]]:
    """A task under a session that allows every command but ``rm``, in a
    workspace holding keep.txt: the workspace, the commands' results, all frames.
    Nothing is asked about (a denied command is refused without an ask)."""
    session = await alice.session(
        provider=provider, auto_approve={"execute": True, "allowed_commands": ["*"], "denied_commands": ["rm"]}
    )
    workspace = Path(session["workspace"])
    (workspace / "keep.txt").write_text("precious")
    frames = await task_frames(alice, session, ("task.completed", "task.failed"))
    assert frames[-1]["event"] == "task.completed", frames[-3:]
    assert not [f for f in frames if f.get("event") == "ask"], "a denied command must not even be asked about"
    results = [f["data"] for f in frames if f.get("event") == "tool.result" and f["data"]["tool"] == "execute_command"]
    return workspace, results, frames


@pytest.mark.gen_test(timeout=30)
async def test_denied_commands_win_and_commands_get_no_daemon_secrets(as_: Any) -> None:
    workspace, results, frames = await run_permissive(as_("alice"), "commands")
    assert len(results) == 4, results
    global_deny, env_run, session_deny, prefixed_deny = results
    for denied in (global_deny, session_deny, prefixed_deny):
        assert denied["is_error"] and "denied" in denied["content"], denied
    assert not (workspace / "pwned-by-global.txt").exists()
    assert not (workspace / "pwned-by-prefix.txt").exists()
    assert (workspace / "keep.txt").read_text() == "precious"

    assert not env_run["is_error"], env_run
    output = env_run["content"]
    assert "CI=1" in output and "PATH=" in output
    assert SECRET_VALUE not in output and SECRET_NAME not in output
    for name in os.environ:
        if name not in ("PATH", "CI", "PWD", "SHLVL", "_"):
            assert f"\n{name}=" not in output, name
    everything = "".join(str(f) for f in frames)
    assert SECRET_VALUE not in everything  # not in tool.output events either


@pytest.mark.gen_test(timeout=30)
async def test_deny_lists_see_commands_after_quoted_newlines_and_in_process_substitutions(as_: Any) -> None:
    """Every command is refused without an ask, and none of them ran."""
    workspace, results, _ = await run_permissive(as_("alice"), "hidden")
    globally, by_session = "daemon's denied command prefix 'touch'", "denied command prefix 'rm'"
    expected = [globally, by_session, globally, by_session, by_session]
    assert len(results) == len(expected), results
    for result, prefix in zip(results, expected, strict=True):
        assert result["is_error"] and prefix in result["content"], result
    assert not (workspace / "pwned-newline.txt").exists()
    assert not (workspace / "pwned-proc.txt").exists()
    assert (workspace / "keep.txt").read_text() == "precious"


@pytest.mark.gen_test(timeout=30)
async def test_a_command_hidden_after_a_quoted_newline_is_asked_about_not_run(as_: Any) -> None:
    """With only ``echo`` allowed, the line that also runs ``mkdir`` waits
    for approval; cancelling it leaves nothing behind."""
    alice: Api = as_("alice")
    session = await alice.session(provider="allowlist", auto_approve={"execute": True, "allowed_commands": ["echo"]})
    workspace = Path(session["workspace"])
    frames = await task_frames(alice, session, ("ask", "task.completed", "task.failed"))
    ask = frames[-1]
    assert ask["event"] == "ask", frames[-3:]
    assert ask["data"]["kind"] == "command" and "mkdir pwned-dir" in ask["data"]["command"], ask
    assert not [f for f in frames if f.get("event") == "tool.output"], "nothing ran before the answer"
    r = await alice.delete(f"/api/v1/sessions/{session['id']}/tasks/{ask['task_id']}")
    assert r.status in (200, 202), r.body
    assert not (workspace / "pwned-dir").exists()
