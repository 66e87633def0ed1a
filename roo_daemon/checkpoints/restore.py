"""Restoring a checkpoint: the workspace put back, and with scope
``files_and_conversation`` the task's stored conversation cut back to that
point, as Roo-Code's "restore files & task" does: the rows after the one
the checkpoint follows are deleted (the task's prompt and everything up to
that tool call's result stay), and so are the task's later checkpoints.
The task keeps its status; continuing it (``POST .../messages``) goes on
from there, calls of the same message left without a result being answered
as interrupted, as after any stop.

Only when no task of the session is queued, running or waiting: the
session gate (``roo_daemon/tasks/gate.py``) makes a restore and a new task
exclude each other, so of two racing requests exactly one goes ahead.
``Idempotency-Key`` is honoured per checkpoint: a retry gets the first
restore's answer and restores nothing again.
"""

from __future__ import annotations

from typing import Any

from roo_daemon.auth import Principal
from roo_daemon.checkpoints.diffs import FILES_CAP
from roo_daemon.checkpoints.repos import Repos
from roo_daemon.checkpoints.store import CheckpointStore, Row
from roo_daemon.events import EventBus
from roo_daemon.idempotency import IdempotencyGuard
from roo_daemon.models import Session, new_id, now_iso
from roo_daemon.problems import Problem
from roo_daemon.store.conversation import count_after
from roo_daemon.store.conversation import rewind as rewind_conversation
from roo_daemon.store.sqlite import TaskStore, chain


class Restorer:
    def __init__(
        self, repos: Repos, store: CheckpointStore, bus: EventBus, runner: Any, idempotency: IdempotencyGuard
    ) -> None:
        self.repos = repos
        self.store = store
        self.bus = bus
        self.runner = runner
        self.idempotency = idempotency

    async def restore(
        self, principal: Principal, session: Session, task: Any, row: Row, body: dict[str, Any], key: str | None
    ) -> tuple[dict[str, Any], bool]:
        done: dict[str, Any] = {}

        async def create(record: Any) -> str:
            live = [r.task.id for r in self.runner.live_in_session(session.id)]
            with self.runner.gate.restoring(session.id, live):  # checked and claimed before any await
                doc, write = await self._restore(session, task, row, body["scope"])
                await self.bus.append(
                    "checkpoint.restored",
                    {k: v for k, v in doc.items() if k != "id"},
                    session_id=session.id,
                    task_id=task.id,
                    owner=session.owner,
                    write=chain(
                        write,
                        CheckpointStore.insert_restore(doc["id"], session.id, doc),
                        record(doc["id"]) if record else None,
                    ),
                )
            done.update(doc)
            return doc["id"]

        scope = f"restoreCheckpoint:{task.id}:{row.doc['id']}"
        restore_id, replayed = await self.idempotency.create_once(principal.name, scope, key, body, create)
        if not replayed:
            return done, False
        stored = await self.store.restore(restore_id)
        if stored is None:  # the session was deleted since (its restores with it)
            raise Problem(404, f"restore {restore_id} no longer exists", slug="not-found")
        return stored, True

    async def _restore(self, session: Session, task: Any, row: Row, scope: str) -> tuple[dict[str, Any], Any]:
        """Check the store too (a task may be stored live without being in
        the runner's memory), then rewrite the workspace. Returns the answer
        and what to commit with its event: with the conversation, the rows
        after the checkpoint's, and the task's later checkpoints."""
        stored_live = await self.store.live_tasks(session.id)
        if stored_live:
            ids = ", ".join(f"{tid} ({status})" for tid, status in stored_live[:3])
            raise Problem(409, f"a task of session {session.id} has not ended: {ids}; restore when it has ended")
        rewind = scope == "files_and_conversation"
        if rewind and row.message_n is None:
            raise Problem(
                409, f"checkpoint {row.doc['id']} records no point of the conversation: restore its files only"
            )
        later = await self.store.count_after(task.id, row.n) if rewind else 0
        messages = await count_after(self.store.db, task.id, row.message_n) if rewind else 0
        repo = await self.repos.get(session.workspace)
        changed = await repo.restore(task.id, row.commit, rewind)
        doc = {
            "id": new_id("rst"),
            "checkpoint_id": row.doc["id"],
            "task_id": task.id,
            "scope": scope,
            "files_changed": changed[:FILES_CAP],
            "files_changed_count": len(changed),
            "messages_removed": messages,
            "checkpoints_removed": later,
            "restored_at": now_iso(),
        }
        if not rewind:
            return doc, None
        # An answer stored for a call the cut removes must not answer a call
        # of the continued task; the mistake count starts over with it.
        task.state.pop("answer", None)
        task.state["mistakes"] = 0
        write = chain(
            rewind_conversation(task.id, row.message_n),
            CheckpointStore.delete_after(task.id, row.n),
            TaskStore.update_if(task, task.status),
        )
        return doc, write
