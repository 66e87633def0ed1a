"""SQL for checkpoints and their restores.

A checkpoint row is written in the transaction of its ``checkpoint.saved``
event, so whoever sees the event can list the checkpoint. ``repo`` names the
workspace's shadow repository (its directory under ``data_dir/checkpoints``);
``message_n`` is the last conversation row the task had stored when the
checkpoint was taken, where a restore of files and conversation cuts.
A restore's answer is kept by id for ``Idempotency-Key`` replays. The
tables are the store's schema version 3 (``roo_daemon/store/schema.py``).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from roo_daemon.store.database import Database, WriteFn

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


@dataclass(slots=True)
class Row:
    n: int
    commit: str
    message_n: int | None
    doc: dict[str, Any]


def _row(r: tuple) -> Row:
    return Row(r[0], r[1], r[2], json.loads(r[3]))


_COLUMNS = "n, commit_id, message_n, doc"


class CheckpointStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    def insert(doc: dict[str, Any], repo: str, commit: str, message_n: int | None) -> WriteFn:
        text = _dumps(doc)
        values = (doc["id"], doc["task_id"], doc["session_id"], repo, commit, message_n, text)
        return lambda c: c.execute(
            "INSERT INTO checkpoints (id, task_id, session_id, repo, commit_id, message_n, doc)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            values,
        )

    async def page(self, task_id: str, after_n: int, limit: int) -> tuple[list[Row], int | None]:
        """The task's checkpoints, oldest first, after row ``after_n``."""
        rows = await self.db.read(
            lambda c: c.execute(
                f"SELECT {_COLUMNS} FROM checkpoints WHERE task_id = ? AND n > ? ORDER BY n LIMIT ?",
                (task_id, after_n, limit + 1),
            ).fetchall()
        )
        more = len(rows) > limit
        rows = rows[:limit]
        return [_row(r) for r in rows], (rows[-1][0] if more else None)

    async def get(self, task_id: str, checkpoint_id: str) -> Row | None:
        row = await self.db.read(
            lambda c: c.execute(
                f"SELECT {_COLUMNS} FROM checkpoints WHERE task_id = ? AND id = ?", (task_id, checkpoint_id)
            ).fetchone()
        )
        return _row(row) if row else None

    async def ends(self, task_id: str) -> tuple[Row, Row] | None:
        """The task's first and last checkpoints."""

        def run(c: sqlite3.Connection) -> tuple[tuple, tuple] | None:
            first = c.execute(
                f"SELECT {_COLUMNS} FROM checkpoints WHERE task_id = ? ORDER BY n LIMIT 1", (task_id,)
            ).fetchone()
            if first is None:
                return None
            last = c.execute(
                f"SELECT {_COLUMNS} FROM checkpoints WHERE task_id = ? ORDER BY n DESC LIMIT 1", (task_id,)
            ).fetchone()
            return first, last

        found = await self.db.read(run)
        return (_row(found[0]), _row(found[1])) if found else None

    async def count_after(self, task_id: str, n: int) -> int:
        return await self.db.read(
            lambda c: c.execute(
                "SELECT COUNT(*) FROM checkpoints WHERE task_id = ? AND n > ?", (task_id, n)
            ).fetchone()[0]
        )

    @staticmethod
    def delete_after(task_id: str, n: int) -> WriteFn:
        """A rewind: the task's checkpoints later than row ``n``; returns how many."""
        return lambda c: c.execute("DELETE FROM checkpoints WHERE task_id = ? AND n > ?", (task_id, n)).rowcount

    async def repos_by_session(self) -> dict[str, set[str]]:
        """``{session id: the repositories its checkpoints are in}``."""
        rows = await self.db.read(lambda c: c.execute("SELECT DISTINCT session_id, repo FROM checkpoints").fetchall())
        out: dict[str, set[str]] = {}
        for session_id, repo in rows:
            out.setdefault(session_id, set()).add(repo)
        return out

    async def live_tasks(self, session_id: str) -> list[tuple[str, str]]:
        """``(id, status)`` of the session's stored tasks that are not finished."""
        return await self.db.read(
            lambda c: c.execute(
                "SELECT id, status FROM tasks WHERE session_id = ? AND status IN ('queued', 'running', 'waiting')",
                (session_id,),
            ).fetchall()
        )

    async def tasks_of(self, session_id: str) -> list[str]:
        rows = await self.db.read(
            lambda c: c.execute(
                "SELECT DISTINCT task_id FROM checkpoints WHERE session_id = ?", (session_id,)
            ).fetchall()
        )
        return [r[0] for r in rows]

    @staticmethod
    def delete_session(session_id: str) -> WriteFn:
        def run(c: sqlite3.Connection) -> None:
            c.execute("DELETE FROM checkpoints WHERE session_id = ?", (session_id,))
            c.execute("DELETE FROM checkpoint_restores WHERE session_id = ?", (session_id,))

        return run

    @staticmethod
    def insert_restore(restore_id: str, session_id: str, doc: dict[str, Any]) -> WriteFn:
        text = _dumps(doc)
        return lambda c: c.execute(
            "INSERT INTO checkpoint_restores (id, session_id, doc) VALUES (?, ?, ?)", (restore_id, session_id, text)
        )

    async def restore(self, restore_id: str) -> dict[str, Any] | None:
        row = await self.db.read(
            lambda c: c.execute("SELECT doc FROM checkpoint_restores WHERE id = ?", (restore_id,)).fetchone()
        )
        return json.loads(row[0]) if row else None
