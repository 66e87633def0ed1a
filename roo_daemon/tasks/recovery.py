"""At start: pick up every task a previous run of the daemon left unfinished,
from the store alone (nothing of that run's memory is needed).

- ``queued``: queued again, in creation order (an answer or a continuation
  stored with it is acted on when it starts).
- ``waiting``: parked again with the same ``pending_ask`` (answerable; its
  expiry re-armed, or fired at once if it passed meanwhile). A parent
  waiting on a subtask that ended meanwhile is answered now.
- ``running`` (the daemon crashed) and ``interrupted`` by the last stop:
  with ``engine.resume_interrupted`` they go on from their stored
  conversation, told they were interrupted; else they stay (or become)
  ``interrupted``, and a ``POST .../messages`` continues them.
"""

from __future__ import annotations

import logging

from roo_daemon.models import FINAL_STATUSES, Session, Task
from roo_daemon.store import TaskStore
from roo_daemon.tasks.run import TaskRun
from roo_daemon.tasks.runner import TaskRunner

log = logging.getLogger("roo_daemon.tasks")
STOPPED = {"code": "interrupted", "message": "the daemon stopped while the task ran"}


async def recover(runner: TaskRunner, sessions: dict[str, Session], resume_interrupted: bool) -> dict[str, int]:
    counts = {"interrupted": 0, "requeued": 0, "resumed": 0, "waiting": 0}
    store = runner.store
    pending = await store.resume_pending()
    waiting: list[TaskRun] = []
    for task in [*await store.with_status(("running", "waiting", "queued")), *pending]:
        session = sessions.get(task.session_id)
        if session is None:
            continue
        if task.status == "queued":
            images = (await store.inputs(task.id)).get("images", [])
            runner.submit(task, session, images, fresh=False)  # it may have run before (a continuation)
            counts["requeued"] += 1
        elif task.status == "waiting":
            waiting.append(park(runner, task, session))
            counts["waiting"] += 1
        elif resume_interrupted:
            await runner.continue_task(task, session, reason="interrupted", first=None, write=None)
            counts["resumed"] += 1
        elif task.status == "running":
            run = TaskRun(runner, task, session, [])
            runner.metrics.tasks_active.labels(task.status).inc()
            await run.finish("interrupted", error=STOPPED)
            counts["interrupted"] += 1
        else:  # interrupted by the last stop, not to be resumed: it stays so
            task.state.pop("resume_pending", None)
            await runner.bus.fenced_write(TaskStore.update(task), task.session_id)
    for run in waiting:
        run.schedule_expiry()
        await answer_if_child_ended(runner, run)
    return counts


def park(runner: TaskRunner, task: Task, session: Session) -> TaskRun:
    """A waiting task with no loop: known to the runner, holding no slot."""
    run = TaskRun(runner, task, session, [])
    runner.runs[task.id] = run
    runner.metrics.tasks_active.labels("waiting").inc()
    return run


async def answer_if_child_ended(runner: TaskRunner, run: TaskRun) -> None:
    ask = run.task.pending_ask or {}
    if ask.get("kind") != "subtask" or runner.live(ask.get("task_id", "")) is not None:
        return
    child = await runner.store.get(run.task.session_id, ask["task_id"])
    if child is not None and child.status in FINAL_STATUSES:
        await runner.child_finished(child)
