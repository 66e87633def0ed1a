"""Who may start work in a session: new tasks, or a checkpoint restore.

A restore rewrites the workspace, so it must not overlap any task of its
session, and a task must not start while one runs. Both sides check and
claim here synchronously, on the event loop, before their first ``await``:
of a restore and a task created at the same moment, exactly one goes ahead
and the other gets 409.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from roo_daemon.problems import Problem


class SessionGate:
    def __init__(self) -> None:
        self._starting: Counter[str] = Counter()  # tasks being created, per session
        self._restoring: set[str] = set()

    @contextmanager
    def task_starting(self, session_id: str) -> Iterator[None]:
        """Held while a task is created, until the runner has it (and then
        counts it as live itself)."""
        if session_id in self._restoring:
            raise Problem(409, f"a checkpoint of session {session_id} is being restored; retry when it is done")
        self._starting[session_id] += 1
        try:
            yield
        finally:
            self._starting[session_id] -= 1
            if not self._starting[session_id]:
                del self._starting[session_id]

    @contextmanager
    def restoring(self, session_id: str, live_tasks: list[str]) -> Iterator[None]:
        """Held for a whole restore. ``live_tasks``: the session's tasks the
        runner holds (queued, running or waiting)."""
        if live_tasks or self._starting[session_id]:
            which = f" ({', '.join(live_tasks[:3])})" if live_tasks else ""
            raise Problem(
                409, f"a task of session {session_id} is queued, running or waiting{which}; restore when it has ended"
            )
        if session_id in self._restoring:
            raise Problem(409, f"a checkpoint of session {session_id} is already being restored")
        self._restoring.add(session_id)
        try:
            yield
        finally:
            self._restoring.discard(session_id)
