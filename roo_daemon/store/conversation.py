"""SQL for the conversation: each task's messages and its inbox.

Messages are appended, never rewritten: row ``n`` of a task is written once.
Condensing and truncation append a *marker* row (kind ``condensed`` or
``truncated``) whose ``keep_from`` hides, from the model's view, every row
before it but the first (the task's prompt) and every earlier marker. So
the view the next request sends is ``row 1 + the latest marker + the
message rows from keep_from on``: one indexed read, however long the task.

The inbox holds user messages accepted for a task but not yet given to the
model (sent while it worked, or to continue it); the engine takes them in
the same transaction that appends them to the conversation.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from roo_daemon.store.database import Database, WriteFn

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
MESSAGE = "message"


@dataclass(slots=True)
class Row:
    """One stored message: its number in the task, kind, time and document."""

    n: int
    kind: str
    ts: float
    doc: dict[str, Any]


def hidden(n: int, kind: str, markers: list[tuple[int, int]]) -> bool:
    """Whether row ``n`` is out of the model's view, given every marker's
    ``(n, keep_from)``: a later marker hides earlier markers, and the
    messages before its ``keep_from`` but the first."""
    later = [keep for m, keep in markers if m > n]
    if not later:
        return False
    return kind != MESSAGE or (n != 1 and n < max(later))


class MessageStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    def append(task_id: str, rows: list[Row]) -> WriteFn:
        # Serialised now, on the loop, so later changes to a doc cannot race the writer.
        values = [(task_id, r.n, r.kind, r.ts, _dumps(r.doc)) for r in rows]
        return lambda c: c.executemany(
            "INSERT INTO messages (task_id, n, kind, ts, doc) VALUES (?, ?, ?, ?, ?)", values
        )

    async def view(self, task_id: str) -> tuple[list[Row], int]:
        """The rows the next request sends, in order, and the next row number."""

        def run(c: sqlite3.Connection) -> tuple[list[Row], int]:
            last = c.execute("SELECT COALESCE(MAX(n), 0) FROM messages WHERE task_id = ?", (task_id,)).fetchone()[0]
            marker = c.execute(
                "SELECT n, kind, ts, doc FROM messages WHERE task_id = ? AND kind != ? ORDER BY n DESC LIMIT 1",
                (task_id, MESSAGE),
            ).fetchone()
            keep_from = json.loads(marker[3]).get("keep_from", 2) if marker else 2
            rows = c.execute(
                "SELECT n, kind, ts, doc FROM messages WHERE task_id = ? AND kind = ? AND (n = 1 OR n >= ?) ORDER BY n",
                (task_id, MESSAGE, keep_from),
            ).fetchall()
            out = [Row(n, kind, ts, json.loads(doc)) for n, kind, ts, doc in rows]
            if marker is not None:
                out.insert(
                    1 if out and out[0].n == 1 else 0, Row(marker[0], marker[1], marker[2], json.loads(marker[3]))
                )
            return out, last + 1

        return await self.db.read(run)

    async def page(self, task_id: str, after: int, limit: int) -> tuple[list[Row], list[tuple[int, int]]]:
        """Stored rows with ``n > after`` in order, and every marker's ``(n, keep_from)``."""

        def run(c: sqlite3.Connection) -> tuple[list[Row], list[tuple[int, int]]]:
            rows = c.execute(
                "SELECT n, kind, ts, doc FROM messages WHERE task_id = ? AND n > ? ORDER BY n LIMIT ?",
                (task_id, after, limit),
            ).fetchall()
            markers = c.execute(
                "SELECT n, doc FROM messages WHERE task_id = ? AND kind != ? ORDER BY n", (task_id, MESSAGE)
            ).fetchall()
            return (
                [Row(n, kind, ts, json.loads(doc)) for n, kind, ts, doc in rows],
                [(n, json.loads(doc).get("keep_from", 2)) for n, doc in markers],
            )

        return await self.db.read(run)


def rewind(task_id: str, keep_through: int) -> WriteFn:
    """Cut a task's conversation back to row ``keep_through``, as Roo-Code's
    "restore files & task" does (a checkpoint restore): the rows after it go,
    markers included. The only rows ever removed from a live task's history,
    and only while it is not running."""
    return lambda c: c.execute("DELETE FROM messages WHERE task_id = ? AND n > ?", (task_id, keep_through)).rowcount


async def count_after(db: Database, task_id: str, n: int) -> int:
    """How many of the task's conversation rows come after row ``n``."""
    return await db.read(
        lambda c: c.execute("SELECT COUNT(*) FROM messages WHERE task_id = ? AND n > ?", (task_id, n)).fetchone()[0]
    )


class InboxStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    def add(message_id: str, task_id: str, ts: float, doc: dict[str, Any]) -> WriteFn:
        text = _dumps(doc)
        return lambda c: c.execute(
            "INSERT INTO inbox (id, task_id, ts, doc) VALUES (?, ?, ?, ?)", (message_id, task_id, ts, text)
        )

    @staticmethod
    def take(seqs: list[int]) -> WriteFn:
        """Remove messages given to the model (with the write that appends them)."""
        return lambda c: c.executemany("DELETE FROM inbox WHERE seq = ?", [(s,) for s in seqs])

    async def pending(self, task_id: str) -> list[tuple[int, dict[str, Any]]]:
        """``(seq, doc)`` of the task's waiting messages, oldest first."""
        rows = await self.db.read(
            lambda c: c.execute("SELECT seq, doc FROM inbox WHERE task_id = ? ORDER BY seq", (task_id,)).fetchall()
        )
        return [(seq, json.loads(doc)) for seq, doc in rows]

    async def count(self, task_id: str) -> int:
        return await self.db.read(
            lambda c: c.execute("SELECT COUNT(*) FROM inbox WHERE task_id = ?", (task_id,)).fetchone()[0]
        )


def delete_task_rows(c: sqlite3.Connection, session_id: str) -> None:
    """With a session: its tasks' messages and inbox (called by SessionStore.delete)."""
    for table in ("messages", "inbox"):
        c.execute(f"DELETE FROM {table} WHERE task_id IN (SELECT id FROM tasks WHERE session_id = ?)", (session_id,))
