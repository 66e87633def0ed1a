"""``execute_command``: run a shell command in the workspace, streaming its
output, with Roo-Code's result texts (src/core/tools/ExecuteCommandTool.ts).

- The command runs under bash (else ``/bin/sh``: ``command_shell``) as an asyncio subprocess in a session
  (and process group) of its own, with the workspace (or a ``cwd`` inside
  it) as working directory, no stdin, and an environment built only from the
  config's ``command_env_allow`` and ``command_env_set``: never the daemon's
  own environment, so its secrets stay out of reach.
- It runs in the daemon's bubblewrap sandbox (``roo_daemon.engine.sandbox``):
  the workspace, the system directories read-only, nothing of the daemon;
  ``.rooignore``d paths masked; the network off if the session says so.
  Without a working sandbox the tool refuses, unless ``tools.sandbox: none``.
- stdout and stderr are published as ``tool.output`` events while they
  arrive, small chunks coalesced (up to ``FLUSH_BYTES`` or ``FLUSH_SECONDS``).
- The output kept for the model is capped at ``command_output_max_bytes``:
  the first fifth and the last four fifths, as Roo's truncateOutput keeps
  them, with a note of what was left out in between.
- The model's ``timeout`` moves a command still running to the background
  (:mod:`background`), as Roo's agent timeout; ``command_timeout_seconds``,
  as Roo's user timeout, ends it.
- On that limit, on cancellation, and once the shell itself has exited, the
  whole process group is ended (SIGTERM, then SIGKILL after
  ``KILL_GRACE_SECONDS``), so nothing the command started outlives it.
  Cancellation is re-raised once the group is gone.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from roo_daemon.engine.approval import command_decision
from roo_daemon.engine.base import TaskContext
from roo_daemon.engine.calls import current_call_id  # noqa: F401 (re-exported for tests)
from roo_daemon.engine.command_shell import SHELL
from roo_daemon.engine.responses import policy_denied
from roo_daemon.engine.sandbox import SETTINGS_KEY, Sandbox, SandboxUnavailable, default_sandbox
from roo_daemon.engine.tools import background
from roo_daemon.engine.tools.artifacts import Artifact, format_size
from roo_daemon.engine.tools.base import Tool, ToolDenied, ToolError, ToolOutcome
from roo_daemon.engine.tools.fileio import in_thread
from roo_daemon.engine.workspace import PathEscape, RooIgnore, relative_posix, resolve_inside

FLUSH_BYTES = 4096
FLUSH_SECONDS = 0.05
KILL_GRACE_SECONDS = 0.5
DRAIN_SECONDS = 1.0  # how long to wait for the pipes to close once the group is gone
READ_CHUNK = 65536


# Roo's RooIgnoreController.validateCommand: commands that read the files named as arguments.
FILE_READING_COMMANDS = frozenset(
    {"cat", "less", "more", "head", "tail", "grep", "awk", "sed", "get-content", "gc", "type", "select-string", "sls"}
)


def command_env(settings: dict[str, Any]) -> dict[str, str]:
    """Only the allowed variables of the daemon's environment, plus the set ones."""
    env = {name: os.environ[name] for name in settings.get("command_env_allow", []) if name in os.environ}
    env.update(settings.get("command_env_set", {}))
    return env


class OutputCapture:
    """What the model gets to see: the head and the tail of the combined
    output, in the order it arrived, within ``max_bytes``."""

    def __init__(self, max_bytes: int) -> None:
        self.head_limit = max_bytes // 5
        self.tail_limit = max_bytes - self.head_limit
        self.head = bytearray()
        self.tail = bytearray()
        self.dropped = 0

    def add(self, data: bytes) -> None:
        room = self.head_limit - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if not data:
            return
        self.tail += data
        excess = len(self.tail) - self.tail_limit
        if excess > 0:
            self.dropped += excess
            del self.tail[:excess]

    def text(self) -> str:
        if not self.dropped:
            return (self.head + self.tail).decode("utf-8", errors="replace")
        head = self.head.decode("utf-8", errors="replace")
        tail = self.tail.decode("utf-8", errors="replace")
        return f"{head}\n[...{self.dropped} bytes omitted...]\n{tail}"


class OutputStream:
    """Publishes ``tool.output`` events, coalescing small chunks per stream."""

    def __init__(self, ctx: TaskContext) -> None:
        self.ctx = ctx
        self.call_id = current_call_id.get()
        self.buffers: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self.sizes = {"stdout": 0, "stderr": 0}
        self.decoders = {name: codecs.getincrementaldecoder("utf-8")(errors="replace") for name in self.buffers}
        self.timer: asyncio.TimerHandle | None = None

    def feed(self, stream: str, data: bytes, final: bool = False) -> None:
        text = self.decoders[stream].decode(data, final=final)
        if text:
            self.buffers[stream].append(text)
            self.sizes[stream] += len(text)
        if self.sizes[stream] >= FLUSH_BYTES:
            self.flush()
        elif self.timer is None and text:
            self.timer = asyncio.get_running_loop().call_later(FLUSH_SECONDS, self.flush)

    def flush(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        for stream, parts in self.buffers.items():
            if parts:
                data: dict[str, Any] = {"stream": stream, "text": "".join(parts)}
                if self.call_id:
                    data["id"] = self.call_id
                self.ctx.publish("tool.output", data)
                parts.clear()
                self.sizes[stream] = 0


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _group_running(pgid: int) -> bool:
    """Whether a process of the group is still running. ``killpg(pgid, 0)``
    also counts zombies, which wait for a parent that may never reap them
    (an init that does not), so where ``/proc`` can tell, zombies are left out.
    Reads ``/proc``: call it in a thread."""
    if not _group_exists(pgid):
        return False
    try:
        names = os.listdir("/proc")
    except OSError:
        return True
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", encoding="ascii", errors="replace") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            return True
    return False


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


async def end_group(proc: asyncio.subprocess.Process, grace: float = KILL_GRACE_SECONDS) -> None:
    """SIGTERM the command's process group, SIGKILL what is left after
    ``grace`` seconds, and reap the leader."""
    pgid = proc.pid
    if await asyncio.to_thread(_group_running, pgid):
        _signal_group(pgid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        pause = 0.002
        while await asyncio.to_thread(_group_running, pgid):
            if time.monotonic() >= deadline:
                _signal_group(pgid, signal.SIGKILL)
                break
            # Members of the group are not our children: there is nothing to
            # await for them, so poll briefly (at most ``grace`` seconds),
            # first often: a sandbox's init is usually gone a moment later.
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.02)
    with contextlib.suppress(ProcessLookupError, TimeoutError):
        await asyncio.wait_for(proc.wait(), grace)


class _Protocol(asyncio.subprocess.SubprocessStreamProtocol):
    """asyncio's stream protocol plus a future for the moment the process
    exits. (Before Python 3.12, ``Process.wait()`` also waits for the pipes
    to close, which a background grandchild can hold open indefinitely.)"""

    def __init__(self, limit: int, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=limit, loop=loop)
        self.exited: asyncio.Future[None] = loop.create_future()

    def process_exited(self) -> None:
        super().process_exited()
        if not self.exited.done():
            self.exited.set_result(None)


async def _spawn(argv: list[str], workdir: Path, env: dict[str, str]) -> tuple[asyncio.subprocess.Process, _Protocol]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.subprocess_exec(
        lambda: _Protocol(limit=READ_CHUNK, loop=loop),
        *argv,
        cwd=str(workdir),
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    return asyncio.subprocess.Process(transport, protocol, loop), protocol


def _working_dir(ctx: TaskContext, cwd: str | None) -> tuple[Path, str]:
    root = Path(ctx.session.workspace).resolve()
    if not cwd:
        return root, "."
    try:
        path = resolve_inside(ctx.session.workspace, cwd)
    except PathEscape as e:
        raise ToolError(f"Working directory refused: {e}") from None
    if not path.is_dir():
        raise ToolError(f"Working directory '{cwd}' does not exist.")
    rel = relative_posix(root, path)
    if RooIgnore.load(root).blocks(rel, is_dir=True):
        raise ToolError(RooIgnore.load(root).error(cwd))
    return path, rel


def rooignored_argument(command: str, rooignore: RooIgnore, root: Path, cwd: Path) -> str | None:
    """Roo's validateCommand: the first argument of a file-reading command
    (``cat``, ``grep``, ...) that ``.rooignore`` blocks, if any."""
    if rooignore.spec is None:
        return None
    words = command.strip().split()
    if not words or words[0].lower() not in FILE_READING_COMMANDS:
        return None
    for arg in words[1:]:
        if arg.startswith(("-", "/")) or ":" in arg:
            continue
        target = (cwd / arg).resolve()
        if (target == root or root in target.parents) and rooignore.blocks(relative_posix(root, target)):
            return arg
    return None


async def sandbox_of(ctx: TaskContext) -> Sandbox:
    """The daemon's sandbox (put in the runner's settings at start), else a
    process-wide one for ``tools.sandbox`` (tools called directly)."""
    sandbox = ctx.settings.get(SETTINGS_KEY)
    return sandbox if sandbox is not None else await default_sandbox(ctx.settings.get("sandbox", "bwrap"))


async def _prepare(ctx: TaskContext, args: dict[str, Any]) -> tuple[Path, str]:
    try:
        (await sandbox_of(ctx)).check()  # refused before any approval is asked
    except SandboxUnavailable as e:
        raise ToolError(f"Error executing command: {e}") from None
    workdir, rel = await in_thread("executing command", _working_dir, ctx, args.get("cwd"))
    root = Path(ctx.session.workspace).resolve()
    rooignore = await in_thread("executing command", RooIgnore.load, root)
    blocked = rooignored_argument(args["command"], rooignore, root, workdir)
    if blocked:
        raise ToolError(rooignore.error(blocked))
    return workdir, rel


async def _sandboxed(ctx: TaskContext, argv: list[str], workdir: Path) -> tuple[list[str], bool]:
    """``argv`` as it runs in the session's sandbox, its ``.rooignore`` masked;
    and whether the sandbox takes every process along when it ends."""
    root = Path(ctx.session.workspace).resolve()
    rooignore = await in_thread("executing command", RooIgnore.load, root)
    network = bool((getattr(ctx.session, "sandbox", None) or {}).get("network", True))
    try:
        sandbox = await sandbox_of(ctx)
        wrapped = await sandbox.wrap(argv, root, workdir, network, _entry_matcher(rooignore))
        return wrapped, sandbox.contained
    except SandboxUnavailable as e:
        raise ToolError(f"Error executing command: {e}") from None


def _entry_matcher(rooignore: RooIgnore) -> Callable[[str, bool], bool] | None:
    """``.rooignore`` for the sandbox's walk, which never enters a blocked
    directory: an entry's own pattern check is enough (``RooIgnore.blocks``
    also re-checks every parent, which made the walk several times slower)."""
    spec = rooignore.spec
    if spec is None:
        return None
    return lambda rel, is_dir: bool(spec.check_file(rel + "/" if is_dir else rel).include)


def _timeouts(ctx: TaskContext, args: dict[str, Any]) -> tuple[float, float | None]:
    """The daemon's limit (it ends the command) and the model's ``timeout``
    (it moves the command to the background), as Roo's user and agent timeouts."""
    limit = float(ctx.settings.get("command_timeout_seconds", 600))
    asked = args.get("timeout")
    return limit, (float(asked) if asked else None)


def _exit_status(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = str(-code)
        return f"Process terminated by signal {name}"
    failed = "Command execution was not successful, inspect the cause and adjust as needed.\n" if code else ""
    return f"{failed}Exit code: {code}"


class Running:
    """A started command: its process group, the pumps reading its output
    into the capture (and, once it runs in the background, into ``recent``:
    what it printed since the model last saw it) and the ``tool.output`` events."""

    def __init__(self, ctx: TaskContext, proc: asyncio.subprocess.Process, protocol: _Protocol, contained: bool):
        max_bytes = int(ctx.settings.get("command_output_max_bytes", 65536))
        self.proc, self.protocol, self.contained = proc, protocol, contained
        self.capture = OutputCapture(max_bytes)
        self.recent_bytes = max(1024, max_bytes // 4)  # per command, in each environment details
        self.recent: OutputCapture | None = None
        self.out = OutputStream(ctx)
        # The whole output, kept on disk once the capture has to cut it (read_command_output).
        self.artifact = Artifact(ctx.settings, ctx.task.id, max_bytes)
        self.artifact_id: str | None = None
        assert proc.stdout is not None and proc.stderr is not None
        self.pumps = [
            asyncio.ensure_future(self._pump(proc.stdout, "stdout")),
            asyncio.ensure_future(self._pump(proc.stderr, "stderr")),
        ]

    async def _pump(self, reader: asyncio.StreamReader, name: str) -> None:
        while chunk := await reader.read(READ_CHUNK):
            self.capture.add(chunk)
            self.artifact.add(chunk)
            if self.recent is not None:
                self.recent.add(chunk)
            self.out.feed(name, chunk)
        self.out.feed(name, b"", final=True)

    async def wait(self, timeout: float) -> bool:
        """Whether the shell exited within ``timeout`` seconds."""
        try:
            await asyncio.wait_for(asyncio.shield(self.protocol.exited), timeout)
        except TimeoutError:
            return False
        return True

    async def settle(self, exited: bool) -> None:
        """The shell is gone (or out of time): end whatever it left in its
        group, so a background child holding the pipes cannot keep us
        waiting (a sandbox that exited took its PID namespace, and so
        everything, along); then read what is left in the pipes."""
        try:
            if not exited or not self.contained:
                await end_group(self.proc)
            await asyncio.wait(self.pumps, timeout=DRAIN_SECONDS)
            self._close()
            self.artifact_id = await self.artifact.close()
        except BaseException:
            await self.kill()
            raise

    async def finish(self, timeout: float, limit: float) -> str:
        """In the background: wait up to ``timeout`` more seconds, end it
        then; Roo's exit-status line (or the timeout note)."""
        exited = await self.wait(timeout)
        await self.settle(exited)
        if not exited:
            return f"The command was terminated after exceeding a user-configured {limit:g}s timeout."
        return _exit_status(self.proc.returncode if self.proc.returncode is not None else -signal.SIGKILL)

    async def kill(self) -> None:
        """Cancelled, failing or its task ended: the group must not outlive
        it. If this cleanup is itself interrupted, SIGKILL at once."""
        try:
            await end_group(self.proc)
        finally:
            if self.proc.returncode is None or _group_exists(self.proc.pid):
                _signal_group(self.proc.pid, signal.SIGKILL)
            self._close()
            self.artifact.abort()

    def _close(self) -> None:
        for pump in self.pumps:
            pump.cancel()
        self.out.flush()

    def start_recent(self) -> None:
        self.recent = OutputCapture(self.recent_bytes)

    def take_recent(self) -> str:
        """What it printed since the last call (Roo's unretrieved output)."""
        text = self.recent.text() if self.recent is not None else ""
        self.start_recent()
        return text


async def start_command(ctx: TaskContext, command: str, workdir: Path) -> Running:
    argv, contained = await _sandboxed(ctx, [SHELL, "-c", command], workdir)
    try:
        proc, protocol = await _spawn(argv, workdir, command_env(ctx.settings))
    except OSError as e:
        raise ToolError(f"Error executing command: {e.strerror or e}") from None
    return Running(ctx, proc, protocol, contained)


async def run_command(ctx: TaskContext, command: str, workdir: Path, timeout: float) -> tuple[int | None, str, bool]:
    """Run ``command`` in the foreground; returns (exit code or None on
    timeout, output, timed out)."""
    running = await start_command(ctx, command, workdir)
    try:
        exited = await running.wait(timeout)
    except BaseException:
        await running.kill()
        raise
    await running.settle(exited)
    return (running.proc.returncode if exited else None), running.capture.text(), not exited


def still_running(workdir: str, output: str) -> str:
    """Roo's result for a command moved to the background (its words and spacing)."""
    return "\n".join(
        [
            f"Command is still running in terminal  from '{workdir}'.",
            f"Here's the output so far:\n{output}\n" if output else "\n",
            "You will be updated on the terminal status and new output in the future.",
        ]
    )


async def _execute_command(ctx: TaskContext, args: dict[str, Any]) -> ToolOutcome:
    """Roo's two timeouts: the model's ``timeout`` moves a command still
    running to the background (it keeps running, listed in the environment
    details, killed when the task ends); the daemon's limit ends it."""
    command = args["command"]
    workdir, _ = await _prepare(ctx, args)
    limit, agent = _timeouts(ctx, args)
    running = await start_command(ctx, command, workdir)
    try:
        exited = await running.wait(min(agent, limit) if agent else limit)
        if not exited and agent is not None and agent < limit:
            background.add(ctx.task.id, command, workdir.as_posix(), running, limit - agent, limit)
            return ToolOutcome(still_running(workdir.as_posix(), running.capture.text()))
    except BaseException:
        await running.kill()
        raise
    await running.settle(exited)
    output = running.capture.text()
    if not exited:
        text = (
            f"The command was terminated after exceeding a user-configured {limit:g}s timeout. "
            "Do not try to re-run the command."
        )
        return ToolOutcome(f"{text}\nOutput so far:\n{output}" if output else text, is_error=True)
    code = running.proc.returncode
    assert code is not None
    if running.artifact_id:  # the result was cut: Roo's persisted-output form
        return ToolOutcome(
            f"Command executed in '{workdir.as_posix()}'. {_exit_status(code)}\n\n"
            f"Output ({format_size(running.artifact.total)}) persisted. Artifact ID: {running.artifact_id}\n\n"
            f"Preview:\n{output}\n\nUse read_command_output tool to view full output if needed."
        )
    return ToolOutcome(
        f"Command executed in terminal within working directory '{workdir.as_posix()}'. "
        f"{_exit_status(code)}\nOutput:\n{output}"
    )


async def _approve_command(ctx: TaskContext, args: dict[str, Any]) -> dict[str, Any] | None:
    """Refuse a bad cwd or a rooignored file first; then the policy decides:
    allow runs at once, deny refuses without asking, ask waits for the client
    (kind ``command``)."""
    _, rel = await _prepare(ctx, args)
    decision = command_decision(ctx.session.auto_approve, args["command"], ctx.settings.get("denied_commands") or ())
    if decision.verdict == "deny":
        # Roo's toolDenied shape; the message names the rule, so the model
        # does not retry the command in another spelling.
        raise ToolDenied(
            policy_denied(
                f"Command denied by the auto-approval policy: {decision.reason}. It was not run and will not be; "
                "do not retry it. Find another way to continue, or ask the user."
            )
        )
    if decision.verdict == "allow":
        return None
    return {"kind": "command", "command": args["command"], "cwd": rel}


COMMAND_TOOLS = [
    Tool(
        "execute_command",
        "command",
        "Request to execute a CLI command on the system. Use this when you need to perform system operations or run "
        "specific commands to accomplish any step in the user's task. You must tailor your command to the user's "
        "system and provide a clear explanation of what the command does. For command chaining, use the "
        "appropriate chaining syntax for the user's shell. Prefer to execute complex CLI commands over creating "
        "executable scripts, as they are more flexible and easier to run. Prefer relative commands and paths that "
        f"avoid location sensitivity for terminal consistency. Commands run with {SHELL} in the workspace, "
        "without input. A command still running after its 'timeout' keeps running in the background and you "
        "receive the output so far; its new output appears in the environment details. The daemon's own limit "
        "ends any command that runs too long. They may run in a sandbox where only the "
        "workspace (writable) and the system directories (read-only) exist, /tmp is empty scratch space and the "
        "network may be off.",
        {
            "type": "object",
            "properties": {
                "command": {"type": "string", "minLength": 1, "description": "Shell command to execute"},
                "cwd": {
                    "type": ["string", "null"],
                    "description": "Optional working directory for the command, relative or absolute (inside the "
                    "workspace)",
                },
                "timeout": {
                    "type": ["number", "null"],
                    "exclusiveMinimum": 0,
                    "description": "Timeout in seconds. When exceeded, the command continues running in the "
                    "background and output collected so far is returned. Use this for long-running processes like "
                    "dev servers, file watchers, or any command that may not exit on its own",
                },
            },
            "required": ["command"],
            "additionalProperties": False,
        },
        _execute_command,
        _approve_command,
    ),
]
