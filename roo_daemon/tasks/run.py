"""One task the runner knows: the engine's :class:`~roo_daemon.engine.base.TaskContext`.

Every status change is persisted together with its ``task.status`` event in
one transaction, so the stored task and the event log never disagree.

The store, not this object, is the task's truth: its conversation, its loop
state (``task.state``), its pending ask and its inbox are all stored, so a
task can go on from the store after a restart. A task waiting for an answer
is *parked*: it holds no concurrency slot, and its loop may be alive here
(a *warm* wait: the answer resolves a future) or not at all (after a
restart: the answer is stored with the task, and a new loop picks it up
from the conversation, see ``engine/loop.py``).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from roo_daemon.cluster.fence import Fenced
from roo_daemon.engine.base import Answer, TaskFailure
from roo_daemon.engine.calls import current_call_id
from roo_daemon.engine.conversation import Conversation
from roo_daemon.models import FINAL_STATUSES, Session, Task, iso, now_iso
from roo_daemon.problems import Problem, validation_problem
from roo_daemon.store import InboxStore, MessageStore, Row, TaskStore
from roo_daemon.store.database import WriteFn
from roo_daemon.store.sqlite import StaleWrite, chain

BACKLOG_LIMIT = 10_000  # queued event writes before streaming tasks wait for the store

if TYPE_CHECKING:
    from roo_daemon.events import EventBus
    from roo_daemon.metrics import Metrics


class RunHost(Protocol):
    """What a run needs of the runner that drives it
    (:class:`roo_daemon.tasks.runner.TaskRunner`). Named here so this module
    does not import the runner, which imports it: the dependency goes one way."""

    bus: EventBus
    settings: dict[str, Any]
    messages: MessageStore
    inbox: InboxStore
    metrics: Metrics

    def claim_slot(self, run: TaskRun) -> bool: ...

    def release_slot(self, run: TaskRun) -> None: ...

    def status_changed(self, old: str, new: str) -> None: ...

    def answered(self, run: TaskRun, started: bool) -> None: ...

    async def spawn_child(self, parent: TaskRun, mode: str, message: str, todos: list[dict[str, str]]) -> Task: ...


class TaskRun:
    def __init__(self, runner: RunHost, task: Task, session: Session, images: list[str], fresh: bool = False) -> None:
        self.runner = runner
        self.task = task
        self.session = session
        self.images = images
        self.supports_images = False  # set by the loop from the task's provider
        self.settings = runner.settings
        self.modes: dict[str, Any] = {}
        self.previous_mode = task.mode
        self.worker: asyncio.Task | None = None
        self.entered = False  # the worker took its first step (TaskRunner._stop_worker)
        # "cancelled" or "interrupted" once asked to stop; "fenced": another
        # node owns the session now, the run stops with no further write.
        self.stop_reason: str | None = None
        self.finishing = False
        self.holds_slot = False
        self.done = asyncio.Event()
        self.started = 0.0
        self._ask_future: asyncio.Future[Answer] | None = None
        self._answering = False  # an answer's write is in flight
        # Set while a transition's write is on its way: memory already shows
        # the new state (a GET sees "waiting" and the ask), the store not yet.
        self._storing: asyncio.Event | None = None
        self._store_error: BaseException | None = None
        self._taken: set[int] = set()  # inbox messages given to the model
        # A task created by this process and never started has nothing stored
        # yet: no reads at its start (each is a thread hop on a busy machine).
        self.fresh = fresh
        self.inbox_dirty = not fresh  # the store's inbox may hold messages this run has not read
        self.expiry: asyncio.TimerHandle | None = None

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

    async def load_conversation(self) -> Conversation:
        if self.fresh:
            return Conversation([], 1)
        rows, next_n = await self.runner.messages.view(self.task.id)
        return Conversation(rows, next_n)

    def record(
        self,
        rows: list[Row],
        event: tuple[str, dict[str, Any]] | None = None,
        *,
        consumed: list[int] | None = None,
        state: bool = False,
    ) -> None:
        if self._store_error is not None:  # an earlier message was not stored: stop before the history forks
            raise TaskFailure("store_error", f"the conversation could not be stored: {self._store_error}")
        self._taken.update(consumed or ())
        write = chain(
            MessageStore.append(self.task.id, rows) if rows else None,
            InboxStore.take(consumed) if consumed else None,
            TaskStore.update(self.task) if state else None,
        )
        if event is not None:
            fut = self.runner.bus.publish(event[0], event[1], write=write, **self._ids())
        else:
            fut = self.runner.bus.fenced_write(write, self.task.session_id)
        fut.add_done_callback(self._stored)

    def _stored(self, fut: asyncio.Future) -> None:
        if not fut.cancelled() and fut.exception() is not None:
            self._store_error = fut.exception()

    async def inbox(self) -> list[tuple[int, dict[str, Any]]]:
        """The store is read when it may hold something new: at this run's
        first turn, and after a message was sent here (``mail()``), so a turn
        does not wait on a read for an inbox that is nearly always empty."""
        if not self.inbox_dirty:
            return []
        self.inbox_dirty = False
        # Messages already taken may still be in the store: their removal is
        # written with the turn, not awaited.
        return [(seq, doc) for seq, doc in await self.runner.inbox.pending(self.task.id) if seq not in self._taken]

    def mail(self) -> None:
        """A message for this task is being stored: read the inbox at the next turn."""
        self.inbox_dirty = True

    async def ask(self, kind: str, **payload: Any) -> Answer:
        call_id = current_call_id.get()
        early = self._stored_answer(kind, call_id)
        if early is not None:
            return early
        ask: dict[str, Any] = {"id": "ask_" + secrets.token_hex(8), "kind": kind, "created_at": now_iso(), **payload}
        if call_id is not None:
            ask["call_id"] = call_id  # which call waits: an answer given after a restart resumes it
        timeout = self.ask_timeout(kind)
        if timeout:
            ask["expires_at"] = iso(time.time() + timeout)
        self._ask_future = asyncio.get_running_loop().create_future()
        try:
            # The slot goes first: an answer may come as soon as the wait is
            # stored, and it takes a slot again.
            self.runner.release_slot(self)
            await self.transition("waiting", pending_ask=ask, also=("ask", ask))
            self.schedule_expiry()
            answer = await self._ask_future
        finally:
            self._ask_future = None
        self.task.state.pop("answer", None)  # acted on now (stored with the next task write)
        return answer

    def _stored_answer(self, kind: str, call_id: str | None) -> Answer | None:
        """An answer given while no loop waited (after a restart): the ask it
        answered comes again as the loop replays the call, and gets it. A
        subtask's call was approved before it waited on its child."""
        stored = self.task.state.get("answer")
        if stored is None or stored.get("call_id") != call_id:
            return None
        if stored["kind"] == kind:
            self.task.state.pop("answer")
            return Answer(
                stored["approve"], stored.get("text"), stored.get("images") or [], bool(stored.get("expired"))
            )
        if stored["kind"] == "subtask" and kind != "subtask":
            return Answer(True)
        return None

    def ask_timeout(self, kind: str) -> int | None:
        """Seconds an ask of this kind may wait (the task's setting, else the session's)."""
        return self.task.ask_timeouts.get(kind) or self.session.ask_timeouts.get(kind)

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
        stored = self.task.state.get("answer")
        if stored is not None and stored["kind"] == "subtask" and stored.get("call_id") == current_call_id.get():
            # The child ended while this task's loop was not running: its answer was stored.
            self.task.state.pop("answer")
            return Answer(stored["approve"], stored.get("text"))
        child = await self.runner.spawn_child(self, mode, message, todos)
        return await self.ask("subtask", task_id=child.id, mode=mode, message=message)

    # -- lifecycle, driven by the runner ---------------------------------

    def _ids(self) -> dict[str, Any]:
        return {"session_id": self.task.session_id, "task_id": self.task.id, "owner": self.session.owner}

    async def transition(
        self,
        status: str,
        *,
        also: tuple[str, dict[str, Any]] | None = None,
        first: tuple[str, dict[str, Any]] | None = None,
        expect: tuple[str, str | None] | None = None,
        extra: WriteFn | None = None,
        **changes: Any,
    ) -> None:
        """Change status, persisting the task with its ``task.status`` event
        (``first`` an event before it, ``also`` one after) in one transaction.
        ``expect``: ``(status, ask id)`` the stored task must still have, else
        nothing changes and :class:`StaleWrite` is raised (a compare-and-set);
        ``extra``: another write for the same transaction."""
        if self.stop_reason == "fenced":
            raise Fenced(self.task.session_id)  # another node runs this task now: not a write more from here
        old = self.task.status
        saved = {key: getattr(self.task, key) for key in changes}
        self.task.status = status
        for key, value in changes.items():
            setattr(self.task, key, value)
        data: dict[str, Any] = {"status": status, "previous": old}
        if status == "waiting":
            data["pending_ask"] = self.task.pending_ask
        write = chain(TaskStore.update(self.task) if expect is None else TaskStore.update_if(self.task, *expect), extra)
        events = [e for e in (first, ("task.status", data), also) if e is not None]
        if expect is None:
            self.runner.status_changed(old, status)
            storing = self._storing = asyncio.Event()
        try:
            await self.runner.bus.publish(*events[0], write=write, also=events[1:], **self._ids())
        except BaseException:
            if expect is not None:  # refused: the task is as it was
                self.task.status = old
                for key, value in saved.items():
                    setattr(self.task, key, value)
            raise
        finally:
            if expect is None:
                storing.set()
                if self._storing is storing:
                    self._storing = None
        if expect is not None:
            self.runner.status_changed(old, status)

    async def finish(self, status: str, *, result: str | None = None, error: dict[str, str] | None = None) -> None:
        """Move to a final status and say so twice, atomically: ``task.status``
        and the specific ``task.completed`` / ``task.failed`` / ``task.cancelled``."""
        assert status in FINAL_STATUSES
        self.finishing = True
        self.cancel_expiry()
        detail: dict[str, Any] = {"status": status}
        if result is not None:
            detail["result"] = result
        if error is not None:
            detail["error"] = error
        also = (f"task.{status}", detail) if status != "interrupted" else None
        await self.transition(status, also=also, result=result, error=error, pending_ask=None, finished_at=now_iso())
        if self.started:
            self.runner.metrics.task_duration.observe(time.monotonic() - self.started)

    async def answer(
        self, ask_id: str, approve: bool, text: str | None, *, expired: bool = False, images: list[str] | None = None
    ) -> None:
        """The answer to the pending ask. A wrong or stale id is 409.

        Stored (with ``ask.answered``, the task's new status and the answer
        itself) by a compare-and-set on the pending ask, before anything
        changes here: of two answers racing (a client's and the expiry's, or
        one given as the daemon restarts) exactly one is applied, and a
        failed write leaves the task waiting, answerable again. The task then
        takes a slot (``running``) or queues for one (``queued``)."""
        while self._storing is not None:
            # The ask a client saw may not be stored yet: the compare-and-set
            # below would meet the old row and refuse a valid answer.
            await self._storing.wait()
        pending = self.task.pending_ask
        if pending is None or self.task.status != "waiting" or self._answering:
            raise Problem(
                409, f"task {self.task.id} has no pending ask (status {self.task.status})", task_status=self.task.status
            )
        if pending["id"] != ask_id:
            raise Problem(409, f"ask {ask_id} is not the task's pending ask", task_status=self.task.status)
        if images and pending["kind"] != "followup":
            # Only a follow-up answer reaches the model as a message of its own.
            raise validation_problem(
                [{"pointer": "/body/images", "message": f"images answer a followup ask, not a {pending['kind']} ask"}]
            )
        answered: dict[str, Any] = {"ask_id": ask_id, "kind": pending["kind"], "approve": approve}
        if text is not None:
            answered["text"] = text
        if images:
            answered["image_count"] = len(images)  # the event says how many; the images stay with the task
        if expired:
            answered["expired"] = True
        self._answering = True  # held, on the loop: a second answer meanwhile gets 409
        started = self.runner.claim_slot(self)
        # In place: the loop holds this dict. Stored with the task, so a loop
        # started after a restart finds the answer.
        self.task.state["answer"] = {
            **answered,
            "call_id": pending.get("call_id"),
            **({"images": images} if images else {}),
        }
        try:
            await self.transition(
                "running" if started else "queued",
                first=("ask.answered", answered),
                expect=("waiting", ask_id),
                pending_ask=None,
            )
        except BaseException as e:
            self.task.state.pop("answer", None)
            self.runner.release_slot(self)
            if isinstance(e, StaleWrite):
                raise Problem(409, f"ask {ask_id} was answered already", task_status=self.task.status) from None
            raise
        finally:
            self._answering = False
        self.cancel_expiry()
        self.runner.answered(self, started)

    def resume_waiting_loop(self) -> None:
        """A warm wait goes on: the loop that asked gets its answer."""
        stored = self.task.state.get("answer") or {}
        future = self._ask_future
        if future is not None and not future.done():
            future.set_result(
                Answer(
                    stored.get("approve", False),
                    stored.get("text"),
                    stored.get("images") or [],
                    bool(stored.get("expired")),
                )
            )

    @property
    def fenced(self) -> bool:
        """Whether this node lost the session: stopped as such, or a write refused."""
        return self.stop_reason == "fenced" or isinstance(self._store_error, Fenced)

    @property
    def warm(self) -> bool:
        """Whether a loop here is waiting for this task's answer."""
        return self._ask_future is not None and self.worker is not None and not self.worker.done()

    # -- ask expiry --------------------------------------------------------

    def schedule_expiry(self) -> None:
        """Arm the pending ask's deadline (``expires_at``, stored with it, so
        it holds across restarts: one already past fires at once)."""
        self.cancel_expiry()
        ask = self.task.pending_ask
        if ask is None or not ask.get("expires_at"):
            return
        due = datetime.fromisoformat(ask["expires_at"].replace("Z", "+00:00"))
        delay = max(0.0, (due - datetime.now(UTC)) / timedelta(seconds=1))
        loop = asyncio.get_running_loop()
        self.expiry = loop.call_later(delay, lambda: loop.create_task(self._expire(ask["id"])))

    def cancel_expiry(self) -> None:
        if self.expiry is not None:
            self.expiry.cancel()
            self.expiry = None

    async def _expire(self, ask_id: str) -> None:
        """Roo's follow-up auto-answer (the first suggestion); any other ask
        is denied, with a message the model sees."""
        self.expiry = None
        ask = self.task.pending_ask
        if ask is None or ask["id"] != ask_id:
            return
        seconds = self.ask_timeout(ask["kind"])
        suggestions = ask.get("suggestions") or []
        try:
            if ask["kind"] == "followup" and suggestions:
                await self.answer(ask_id, True, suggestions[0], expired=True)
            else:
                reason = f"No answer came within {seconds} seconds (ask_timeouts.{ask['kind']}); the ask expired."
                await self.answer(ask_id, False, reason, expired=True)
        except Problem:
            pass  # answered meanwhile


__all__ = ["TaskRun"]
