"""Checkpoints go with their session, and ``git gc`` runs in the background.

A deleted session's checkpoint rows are removed, and its tasks' chains
(``refs/roo/<task>``) with them. A repository no remaining session works in
is deleted whole; one still in use is garbage-collected with ``--prune=now``
in the background, which frees the objects only those chains reached.
The bus tells us of deletions (``session.deleted``, after it is committed);
a sweep at start finishes what a crash interrupted. ``gc`` never runs on a
tool call's path: :meth:`Retention.gc_later` starts it in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from typing import Any

from roo_daemon.checkpoints.repos import Repos, repo_key
from roo_daemon.checkpoints.store import CheckpointStore

log = logging.getLogger("roo_daemon.checkpoints")


class Retention:
    def __init__(self, repos: Repos, store: CheckpointStore, sessions: Any) -> None:
        self.repos = repos
        self.store = store
        self.sessions = sessions
        self._jobs: set[asyncio.Task] = set()
        self._gc: dict[str, asyncio.Task] = {}

    def deliver(self, event: Any) -> None:
        """An event bus subscriber: every committed event passes here."""
        if event.name == "session.deleted" and event.session_id:
            self._spawn(self.session_deleted(event.session_id))

    def _spawn(self, coro: Any) -> asyncio.Task:
        job = asyncio.ensure_future(coro)
        self._jobs.add(job)
        job.add_done_callback(self._jobs.discard)
        return job

    async def session_deleted(self, session_id: str) -> None:
        try:
            tasks = await self.store.tasks_of(session_id)
            keys = (await self.store.repos_by_session()).get(session_id, set())
            await self.store.db.write(CheckpointStore.delete_session(session_id))
            for key in keys:
                await self._release(key, tasks)
        except Exception:
            log.exception("removing the checkpoints of session %s failed", session_id)

    def _workspace_in_use(self, key: str) -> str | None:
        for session in self.sessions.sessions.values():
            if repo_key(session.workspace) == key:
                return session.workspace
        return None

    async def _release(self, key: str, tasks: list[str]) -> None:
        workspace = self._workspace_in_use(key)
        if workspace is None:
            await self._remove(key)
            return
        if self.repos.binary is None:
            return  # git gone: the refs stay until it is back and the session's rows are gone already
        repo = await self.repos.get(workspace)
        if await repo.forget(tasks):
            self.gc_later(key, prune_now=True)

    async def _remove(self, key: str) -> None:
        repo = self.repos.cached(key)
        self.repos.forget(key)
        if self.repos.cross is None:
            if repo is not None:
                async with repo.lock:  # a checkpoint of a just-cancelled task may still be finishing
                    pass
            await asyncio.to_thread(shutil.rmtree, self.repos.root / key, True)
            return
        # Shared by nodes: another node may have a session in this workspace
        # that this one has not heard of yet. Under the nodes' lock (after
        # our own: the lock is re-entrant on this node's connection), and
        # only if no stored session works there now; a node that opened the
        # repository before makes it again at its next use (ShadowRepo.locked).
        async with repo.lock if repo is not None else contextlib.nullcontext():
            async with self.repos.cross.held(key):
                if key in {repo_key(w) for w in await self.sessions.store.workspaces()}:
                    return
                await asyncio.to_thread(shutil.rmtree, self.repos.root / key, True)

    async def sweep(self) -> None:
        """At start: the checkpoints of sessions deleted while the daemon
        was stopping (or crashed), and repositories no session uses."""
        for session_id in await self.store.repos_by_session():
            if session_id not in self.sessions.sessions:
                await self.session_deleted(session_id)
        for key in await asyncio.to_thread(self.repos.on_disk):
            if self._workspace_in_use(key) is None:
                await self._remove(key)

    def gc_later(self, key: str, prune_now: bool) -> None:
        """``git gc`` for one repository in the background, one at a time."""
        if self.repos.binary is None or key in self._gc:
            return
        job = asyncio.ensure_future(self._run_gc(key, prune_now))
        self._gc[key] = job
        job.add_done_callback(lambda _: self._gc.pop(key, None))

    async def _run_gc(self, key: str, prune_now: bool) -> None:
        workspace = self._workspace_in_use(key)
        if workspace is None:
            return
        try:
            repo = await self.repos.get(workspace)
            await repo.gc(prune_now)
        except Exception as e:
            log.warning("git gc of checkpoint repository %s failed: %s", key, e)

    async def close(self) -> None:
        for job in list(self._gc.values()):
            job.cancel()
        pending = [*self._gc.values(), *self._jobs]
        if pending:
            await asyncio.wait(pending, timeout=10)
