"""The seam between the task runner and the engine.

:class:`TaskContext` is everything a running task may do to the outside
world (events, asks, usage, todos); :class:`Engine` is what the runner calls.
The runner implements the context (``roo_daemon.tasks.run.TaskRun``); the
engine implements the loop (``roo_daemon.engine.loop.AgentLoop``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from roo_daemon.models import Session, Task

if TYPE_CHECKING:
    from roo_daemon.engine.conversation import Conversation
    from roo_daemon.store.conversation import Row


@dataclass(frozen=True, slots=True)
class Answer:
    """The client's answer to an ask."""

    approve: bool
    text: str | None = None
    images: list[str] = field(default_factory=list)  # data URLs (a follow-up answer's)
    expired: bool = False  # given by the ask's expiry (ask_timeouts), not by the client


class TaskFailure(Exception):
    """The task cannot go on; ``code`` and ``message`` become the task's ``error``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class TaskContext(Protocol):
    task: Task
    session: Session
    images: list[str]
    supports_images: bool  # the task's model takes images (its profile's ``supports_images``)
    settings: dict[str, Any]  # the config's ``tools`` section
    modes: dict[str, Any]  # slug -> engine.modes.Mode available to this task
    previous_mode: str  # the mode before the last switch_mode

    def publish(self, name: str, data: dict[str, Any]) -> None:
        """Append an event without waiting for it to be durable (streamed text)."""

    async def flow_control(self) -> None:
        """Wait if the event log is far behind (called while streaming)."""

    async def emit(self, name: str, data: dict[str, Any]) -> None:
        """Append an event and wait until it is durable."""

    async def load_conversation(self) -> Conversation:
        """The task's stored conversation, as the next request would send it."""

    def record(
        self,
        rows: list[Row],
        event: tuple[str, dict[str, Any]] | None = None,
        *,
        consumed: list[int] | None = None,
        state: bool = False,
    ) -> None:
        """Store new conversation rows, in one transaction with ``event``,
        the removal of the inbox messages ``consumed`` and (``state``) the
        task with its loop state. Not awaited, like ``publish``."""

    async def inbox(self) -> list[tuple[int, dict[str, Any]]]:
        """Messages the client sent for the task's next turn: ``(seq, {text, images})``."""

    async def ask(self, kind: str, **payload: Any) -> Answer:
        """Put the task in ``waiting`` with a pending ask; resume on the answer."""

    async def add_usage(self, usage: dict[str, Any]) -> None:
        """Add one provider request's usage to the task's totals."""

    async def set_todos(self, todos: list[dict[str, str]]) -> None:
        """Replace the task's todo list."""

    async def switch_mode(self, slug: str, reason: str) -> None:
        """Change the task's mode (persisted, with a ``mode.switched`` event)."""

    async def run_subtask(self, mode: str, message: str, todos: list[dict[str, str]]) -> Answer:
        """Start a child task in the same session and wait (ask kind
        ``subtask``) until it ends: approve with its result, or not."""


class Engine(Protocol):
    async def run(self, ctx: TaskContext) -> str:
        """Carry the task out; return the completion result, raise
        :class:`TaskFailure` to fail it. Cancellation arrives as
        ``asyncio.CancelledError`` and must be let through."""
