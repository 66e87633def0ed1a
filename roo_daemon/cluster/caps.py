"""Per-principal caps that hold for the cluster, not per node.

``limits.max_live_tasks_per_principal``, ``max_sessions_per_principal`` and
``ws_connections_per_principal`` bound what one key holds. On SQLite one
daemon holds everything, and the managers count in memory (:class:`LocalCaps`
leaves them to it). On PostgreSQL several daemons share the database, and a
node's memory sees only its own share, so :class:`ClusterCaps` counts in the
database, *inside the transaction that inserts* the new row (a write function
chained before the insert): the count and the insert commit together or not
at all, so two nodes creating at once cannot both pass a count taken before
either inserted.

Serialising the check: each check takes the transaction advisory lock
``pg_advisory_xact_lock(hashtext('roo-cap:' || principal))``, held until its
transaction commits, so the next check for that principal (any node) waits
and then counts the committed row. Lock order: every check takes the event
log's lock (``EVENT_SEQ_LOCK``) *first*. A create's transaction appends its
event (which takes that lock) after the check, and a group commit may hold
the event lock from an earlier write in its batch when it reaches a check;
taking the cap lock before the event lock in one transaction and after it in
another would deadlock two nodes. With the event lock always first, no
transaction ever waits for it while holding a cap lock.

WebSocket connections are rows of ``ws_connections`` (inserted on accept
with the count in the same transaction, deleted on close, a node's own rows
deleted at its start). Only rows of nodes whose lease is alive count, so a
dead node's connections stop counting without anyone cleaning up.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from roo_daemon.cluster.nodes import DB_NOW
from roo_daemon.config import node_id
from roo_daemon.models import new_id
from roo_daemon.problems import Problem
from roo_daemon.store.database import Database, WriteFn

log = logging.getLogger("roo_daemon.cluster")

LIVE_TASK_STATUSES = ("queued", "running", "waiting")
_CAP_LOCK = "SELECT pg_advisory_xact_lock(hashtext('roo-cap:' || ?))"


def too_many_tasks(principal: str, cap: int) -> Problem:
    return Problem(
        429,
        f"{principal!r} already has {cap} live tasks (queued, running or waiting); retry when one has finished",
        headers={"Retry-After": "5"},
    )


def too_many_sessions(principal: str, cap: int) -> Problem:
    return Problem(429, f"{principal!r} already has {cap} sessions; delete one first", headers={"Retry-After": "60"})


def too_many_connections(principal: str) -> Problem:
    return Problem(
        429, f"{principal!r} already has the most WebSocket connections allowed", headers={"Retry-After": "5"}
    )


class LocalCaps:
    """SQLite (one daemon): the managers and the WebSocket handler count in
    memory, exactly as before clusters; nothing is written."""

    shared = False

    def task_slot(self, principal: str, cap: int) -> WriteFn | None:
        return None

    def session_slot(self, principal: str, cap: int) -> WriteFn | None:
        return None

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass


class ClusterCaps:
    """PostgreSQL: the caps counted in the database (see the module's docstring)."""

    shared = True

    def __init__(self, db: Database, node: str, event_lock: int) -> None:
        self.db = db
        self.node_id = node
        self._event_lock = event_lock
        # Connections whose row could not be deleted at close (the database
        # was down): deleted by this node's next admission, in its transaction.
        self._stale: set[str] = set()

    def _lock(self, c: Any, principal: str) -> None:
        c.execute("SELECT pg_advisory_xact_lock(?)", (self._event_lock,))  # first: see the lock order above
        c.execute(_CAP_LOCK, (principal,))

    def task_slot(self, principal: str, cap: int) -> WriteFn:
        """A write that raises the 429 unless ``principal`` has fewer than
        ``cap`` live tasks in the cluster; chain it before the task's insert."""

        def check(c: Any) -> None:
            self._lock(c, principal)
            marks = ",".join("?" * len(LIVE_TASK_STATUSES))
            live = c.execute(
                "SELECT count(*) FROM tasks t JOIN sessions s ON s.id = t.session_id"
                f" WHERE s.owner = ? AND t.status IN ({marks})",
                (principal, *LIVE_TASK_STATUSES),
            ).fetchone()[0]
            if live >= cap:
                raise too_many_tasks(principal, cap)

        return check

    def session_slot(self, principal: str, cap: int) -> WriteFn:
        """A write that raises the 429 unless ``principal`` owns fewer than
        ``cap`` sessions; chain it before the session's insert."""

        def check(c: Any) -> None:
            self._lock(c, principal)
            owned = c.execute("SELECT count(*) FROM sessions WHERE owner = ?", (principal,)).fetchone()[0]
            if owned >= cap:
                raise too_many_sessions(principal, cap)

        return check

    # -- WebSocket connections ---------------------------------------------

    # Rows that count: this node's, and those of nodes whose lease is alive
    # (by the database's clock); a dead node's (or a node whose row is gone)
    # stop counting as its lease runs out, with nobody deleting them.
    _COUNT_CONNECTIONS = (
        "SELECT count(*) FROM ws_connections w LEFT JOIN nodes n ON n.id = w.node_id"
        f" WHERE w.principal = ? AND (w.node_id = ? OR n.lease_until >= {DB_NOW})"
    )

    async def open_connection(self, principal: str, cap: int) -> str:
        """Admit a WebSocket connection of ``principal``: its row, inserted
        unless the principal already holds ``cap`` (429). Returns the row's
        id, for :meth:`close_connection`."""
        conn_id = new_id("wsc")
        stale = list(self._stale)

        def admit(c: Any) -> None:
            if stale:
                marks = ",".join("?" * len(stale))
                c.execute(f"DELETE FROM ws_connections WHERE id IN ({marks})", stale)
            self._lock(c, principal)
            if c.execute(self._COUNT_CONNECTIONS, (principal, self.node_id)).fetchone()[0] >= cap:
                raise too_many_connections(principal)
            c.execute(
                "INSERT INTO ws_connections (id, node_id, principal, opened_at)"
                " VALUES (?, ?, ?, extract(epoch from clock_timestamp()))",
                (conn_id, self.node_id, principal),
            )

        await self.db.write(admit)  # a 429 rolls the delete back too: the stale rows stay listed
        self._stale.difference_update(stale)
        return conn_id

    def close_connection(self, conn_id: str) -> None:
        """Delete the connection's row (not awaited: a closing socket waits
        for nothing). Should the delete fail, the next admission retries it."""
        if self.db.closed:
            return  # the daemon is stopping: close() deletes every row of this node

        def done(fut: asyncio.Future) -> None:
            if not fut.cancelled() and fut.exception() is not None:
                log.warning("could not forget WebSocket connection %s (%s); retried later", conn_id, fut.exception())
                self._stale.add(conn_id)

        self.db.write(lambda c: c.execute("DELETE FROM ws_connections WHERE id = ?", (conn_id,))).add_done_callback(
            done
        )

    async def start(self) -> None:
        """At start: this node's rows are from its previous run, whose
        connections are gone."""
        await self.db.write(self._forget_mine)

    async def close(self) -> None:
        """At stop, before the store closes: this node's connections are gone."""
        try:
            await self.db.write(self._forget_mine)
        except Exception as e:  # the database is down: the next start deletes them
            log.warning("could not forget this node's WebSocket connections at stop (%s)", e)

    def _forget_mine(self, c: Any) -> None:
        c.execute("DELETE FROM ws_connections WHERE node_id = ?", (self.node_id,))


Caps = LocalCaps | ClusterCaps


def make_caps(db: Database, cfg: Any) -> Caps:
    """The caps' form for the configured store."""
    if db.backend != "postgresql":
        return LocalCaps()
    from roo_daemon.store.postgres import EVENT_SEQ_LOCK

    return ClusterCaps(db, node_id(cfg), EVENT_SEQ_LOCK)
