"""The task runner: a FIFO queue, a concurrency cap, cancellation, shutdown.

A task holds one of ``engine.max_concurrent_tasks`` slots from ``running``
until its final status, ``waiting`` included (its loop is still live in
memory). Queued tasks wait in order; they survive a restart because they are
persisted as ``queued`` and requeued by :meth:`recover`.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from typing import Any

from roo_daemon.engine.base import Engine, TaskFailure
from roo_daemon.events import EventBus
from roo_daemon.metrics import Metrics
from roo_daemon.models import Session, Task, new_id, now_iso
from roo_daemon.store import TaskStore
from roo_daemon.store.sqlite import chain
from roo_daemon.tasks.run import TaskRun

log = logging.getLogger("roo_daemon.tasks")
CANCEL_WAIT_SECONDS = 1.0


class TaskRunner:
    def __init__(
        self,
        bus: EventBus,
        store: TaskStore,
        engine: Engine,
        max_concurrent: int,
        metrics: Metrics,
        settings: dict[str, Any] | None = None,
    ) -> None:
        self.bus = bus
        self.settings = settings or {}
        self.store = store
        self.engine = engine
        self.max_concurrent = max_concurrent
        self.metrics = metrics
        self.runs: dict[str, TaskRun] = {}
        self._queue: collections.deque[str] = collections.deque()
        self._running = 0
        self._accepting = True

    def live(self, task_id: str) -> TaskRun | None:
        return self.runs.get(task_id)

    def live_in_session(self, session_id: str) -> list[TaskRun]:
        return [r for r in self.runs.values() if r.task.session_id == session_id]

    def status_changed(self, old: str, new: str) -> None:
        if old != new:
            if old in ("queued", "running", "waiting"):
                self.metrics.tasks_active.labels(old).dec()
            if new in ("queued", "running", "waiting"):
                self.metrics.tasks_active.labels(new).inc()
            else:
                self.metrics.tasks_total.labels(new).inc()

    def submit(self, task: Task, session: Session, images: list[str], borrow_slot: bool = False) -> TaskRun:
        """Queue a task already persisted as ``queued``. A subtask borrows its
        parent's slot (``borrow_slot``) and starts at once: the parent only
        waits for it, so the cap still bounds the work done, and a cap of one
        cannot deadlock a parent against its own child."""
        run = TaskRun(self, task, session, images)
        self.runs[task.id] = run
        self.metrics.tasks_active.labels("queued").inc()
        if borrow_slot and self._accepting:
            self._start(run)
        else:
            self._queue.append(task.id)
            self._pump()
        return run

    def _start(self, run: TaskRun) -> None:
        self._running += 1
        run.worker = asyncio.get_running_loop().create_task(self._execute(run), name=f"task {run.task.id}")

    async def spawn_child(self, parent: TaskRun, mode: str, message: str, todos: list[dict[str, str]]) -> Task:
        """Create a subtask in the parent's session, persisted with the
        parent's new ``child_task_ids`` in one transaction, and start it."""
        child = Task(
            id=new_id("tsk"),
            session_id=parent.task.session_id,
            prompt=message,
            mode=mode,
            provider=parent.task.provider,
            provider_kind=parent.task.provider_kind,
            created_at=now_iso(),
            limits=dict(parent.task.limits),
            todos=todos,
            parent_task_id=parent.task.id,
        )
        parent.task.child_task_ids = [*parent.task.child_task_ids, child.id]
        await self.bus.append(
            "task.created",
            child.to_resource(),
            session_id=child.session_id,
            task_id=child.id,
            owner=parent.session.owner,
            write=chain(TaskStore.insert(child, {"images": []}), TaskStore.update(parent.task)),
        )
        self.submit(child, parent.session, [], borrow_slot=True)
        return child

    async def _child_finished(self, child: TaskRun) -> None:
        """Resume a parent waiting on this child: approve with the result
        when it completed, refuse with the reason otherwise."""
        parent = self.runs.get(child.task.parent_task_id or "")
        ask = parent.task.pending_ask if parent is not None else None
        if parent is None or ask is None or ask.get("kind") != "subtask" or ask.get("task_id") != child.task.id:
            return
        if parent.stop_reason is not None:
            return  # the parent is being stopped itself
        task = child.task
        if task.status == "completed":
            await parent.answer(ask["id"], True, task.result or "")
        else:
            reason = (task.error or {}).get("message", task.status)
            await parent.answer(ask["id"], False, f"subtask {task.id} ended {task.status}: {reason}")

    def _pump(self) -> None:
        while self._accepting and self._running < self.max_concurrent and self._queue:
            run = self.runs.get(self._queue.popleft())
            if run is None or run.task.status != "queued":
                continue
            self._start(run)

    async def _execute(self, run: TaskRun) -> None:
        try:
            run.started = time.monotonic()
            await run.transition("running", started_at=now_iso())
            result = await self.engine.run(run)
            await run.finish("completed", result=result)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
            reason = run.stop_reason or "interrupted"
            message = "cancelled by the client" if reason == "cancelled" else "the daemon stopped while the task ran"
            await run.finish(reason, error={"code": reason, "message": message})
        except TaskFailure as e:
            await run.finish("failed", error={"code": e.code, "message": e.message})
        except Exception:
            log.exception("task %s: engine error", run.task.id)
            await run.finish(
                "failed", error={"code": "internal", "message": "internal engine error; see the daemon log"}
            )
        finally:
            self._running -= 1
            self.runs.pop(run.task.id, None)
            run.done.set()
            self._pump()
        if run.task.parent_task_id and self._accepting:
            await self._child_finished(run)

    async def cancel(self, run: TaskRun, reason: str = "cancelled") -> None:
        """Stop a live task and wait (up to a second) for its final status."""
        if run.finishing or run.done.is_set():
            return
        run.stop_reason = reason  # set first: a child ending now must not resume this parent
        for child in [r for r in self.runs.values() if r.task.parent_task_id == run.task.id]:
            await self.cancel(child, reason)  # a cancelled parent takes its subtasks with it
        if run.worker is None:  # still queued: nothing is running, finish it here
            try:
                self._queue.remove(run.task.id)
            except ValueError:
                pass
            self.runs.pop(run.task.id, None)
            await run.finish(reason, error={"code": reason, "message": "cancelled before it started"})
            run.done.set()
            return
        run.stop_reason = reason
        run.worker.cancel()
        try:
            await asyncio.wait_for(asyncio.shield(run.done.wait()), CANCEL_WAIT_SECONDS)
        except TimeoutError:
            log.warning("task %s did not stop within %ss", run.task.id, CANCEL_WAIT_SECONDS)

    async def shutdown(self, timeout: float = 5.0) -> None:
        """Stop taking work; interrupt running tasks. Queued tasks stay
        ``queued`` in the store and run after the next start."""
        self._accepting = False
        workers = [r for r in self.runs.values() if r.worker is not None and not r.done.is_set()]
        for run in workers:
            run.stop_reason = "interrupted"
            if not run.finishing:
                run.worker.cancel()  # type: ignore[union-attr]
        if workers:
            await asyncio.wait([asyncio.ensure_future(r.done.wait()) for r in workers], timeout=timeout)

    async def recover(self, sessions: dict[str, Session]) -> dict[str, int]:
        """At start: tasks left ``running`` or ``waiting`` by a crash become
        ``interrupted``; ``queued`` ones are queued again."""
        counts = {"interrupted": 0, "requeued": 0}
        for task in await self.store.with_status(("running", "waiting", "queued")):
            session = sessions.get(task.session_id)
            if session is None:
                continue
            if task.status == "queued":
                images = (await self.store.inputs(task.id)).get("images", [])
                self.submit(task, session, images)
                counts["requeued"] += 1
                continue
            run = TaskRun(self, task, session, [])
            self.metrics.tasks_active.labels(task.status).inc()
            await run.finish(
                "interrupted", error={"code": "interrupted", "message": "the daemon stopped while the task ran"}
            )
            counts["interrupted"] += 1
        return counts

    def counts(self) -> dict[str, Any]:
        return {"running": self._running, "queued": len(self._queue)}
