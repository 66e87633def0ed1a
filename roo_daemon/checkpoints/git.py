"""Running ``git`` for a shadow repository: off the event loop, sealed off
from every other git.

Each call is an asyncio subprocess with an environment built from nothing
(never the daemon's): ``GIT_DIR`` is the shadow repository under the data
dir and ``GIT_WORK_TREE`` the workspace, so the workspace's own ``.git``
(index, branches, hooks, config) is never opened. No system or global
configuration is read (``GIT_CONFIG_NOSYSTEM``, ``GIT_CONFIG_GLOBAL``,
``HOME`` and ``XDG_CONFIG_HOME`` inside the shadow repository), so a user's
``core.excludesFile``, ``core.fsmonitor``, hooks path or signing settings
cannot change what a checkpoint records or run anything. Git variables the
daemon itself inherited (``GIT_INDEX_FILE``, ``GIT_OBJECT_DIRECTORY``...),
which Roo-Code strips one by one, never reach it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

IDENTITY = {
    "GIT_AUTHOR_NAME": "roo-daemon",
    "GIT_AUTHOR_EMAIL": "roo-daemon@localhost",
    "GIT_COMMITTER_NAME": "roo-daemon",
    "GIT_COMMITTER_EMAIL": "roo-daemon@localhost",
}


class GitError(Exception):
    """A git command failed; the message holds its arguments and stderr."""


@dataclass(frozen=True, slots=True)
class GitResult:
    code: int
    out: bytes
    err: bytes


def find_git() -> str | None:
    """The git binary on the daemon's PATH (a cheap lookup, no I/O beyond stat)."""
    return shutil.which("git")


async def git_version(binary: str) -> str:
    """``git --version``, or raise :class:`GitError` if it does not run."""
    try:
        proc = await asyncio.create_subprocess_exec(
            binary,
            "--version",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"},
        )
        out, err = await proc.communicate()
    except OSError as e:
        raise GitError(f"{binary} cannot run: {e}") from None
    if proc.returncode != 0:
        raise GitError(f"{binary} --version failed: {err.decode(errors='replace').strip()}")
    return out.decode(errors="replace").strip()


class Git:
    """One shadow repository's git: ``run`` is the only way commands start."""

    def __init__(self, binary: str, git_dir: Path, work_tree: str) -> None:
        self.binary = binary
        self.git_dir = git_dir
        self.work_tree = work_tree
        home = str(git_dir)
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": home,
            "XDG_CONFIG_HOME": str(git_dir / "xdg"),  # never created: no user-level ignore or attributes file
            "GIT_DIR": str(git_dir),
            "GIT_WORK_TREE": work_tree,
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_ATTR_NOSYSTEM": "1",
            "GIT_NO_REPLACE_OBJECTS": "1",
            "GIT_TERMINAL_PROMPT": "0",
            "LC_ALL": "C",
            **IDENTITY,
        }

    async def run(self, *args: str, stdin: bytes | None = None, check: bool = True) -> GitResult:
        """Run ``git args`` in the workspace; raise :class:`GitError` on a
        non-zero exit when ``check``."""
        try:
            # In the workspace: the pathspecs we pass are relative to it.
            proc = await asyncio.create_subprocess_exec(
                self.binary,
                *args,
                cwd=self.work_tree,
                env=self.env,
                stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as e:  # git gone, or the workspace removed under us
            raise GitError(f"git {args[0]} cannot start: {e}") from None
        try:
            out, err = await proc.communicate(stdin)
        except asyncio.CancelledError:
            # Only gc is ever cancelled (at shutdown). SIGTERM, not SIGKILL:
            # git removes its lock files on the way out.
            if proc.returncode is None:
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), 5)
                except TimeoutError:
                    proc.kill()
            raise
        code = proc.returncode if proc.returncode is not None else -1
        if check and code != 0:
            raise GitError(f"git {' '.join(args[:3])} failed ({code}): {err.decode(errors='replace').strip()[:500]}")
        return GitResult(code, out, err)

    async def text(self, *args: str) -> str:
        return (await self.run(*args)).out.decode(errors="surrogateescape").strip()
