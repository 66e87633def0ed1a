"""One live task: the engine's :class:`~roo_daemon.engine.base.TaskContext`.

Every status change is persisted together with its ``task.status`` event in
one transaction, so the stored task and the event log never disagree.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import TYPE_CHECKING, Any

from roo_daemon.engine.base import Answer
from roo_daemon.models import FINAL_STATUSES, Session, Task, now_iso
from roo_daemon.problems import Problem
from roo_daemon.store import TaskStore

BACKLOG_LIMIT = 10_000  # queued event writes before streaming tasks wait for the store

if TYPE_CHECKING:
    from roo_daemon.tasks.runner import TaskRunner


class TaskRun:
    def __init__(self, runner: TaskRunner, task: Task, session: Session, images: list[str]) -> None:
        self.runner = runner
        self.task = task
        self.session = session
        self.images = images
        self.settings = runner.settings
        self.modes: dict[str, Any] = {}
        self.previous_mode = task.mode
        self.worker: asyncio.Task | None = None
        self.stop_reason: str | None = None  # "cancelled" or "interrupted" once asked to stop
        self.finishing = False
        self.done = asyncio.Event()
        self.started = 0.0
        self._ask_future: asyncio.Future[Answer] | None = None
        self._answering = False  # an answer's write is in flight

    # -- TaskContext ----------------------------------------------------

    def publish(self, name: str, data: dict[str, Any]) -> None:
        self.runner.bus.publish(name, data, **self._ids())

    async def flow_control(self) -> None:
        """Wait while the store is far behind: ``publish`` never waits, so
        fast streams must not queue writes without bound."""
        db = self.runner.bus.db
        if db.backlog > BACKLOG_LIMIT:
            await db.flush()

    async def emit(self, name: str, data: dict[str, Any]) -> None:
        await self.runner.bus.append(name, data, **self._ids())

    async def ask(self, kind: str, **payload: Any) -> Answer:
        ask = {"id": "ask_" + secrets.token_hex(8), "kind": kind, "created_at": now_iso(), **payload}
        self._ask_future = asyncio.get_running_loop().create_future()
        await self.transition("waiting", pending_ask=ask)
        await self.emit("ask", ask)
        try:
            return await self._ask_future
        finally:
            self._ask_future = None

    async def add_usage(self, usage: dict[str, Any]) -> None:
        total = self.task.usage
        for key in ("tokens_in", "tokens_out", "cache_reads", "cache_writes"):
            total[key] += int(usage.get(key) or 0)
        total["cost_usd"] = round(total["cost_usd"] + float(usage.get("cost_usd") or 0.0), 10)
        # Published, not awaited: a turn should not wait on an fsync; the
        # log keeps the order and the next status change waits for it all.
        self.runner.bus.publish(
            "usage", {"request": usage, "total": dict(total)}, write=TaskStore.update(self.task), **self._ids()
        )

    async def set_todos(self, todos: list[dict[str, str]]) -> None:
        self.task.todos = todos
        self.runner.bus.publish("todos", {"todos": todos}, write=TaskStore.update(self.task), **self._ids())

    async def switch_mode(self, slug: str, reason: str) -> None:
        self.previous_mode = self.task.mode
        self.task.mode = slug
        await self.runner.bus.append(
            "mode.switched",
            {"from": self.previous_mode, "to": slug, "reason": reason},
            write=TaskStore.update(self.task),
            **self._ids(),
        )

    async def run_subtask(self, mode: str, message: str, todos: list[dict[str, str]]) -> Answer:
        child = await self.runner.spawn_child(self, mode, message, todos)
        return await self.ask("subtask", task_id=child.id, mode=mode, message=message)

    # -- lifecycle, driven by the runner ---------------------------------

    def _ids(self) -> dict[str, Any]:
        return {"session_id": self.task.session_id, "task_id": self.task.id, "owner": self.session.owner}

    async def transition(self, status: str, *, also: tuple[str, dict[str, Any]] | None = None, **changes: Any) -> None:
        """Change status, persisting the task with its ``task.status`` event
        (and ``also``, a second event) in one transaction."""
        old = self.task.status
        self.task.status = status
        for key, value in changes.items():
            setattr(self.task, key, value)
        data: dict[str, Any] = {"status": status, "previous": old}
        if status == "waiting":
            data["pending_ask"] = self.task.pending_ask
        self.runner.status_changed(old, status)
        bus = self.runner.bus
        # Both publishes are queued before the store's next flush, so they
        # commit together: whoever sees the final status can read its event.
        pending = [bus.publish("task.status", data, write=TaskStore.update(self.task), **self._ids())]
        if also is not None:
            pending.append(bus.publish(also[0], also[1], **self._ids()))
        for fut in pending:
            await fut

    async def finish(self, status: str, *, result: str | None = None, error: dict[str, str] | None = None) -> None:
        """Move to a final status and say so twice, atomically: ``task.status``
        and the specific ``task.completed`` / ``task.failed`` / ``task.cancelled``."""
        assert status in FINAL_STATUSES
        self.finishing = True
        detail: dict[str, Any] = {"status": status}
        if result is not None:
            detail["result"] = result
        if error is not None:
            detail["error"] = error
        also = (f"task.{status}", detail) if status != "interrupted" else None
        await self.transition(status, also=also, result=result, error=error, pending_ask=None, finished_at=now_iso())
        if self.started:
            self.runner.metrics.task_duration.observe(time.monotonic() - self.started)

    async def answer(self, ask_id: str, approve: bool, text: str | None) -> None:
        """The client's answer to the pending ask. A wrong or stale id is 409.

        The ask changes hands only once ``ask.answered`` is durable: until
        then it is held (a second answer is 409), and if the write fails
        (input the store refuses, a full disk) it is given back, so the task
        still waits and the client can answer again."""
        pending = self.task.pending_ask
        if pending is None or self._ask_future is None or self._ask_future.done() or self._answering:
            raise Problem(
                409, f"task {self.task.id} has no pending ask (status {self.task.status})", task_status=self.task.status
            )
        if pending["id"] != ask_id:
            raise Problem(409, f"ask {ask_id} is not the task's pending ask", task_status=self.task.status)
        future = self._ask_future
        answered: dict[str, Any] = {"ask_id": ask_id, "kind": pending["kind"], "approve": approve}
        if text is not None:
            answered["text"] = text
        self._answering = True  # held, on the loop: a second answer meanwhile gets 409
        try:
            await self.emit("ask.answered", answered)
        finally:
            self._answering = False
        self.task.pending_ask = None  # answered, durably
        try:
            await self.transition("running")
        finally:
            # The answer is in the log: the task goes on with it even if
            # this status write failed (the next one persists the task).
            if not future.done():
                future.set_result(Answer(approve, text))
