"""The shadow git repository of one workspace, after Roo-Code's
``ShadowCheckpointService`` (src/services/checkpoints/): a git directory
under the data dir whose work tree is the workspace.

A checkpoint is a commit of the whole workspace (less the exclusions). Each
task's checkpoints form one chain, its tip kept in ``refs/roo/<task id>``
(Roo keeps a repository per task; one per workspace shares every file's
objects between its tasks). A checkpoint is committed only if its tree
differs from the previous one of its task, except the task's first, which
is always kept: it is what an undo of the whole task goes back to.

Only plumbing commands are used (``status``, ``add``, ``write-tree``,
``commit-tree``, ``update-ref``, ``read-tree``, ``diff``): none runs hooks,
and none reads or moves the shadow repository's ``HEAD``. Every method that
writes runs under the repository's lock, so two tasks in one workspace never
interleave in its index; with ``cross`` (several nodes sharing
``checkpoints.dir``) under the nodes' lock of it too (checkpoints/nodelock.py).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from roo_daemon.checkpoints import diffs
from roo_daemon.checkpoints.excludes import ATTRIBUTES, exclude_file
from roo_daemon.checkpoints.git import Git, GitError
from roo_daemon.checkpoints.scan import classify, display, parse_listing

# Objects of a large ``add`` go straight into one pack (git's bulk check-in
# for "big" files): loose objects cost a file each, 5 to 10 times slower for
# a first checkpoint of thousands of files. Only ``add`` sees this setting:
# diffs still treat files by their content. A few changed files stay loose
# objects (no pack per checkpoint; ``gc`` packs them later).
BULK_ADD = ("-c", "core.bigFileThreshold=1")
BULK_PATHS = 100
CONFIG = {
    "core.bare": "false",
    "core.symlinks": "true",  # links are stored as links, never followed
    "core.autocrlf": "false",
    "core.fsmonitor": "false",
    "core.untrackedCache": "true",
    "core.quotePath": "false",
    "core.hooksPath": os.devnull,
    "commit.gpgSign": "false",
    "gc.autoDetach": "false",
    "maintenance.auto": "false",
}
_ADD_ERROR = re.compile(r'^error: open\("(.*)"\): (.*)$')
LIST_ARGS = ("ls-files", "-z", "-t", "--modified", "--deleted", "--others", "--exclude-standard")
ADD_ARGS = ("add", "-A", "--ignore-errors", "--pathspec-from-file=-", "--pathspec-file-nul")
EXPLICIT_PATHS = 500  # beyond this many changed paths, one pathspec for everything is cheaper to match
# A node killed mid-command leaves its git child running (or its lock file
# behind): how long one found under the nodes' lock may take to finish.
STALE_LOCK_SECONDS = 5.0


@dataclass
class Snapshot:
    """A new checkpoint's commit and what it changed since the task's previous one."""

    commit: str
    files: list[dict[str, str]]
    skipped: list[dict[str, str]]


@dataclass
class _Staged:
    tree: str
    skipped: list[dict[str, str]] = field(default_factory=list)


class ShadowRepo:
    def __init__(
        self,
        git: Git,
        max_file_bytes: int,
        excludes: list[str],
        inside: list[str],
        cross: Any = None,
        key: str = "",
    ) -> None:
        self.git = git
        self.max_file_bytes = max_file_bytes
        self.excludes = excludes
        self.inside = inside  # the daemon's own directories within the workspace, never recorded
        self.lock = asyncio.Lock()
        # Several nodes writing this repository (checkpoints.dir on shared
        # storage): their lock of it (nodelock.RepoLocks), held inside ours.
        self.cross = cross
        self.key = key
        self.tips: dict[str, str] = {}  # task id -> its latest checkpoint commit
        self._trees: dict[str, str] = {}  # commit -> tree, a cache: both never change
        self._index_tree: str | None = None  # the index's tree after our last staging (forgotten under the nodes' lock)
        self._opened = False

    @property
    def workspace(self) -> str:
        return self.git.work_tree

    async def open(self) -> None:
        """Create the repository on first use; refresh its exclude list
        (the workspace's ``.gitattributes`` may name new LFS patterns)."""
        async with self.locked(fresh=False):
            await self._create()
        self._opened = True

    async def _create(self) -> None:
        created = await asyncio.to_thread(self._prepare)
        if created:
            await self.git.run("init", "--quiet", "--template=")
            for key, value in CONFIG.items():
                await self.git.run("config", key, value)
            await self.git.run("config", "core.worktree", self.workspace)

    @asynccontextmanager
    async def locked(self, fresh: bool = True) -> AsyncIterator[None]:
        """This node's lock of the repository, and with ``cross`` the nodes'
        lock too. Under the nodes' lock what this node remembers of the
        repository may be stale (another node committed, staged, or removed
        it since), so it is forgotten; a lock file left by a node that died
        mid-command is cleared; a repository removed meanwhile is made again."""
        async with self.lock:
            if self.cross is None:
                yield
                return
            async with self.cross.held(self.key):
                self._index_tree = None
                self.tips.clear()
                head, lock = self.git.git_dir / "HEAD", self.git.git_dir / "index.lock"
                gone, stale = await asyncio.to_thread(lambda: (not head.exists(), lock.exists()))
                if stale:
                    await self._clear_stale_lock()
                if gone and fresh:
                    await self._create()
                yield

    async def _clear_stale_lock(self) -> None:
        """Under the nodes' lock, ``index.lock`` is no running node's: a
        killed node's git child may still be finishing (give it a moment),
        or it died too and left the file."""
        lock = self.git.git_dir / "index.lock"
        deadline = time.monotonic() + STALE_LOCK_SECONDS
        while await asyncio.to_thread(lock.exists):
            if time.monotonic() >= deadline:
                await asyncio.to_thread(lock.unlink, True)
                return
            await asyncio.sleep(0.1)  # polling a file another machine's process holds: nothing to await

    def _prepare(self) -> bool:
        """Blocking: runs in a thread. Returns whether the repository is new."""
        git_dir = self.git.git_dir
        created = not (git_dir / "HEAD").exists()
        (git_dir / "info").mkdir(parents=True, exist_ok=True)
        if not self._opened and self.cross is None:
            # One daemon per data dir, and one lock per repository in it: a
            # lock file found before our first command is a crashed run's.
            # (Shared by nodes: cleared under their lock, see locked().)
            for stale in (git_dir / "index.lock", git_dir / "gc.pid"):
                stale.unlink(missing_ok=True)
        workspace = Path(self.workspace)
        (git_dir / "info" / "exclude").write_text(exclude_file(workspace, self.excludes, self.inside))
        (git_dir / "info" / "attributes").write_text(ATTRIBUTES)
        return created

    async def checkpoint(self, task_id: str, message: str, first: bool) -> Snapshot | None:
        """Record the workspace for ``task_id``. None if nothing changed since
        its previous checkpoint (the first of a task is always recorded)."""
        async with self.locked():
            parent = self.tips.get(task_id) if not first else None
            if parent is None and not first:
                parent = await self._ref(task_id)
            staged = await self._stage()
            if parent is not None and staged.tree == await self._tree(parent):
                return None
            args = ["commit-tree", staged.tree, "-m", message]
            if parent is not None:
                args += ["-p", parent]
            commit = await self.git.text(*args)
            self._trees[commit] = staged.tree
            ref = self.git.run("update-ref", f"refs/roo/{task_id}", commit)
            if parent is not None:  # both at once: two cores, and a process start each
                files = (await asyncio.gather(ref, self._changed(parent, commit)))[1]
            else:
                await ref
                files = []
            self.tips[task_id] = commit
            skipped = [{"path": display(s["path"]), "reason": s["reason"]} for s in staged.skipped]
            skipped_paths = {s["path"] for s in skipped}
            files = [f for f in files if f["path"] not in skipped_paths]
            return Snapshot(commit, files, skipped)

    async def restore(self, task_id: str, commit: str, rewind: bool) -> list[dict[str, str]]:
        """Put the workspace back to ``commit``: changed files rewritten,
        files added since removed, skipped and excluded paths left alone.
        Returns what the restore changed.

        The task's chain then goes on from the restored tree: with
        ``rewind`` (the conversation is cut back too) from ``commit`` itself,
        so the later checkpoints are dropped; otherwise from a new commit of
        that tree on top of the chain, which keeps every later checkpoint
        reachable (they can still be restored) and makes the next
        checkpoint compare with what the restore left."""
        async with self.locked():
            before = await self._stage()
            await self.git.run("read-tree", "-u", "--reset", commit)
            target = self._index_tree = await self._tree(commit)
            changed = await self._changed(before.tree, target)
            tip = commit
            if not rewind:
                parent = self.tips.get(task_id) or await self._ref(task_id)
                args = ["commit-tree", target, "-m", f"restored {commit}"]
                tip = await self.git.text(*args, *(["-p", parent] if parent else []))
            await self.git.run("update-ref", f"refs/roo/{task_id}", tip)
            self.tips[task_id] = tip
            return changed

    async def patch(self, a: str, b: str) -> bytes:
        """The unified diff from ``a`` to ``b``."""
        return (await self.git.run(*self._diff_args(), a, b)).out

    async def files(self, a: str, b: str) -> list[dict[str, Any]]:
        """Per file: path, status, additions, deletions, binary, patch."""
        base = self._diff_args()
        name_status, numstat, patch = await asyncio.gather(
            self.git.run(*base, "--name-status", "-z", a, b),
            self.git.run(*base, "--numstat", "-z", a, b),
            self.git.run(*base, a, b),
        )
        return diffs.file_entries(name_status.out, numstat.out, patch.out)

    async def forget(self, task_ids: list[str]) -> bool:
        """Drop tasks' chains (their session was deleted); ``gc`` frees the
        objects. Returns whether there were any: every node hears of the
        deletion, and in a repository they share only the first finds them
        (the others need no ``gc``)."""
        async with self.locked():
            for t in task_ids:
                self.tips.pop(t, None)
            if not task_ids:
                return False
            if self.cross is not None:
                listed = await self.git.text("for-each-ref", "--format=%(refname)", "refs/roo/")
                if not set(listed.splitlines()) & {f"refs/roo/{t}" for t in task_ids}:
                    return False
            lines = "".join(f"delete refs/roo/{t}\n" for t in task_ids)
            await self.git.run("update-ref", "--stdin", stdin=lines.encode())
            return True

    async def gc(self, prune_now: bool) -> None:
        """Pack objects; with ``prune_now``, drop every object no chain
        reaches (held under the lock: an ``add`` in flight has objects no
        ref reaches yet). Called in the background, never on a tool call."""
        if prune_now:
            async with self.locked():
                await self.git.run("gc", "--quiet", "--prune=now")
        else:
            await self.git.run("gc", "--auto", "--quiet")

    def remove(self) -> None:
        """Delete the repository (blocking: run in a thread)."""
        shutil.rmtree(self.git.git_dir.parent, ignore_errors=True)

    # -- internals ---------------------------------------------------------

    def _diff_args(self) -> tuple[str, ...]:
        return (
            "diff",
            "--no-color",
            "--no-ext-diff",
            "--no-textconv",
            "--no-renames",
            "--src-prefix=a/",
            "--dst-prefix=b/",
        )

    async def _ref(self, task_id: str) -> str | None:
        result = await self.git.run("rev-parse", "-q", "--verify", f"refs/roo/{task_id}^{{commit}}", check=False)
        if result.code != 0:
            return None
        return result.out.decode().strip() or None

    async def _tree(self, commit: str) -> str:
        tree = self._trees.get(commit)
        if tree is None:
            tree = self._trees[commit] = await self.git.text("rev-parse", f"{commit}^{{tree}}")
        return tree

    async def _stage(self) -> _Staged:
        """Bring the index to the workspace, less what must be skipped: one
        scan (``ls-files``) for what changed, then ``add`` of just those paths."""
        listing = await self.git.run(*LIST_ARGS)
        changed = parse_listing(listing.out)
        if not changed and self._index_tree is not None:
            return _Staged(self._index_tree)  # nothing moved since our last staging
        skipped = await asyncio.to_thread(classify, self.workspace, changed, self.max_file_bytes)
        skip = {s["path"] for s in skipped}
        gone = [c.path for c in changed if c.tracked and c.path in skip]
        if gone:  # recorded before, skipped now: not in this checkpoint rather than stale
            await self.git.run("update-index", "--force-remove", "-z", "--stdin", stdin=_nul(gone))
        paths = [c.path for c in changed if c.path.rstrip("/") not in skip]
        if paths:
            skipped += await self._add(paths, skip)
        elif not gone and self._index_tree is not None:
            return _Staged(self._index_tree, skipped)  # only what is skipped anyway
        tree = self._index_tree = await self.git.text("write-tree")
        return _Staged(tree, skipped)

    async def _add(self, paths: list[str], skip: set[str]) -> list[dict[str, str]]:
        """``git add`` the changed paths (literal pathspecs: the index is
        only refreshed where something changed), or the whole workspace less
        ``skip`` when the list is long or a path vanished meanwhile. Returns
        files that turned unreadable between the scan and the add."""
        result = None
        if len(paths) <= EXPLICIT_PATHS:
            spec = [f":(literal){p}" for p in paths]
            bulk = BULK_ADD if len(paths) >= BULK_PATHS else ()
            result = await self.git.run(*bulk, *ADD_ARGS, stdin=_nul(spec), check=False)
        if result is None or result.code not in (0, 1):
            whole = [".", *(f":(exclude,literal){p}" for p in skip)]
            result = await self.git.run(*BULK_ADD, *ADD_ARGS, stdin=_nul(whole), check=False)
        if result.code not in (0, 1):
            raise GitError(f"git add failed ({result.code}): {result.err.decode(errors='replace')[:500]}")
        late = []
        for line in result.err.decode(errors="surrogateescape").splitlines():
            m = _ADD_ERROR.match(line)
            if m:
                late.append({"path": m.group(1), "reason": f"cannot be read: {m.group(2)}"})
        return late

    async def _changed(self, a: str, b: str) -> list[dict[str, str]]:
        return diffs.parse_name_status((await self.git.run(*self._diff_args(), "--name-status", "-z", a, b)).out)


def _nul(items: list[str]) -> bytes:
    return b"".join(i.encode(errors="surrogateescape") + b"\0" for i in items)
