"""Task logic behind the REST routes: create, read, list, cancel, answer,
and the task's event page. Live tasks are read from the runner's memory,
finished ones from the store."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from roo_daemon.auth import Principal
from roo_daemon.cluster.caps import Caps, LocalCaps, too_many_tasks
from roo_daemon.events import EventBus
from roo_daemon.idempotency import IdempotencyGuard
from roo_daemon.models import Task, iso, new_id, now_iso
from roo_daemon.pagination import decode_cursor, encode_cursor
from roo_daemon.problems import Problem, not_found, validation_problem
from roo_daemon.sessions.manager import SessionManager
from roo_daemon.store import EventStore, InboxStore, Row, TaskStore
from roo_daemon.store.conversation import hidden
from roo_daemon.store.sqlite import chain
from roo_daemon.tasks.runner import TaskRunner

if TYPE_CHECKING:
    from roo_daemon.cluster.remote import Remote


class TaskManager:
    def __init__(
        self,
        sessions: SessionManager,
        store: TaskStore,
        events: EventStore,
        bus: EventBus,
        runner: TaskRunner,
        idempotency: IdempotencyGuard,
        default_limits: dict[str, Any],
        caps: dict[str, Any] | None = None,
        cluster_caps: Caps | None = None,
    ) -> None:
        self.sessions = sessions
        self.store = store
        self.events = events
        self.bus = bus
        self.runner = runner
        self.idempotency = idempotency
        self.default_limits = default_limits
        self.caps = caps or {"max_live_tasks_per_principal": 100}
        self.cluster_caps = cluster_caps or LocalCaps()
        self._creating: Counter[str] = Counter()  # tasks being created, per principal
        self._locks: dict[str, asyncio.Lock] = {}  # per task: one message is decided at a time
        # Several nodes (PostgreSQL): a mutation for a session another node
        # owns is handed to that node, which runs it with these same methods.
        self.remote: Remote | None = None

    def update_limits(self, caps: dict[str, Any]) -> None:
        """New caps (a SIGHUP reload), checked from the next create on. Live
        tasks above a lowered cap keep running: only new ones are refused."""
        self.caps = caps

    async def create(
        self, principal: Principal, session_id: str, body: dict[str, Any], key: str | None
    ) -> tuple[Task, bool]:
        session = await self.sessions.visible(principal, session_id)
        if self.remote is not None and self.remote.elsewhere(session_id):
            return await self.remote.create_task(principal, session_id, body, key)
        provider = body.get("provider", session.provider)
        self.sessions.check_provider(provider)
        if "mode" in body:
            await self.sessions.check_mode(body["mode"], session.workspace)

        async def create(record: Any) -> str:
            # Checked here, not before the idempotency lookup, so a retry of
            # an accepted request replays it even at the cap.
            self._reserve_live_slot(principal)
            try:
                with self.runner.gate.task_starting(session.id):  # 409 while a checkpoint is restored
                    return await insert_and_submit(record)
            finally:
                self._creating[principal.name] -= 1

        async def insert_and_submit(record: Any) -> str:
            limits = {**self.default_limits, **body.get("limits", {})}
            images = body.get("images", [])
            task = Task(
                id=new_id("tsk"),
                session_id=session.id,
                prompt=body["prompt"],
                mode=body.get("mode", session.mode),
                provider=provider,
                provider_kind=self.sessions.provider_kind(provider),
                created_at=now_iso(),
                image_count=len(images),
                limits={"max_requests": limits.get("max_requests"), "max_cost_usd": limits.get("max_cost_usd")},
                ask_timeouts=dict(body.get("ask_timeouts", {})),
            )
            # PostgreSQL: the cap is counted for the cluster in this transaction.
            slot = self.cluster_caps.task_slot(principal.name, self.caps["max_live_tasks_per_principal"])
            write = chain(slot, TaskStore.insert(task, {"images": images}), record(task.id) if record else None)
            await self.bus.append(
                "task.created",
                task.to_resource(),
                session_id=session.id,
                task_id=task.id,
                owner=session.owner,
                write=write,
            )
            self.runner.submit(task, session, images)
            return task.id

        task_id, replayed = await self.idempotency.create_once(
            principal.name, f"createTask:{session.id}", key, body, create
        )
        return await self.get(principal, session_id, task_id), replayed

    def _reserve_live_slot(self, principal: Principal) -> None:
        """Count a task being created as live from the start: concurrent
        creates cannot all pass the check before any of them is submitted.
        Never evicts queued or running work to make room: refuses the new one.
        On PostgreSQL this node's memory sees only its own runs: the cap is
        counted in the database instead, in the insert's transaction
        (``cluster_caps.task_slot``)."""
        cap = self.caps["max_live_tasks_per_principal"]
        if not self.cluster_caps.shared:
            live = sum(1 for r in self.runner.runs.values() if r.session.owner == principal.name)
            if live + self._creating[principal.name] >= cap:
                raise too_many_tasks(principal.name, cap)
        self._creating[principal.name] += 1

    async def get(self, principal: Principal, session_id: str, task_id: str) -> Task:
        await self.sessions.visible(principal, session_id)
        run = self.runner.live(task_id)
        if run is not None and run.task.session_id == session_id:
            return run.task
        task = await self.store.get(session_id, task_id)
        if task is None:
            raise not_found("task", task_id)
        return task

    async def list(
        self, principal: Principal, session_id: str, limit: int, cursor: str | None, status: str | None
    ) -> tuple[list[Task], str | None]:
        await self.sessions.visible(principal, session_id)
        items, last = await self.store.page(session_id, status, decode_cursor(cursor), limit)
        # The store may be a moment behind a live task's in-memory state;
        # answer with the freshest copy.
        items = [self._fresh(t) for t in items]
        return items, encode_cursor(last)

    async def list_all(
        self,
        principal: Principal,
        session_id: str | None,
        status: str | None,
        limit: int,
        cursor: str | None,
    ) -> tuple[list[Task], str | None]:
        """Every task the principal may see, across its sessions, newest
        first: the approvals inbox is ``status=waiting``. A ``session_id``
        the principal may not see is 404, as on the session's own list."""
        if session_id is not None:
            await self.sessions.visible(principal, session_id)
        owner = None if principal.is_admin else principal.name
        items, last = await self.store.page_all(owner, session_id, status, decode_cursor(cursor), limit)
        # The freshest copy of a live task; one that has moved on from the
        # status asked for since the read is left out (an inbox lists only
        # asks still open; the page may then be shorter than ``limit``).
        fresh = [self._fresh(t) for t in items]
        return [t for t in fresh if status is None or t.status == status], encode_cursor(last)

    def _fresh(self, task: Task) -> Task:
        run = self.runner.live(task.id)
        return run.task if run is not None else task

    async def cancel(self, principal: Principal, session_id: str, task_id: str) -> Task:
        if self.remote is not None and self.remote.elsewhere(session_id):
            await self.sessions.visible(principal, session_id)
            return await self.remote.cancel_task(principal, session_id, task_id)
        task = await self.get(principal, session_id, task_id)
        run = self.runner.live(task_id)
        if run is None or run.finishing:
            raise Problem(
                409, f"task {task_id} has already finished with status {task.status}", task_status=task.status
            )
        await self.runner.cancel(run)
        return run.task

    async def respond(
        self,
        principal: Principal,
        session_id: str,
        task_id: str,
        ask_id: str,
        approve: bool,
        text: str | None,
        images: list[str] | None = None,
        *,
        suggestion: int | None = None,
    ) -> Task:
        """Answer the task's pending ask. ``suggestion``: the index of a
        followup ask's suggestion chosen as the answer (its text; one that
        names a mode switches the task to it, as in Roo's chat view)."""
        if self.remote is not None and self.remote.elsewhere(session_id):
            await self.sessions.visible(principal, session_id)
            return await self.remote.respond(principal, session_id, task_id, ask_id, approve, text, images, suggestion)
        task = await self.get(principal, session_id, task_id)
        run = self.runner.live(task_id)
        if run is None:
            raise Problem(409, f"task {task_id} has no pending ask (status {task.status})", task_status=task.status)
        pending = run.task.pending_ask
        if pending is not None and pending.get("kind") == "subtask" and pending.get("id") == ask_id:
            raise Problem(
                409,
                f"task {task_id} waits for its subtask {pending.get('task_id')}; that subtask's end answers it "
                "(cancel the subtask to stop waiting)",
                task_status=run.task.status,
            )
        if suggestion is not None:
            text = _suggested(pending, ask_id, suggestion, text)
        await run.answer(ask_id, approve, text, images=images)
        return run.task

    async def post_message(
        self, principal: Principal, session_id: str, task_id: str, body: dict[str, Any], key: str | None
    ) -> tuple[Task, bool]:
        """A user message for a task. Finished: the same task runs again
        from its stored conversation with it. Queued or running: it waits in
        the task's inbox for the next turn. Waiting: 409, answer the ask.
        Decided under a per-task lock, so of two messages racing on a
        finished task the first continues it and the second is queued
        behind it."""
        session = await self.sessions.visible(principal, session_id)
        if self.remote is not None and self.remote.elsewhere(session_id):
            return await self.remote.post_message(principal, session_id, task_id, body, key)
        text, images = body.get("text", ""), body.get("images", [])
        if not text.strip() and not images:
            raise validation_problem(
                [{"pointer": "/body/text", "message": "give text (not only whitespace) or images"}]
            )

        async def create(record: Any) -> str:
            lock = self._locks.setdefault(task_id, asyncio.Lock())
            try:
                async with lock:
                    return await self._deliver(principal, session, task_id, text, images, record)
            finally:
                if not lock.locked() and self._locks.get(task_id) is lock:
                    del self._locks[task_id]

        _, replayed = await self.idempotency.create_once(principal.name, f"postMessage:{task_id}", key, body, create)
        return await self.get(principal, session_id, task_id), replayed

    async def _deliver(
        self, principal: Principal, session: Any, task_id: str, text: str, images: list[str], record: Any
    ) -> str:
        run = self.runner.live(task_id)
        if run is not None and run.finishing:
            await run.done.wait()  # ending now: continue it once it has ended
            run = self.runner.live(task_id)
        task = run.task if run is not None else await self.get(principal, session.id, task_id)
        if task.status == "waiting":
            ask = task.pending_ask or {}
            raise Problem(
                409,
                f"task {task_id} is waiting for an answer to its {ask.get('kind')} ask {ask.get('id')}: "
                f"answer it with POST .../tasks/{task_id}/responses instead",
                slug="task-waiting",
                task_status="waiting",
                ask_id=ask.get("id"),
            )
        message_id = new_id("msg")
        doc = {"id": message_id, "text": text, "images": images}
        write = chain(InboxStore.add(message_id, task_id, time.time(), doc), record(message_id) if record else None)
        said = {"id": message_id, "text": text, "image_count": len(images)}
        if run is not None:  # queued or running: given to the model at its next turn
            run.mail()  # before the write: a turn starting meanwhile reads the store again
            await self.bus.append(
                "message.user",
                said,
                write=write,
                also=[("message.queued", {"id": message_id})],
                session_id=session.id,
                task_id=task_id,
                owner=session.owner,
            )
            run.mail()  # and after it: a turn that read the store before the commit reads it again
        else:
            with self.runner.gate.task_starting(session.id):  # 409 while a checkpoint is restored
                await self.runner.continue_task(
                    task, session, reason="continue", first=("message.user", said), write=write
                )
        return message_id

    async def message_page(self, principal: Principal, session_id: str, task_id: str, after: int, limit: int) -> dict:
        """The stored conversation, oldest first, as the model saw it."""
        await self.get(principal, session_id, task_id)
        rows, markers = await self.runner.messages.page(task_id, after, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        return {
            "items": [message_resource(r, markers) for r in rows],
            "next_after": rows[-1].n if rows else after,
            "has_more": more,
        }

    async def event_page(self, principal: Principal, session_id: str, task_id: str, after: int, limit: int) -> bytes:
        """The page as JSON, built from the stored frames without re-encoding them.

        Where retention has pruned part of the range, the page says so with
        ``gap`` (as the WebSocket's gap frame does) and holds nothing below
        it: unless the page starts with the task's first event
        (``task.created``), none of its events may be missing."""
        await self.get(principal, session_id, task_id)
        rows = await self.events.page(after, limit + 1, task_id=task_id)
        more = len(rows) > limit
        rows = rows[:limit]
        # Read after the page: the bus raises the floor before the rows go,
        # so a prune racing this read is seen here.
        floor = self.bus.pruned_through
        gap = ""
        if floor > after:
            rows = [r for r in rows if r[0] > floor]
            if not rows or json.loads(rows[0][1])["event"] != "task.created":
                gap = f',"gap":{{"after":{after},"first_seq":{floor + 1}}}'
        next_after = rows[-1][0] if rows else max(after, floor)
        frames = ",".join(frame for _, frame in rows)
        return f'{{"items":[{frames}],"next_after":{next_after},"has_more":{json.dumps(more)}{gap}}}'.encode()


MESSAGE_FIELDS = (
    "images",
    "tool_calls",
    "tool_call_id",
    "name",
    "is_error",
    "tokens_before",
    "tokens_after",
    "cost_usd",
)


def message_resource(row: Row, markers: list[tuple[int, int]]) -> dict[str, Any]:
    """A stored message as ``openapi.yaml``'s ``Message``."""
    doc = row.doc
    out: dict[str, Any] = {
        "n": row.n,
        "kind": row.kind,
        "role": doc["role"],
        "source": doc.get("source", "engine"),
        "content": doc.get("content") or "",
        "created_at": iso(row.ts),
        "in_context": not hidden(row.n, row.kind, markers),
    }
    out.update({k: doc[k] for k in MESSAGE_FIELDS if k in doc})
    if row.kind != "message":
        out["replaces"] = {"from": 2, "to": doc.get("keep_from", 2) - 1}
    return out


def _suggested(pending: dict[str, Any] | None, ask_id: str, index: int, text: str | None) -> str | None:
    """The text of the chosen suggestion of a pending followup ask (422 when
    there is no such suggestion, or ``text`` is given too). A stale ask id
    is left to the answer, which says 409."""
    if text is not None:
        raise validation_problem([{"pointer": "/body/suggestion", "message": "give either suggestion or text"}])
    if pending is None or pending.get("id") != ask_id:
        return None
    if pending.get("kind") != "followup":
        raise validation_problem([{"pointer": "/body/suggestion", "message": "only a followup ask has suggestions"}])
    suggestions = pending.get("suggestions") or []
    if index >= len(suggestions):
        message = f"the ask has {len(suggestions)} suggestions (index from 0)"
        raise validation_problem([{"pointer": "/body/suggestion", "message": message}])
    return suggestions[index]
