"""Following one task (and its subtasks) to its end: what ``run``, ``attach``
and ``continue`` share.

Events of the task's session stream in; those of the task and of the
subtasks it spawns are shown. An ask is answered by ``--yes`` (tools and
commands), or by the person at the terminal, or, with ``--no-input`` or
no input left, left waiting (exit 4). Before prompting, the task is read
back: a replayed ask someone already answered is not asked again, and an
``ask.answered`` arriving while the prompt is open withdraws it.

Ctrl-C cancels the task and waits for it to end; a second Ctrl-C stops
waiting and says how to reattach. ``attach`` detaches on the first one.
"""

from __future__ import annotations

import asyncio
import json
import signal
from dataclasses import dataclass
from typing import Any, TextIO

from roo_daemon.client.api import DaemonClient
from roo_daemon.client.errors import ClientError
from roo_daemon.client.events import EventStream
from roo_daemon.client.prompt import Lines, ask_person
from roo_daemon.client.render import Transcript

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CANCELLED, EXIT_WAITING = 0, 1, 2, 3, 4
STATUS_EXIT = {"completed": EXIT_OK, "failed": EXIT_FAILED, "cancelled": EXIT_CANCELLED, "interrupted": EXIT_CANCELLED}
_ENDS = {"task.completed": "completed", "task.failed": "failed", "task.cancelled": "cancelled"}


@dataclass
class FollowOptions:
    json: bool = False
    yes: bool = False  # approve tool and command asks as they come
    no_input: bool = False  # never prompt: a waiting task ends the command (exit 4)
    follow: bool = False  # stay after the task ends: a continuation streams on
    cancel_on_interrupt: bool = True  # False: Ctrl-C only detaches (attach)


class Follower:
    def __init__(
        self,
        client: DaemonClient,
        session_id: str,
        task_id: str,
        opts: FollowOptions,
        out: TextIO,
        err: TextIO,
        lines: Lines | None = None,
    ) -> None:
        self.client = client
        self.session_id = session_id
        self.root = task_id
        self.opts = opts
        self.err = err
        self.out = out
        self.lines = lines or Lines()
        self.transcript = Transcript(out)
        self.tree = {task_id}
        self.transcript.labels[task_id] = ""
        self.final: str | None = None
        self.interrupts = 0
        self._outcome: asyncio.Future[int] | None = None
        self._prompts: dict[str, asyncio.Task[None]] = {}
        self._prompt_lock = asyncio.Lock()
        self._helpers: set[asyncio.Task[Any]] = set()

    def notice(self, text: str) -> None:
        self.err.write(text + "\n")
        self.err.flush()

    def _finish(self, code: int) -> None:
        if self._outcome is not None and not self._outcome.done():
            self._outcome.set_result(code)

    def _fail(self, error: BaseException) -> None:
        if self._outcome is not None and not self._outcome.done():
            self._outcome.set_exception(error)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._helpers.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._helpers.discard(t)
            if not t.cancelled() and t.exception() is not None:
                self._fail(t.exception())  # type: ignore[arg-type]

        task.add_done_callback(done)
        return task

    async def follow(self, stream: EventStream) -> int:
        """Show the task until it ends (or the person or ``--no-input`` ends
        the command); the exit status."""
        loop = asyncio.get_running_loop()
        self._outcome = loop.create_future()
        loop.add_signal_handler(signal.SIGINT, self._on_interrupt)
        consume = self._spawn(self._consume(stream))
        try:
            return await self._outcome
        finally:
            loop.remove_signal_handler(signal.SIGINT)
            for t in [consume, *self._helpers]:
                t.cancel()
            stream.close()
            if not self.opts.json and self.final and (summary := self.transcript.summary()):
                self.notice(summary)

    async def _consume(self, stream: EventStream) -> None:
        async for ev in stream:
            name, tid, data = ev.get("event"), ev.get("task_id"), ev.get("data") or {}
            if name == "task.created" and data.get("parent_task_id") in self.tree and tid:
                self.tree.add(tid)
                self.transcript.labels[tid] = f"[{tid[:12]}] "
            if tid not in self.tree and name != "gap":
                continue
            if self.opts.json:
                self.out.write(json.dumps(ev, ensure_ascii=False, separators=(",", ":")) + "\n")
                self.out.flush()
            else:
                self.transcript.event(ev)
            if name == "ask" and data.get("kind") != "subtask":
                self._prompts[data["id"]] = self._spawn(self._on_ask(tid, data))  # type: ignore[arg-type]
            elif name == "ask.answered" and (prompt := self._prompts.pop(data.get("ask_id", ""), None)):
                prompt.cancel()  # answered elsewhere (or by us): withdraw the question
            if tid == self.root:
                # task.status comes first for every end, but the specific event
                # (with the result or error) follows it; interrupted has none.
                status = _ENDS.get(name) or ("interrupted" if data.get("status") == "interrupted" else None)
                if status is not None:
                    self.final = status
                    if not self.opts.follow:
                        self._finish(STATUS_EXIT[status])
                        return
                elif name == "task.status" and data.get("status") not in STATUS_EXIT:
                    self.final = None  # continued: it runs again
        self._finish(STATUS_EXIT.get(self.final or "", EXIT_FAILED))

    # -- asks -----------------------------------------------------------------

    async def _on_ask(self, task_id: str, ask: dict[str, Any]) -> None:
        task = await self.client.get_task(self.session_id, task_id)
        if (task.get("pending_ask") or {}).get("id") != ask["id"]:
            return  # a replayed ask, answered long ago
        kind = ask.get("kind")
        if self.opts.yes and kind in ("tool", "command"):
            await self._respond(task_id, ask, True, None)
            return
        async with self._prompt_lock:
            answer = None if self.opts.no_input else await ask_person(ask, self.lines, self.err)
        if answer is None:
            verbs = "answer" if kind == "followup" else "approve|deny"
            self.notice(f"task {task_id} is waiting for an answer ({kind}): roo-daemon {verbs} {task_id}")
            self._finish(EXIT_WAITING)
            return
        await self._respond(task_id, ask, *answer)

    async def _respond(self, task_id: str, ask: dict[str, Any], approve: bool, text: str | None) -> None:
        try:
            await self.client.respond(self.session_id, task_id, ask["id"], approve, text)
        except ClientError as e:
            if e.status != 409:
                raise
            self.notice(f"ask {ask['id']} was answered elsewhere")

    # -- Ctrl-C -----------------------------------------------------------------

    def _on_interrupt(self) -> None:
        self.interrupts += 1
        if self.final is not None:
            self._finish(STATUS_EXIT[self.final])  # --follow after the end: just stop
        elif self.interrupts == 1 and self.opts.cancel_on_interrupt:
            self.notice(f"cancelling task {self.root}; press Ctrl-C again to stop waiting and leave it")
            self._spawn(self._cancel())
        else:
            self.notice(f"left task {self.root} as it is; reattach with: roo-daemon attach {self.root}")
            self._finish(EXIT_CANCELLED)

    async def _cancel(self) -> None:
        try:
            await self.client.cancel_task(self.session_id, self.root)
        except ClientError as e:
            if e.status != 409:  # 409: it ended meanwhile, and its end is on its way
                raise
