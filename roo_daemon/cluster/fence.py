"""Fencing: a write for a session is stored only while this node owns it.

A node owns a session with a *fence*, a number that grows each time the
session changes hands (``session_owners.fence``). Every write a task run
makes carries a :class:`FenceCheck` for the fence this node took: in the
same transaction, it reads the session's owner row and refuses the whole
transaction (:class:`Fenced`) unless it still names this node and that
fence. A node whose lease ran out and whose sessions were taken over can
therefore never write for them again, even if it comes back, and a node
that reclaims its own sessions after a restart (fence + 1) refuses its
previous incarnation's late writes too.

The row is read ``FOR SHARE``: a takeover (an ``UPDATE`` of that row)
waits for a write that passed the check to commit, and the new owner then
reads everything it wrote.

Lock order: a transaction takes the event log's advisory lock
(``EVENT_SEQ_LOCK``) *before* any ``session_owners`` row lock, as before a
cap's lock (roo_daemon/cluster/caps.py). Otherwise a node's group commit
holding a row ``FOR SHARE`` and waiting for the log's lock, and a
takeover's transaction holding the log's lock (an event earlier in its
batch) and waiting for that row, would deadlock. So the check takes the
log's lock first (``lock``; re-taking it in the same transaction is free),
and so do the claims in ``ownership.py``. Fencing is PostgreSQL's (the cluster's); on
SQLite there are no checks at all.
"""

from __future__ import annotations

from typing import Any

from roo_daemon.problems import Problem

RETRY_AFTER_SECONDS = 1


class Fenced(Problem):
    """A write for a session this node no longer owns: nothing of it was
    stored. 503 ``owner-changed`` if a request meets it (it raced a
    takeover): sent again, the request reaches the new owner."""

    def __init__(self, session_id: str, found: tuple[str, int] | None = None) -> None:
        owner = f"node {found[0]}" if found else "no node (it was deleted)"
        super().__init__(
            503,
            f"this node no longer owns session {session_id} (now: {owner}); nothing was stored, retry",
            slug="owner-changed",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
        self.session_id = session_id
        self.found = found


class FenceCheck:
    """A write function (for ``chain``): raises :class:`Fenced` unless the
    session's owner row still says ``(node_id, fence)``. Made on the loop
    (``Ownership.fence_check``), so it holds the fence the run started
    under, whatever this node learns later."""

    __slots__ = ("session_id", "node_id", "fence", "lock")

    def __init__(self, session_id: str, node_id: str, fence: int, lock: int | None = None) -> None:
        self.session_id = session_id
        self.node_id = node_id
        self.fence = fence
        self.lock = lock  # the event log's advisory lock, taken first (the lock order above)

    def __call__(self, c: Any) -> None:
        take_log_lock(c, self.lock)
        row = c.execute(
            "SELECT node_id, fence FROM session_owners WHERE session_id = ? FOR SHARE", (self.session_id,)
        ).fetchone()
        if row is None or (row[0], row[1]) != (self.node_id, self.fence):
            raise Fenced(self.session_id, (row[0], row[1]) if row else None)

    def __repr__(self) -> str:
        return f"FenceCheck({self.session_id!r}, {self.node_id!r}, {self.fence})"


def take_log_lock(c: Any, lock: int | None) -> None:
    """The event log's transaction lock, before any owner row's (see above)."""
    if lock is not None:
        c.execute("SELECT pg_advisory_xact_lock(?)", (lock,))


def check_fences(c: Any, checks: list[FenceCheck]) -> dict[str, Fenced]:
    """Several sessions' checks in one statement (a batch of streamed
    events): the sessions refused, each with its :class:`Fenced`."""
    take_log_lock(c, checks[0].lock)
    if len(checks) == 1:
        try:
            checks[0](c)
        except Fenced as e:
            return {checks[0].session_id: e}
        return {}
    rows = c.execute(
        "SELECT session_id, node_id, fence FROM session_owners WHERE session_id = ANY(?) FOR SHARE",
        ([k.session_id for k in checks],),
    ).fetchall()
    found = {r[0]: (r[1], r[2]) for r in rows}
    refused = {}
    for k in checks:
        now = found.get(k.session_id)
        if now is None or now != (k.node_id, k.fence):
            refused[k.session_id] = Fenced(k.session_id, now)
    return refused
