"""Checkpoints: taken from the agent loop, listed, diffed and restored
through the API, removed with their session.

The loop calls :meth:`CheckpointManager.task_started` before a task's first
turn and :meth:`CheckpointManager.after_tool` after each call of a tool that
may change files (``Tool.changes_files``: the edit and command tools, and
MCP tools that say so). Each saves a checkpoint if anything changed, as a
``checkpoint.saved`` event committed with its row. A checkpoint that fails
is logged and skipped: it never fails the task.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from roo_daemon.auth import Principal
from roo_daemon.checkpoints.diffs import FILES_CAP
from roo_daemon.checkpoints.nodelock import RepoLocks
from roo_daemon.checkpoints.repos import Repos, repo_key
from roo_daemon.checkpoints.restore import Restorer
from roo_daemon.checkpoints.retention import Retention
from roo_daemon.checkpoints.store import CheckpointStore, Row
from roo_daemon.events import EventBus
from roo_daemon.events.bus import UnstorableEvent
from roo_daemon.idempotency import IdempotencyGuard
from roo_daemon.models import Session, new_id, now_iso
from roo_daemon.pagination import decode_cursor, encode_cursor
from roo_daemon.problems import Problem, not_found

if TYPE_CHECKING:
    from roo_daemon.cluster.remote import Remote

log = logging.getLogger("roo_daemon.checkpoints")
GC_EVERY = 200  # checkpoints in one repository between background `git gc --auto` runs


class CheckpointManager:
    def __init__(
        self,
        config: dict[str, Any],
        data_dir: Path,
        store: CheckpointStore,
        bus: EventBus,
        sessions: Any,
        tasks: Any,
        idempotency: IdempotencyGuard,
        root: Path | None = None,
        cross: RepoLocks | None = None,
    ) -> None:
        # ``root``: checkpoints.dir (config.checkpoints_dir). ``cross``: the
        # nodes' locks of the repositories, when several nodes share it.
        self.repos = Repos(config, data_dir, root, cross)
        self.store = store
        self.bus = bus
        self.sessions = sessions
        self.tasks = tasks
        self.restorer = Restorer(self.repos, store, bus, tasks.runner, idempotency)
        self.retention = Retention(self.repos, store, sessions)
        self._with_checkpoints: set[str] = set()  # tasks known to have one (the next is not their first)
        self._saving: set[asyncio.Future] = set()
        self._since_gc: dict[str, int] = {}
        # Several nodes (PostgreSQL): a restore in a session another node
        # owns (its workspace, its shadow repository) is run by that node.
        self.remote: Remote | None = None

    async def start(self) -> None:
        await self.repos.start()
        self.bus.subscribe(self.retention)  # session.deleted -> remove its checkpoints
        await self.retention.sweep()

    async def close(self) -> None:
        """Let checkpoints being saved finish (their events must reach the store), then stop gc."""
        if self._saving:
            await asyncio.wait(list(self._saving), timeout=10)
        await self.retention.close()
        if self.repos.cross is not None:
            await self.repos.cross.close()

    # -- hooks, called by the agent loop --------------------------------------

    async def task_started(self, ctx: Any, message_n: int | None = None) -> None:
        """Before the first turn (also of a task resumed later): the state
        the task's changes are measured from."""
        await self._save(ctx, None, None, message_n)

    async def after_tool(self, ctx: Any, tool: str, call_id: str | None, message_n: int | None = None) -> None:
        await self._save(ctx, tool, call_id, message_n)

    async def _save(self, ctx: Any, tool: str | None, call_id: str | None, message_n: int | None) -> None:
        if not self.repos.on_for(ctx.session):
            return
        # Shielded: a cancelled task must not leave git half way through
        # (an index lock held, a commit with no event); it finishes alone.
        fut = asyncio.ensure_future(self._checkpoint(ctx.task, ctx.session, tool, call_id, message_n))
        self._saving.add(fut)
        fut.add_done_callback(self._saving.discard)
        await asyncio.shield(fut)

    async def _checkpoint(
        self, task: Any, session: Session, tool: str | None, call_id: str | None, message_n: int | None
    ) -> None:
        try:
            first = not await self._has_checkpoints(task.id)
            repo = await self.repos.get(session.workspace)
            cid = new_id("ckp")
            message = f"{cid} task {task.id} " + (f"after {tool}" if tool else "start")
            snap = await repo.checkpoint(task.id, message, first=first)
        except Exception as e:  # a checkpoint is a convenience: the task goes on without it
            log.warning("task %s: checkpoint after %s failed: %s", task.id, tool or "start", e)
            return
        if snap is None:
            return
        self._with_checkpoints.add(task.id)
        if self.bus.store.assigns_seq:
            # PostgreSQL numbers events as it commits them: wait for this
            # task's published events, so last_seq counts them.
            await self.bus.db.flush()
        doc = {
            "id": cid,
            "task_id": task.id,
            "session_id": session.id,
            "seq": self.bus.last_seq,  # the event it follows; its checkpoint.saved comes next
            "after_tool": tool,
            "call_id": call_id,
            "created_at": now_iso(),
            "files_changed": snap.files[:FILES_CAP],
            "files_changed_count": len(snap.files),
            "skipped": snap.skipped[:FILES_CAP],
        }
        data = {"checkpoint_id": cid, **{k: v for k, v in doc.items() if k not in ("id", "session_id", "created_at")}}
        try:
            self.bus.publish(
                "checkpoint.saved",
                data,
                session_id=session.id,
                task_id=task.id,
                owner=session.owner,
                write=CheckpointStore.insert(doc, repo_key(session.workspace), snap.commit, message_n),
            )
        except UnstorableEvent as e:  # paths are escaped for JSON already; never fail the task over it
            log.warning("task %s: checkpoint %s not recorded: %s", task.id, cid, e)
            return
        self._maybe_gc(session.workspace)

    async def _has_checkpoints(self, task_id: str) -> bool:
        if task_id in self._with_checkpoints:
            return True
        if await self.store.ends(task_id) is not None:
            self._with_checkpoints.add(task_id)
            return True
        return False

    def _maybe_gc(self, workspace: str) -> None:
        key = repo_key(workspace)
        self._since_gc[key] = self._since_gc.get(key, 0) + 1
        if self._since_gc[key] >= GC_EVERY:
            self._since_gc[key] = 0
            self.retention.gc_later(key, prune_now=False)

    # -- the API ------------------------------------------------------------

    async def _task(self, principal: Principal, session_id: str, task_id: str) -> tuple[Session, Any]:
        session = await self.sessions.visible(principal, session_id)
        task = await self.tasks.get(principal, session_id, task_id)  # 404 for another's or unknown
        self.repos.require(session)
        return session, task

    async def list(
        self, principal: Principal, session_id: str, task_id: str, limit: int, cursor: str | None
    ) -> dict[str, Any]:
        await self._task(principal, session_id, task_id)
        rows, last = await self.store.page(task_id, decode_cursor(cursor), limit)
        return {"items": [r.doc for r in rows], "next_cursor": encode_cursor(last)}

    async def _checkpoint_row(self, task_id: str, checkpoint_id: str) -> Row:
        row = await self.store.get(task_id, checkpoint_id)
        if row is None:  # also a checkpoint of another task: ids leak nothing across tasks
            raise not_found("checkpoint", checkpoint_id)
        return row

    async def diff(
        self, principal: Principal, session_id: str, task_id: str, start: str | None, end: str | None, as_json: bool
    ) -> bytes | list[dict[str, Any]]:
        """From checkpoint ``start`` (else the task's first) to ``end`` (else its last)."""
        if self.remote is not None and self.remote.elsewhere(session_id):
            # The shadow repository is in the owner's data dir: it answers.
            await self.sessions.visible(principal, session_id)
            return await self.remote.diff(principal, session_id, task_id, start, end, as_json)
        session, _ = await self._task(principal, session_id, task_id)
        ends = await self.store.ends(task_id)
        if ends is None:
            raise Problem(404, f"task {task_id} has no checkpoints", slug="not-found")
        a = (await self._checkpoint_row(task_id, start)) if start else ends[0]
        b = (await self._checkpoint_row(task_id, end)) if end else ends[1]
        repo = await self.repos.get(session.workspace)
        if as_json:
            return await repo.files(a.commit, b.commit)
        return await repo.patch(a.commit, b.commit)

    async def restore(
        self,
        principal: Principal,
        session_id: str,
        task_id: str,
        checkpoint_id: str,
        body: dict[str, Any],
        key: str | None,
    ) -> tuple[dict[str, Any], bool]:
        if self.remote is not None and self.remote.elsewhere(session_id):
            await self.sessions.visible(principal, session_id)
            return await self.remote.restore(principal, session_id, task_id, checkpoint_id, body, key)
        session, task = await self._task(principal, session_id, task_id)
        row = await self._checkpoint_row(task_id, checkpoint_id)
        result = await self.restorer.restore(principal, session, task, row, body, key)
        if body["scope"] == "files_and_conversation":
            self._with_checkpoints.discard(task_id)  # recomputed: the rows after it are gone
        return result
