"""The daemon's shadow repositories: one per workspace, under
``<checkpoints.dir>/<key>/`` (the key is a hash of the workspace's path;
the dir defaults to ``data_dir/checkpoints``, config.checkpoints_dir), never
inside the workspace. Also whether checkpoints can run at all: git on the
PATH, ``checkpoints.enabled``, the session's own switch.

With several nodes sharing the dir (a failover cluster), ``cross`` is the
nodes' lock of each repository (nodelock.RepoLocks): every node's sessions
in one workspace write the same repository, and whichever node owns a
session after a takeover finds its tasks' checkpoints there.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from pathlib import Path
from typing import Any

from roo_daemon.checkpoints.git import Git, GitError, find_git, git_version
from roo_daemon.checkpoints.service import ShadowRepo
from roo_daemon.models import Session
from roo_daemon.problems import Problem

log = logging.getLogger("roo_daemon.checkpoints")
ROOT = "checkpoints"


def repo_key(workspace: str) -> str:
    return hashlib.sha256(workspace.encode(errors="surrogateescape")).hexdigest()[:24]


def inside(workspace: str, path: Path) -> list[str]:
    """``path`` relative to ``workspace`` if it lies within it (the data
    dir in a workspace must never be recorded, or restored over)."""
    try:
        rel = os.path.relpath(os.path.realpath(path), os.path.realpath(workspace))
    except ValueError:
        return []
    return [] if rel == "." or rel.startswith("..") else [rel]


class Repos:
    def __init__(self, config: dict[str, Any], data_dir: Path, root: Path | None = None, cross: Any = None) -> None:
        self.enabled = config["enabled"]
        self.max_file_bytes = config["max_file_bytes"]
        self.excludes = list(config["exclude"])
        self.data_dir = data_dir
        self.root = root or data_dir / ROOT
        self.cross = cross  # nodelock.RepoLocks when nodes share the root
        self.binary: str | None = None
        self.unavailable: str | None = None if self.enabled else "checkpoints are turned off (checkpoints.enabled)"
        self._repos: dict[str, ShadowRepo] = {}
        self._opening: dict[str, asyncio.Future[ShadowRepo]] = {}

    async def start(self) -> None:
        """Find git, once; say at start (one line) if checkpoints cannot run."""
        if not self.enabled:
            log.info("checkpoints are off (checkpoints.enabled: false)")
            return
        binary = find_git()
        if binary is None:
            self.unavailable = "git is not installed (not found on the daemon's PATH): checkpoints are off"
            log.warning("checkpoints: git not found on PATH; running without checkpoints")
            return
        try:
            version = await git_version(binary)
        except GitError as e:
            self.unavailable = f"git does not run ({e}): checkpoints are off"
            log.warning("checkpoints: %s; running without checkpoints", e)
            return
        self.binary = binary
        log.info("checkpoints: %s; shadow repositories under %s", version, self.root)

    def on_for(self, session: Session) -> bool:
        return self.unavailable is None and session.checkpoints.get("enabled", True)

    def require(self, session: Session) -> None:
        """409 if the session's checkpoints cannot be used, saying why."""
        if self.unavailable is not None:
            raise Problem(409, self.unavailable, slug="checkpoints-unavailable")
        if not session.checkpoints.get("enabled", True):
            raise Problem(409, f"checkpoints are turned off for session {session.id}", slug="checkpoints-unavailable")

    async def get(self, workspace: str) -> ShadowRepo:
        """The workspace's repository, created and opened on first use."""
        key = repo_key(workspace)
        repo = self._repos.get(key)
        if repo is not None:
            return repo
        opening = self._opening.get(key)
        if opening is None:
            opening = self._opening[key] = asyncio.ensure_future(self._open(key, workspace))
        try:
            return await asyncio.shield(opening)
        finally:
            if opening.done():
                self._opening.pop(key, None)

    async def _open(self, key: str, workspace: str) -> ShadowRepo:
        assert self.binary is not None
        git = Git(self.binary, self.root / key / "git", workspace)
        own = list(dict.fromkeys(inside(workspace, self.data_dir) + inside(workspace, self.root)))
        repo = ShadowRepo(git, self.max_file_bytes, self.excludes, own, self.cross, key)
        await asyncio.to_thread(_write_owner, self.root / key, workspace)
        await repo.open()
        self._repos[key] = repo
        return repo

    def cached(self, key: str) -> ShadowRepo | None:
        return self._repos.get(key)

    def forget(self, key: str) -> None:
        self._repos.pop(key, None)

    def on_disk(self) -> list[str]:
        """Keys of the repositories in the root (blocking: run in a thread)."""
        if not self.root.is_dir():
            return []
        return [p.name for p in self.root.iterdir() if p.is_dir()]


def _write_owner(root: Path, workspace: str) -> None:
    """Which workspace a repository is of, for people looking at the data dir."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "workspace").write_text(workspace + "\n")
