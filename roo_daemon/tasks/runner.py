"""The task runner: a FIFO queue, a concurrency cap, cancellation, shutdown,
continuations and recovery.

``engine.max_concurrent_tasks`` bounds the tasks *working* (talking to the
model, running tools). A task waiting for an answer is parked: it gives its
slot back, and takes one again when answered (queued in order if none is
free). Queued tasks survive a restart (they are stored ``queued``); so do
waiting ones (stored ``waiting`` with their ask, answerable after the
restart), and running ones are resumed from their stored conversation
(``engine.resume_interrupted``) or left ``interrupted``.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from typing import Any

from roo_daemon.cluster.fence import Fenced
from roo_daemon.engine.base import Engine, TaskFailure
from roo_daemon.events import EventBus
from roo_daemon.metrics import Metrics
from roo_daemon.models import FINAL_STATUSES, Session, Task, new_id, now_iso
from roo_daemon.problems import Problem
from roo_daemon.store import InboxStore, MessageStore, TaskStore
from roo_daemon.store.database import WriteFn
from roo_daemon.store.sqlite import StaleWrite, chain
from roo_daemon.tasks.gate import SessionGate
from roo_daemon.tasks.run import TaskRun

log = logging.getLogger("roo_daemon.tasks")
CANCEL_WAIT_SECONDS = 1.0


def log_failure(task: Task, failure: TaskFailure) -> None:
    """One warning line per failed task, with its id and error code (also as
    fields of the JSON log), so the journal shows failures on its own."""
    message = " ".join(failure.message.split())[:300]
    log.warning(
        "task %s failed: %s: %s",
        task.id,
        failure.code,
        message,
        extra={"task_id": task.id, "session_id": task.session_id, "error_code": failure.code},
    )


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
        self.messages = MessageStore(bus.db)
        self.inbox = InboxStore(bus.db)
        self.engine = engine
        self.max_concurrent = max_concurrent
        self.metrics = metrics
        self.runs: dict[str, TaskRun] = {}  # every task not finished: queued, running, waiting
        self._queue: collections.deque[str] = collections.deque()
        self._running = 0
        self._accepting = True
        self.gate = SessionGate()  # new tasks and checkpoint restores exclude each other

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

    # -- slots -------------------------------------------------------------

    def claim_slot(self, run: TaskRun) -> bool:
        """Take a slot for ``run`` if one is free (True), else leave it to the queue."""
        if run.holds_slot:
            return True
        if not self._accepting or self._running >= self.max_concurrent:
            return False
        self._take(run)
        return True

    def _take(self, run: TaskRun) -> None:
        run.holds_slot = True
        self._running += 1

    def release_slot(self, run: TaskRun) -> None:
        if run.holds_slot:
            run.holds_slot = False
            self._running -= 1
            self._pump()

    def _pump(self) -> None:
        while self._accepting and self._running < self.max_concurrent and self._queue:
            run = self.runs.get(self._queue.popleft())
            if run is None or run.task.status != "queued":
                continue
            self._take(run)
            if run.warm:  # answered while no slot was free: its loop still waits
                asyncio.get_running_loop().create_task(self._resume_warm(run))
            else:
                self._start(run)

    async def _resume_warm(self, run: TaskRun) -> None:
        try:
            await run.transition("running")
        finally:
            run.resume_waiting_loop()

    # -- starting work -----------------------------------------------------

    def submit(
        self, task: Task, session: Session, images: list[str], borrow_slot: bool = False, fresh: bool = True
    ) -> TaskRun:
        """Queue a task already persisted as ``queued`` (``fresh``: just
        created, so nothing of it is stored but the task). A subtask borrows its
        parent's slot (``borrow_slot``) and starts at once: the parent only
        waits for it, so the cap still bounds the work done, and a cap of one
        cannot deadlock a parent against its own child."""
        run = TaskRun(self, task, session, images, fresh)
        self.runs[task.id] = run
        self.metrics.tasks_active.labels("queued").inc()
        if borrow_slot and self._accepting:
            self._take(run)
            self._start(run)
        else:
            self._queue.append(task.id)
            self._pump()
        return run

    async def continue_task(
        self, task: Task, session: Session, *, reason: str, first: tuple[str, dict[str, Any]] | None, write: WriteFn
    ) -> TaskRun:
        """Run a finished task again from its stored conversation (stored as
        ``queued``, with ``write`` and the event ``first``, by a
        compare-and-set on its status: of two racing, one wins, the other is 409)."""
        run = TaskRun(self, task, session, [])
        previous = task.status
        task.state["resume"] = reason
        task.state.pop("resume_pending", None)
        if previous not in FINAL_STATUSES:  # found running after a crash
            self.metrics.tasks_active.labels(previous).inc()
        try:
            await run.transition(
                "queued",
                first=first,
                expect=(previous, None),
                extra=write,
                result=None,
                error=None,
                finished_at=None,
            )
        except StaleWrite:
            raise Problem(409, f"task {task.id} changed meanwhile; try again", task_status=task.status) from None
        self.runs[task.id] = run
        self._queue.append(task.id)
        self._pump()
        return run

    def answered(self, run: TaskRun, started: bool) -> None:
        """After an answer was stored: go on now (``started``: it holds a
        slot), or queue for a slot."""
        if not started:
            self._queue.append(run.task.id)
            self._pump()
        elif run.warm:
            run.resume_waiting_loop()
        else:
            self._start(run)  # no loop here waits for it: a new one picks the answer up from the store

    def _start(self, run: TaskRun) -> None:
        run.worker = asyncio.get_running_loop().create_task(self._execute(run), name=f"task {run.task.id}")

    @staticmethod
    def _stop_worker(run: TaskRun) -> None:
        """Stop a run's worker, its ``stop_reason`` set. A worker cancelled
        before its first step would never enter ``_execute``: nothing would
        finish the task (it would stay live, holding its slot, and ``done``
        would never be set). So one not yet entered is left to start: it
        sees ``stop_reason`` at once and ends as a cancelled one does."""
        assert run.worker is not None and run.stop_reason is not None
        if run.entered:
            run.worker.cancel()

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
            ask_timeouts=dict(parent.task.ask_timeouts),
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

    async def child_finished(self, child: Task) -> None:
        """Resume a parent waiting on this child: approve with the result
        when it completed, refuse with the reason otherwise."""
        parent = self.runs.get(child.parent_task_id or "")
        ask = parent.task.pending_ask if parent is not None else None
        if parent is None or ask is None or ask.get("kind") != "subtask" or ask.get("task_id") != child.id:
            return
        if parent.stop_reason is not None:
            return  # the parent is being stopped itself
        try:
            if child.status == "completed":
                await parent.answer(ask["id"], True, child.result or "")
            else:
                reason = (child.error or {}).get("message", child.status)
                await parent.answer(ask["id"], False, f"subtask {child.id} ended {child.status}: {reason}")
        except Problem:
            pass  # answered or stopped meanwhile

    async def _execute(self, run: TaskRun) -> None:
        run.entered = True
        try:
            await self._run_to_end(run)
        except Fenced:
            # Another node owns the session now (it took it over): this run
            # ends here with no further write; its new owner runs the task.
            self._drop(run)

    async def _run_to_end(self, run: TaskRun) -> None:
        parked = False
        try:
            run.started = time.monotonic()
            if run.stop_reason is not None:  # stopped before its first step (_stop_worker)
                raise asyncio.CancelledError
            if run.task.status != "running":
                await run.transition("running", started_at=run.task.started_at or now_iso())
            result = await self.engine.run(run)
            await run.finish("completed", result=result)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
            reason = run.stop_reason or "interrupted"
            if reason == "fenced":
                raise Fenced(run.task.session_id) from None
            if reason == "interrupted" and run.task.status in ("waiting", "queued"):
                parked = True  # stopping with an ask open (or answered, waiting for a slot): stays as stored
            else:
                if reason == "interrupted":
                    run.task.state["resume_pending"] = True  # the next start resumes it (engine.resume_interrupted)
                message = (
                    "cancelled by the client" if reason == "cancelled" else "the daemon stopped while the task ran"
                )
                await run.finish(reason, error={"code": reason, "message": message})
        except Fenced:
            raise
        except Exception as e:
            if run.fenced:  # a refused write: the session is another node's now
                raise Fenced(run.task.session_id) from None
            if isinstance(e, TaskFailure):
                log_failure(run.task, e)
                await run.finish("failed", error={"code": e.code, "message": e.message})
            else:
                log.exception("task %s: engine error", run.task.id)
                await run.finish(
                    "failed", error={"code": "internal", "message": "internal engine error; see the daemon log"}
                )
        finally:
            run.cancel_expiry()
            if run.holds_slot:
                run.holds_slot = False
                self._running -= 1
            if not parked:
                self.runs.pop(run.task.id, None)
        try:
            await self._follow_up(run)
        finally:
            run.done.set()
            self._pump()
        if run.task.parent_task_id and self._accepting:
            await self.child_finished(run.task)

    async def _follow_up(self, run: TaskRun) -> None:
        """A message sent while the task worked that no turn took (it ended
        first) continues it now: a 202 for a message means the model gets it."""
        if run.task.status not in ("completed", "failed") or not self._accepting:
            return
        try:
            if run.inbox_dirty and await self.inbox.count(run.task.id):
                await self.continue_task(run.task, run.session, reason="continue", first=None, write=None)
        except Exception:
            log.exception("task %s: could not continue with its queued messages", run.task.id)

    def _drop(self, run: TaskRun) -> None:
        """Forget a fenced run: no slot, no queue place, no status here."""
        if run.done.is_set():
            return
        run.stop_reason = "fenced"
        run.cancel_expiry()
        if self.runs.get(run.task.id) is run:
            del self.runs[run.task.id]
        if run.task.status in ("queued", "running", "waiting"):
            self.metrics.tasks_active.labels(run.task.status).dec()
        try:
            self._queue.remove(run.task.id)
        except ValueError:
            pass
        self.release_slot(run)
        run.done.set()
        self._pump()

    def forget_session(self, session_id: str) -> None:
        """This node no longer owns the session (another took it over, or
        this node's lease ran out): its runs stop at once and write nothing
        more; the store keeps them as they were, for the session's owner to
        go on with (a restart of this node reclaims them if no one did)."""
        for run in self.live_in_session(session_id):
            run.stop_reason = "fenced"
            if run.worker is not None and not run.worker.done():
                self._stop_worker(run)  # its _execute drops it
            else:
                self._drop(run)  # queued or parked: nothing runs

    async def cancel(self, run: TaskRun, reason: str = "cancelled") -> None:
        """Stop a live task and wait (up to a second) for its final status."""
        if run.finishing or run.done.is_set():
            return
        run.stop_reason = reason  # set first: a child ending now must not resume this parent
        for child in [r for r in self.runs.values() if r.task.parent_task_id == run.task.id]:
            await self.cancel(child, reason)  # a cancelled parent takes its subtasks with it
        if run.worker is None or run.worker.done():  # queued, or parked with no loop: nothing runs
            try:
                self._queue.remove(run.task.id)
            except ValueError:
                pass
            self.runs.pop(run.task.id, None)
            self.release_slot(run)
            why = "cancelled before it started" if run.task.status == "queued" else "cancelled while waiting"
            await run.finish(reason, error={"code": reason, "message": why})
            run.done.set()
            return
        self._stop_worker(run)
        try:
            await asyncio.wait_for(asyncio.shield(run.done.wait()), CANCEL_WAIT_SECONDS)
        except TimeoutError:
            log.warning("task %s did not stop within %ss", run.task.id, CANCEL_WAIT_SECONDS)

    async def shutdown(self, timeout: float = 5.0) -> None:
        """Stop taking work; interrupt running tasks. Queued and waiting tasks
        stay so in the store and go on after the next start."""
        self._accepting = False
        for run in self.runs.values():
            run.cancel_expiry()
        workers = [r for r in self.runs.values() if r.worker is not None and not r.done.is_set()]
        for run in workers:
            run.stop_reason = "interrupted"
            if not run.finishing:
                self._stop_worker(run)
        if workers:
            waiters = [asyncio.ensure_future(r.done.wait()) for r in workers]
            await asyncio.wait(waiters, timeout=timeout)
            for waiter in waiters:
                waiter.cancel()

    def counts(self) -> dict[str, Any]:
        return {"running": self._running, "queued": len(self._queue)}
