"""SQL for each resource. Each class turns resource operations into write
functions (run by :class:`Database` in one transaction, so a manager can
commit a resource change and its event together) or reads."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from typing import Any

from roo_daemon.models import Session, Task
from roo_daemon.store.conversation import delete_task_rows
from roo_daemon.store.database import Database, WriteFn

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


EventRow = tuple[int, str, str | None, str | None, str | None, float, str]  # seq, event, ids, owner, ts, frame


def json_text(c: Any, column: str, *path: str) -> str:
    """SQL for the text at ``path`` in the JSON document ``column`` holds,
    on the connection's backend (PostgreSQL's adapter has ``dialect``)."""
    if getattr(c, "dialect", "sqlite") == "postgresql":
        return f"({column}::jsonb #>> '{{{','.join(path)}}}')"
    return f"json_extract({column}, '$.{'.'.join(path)}')"


class StaleWrite(Exception):
    """A conditional write found its row changed by someone else first."""


def chain(*fns: WriteFn | None) -> WriteFn:
    """One write function that runs several in order, in the same transaction."""
    parts = [f for f in fns if f is not None]

    def run(conn: sqlite3.Connection) -> Any:
        result = None
        for f in parts:
            result = f(conn)
        return result

    return run


async def _newest_first(
    db: Database, table: str, equal: dict[str, Any], after_n: int, limit: int
) -> tuple[list[dict[str, Any]], int | None]:
    """One page of a resource table, newest first (as the spec says): rows
    older than ``after_n`` when it is set, matching the non-None ``equal``
    columns. Returns the documents and the row number to continue after, or
    None on the last page. ``table`` and the column names are ours, never input."""

    def run(c: sqlite3.Connection) -> list[tuple[int, str]]:
        sql = f"SELECT n, doc FROM {table} WHERE 1 = 1"
        args: list[Any] = []
        if after_n:
            sql += " AND n < ?"
            args.append(after_n)
        for column, value in equal.items():
            if value is not None:
                sql += f" AND {column} = ?"
                args.append(value)
        return c.execute(sql + " ORDER BY n DESC LIMIT ?", (*args, limit + 1)).fetchall()

    rows = await db.read(run)
    more = len(rows) > limit
    rows = rows[:limit]
    return [json.loads(d) for _, d in rows], (rows[-1][0] if more else None)


class SessionStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    def insert(session: Session) -> WriteFn:
        doc = _dumps(session.to_doc())
        return lambda c: c.execute(
            "INSERT INTO sessions (id, owner, doc) VALUES (?, ?, ?)", (session.id, session.owner, doc)
        )

    @staticmethod
    def update(session: Session) -> WriteFn:
        doc = _dumps(session.to_doc())  # now, on the loop: later changes cannot race the writer
        return lambda c: c.execute("UPDATE sessions SET doc = ? WHERE id = ?", (doc, session.id))

    @staticmethod
    def delete(session_id: str) -> WriteFn:
        def run(c: sqlite3.Connection) -> None:
            c.execute("DELETE FROM events WHERE session_id = ?", (session_id,))
            delete_task_rows(c, session_id)
            c.execute("DELETE FROM tasks WHERE session_id = ?", (session_id,))
            c.execute("DELETE FROM sessions WHERE id = ?", (session_id,))

        return run

    async def get(self, session_id: str) -> Session | None:
        row = await self.db.read(lambda c: c.execute("SELECT doc FROM sessions WHERE id = ?", (session_id,)).fetchone())
        return Session.from_doc(json.loads(row[0])) if row else None

    async def load_all(self) -> list[Session]:
        rows = await self.db.read(lambda c: c.execute("SELECT doc FROM sessions ORDER BY n").fetchall())
        return [Session.from_doc(json.loads(r[0])) for r in rows]

    async def workspaces(self) -> set[str]:
        """Every stored session's workspace, as stored now (also sessions
        other nodes created a moment ago). Parsed on the reader's thread."""

        def read(c: Any) -> set[str]:
            return {json.loads(d)["workspace"] for (d,) in c.execute("SELECT doc FROM sessions").fetchall()}

        return await self.db.read(read)

    async def page(self, owner: str | None, after_n: int, limit: int) -> tuple[list[Session], int | None]:
        docs, last = await _newest_first(self.db, "sessions", {"owner": owner}, after_n, limit)
        return [Session.from_doc(d) for d in docs], last


class TaskStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    def insert(task: Task, inputs: dict[str, Any]) -> WriteFn:
        doc, inp = _dumps(task.to_doc()), _dumps(inputs)
        return lambda c: c.execute(
            "INSERT INTO tasks (id, session_id, status, doc, inputs) VALUES (?, ?, ?, ?, ?)",
            (task.id, task.session_id, task.status, doc, inp),
        )

    @staticmethod
    def update(task: Task) -> WriteFn:
        # Serialise now, on the loop, so later mutations of ``task`` cannot
        # race the writer thread.
        doc = _dumps(task.to_doc())
        return lambda c: c.execute("UPDATE tasks SET status = ?, doc = ? WHERE id = ?", (task.status, doc, task.id))

    @staticmethod
    def update_if(task: Task, status_was: str, ask_id: str | None = None) -> WriteFn:
        """Update only if the stored task still has status ``status_was`` (and
        pending ask ``ask_id``): a compare-and-set, so of two writers racing
        on one task (a continuation, an answer, an expiry, another daemon on
        the same store) exactly one wins; the other's write raises StaleWrite
        and rolls back with everything chained to it."""
        doc = _dumps(task.to_doc())

        def run(c: sqlite3.Connection) -> None:
            sql = "UPDATE tasks SET status = ?, doc = ? WHERE id = ? AND status = ?"
            args: list[Any] = [task.status, doc, task.id, status_was]
            if ask_id is not None:
                sql += f" AND {json_text(c, 'doc', 'pending_ask', 'id')} = ?"
                args.append(ask_id)
            if c.execute(sql, args).rowcount != 1:
                raise StaleWrite(f"task {task.id} is no longer {status_was}")

        return run

    async def get(self, session_id: str, task_id: str) -> Task | None:
        row = await self.db.read(
            lambda c: c.execute(
                "SELECT doc FROM tasks WHERE id = ? AND session_id = ?", (task_id, session_id)
            ).fetchone()
        )
        return Task.from_doc(json.loads(row[0])) if row else None

    async def inputs(self, task_id: str) -> dict[str, Any]:
        row = await self.db.read(lambda c: c.execute("SELECT inputs FROM tasks WHERE id = ?", (task_id,)).fetchone())
        return json.loads(row[0]) if row and row[0] else {}

    async def page(
        self, session_id: str, status: str | None, after_n: int, limit: int
    ) -> tuple[list[Task], int | None]:
        docs, last = await _newest_first(self.db, "tasks", {"session_id": session_id, "status": status}, after_n, limit)
        return [Task.from_doc(d) for d in docs], last

    async def page_all(
        self, owner: str | None, session_id: str | None, status: str | None, after_n: int, limit: int
    ) -> tuple[list[Task], int | None]:
        """A page of tasks across sessions, newest first: those of sessions
        ``owner`` owns (every session's if None), optionally of one session
        and one status. The owner is the session's (tasks have none of their
        own), so a task is listed exactly when its session is visible."""

        def run(c: sqlite3.Connection) -> list[tuple[int, str]]:
            sql = "SELECT t.n, t.doc FROM tasks t JOIN sessions s ON s.id = t.session_id WHERE 1 = 1"
            args: list[Any] = []
            for clause, value in (
                (" AND t.n < ?", after_n or None),
                (" AND s.owner = ?", owner),
                (" AND t.session_id = ?", session_id),
                (" AND t.status = ?", status),
            ):
                if value is not None:
                    sql += clause
                    args.append(value)
            return c.execute(sql + " ORDER BY t.n DESC LIMIT ?", (*args, limit + 1)).fetchall()

        rows = await self.db.read(run)
        more = len(rows) > limit
        rows = rows[:limit]
        return [Task.from_doc(json.loads(d)) for _, d in rows], (rows[-1][0] if more else None)

    async def resume_pending(self) -> list[Task]:
        """Tasks the daemon interrupted as it stopped, to resume at start."""
        rows = await self.db.read(
            lambda c: c.execute("SELECT doc FROM tasks WHERE status = 'interrupted' ORDER BY n").fetchall()
        )
        # Filtered here, not in SQL: the same on both backends, and
        # interrupted tasks are few.
        docs = [json.loads(r[0]) for r in rows]
        return [Task.from_doc(d) for d in docs if (d.get("state") or {}).get("resume_pending") == 1]

    async def with_status(self, statuses: tuple[str, ...]) -> list[Task]:
        marks = ",".join("?" * len(statuses))
        rows = await self.db.read(
            lambda c: c.execute(f"SELECT doc FROM tasks WHERE status IN ({marks}) ORDER BY n", statuses).fetchall()
        )
        return [Task.from_doc(json.loads(r[0])) for r in rows]


class EventStore:
    """The append-only event log. ``frame`` is the event's serialised
    envelope, stored once and replayed byte for byte.

    Here (SQLite, one daemon per store) the bus numbers events on the loop
    before they are written: ``assigns_seq`` is False. The PostgreSQL log
    (``store/postgres.py``), shared by several daemons, numbers them itself
    as it inserts them."""

    assigns_seq = False

    def __init__(self, db: Database) -> None:
        self.db = db

    INSERT = "INSERT INTO events (seq, event, session_id, task_id, owner, ts, frame) VALUES (?, ?, ?, ?, ?, ?, ?)"

    def insert(self, items: list[tuple[Any, EventRow]]) -> WriteFn:
        """A write of the bus's ``(event, row)`` pairs, for a transaction with other writes."""
        rows = [row for _, row in items]
        return lambda c: c.executemany(EventStore.INSERT, rows)

    def append(
        self, item: tuple[Any, EventRow], after: Callable[[], None], check: WriteFn | None = None
    ) -> asyncio.Future:
        """One event on its own: rows share one statement per commit (each
        fails alone). ``check`` (a fence check, several nodes only) goes in
        the same transaction."""
        if check is not None:
            row = item[1]
            return self.db.write(chain(check, lambda c: c.execute(EventStore.INSERT, row)), after=after)
        return self.db.write_row(self.INSERT, item[1], after=after)

    async def last_seq(self) -> int:
        def run(c: sqlite3.Connection) -> int:
            # sqlite_sequence remembers the highest seq ever used, even after
            # the rows are deleted, so seq never goes back after a restart.
            row = c.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
            return row[0] if row else 0

        return await self.db.read(run)

    async def page(
        self,
        after: int,
        limit: int,
        session_id: str | None = None,
        task_id: str | None = None,
        owner: str | None = None,
    ) -> list[tuple[int, str]]:
        """``(seq, frame)`` pairs with ``seq > after`` matching the filters, in order."""
        sql = "SELECT seq, frame FROM events WHERE seq > ?"
        args: list[Any] = [after]
        for column, value in (("task_id", task_id), ("session_id", session_id), ("owner", owner)):
            if value is not None:
                sql += f" AND {column} = ?"
                args.append(value)
        sql += " ORDER BY seq LIMIT ?"
        args.append(limit)
        return await self.db.read(lambda c: c.execute(sql, args).fetchall())

    async def since(self, after: int, limit: int) -> list[tuple[int, str, str | None, str | None, str | None, str]]:
        """Whole rows (``seq, event, session_id, task_id, owner, frame``) with
        ``seq > after``, in order: what fan-out needs of another node's events."""
        sql = "SELECT seq, event, session_id, task_id, owner, frame FROM events WHERE seq > ? ORDER BY seq LIMIT ?"
        return await self.db.read(lambda c: c.execute(sql, (after, limit)).fetchall())

    async def listen(self, on_seq: Callable[[int | None], None]) -> None:
        """Other writers' commits: none on SQLite (one daemon per store)."""

    async def prune_floor(self, max_events: int, older_than: float) -> int:
        """The highest seq beyond retention (by count or by age); 0 if none."""

        def run(c: sqlite3.Connection) -> int:
            last = c.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0]
            by_age = c.execute("SELECT COALESCE(MAX(seq), 0) FROM events WHERE ts < ?", (older_than,)).fetchone()[0]
            return max(last - max_events, by_age, 0)

        return await self.db.read(run)

    @staticmethod
    def prune(floor: int) -> WriteFn:
        """Drop the events up to ``floor``; remember it, so a replay from
        before it can be told there is a gap (also after a restart)."""

        def run(c: sqlite3.Connection) -> int:
            cur = c.execute("DELETE FROM events WHERE seq <= ?", (floor,))
            dropped = cur.rowcount
            if dropped:
                # The floor only rises (in Python: the same SQL on both backends).
                row = c.execute("SELECT v FROM meta WHERE k = 'pruned_through'").fetchone()
                highest = max(floor, int(row[0]) if row else 0)
                c.execute(
                    "INSERT INTO meta (k, v) VALUES ('pruned_through', ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
                    (str(highest),),
                )
            return dropped

        return run

    async def pruned_through(self) -> int:
        row = await self.db.read(lambda c: c.execute("SELECT v FROM meta WHERE k = 'pruned_through'").fetchone())
        return int(row[0]) if row else 0


class IdempotencyStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, principal: str, scope: str, key: str) -> tuple[str, str] | None:
        """``(body_hash, resource_id)`` of an earlier request with this key."""
        return await self.db.read(
            lambda c: c.execute(
                "SELECT body_hash, resource_id FROM idempotency WHERE principal = ? AND scope = ? AND key = ?",
                (principal, scope, key),
            ).fetchone()
        )

    @staticmethod
    def insert(principal: str, scope: str, key: str, body_hash: str, resource_id: str, now: float) -> WriteFn:
        return lambda c: c.execute(
            "INSERT INTO idempotency (principal, scope, key, body_hash, resource_id, created)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (principal, scope, key, body_hash, resource_id, now),
        )

    @staticmethod
    def prune(older_than: float) -> WriteFn:
        return lambda c: c.execute("DELETE FROM idempotency WHERE created < ?", (older_than,))
