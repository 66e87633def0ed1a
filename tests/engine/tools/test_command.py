"""execute_command: real subprocesses in a temporary workspace, each test
both in the bubblewrap sandbox (the default) and with ``tools.sandbox: none``.

Processes are found by a unique argument (``tests/procs.py``): inside the
sandbox's PID namespace, ``$!`` is not the host's pid."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from roo_daemon.engine.sandbox import default_sandbox
from roo_daemon.engine.tools import background
from roo_daemon.engine.tools.command import OutputCapture, current_call_id, run_command
from tests.engine.tools.conftest import FakeContext
from tests.needs import missing
from tests.procs import running, unique_seconds


@pytest.fixture(params=["bwrap", "none"])
def sandbox_mode(request: pytest.FixtureRequest, io_loop) -> str:
    if request.param == "bwrap":
        sandbox = io_loop.run_sync(lambda: default_sandbox("bwrap"))
        if sandbox.bwrap is None:
            missing(f"bubblewrap cannot run here: {sandbox.problem}")
    return request.param


@pytest.fixture
def ctx(ctx: FakeContext, sandbox_mode: str) -> FakeContext:
    ctx.settings["sandbox"] = sandbox_mode
    return ctx


@pytest.fixture
def strict_ctx(strict_ctx: FakeContext, sandbox_mode: str) -> FakeContext:
    strict_ctx.settings["sandbox"] = sandbox_mode
    return strict_ctx


def family() -> tuple[str, str]:
    """A child shell that starts a grandchild ``sleep``; both carry the marker.
    (Backgrounding asks under Roo's policy; the tests approve it.)"""
    marker = unique_seconds(60)
    return f"sh -c 'sleep {marker} & echo child-ready; wait' & echo parent-ready; wait", marker


@pytest.mark.gen_test(timeout=10)
async def test_output_streams_while_the_command_runs(ctx, workspace):
    os.mkfifo(workspace / "gate")
    call = asyncio.ensure_future(ctx.call("execute_command", command="echo first; cat gate; echo second"))
    await ctx.wait_output("first\n", call)
    assert not call.done()  # the first line arrived while the command was still blocked
    await asyncio.to_thread((workspace / "gate").write_text, "go\n")  # let it finish
    out = await call
    assert not out.is_error
    assert out.content == (
        f"Command executed in terminal within working directory '{workspace.resolve().as_posix()}'. "
        "Exit code: 0\nOutput:\nfirst\ngo\nsecond\n"
    )
    events = [d for n, d in ctx.published if n == "tool.output"]
    assert all(e["stream"] == "stdout" for e in events) and ctx.output() == "first\ngo\nsecond\n"


@pytest.mark.gen_test(timeout=10)
async def test_exit_code_and_stderr(ctx, workspace):
    out = await ctx.call("execute_command", command="echo out; echo err >&2; exit 3")
    assert not out.is_error  # a failing command is a result for the model, not a tool failure
    assert (
        "Command execution was not successful, inspect the cause and adjust as needed.\nExit code: 3\nOutput:\n"
        in out.content
    )
    assert "out\n" in out.content and "err\n" in out.content
    assert ctx.output("stderr") == "err\n" and ctx.output("stdout") == "out\n"
    killed = await ctx.call("execute_command", command="kill -9 $$")
    if ctx.settings["sandbox"] == "none":
        assert "Process terminated by signal SIGKILL" in killed.content
    else:  # bwrap reports a signal as 128 + its number, as a shell does
        assert "Exit code: 137\n" in killed.content


@pytest.mark.gen_test(timeout=10)
async def test_tool_output_carries_the_call_id(ctx, workspace):
    """The registry sets the id of the call it runs; tool.output events carry it."""
    await ctx.call("execute_command", command="echo hi")
    calls = [d["id"] for n, d in ctx.published if n == "tool.call"]
    assert [d for n, d in ctx.published if n == "tool.output"] == [
        {"stream": "stdout", "text": "hi\n", "id": calls[-1]}
    ]
    assert current_call_id.get() is None  # reset after the call


@pytest.mark.gen_test(timeout=20)
async def test_output_is_capped_keeping_head_and_tail(ctx, workspace):
    ctx.settings["command_output_max_bytes"] = 1024
    out = await ctx.call("execute_command", command="echo HEAD; yes 0123456789 | head -n 20000; echo TAIL")
    assert not out.is_error
    # Cut: Roo's persisted-output form, the preview, and the whole output kept.
    assert "\n\nOutput (214.9KB) persisted. Artifact ID: cmd-" in out.content
    output = out.content.split("\n\nPreview:\n", 1)[1].removesuffix(
        "\n\nUse read_command_output tool to view full output if needed."
    )
    assert output.startswith("HEAD\n0123456789\n") and output.endswith("0123456789\nTAIL\n")
    assert "\n[..." in output and " bytes omitted...]\n" in output
    omitted = int(output.split("[...")[1].split(" bytes")[0])
    assert omitted == 5 + 20000 * 11 + 5 - 1024
    assert len(output.encode()) < 1024 + 60
    assert ctx.output() == "HEAD\n" + "0123456789\n" * 20000 + "TAIL\n"  # the stream has it all
    sizes = [len(d["text"]) for n, d in ctx.published if n == "tool.output"]
    assert len(sizes) < 200  # coalesced, not one event per line


@pytest.mark.gen_test(timeout=10)
async def test_environment_comes_only_from_the_allowlist(ctx, workspace, monkeypatch):
    monkeypatch.setenv("ROO_DAEMON_TEST_SECRET", "hunter2")
    monkeypatch.setenv("LANG", "C.UTF-8")
    ctx.settings["command_env_set"] = {"GREETING": "hello"}
    out = await ctx.call("execute_command", command="env")
    names = {line.split("=", 1)[0] for line in out.content.split("\nOutput:\n", 1)[1].splitlines() if "=" in line}
    assert "hunter2" not in out.content and "ROO_DAEMON_TEST_SECRET" not in names
    assert "GREETING=hello" in out.content and "LANG=C.UTF-8" in out.content
    assert names <= {"PATH", "LANG", "LC_ALL", "TZ", "TERM", "GREETING", "PWD", "SHLVL", "_", "OLDPWD"}


@pytest.mark.gen_test(timeout=10)
async def test_cwd_inside_the_workspace(ctx, workspace):
    (workspace / "sub").mkdir()
    out = await ctx.call("execute_command", command="pwd", cwd="sub")
    assert out.content.endswith(f"\nOutput:\n{(workspace / 'sub').resolve()}\n")
    assert f"within working directory '{(workspace / 'sub').resolve().as_posix()}'" in out.content
    missing = await ctx.call("execute_command", command="pwd", cwd="nope")
    assert missing.is_error and missing.content == "Working directory 'nope' does not exist."


@pytest.mark.gen_test(timeout=20)
async def test_the_daemons_limit_kills_the_whole_process_group(ctx, workspace):
    ctx.approve_next(True)
    ctx.settings["command_timeout_seconds"] = 1
    command, marker = family()
    started = time.monotonic()
    out = await ctx.call("execute_command", command=command, timeout=5)  # past the limit: not a background move
    assert time.monotonic() - started < 10
    assert out.is_error
    assert out.content.startswith(
        "The command was terminated after exceeding a user-configured 1s timeout. Do not try to re-run the command."
    )
    assert "parent-ready" in out.content and "child-ready" in out.content
    assert running(marker) == []


@pytest.mark.gen_test(timeout=20)
async def test_the_models_timeout_moves_the_command_to_the_background(ctx, workspace):
    """Roo's agent timeout: the command keeps running, the model gets the
    output so far; the task's end kills the whole group."""
    command, marker = family()
    out = await ctx.call("execute_command", command=command, timeout=1)
    assert not out.is_error, out.content
    assert out.content.startswith(f"Command is still running in terminal  from '{workspace.resolve()}'.\n")
    assert "Here's the output so far:\n" in out.content and "parent-ready" in out.content
    assert out.content.endswith("\nYou will be updated on the terminal status and new output in the future.")
    assert len(running(marker)) >= 2 and background.running(ctx.task.id) == 1
    [terminal] = background.report(ctx.task.id)
    assert terminal.active and terminal.id == "1" and terminal.command == command
    await background.end_task(ctx.task.id)
    assert running(marker) == [] and background.report(ctx.task.id) == []


@pytest.mark.gen_test(timeout=20)
async def test_a_background_command_that_ends_is_reported_once(ctx, workspace):
    out = await ctx.call("execute_command", command="echo one; sleep 1.5; echo two; exit 3", timeout=0.5)
    assert "still running" in out.content and "one" in out.content
    while background.running(ctx.task.id):
        await asyncio.sleep(0.1)
    [ended] = background.report(ctx.task.id)
    assert not ended.active
    assert ended.output == (
        "two\nCommand execution was not successful, inspect the cause and adjust as needed.\nExit code: 3"
    )
    assert background.report(ctx.task.id) == []


@pytest.mark.gen_test(timeout=20)
async def test_cancellation_kills_the_group_within_a_second(ctx, workspace):
    ctx.approve_next(True)
    command, marker = family()
    call = asyncio.ensure_future(ctx.call("execute_command", command=command))
    await ctx.wait_output("parent-ready", call)
    await ctx.wait_output("child-ready", call)
    assert len(running(marker)) >= 2  # the child shell and the grandchild sleep (and bwrap)
    started = time.monotonic()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert time.monotonic() - started < 1.0
    assert running(marker) == []


@pytest.mark.gen_test(timeout=10)
async def test_nothing_outlives_the_shell(ctx, workspace):
    ctx.approve_next(True)
    marker = unique_seconds(60)
    out = await ctx.call("execute_command", command=f"sleep {marker} & echo launched")
    assert "Exit code: 0" in out.content and "launched" in out.content
    assert running(marker) == []


@pytest.mark.gen_test(timeout=10)
async def test_asks_with_kind_command_and_a_rejection_runs_nothing(strict_ctx, workspace):
    strict_ctx.approve_next(False, "not now")
    out = await strict_ctx.call("execute_command", command="touch made.txt")
    assert out.is_error and "not now" in out.content
    assert not (workspace / "made.txt").exists()
    kind, payload = strict_ctx.asks[0]
    assert kind == "command" and payload["command"] == "touch made.txt" and payload["cwd"] == "."
    strict_ctx.approve_next(True)
    await strict_ctx.call("execute_command", command="touch made.txt")
    assert (workspace / "made.txt").exists()


@pytest.mark.gen_test(timeout=10)
async def test_policy_allow_and_deny_without_asking(strict_ctx, workspace):
    (workspace / "keep.txt").write_text("x")
    strict_ctx.auto_approve.update(execute=True, allowed_commands=["ls", "echo"], denied_commands=["rm"])
    allowed = await strict_ctx.call("execute_command", command="ls && echo done")
    assert "keep.txt" in allowed.content and "done" in allowed.content
    denied = await strict_ctx.call("execute_command", command="echo bye && rm keep.txt")
    assert denied.is_error
    assert "Command denied by the auto-approval policy: 'rm keep.txt' matches the denied command prefix 'rm'" in (
        denied.content
    )
    assert strict_ctx.asks == [] and (workspace / "keep.txt").exists()


@pytest.mark.gen_test(timeout=10)
async def test_the_global_denied_list_beats_execute(ctx, workspace):
    ctx.settings["denied_commands"] = ["touch"]
    out = await ctx.call("execute_command", command="echo hi; touch x")
    assert out.is_error and "the daemon's denied command prefix 'touch'" in out.content
    assert not (workspace / "x").exists()


@pytest.mark.gen_test(timeout=10)
async def test_run_command_honours_the_configured_timeout(ctx, workspace):
    ctx.settings["command_timeout_seconds"] = 600
    code, output, timed_out = await run_command(ctx, "printf abc", workspace, 5)
    assert (code, output, timed_out) == (0, "abc", False)


def test_output_capture_head_and_tail():
    capture = OutputCapture(100)
    for i in range(50):
        capture.add(f"{i:03d}\n".encode())
    text = capture.text()
    assert text.startswith("000\n001\n002\n003\n004\n") and text.endswith("047\n048\n049\n")
    assert "[...100 bytes omitted...]" in text
    small = OutputCapture(100)
    small.add(b"short")
    assert small.text() == "short"
