"""Commands, end to end through a task: the daemon's ``tools.denied_commands``
win even over a session that auto-approves every command, a session's own
denied prefixes too, and commands see an environment allowlist, never the
daemon's own environment (where provider keys live)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Api, WsClient
from tests.security.conftest import bearer, secure_config, subscribe_ok

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
    return cfg


@pytest.mark.gen_test(timeout=30)
async def test_denied_commands_win_and_commands_get_no_daemon_secrets(as_: Any) -> None:
    alice: Api = as_("alice")
    session = await alice.session(
        provider="commands", auto_approve={"execute": True, "allowed_commands": ["*"], "denied_commands": ["rm"]}
    )
    workspace = Path(session["workspace"])
    (workspace / "keep.txt").write_text("precious")
    task = await alice.task(session["id"], "run things")
    ws = await WsClient.connect(alice.base_url, bearer("alice"))
    try:
        await subscribe_ok(ws, "t", task_id=task["id"], after=0)
        frames = await ws.recv_until(lambda f: f.get("event") in ("task.completed", "task.failed"))
    finally:
        ws.close()
    assert frames[-1]["event"] == "task.completed", frames[-3:]
    assert not [f for f in frames if f.get("event") == "ask"], "a denied command must not even be asked about"
    results = [f["data"] for f in frames if f.get("event") == "tool.result" and f["data"]["tool"] == "execute_command"]
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
