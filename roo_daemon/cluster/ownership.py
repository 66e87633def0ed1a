"""Which node owns each session: it alone runs the session's tasks.

A session is owned by exactly one node at a time: its ``session_owners``
row (``node_id``, ``fence``), written in the session-create transaction
(owner: the creating node, fence 1) and deleted with the session. The owner
runs the session's tasks; every write they make carries a fence check
(``fence_check``, see ``fence.py``), so a node that lost a session can
never write for it again.

Ownership changes hands only by a conditional update of that row (fence +
1), so of several nodes trying, exactly one wins:

- at start, a node reclaims the sessions still recorded as its own (a
  restart with the same ``cluster.node_id``), and claims sessions with no
  owner (stored before leases existed);
- when its lease was lost and renews again, it reclaims them the same way;
- with ``workspaces.shared`` (every node mounts the workspaces at the same
  paths), each renewal takes over the sessions of nodes whose lease has
  run out (or whose row is gone): their tasks are recovered here as after
  a restart. Without shared storage a dead node's sessions wait for it.

:class:`SoleNode` is the single-daemon form (SQLite): every session is
local, nothing is checked or stored.

The interface (both classes), which the rest of the daemon codes against::

    node_id: str
    is_local(session_id) -> bool                # from memory
    await owner(session_id) -> Owner | None     # from the store
    fence_check(session_id) -> WriteFn | None   # chain into a task's writes
    claim_new(session_id) -> WriteFn | None     # chain into the session-create write
    release(session_id) -> WriteFn | None       # chain into the session-delete write
    committed_new(session_id) / committed_release(session_id)  # after those commits
    on_acquire / on_release: lists of callbacks(session_id)
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from roo_daemon.cluster.fence import FenceCheck, Fenced, take_log_lock
from roo_daemon.cluster.nodes import DB_NOW, NodeLease
from roo_daemon.problems import Problem

log = logging.getLogger("roo_daemon.cluster")

WriteFn = Callable[[Any], Any]
Callback = Callable[[str], None]
# What a node does with sessions it gained after start (reclaimed after a
# lost lease, taken over): load them and recover their tasks.
Recover = Callable[[list[str]], Awaitable[None]]

TAKEOVER_BATCH = 100  # sessions claimed per renewal at most: a renewal stays short


@dataclass(frozen=True)
class Owner:
    """A session's owner as the store has it: its node, and whether that
    node's lease is alive (by the database's clock)."""

    node_id: str
    alive: bool


class _Callbacks:
    on_acquire: list[Callback]
    on_release: list[Callback]

    def _fire(self, callbacks: list[Callback], session_id: str) -> None:
        for callback in list(callbacks):
            try:
                callback(session_id)
            except Exception:
                log.exception("cluster: an ownership callback failed for session %s", session_id)


class SoleNode(_Callbacks):
    """One daemon on its own store (SQLite): it owns every session; no
    row, no check, no lease. The callbacks still fire as sessions are
    created and deleted, so what hangs on them works the same everywhere."""

    shared = False  # workspaces.shared: alone, nothing is ever taken over

    def __init__(self, node_id: str = "local") -> None:
        self.node_id = node_id
        self.on_acquire = []
        self.on_release = []

    def is_local(self, session_id: str) -> bool:
        return True

    async def owner(self, session_id: str) -> Owner | None:
        return Owner(self.node_id, True)

    def fence_check(self, session_id: str) -> WriteFn | None:
        return None

    def claim_new(self, session_id: str) -> WriteFn | None:
        return None

    def release(self, session_id: str) -> WriteFn | None:
        return None

    def committed_new(self, session_id: str) -> None:
        self._fire(self.on_acquire, session_id)

    def committed_release(self, session_id: str) -> None:
        self._fire(self.on_release, session_id)

    def lost(self, session_id: str) -> None:
        """Never happens here: nothing is fenced."""

    def local_ids(self) -> set[str] | None:
        """Every session (None: no filter)."""
        return None

    serving = True

    async def start(self) -> list[str]:
        return []

    async def close(self) -> None:
        pass


class Ownership(_Callbacks):
    """Session ownership on PostgreSQL, for the node holding ``lease``."""

    def __init__(self, db: Any, lease: NodeLease, shared: bool, log_lock: int | None = None) -> None:
        self.db = db
        self.log_lock = log_lock  # the event log's advisory lock: taken before owner rows (fence.py)
        self.lease = lease
        self.node_id = lease.node_id
        self.shared = shared
        self.on_acquire = []
        self.on_release = []
        self.recover: Recover | None = None  # set by the daemon: load and recover gained sessions
        self.on_gained: Callable[[int], None] | None = None  # metrics: sessions taken over or reclaimed
        self._fences: dict[str, int] = {}  # the sessions this node owns, with the fence it took
        self._reclaim_due = False
        self._pass: asyncio.Task | None = None
        lease.on_lost.append(self._lease_lost)
        lease.on_regained.append(self._lease_regained)
        lease.on_renewed.append(self._renewed)

    # -- the interface -----------------------------------------------------

    def is_local(self, session_id: str) -> bool:
        """Whether this node owns the session (from memory: no I/O)."""
        return session_id in self._fences

    def local_ids(self) -> set[str]:
        return set(self._fences)

    @property
    def serving(self) -> bool:
        """Whether this node holds its lease (and so takes work); /readyz says so."""
        return self.lease.held

    def fence(self, session_id: str) -> int | None:
        return self._fences.get(session_id)

    async def owner(self, session_id: str) -> Owner | None:
        """The session's owner from the store (None: no such session)."""

        def run(c: Any) -> Any:
            return c.execute(
                f"SELECT o.node_id, COALESCE(n.lease_until >= {DB_NOW}, FALSE) FROM session_owners o"
                " LEFT JOIN nodes n ON n.id = o.node_id WHERE o.session_id = ?",
                (session_id,),
            ).fetchone()

        row = await self.db.read(run)
        return Owner(row[0], bool(row[1])) if row else None

    def fence_check(self, session_id: str) -> FenceCheck:
        """The check for a write of this session's tasks: passes while the
        store still says (this node, the fence it holds now)."""
        return FenceCheck(session_id, self.node_id, self._fences.get(session_id, -1), self.log_lock)

    def claim_new(self, session_id: str) -> WriteFn:
        """The owner row of a session this node creates (fence 1), for the
        create's transaction. A node without a live lease takes no new work."""
        if not self.lease.held:
            raise Problem(
                503,
                f"node {self.node_id} cannot reach the database to renew its lease; it takes no new work until"
                " it can (another node can take the request)",
                slug="unavailable",
                headers={"Retry-After": "5"},
            )
        self._fences[session_id] = 1  # is_local from now on; a failed create leaves a harmless entry
        node_id = self.node_id
        return lambda c: c.execute(
            "INSERT INTO session_owners (session_id, node_id, fence) VALUES (?, ?, 1)", (session_id, node_id)
        )

    def release(self, session_id: str) -> WriteFn:
        """The owner row's deletion, for the session-delete transaction:
        fenced too (only the owner deletes; a lost session raises Fenced)."""
        check = self.fence_check(session_id)

        def run(c: Any) -> None:
            check(c)
            c.execute("DELETE FROM session_owners WHERE session_id = ?", (session_id,))

        return run

    def committed_new(self, session_id: str) -> None:
        self._fire(self.on_acquire, session_id)

    def committed_release(self, session_id: str) -> None:
        if self._fences.pop(session_id, None) is not None:
            self._fire(self.on_release, session_id)

    def lost(self, session_id: str) -> None:
        """A write met :class:`Fenced`: another node owns the session now.
        Forget it (``on_release`` stops its runs here)."""
        if self._fences.pop(session_id, None) is not None:
            log.warning("cluster: node %s no longer owns session %s (fenced)", self.node_id, session_id)
            self._fire(self.on_release, session_id)

    # -- start, loss, regain, takeover --------------------------------------

    async def start(self) -> list[str]:
        """At start, before recovery: reclaim the sessions recorded as this
        node's (fence + 1: a previous incarnation's late writes are refused
        from now on) and claim those with no owner. Returns their ids."""
        gained = await self.db.write(self._reclaim)
        self._fences.update(gained)
        if gained:
            log.info("cluster: node %s owns %d sessions", self.node_id, len(gained))
        self.lease.start()
        return list(gained)

    def _reclaim(self, c: Any) -> dict[str, int]:
        take_log_lock(c, self.log_lock)
        own = c.execute(
            "UPDATE session_owners SET fence = fence + 1 WHERE node_id = ? RETURNING session_id, fence",
            (self.node_id,),
        ).fetchall()
        orphans = c.execute(
            "INSERT INTO session_owners (session_id, node_id, fence) SELECT s.id, ?, 1 FROM sessions s"
            " WHERE NOT EXISTS (SELECT 1 FROM session_owners o WHERE o.session_id = s.id)"
            " ON CONFLICT (session_id) DO NOTHING RETURNING session_id, fence",
            (self.node_id,),
        ).fetchall()
        return {r[0]: r[1] for r in [*own, *orphans]}

    def _lease_lost(self) -> None:
        """The lease ran out: whatever this node owned, another may take
        over (shared workspaces) or it waits; either way this node stops
        running it now (its writes could not be trusted any more)."""
        for session_id in list(self._fences):
            del self._fences[session_id]
            self._fire(self.on_release, session_id)

    async def _lease_regained(self) -> None:
        """Renewed after a loss: reclaim what is still recorded as ours (on
        the next pass of the work after a renewal)."""
        self._reclaim_due = True

    async def _renewed(self) -> None:
        """After each renewal: reclaim (after a loss) and take over (shared
        workspaces) in a task of its own, so recovering sessions never
        delays the next renewal; one pass at a time."""
        if self._pass is None or self._pass.done():
            self._pass = asyncio.get_running_loop().create_task(self._after_renewal(), name="cluster ownership")

    async def _after_renewal(self) -> None:
        try:
            if self._reclaim_due:
                self._reclaim_due = False
                await self._gain(await self.db.write(self._reclaim), "reclaimed")
            if self.shared:
                await self.take_over()
        except Exception as e:
            log.warning("cluster: node %s could not look for sessions to take: %s", self.node_id, e)

    async def take_over(self) -> list[str]:
        """Claim the sessions of nodes whose lease ran out (or whose row is
        gone): a conditional update per session, so of several nodes trying
        exactly one wins. Returns the sessions this node won."""
        if not self.lease.held:
            return []
        candidates = await self.db.read(self._expired)
        if not candidates:
            return []
        gained = await self.db.write(self._claim)
        await self._gain(gained, "took over")
        return list(gained)

    def _expired(self, c: Any) -> list[tuple[str, str, int]]:
        return c.execute(
            "SELECT o.session_id, o.node_id, o.fence FROM session_owners o LEFT JOIN nodes n ON n.id = o.node_id"
            f" WHERE o.node_id <> ? AND (n.id IS NULL OR n.lease_until < {DB_NOW}) LIMIT 1",
            (self.node_id,),
        ).fetchall()

    def _claim(self, c: Any) -> dict[str, int]:
        """One statement: the expired owners' rows, locked in a random order
        skipping those another node is claiming (or the old owner is still
        writing for: its fence check holds them ``FOR SHARE``), each moved
        to this node with fence + 1 if it still has the owner and fence
        read. Nodes claiming at once never wait on each other (no deadlock)
        and spread the sessions between them; a row skipped now is looked
        at again at the next renewal."""
        take_log_lock(c, self.log_lock)
        rows = c.execute(
            "UPDATE session_owners o SET node_id = ?, fence = o.fence + 1 FROM ("
            " SELECT so.session_id, so.node_id, so.fence FROM session_owners so"
            " LEFT JOIN nodes n ON n.id = so.node_id"
            f" WHERE so.node_id <> ? AND (n.id IS NULL OR n.lease_until < {DB_NOW})"
            f" ORDER BY random() LIMIT {TAKEOVER_BATCH} FOR UPDATE OF so SKIP LOCKED) old"
            " WHERE o.session_id = old.session_id AND o.node_id = old.node_id AND o.fence = old.fence"
            " RETURNING o.session_id, o.fence, old.node_id",
            (self.node_id, self.node_id),
        ).fetchall()
        for session_id, _, old_node in rows:
            log.warning(
                "cluster: node %s took over session %s from node %s (its lease ran out)",
                self.node_id,
                session_id,
                old_node,
            )
        return {r[0]: r[1] for r in rows}

    async def _gain(self, gained: dict[str, int], how: str) -> None:
        new = [s for s in gained if s not in self._fences]
        self._fences.update(gained)
        if not gained:
            return
        log.info("cluster: node %s %s %d sessions", self.node_id, how, len(gained))
        if self.on_gained is not None:
            self.on_gained(len(gained))
        if self.recover is not None:
            try:
                await self.recover(list(gained))
            except Exception:
                log.exception("cluster: recovering sessions %s failed", sorted(gained))
        for session_id in new:
            self._fire(self.on_acquire, session_id)

    async def close(self) -> None:
        await self.lease.close()
        if self._pass is not None and not self._pass.done():
            self._pass.cancel()
            try:
                await self._pass
            except asyncio.CancelledError:
                pass


SessionOwnership = Ownership | SoleNode


async def open_ownership(cfg: dict[str, Any], db: Any) -> SessionOwnership:
    """This daemon's ownership of sessions: on PostgreSQL, register the node
    (raises :class:`~roo_daemon.cluster.nodes.NodeIdInUse` if a running
    daemon has its id); on SQLite, :class:`SoleNode`."""
    from roo_daemon.config import node_id

    name = node_id(cfg)
    if db.backend != "postgresql":
        return SoleNode(name)
    from roo_daemon.store.postgres import EVENT_SEQ_LOCK

    info = {"host": socket.gethostname(), "port": cfg["server"]["port"]}
    lease = NodeLease(db, name, cfg["cluster"]["lease_seconds"], info)
    await lease.register()
    return Ownership(db, lease, cfg["workspaces"]["shared"], EVENT_SEQ_LOCK)


__all__ = ["Fenced", "Owner", "Ownership", "SessionOwnership", "SoleNode", "open_ownership"]
