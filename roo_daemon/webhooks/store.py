"""The webhook cursors' SQL: per (session, webhook), the seq of the last
event it is done with (delivered, or not wanted) and its counters. A cursor
only moves forward, and moves after the receiver answered 2xx: a restart
resumes after the last event a receiver acknowledged."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from roo_daemon.store.database import Database, WriteFn


class CursorStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def load(self) -> dict[tuple[str, str], tuple[int, dict[str, Any]]]:
        """Every cursor: ``(session_id, hook_id) -> (seq, counters)``."""
        rows = await self.db.read(
            lambda c: c.execute("SELECT session_id, hook_id, seq, doc FROM webhook_cursors").fetchall()
        )
        return {(r[0], r[1]): (r[2], json.loads(r[3])) for r in rows}

    async def load_session(self, session_id: str) -> dict[tuple[str, str], tuple[int, dict[str, Any]]]:
        """One session's cursors, as :meth:`load` (a session this node has just come to own)."""
        rows = await self.db.read(
            lambda c: c.execute(
                "SELECT session_id, hook_id, seq, doc FROM webhook_cursors WHERE session_id = ?", (session_id,)
            ).fetchall()
        )
        return {(r[0], r[1]): (r[2], json.loads(r[3])) for r in rows}

    @staticmethod
    def put(session_id: str, hook_id: str, seq: int, counters: dict[str, Any]) -> WriteFn:
        """Insert or move a cursor (never back: a late write cannot undo a later one)."""
        doc = json.dumps(counters, separators=(",", ":"))
        return lambda c: c.execute(
            "INSERT INTO webhook_cursors (session_id, hook_id, seq, doc) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (session_id, hook_id) DO UPDATE SET seq = excluded.seq, doc = excluded.doc "
            "WHERE excluded.seq >= webhook_cursors.seq",
            (session_id, hook_id, seq, doc),
        )

    @staticmethod
    def start(session_id: str, hook_ids: list[str], seq: int) -> WriteFn:
        """Cursors for a new session's webhooks (in its creating transaction):
        each delivers from the session's first event."""

        def run(c: sqlite3.Connection) -> None:
            c.executemany(
                "INSERT INTO webhook_cursors (session_id, hook_id, seq, doc) VALUES (?, ?, ?, '{}')"
                " ON CONFLICT (session_id, hook_id) DO NOTHING",
                [(session_id, hook_id, seq) for hook_id in hook_ids],
            )

        return run

    @staticmethod
    def delete_session(session_id: str) -> WriteFn:
        return lambda c: c.execute("DELETE FROM webhook_cursors WHERE session_id = ?", (session_id,))

    async def events(self, session_id: str, after: int, limit: int) -> list[tuple[int, str, str]]:
        """``(seq, event, frame)`` of the session's events after ``after``, in order."""
        return await self.db.read(
            lambda c: c.execute(
                "SELECT seq, event, frame FROM events WHERE session_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                (session_id, after, limit),
            ).fetchall()
        )
