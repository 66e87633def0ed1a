"""How a stdio server's process is started: its argv, working directory and
environment, by where its definition came from.

- **Config servers** (``mcp.servers``) were chosen by the operator: they
  run as the daemon's user with the SDK's small default environment (HOME,
  LOGNAME, PATH, SHELL, TERM, USER) plus their ``env`` and ``env_from``, as
  Roo-Code runs them. Where bubblewrap works they get a PID namespace of
  their own and nothing else changed (the whole file system, the network):
  when the server ends, or the daemon dies, every process it started ends
  too, even one that left its process group.
- **Workspace servers** (``.roo/mcp.json``) were chosen by whoever wrote the
  repository: they run exactly like ``execute_command`` (the session's
  bubblewrap sandbox: the workspace read-write, the system read-only,
  nothing of the daemon, ``.rooignore`` masked, the session's network
  setting), with the commands' allowed environment plus the file's ``env``,
  in the workspace (or a ``cwd`` inside it). Without a working sandbox they
  do not start, unless ``tools.sandbox: none``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from roo_daemon.engine.sandbox import Sandbox, SandboxUnavailable
from roo_daemon.engine.tools.command import _entry_matcher, command_env
from roo_daemon.engine.workspace import PathEscape, RooIgnore, resolve_inside
from roo_daemon.mcp.config import ServerConfig

if TYPE_CHECKING:
    from roo_daemon.mcp.transport import Link

# The environment a config server inherits, as the SDK's (and so Roo's)
# get_default_environment picks it.
DEFAULT_ENV = ("HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER")


class LaunchRefused(Exception):
    """The server may not start here (no sandbox for a workspace server, a cwd outside it)."""


class Launcher:
    def __init__(self, sandbox: Sandbox | None, tool_settings: dict[str, Any], base_dir: str, max_bytes: int) -> None:
        self.sandbox = sandbox
        self.tool_settings = tool_settings
        self.base_dir = base_dir
        self.max_bytes = max_bytes

    @asynccontextmanager
    async def open(self, cfg: ServerConfig, on_stderr: Callable[[str], None]) -> AsyncIterator[Link]:
        """The :class:`Link` to ``cfg``'s server, started now, stopped on exit."""
        from roo_daemon.mcp.transport import remote_link, stdio_link

        missing = cfg.missing_secrets()
        if missing:  # names only, never values
            raise LaunchRefused(
                f"the daemon's environment lacks {', '.join(missing)}, which env_from/headers_from name; "
                "set it and restart the daemon (or SIGHUP after fixing the config)"
            )
        if cfg.transport != "stdio":
            async with remote_link(cfg.transport, cfg.url, cfg.resolved_headers(), self.max_bytes) as link:
                yield link
            return
        if cfg.source == "workspace":
            argv, cwd, env = await self._workspace_process(cfg)
        else:
            argv, cwd, env = await asyncio.to_thread(self._config_process, cfg)
        async with stdio_link(argv, cwd, env, self.max_bytes, on_stderr) as link:
            yield link

    def _config_process(self, cfg: ServerConfig) -> tuple[list[str], Path, dict[str, str]]:
        """Blocking (resolves paths, looks the program up): call in a thread."""
        cwd = Path(self.base_dir, cfg.cwd or ".").resolve()
        inherited = {k: v for k in DEFAULT_ENV if (v := os.environ.get(k)) is not None and not v.startswith("()")}
        env = {**inherited, **cfg.resolved_env()}
        if not cwd.is_dir():
            raise LaunchRefused(f"cannot start {cfg.command!r}: its cwd {str(cwd)!r} is not a directory")
        if shutil.which(cfg.command, path=env.get("PATH")) is None and shutil.which(cwd / cfg.command) is None:
            raise LaunchRefused(f"cannot start {cfg.command!r}: no such program (looked in its PATH and cwd)")
        argv = [cfg.command, *cfg.args]
        bwrap = self.sandbox.bwrap if self.sandbox is not None else None
        if bwrap is not None:
            argv = [
                bwrap.binary, "--die-with-parent", "--unshare-pid",
                "--bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
                "--chdir", str(cwd), "--", *argv,
            ]  # fmt: skip
        return argv, cwd, env

    async def _workspace_process(self, cfg: ServerConfig) -> tuple[list[str], Path, dict[str, str]]:
        assert cfg.workspace is not None
        sandbox = self.sandbox
        if sandbox is None:
            raise LaunchRefused("workspace servers run only in the daemon's command sandbox, which is not set up")
        try:
            sandbox.check()
            # File-system work (resolving, .rooignore) in a thread: never on the loop.
            root, cwd, rooignore = await asyncio.to_thread(_workspace_paths, cfg.workspace, cfg.cwd)
            argv = await sandbox.wrap([cfg.command, *cfg.args], root, cwd, cfg.network, _entry_matcher(rooignore))
        except SandboxUnavailable as e:
            raise LaunchRefused(str(e)) from None
        env = {**command_env(self.tool_settings), **dict(cfg.env)}
        return argv, cwd, env


def _workspace_paths(workspace: str, cwd: str | None) -> tuple[Path, Path, RooIgnore]:
    root = Path(workspace).resolve()
    try:
        where = resolve_inside(workspace, cwd) if cwd else root
    except PathEscape as e:
        raise LaunchRefused(f"cwd refused: {e}") from None
    if not where.is_dir():
        raise LaunchRefused(f"cwd {cwd!r} is not a directory of the workspace")
    return root, where, RooIgnore.load(root)
