"""A node's membership of the cluster: its row in ``nodes`` and its lease.

A node is one daemon process with a ``cluster.node_id``. At start it takes
an advisory lock keyed by its id, on a connection of its own that it keeps:
the same id started twice (the same configuration on one database) is
refused, as two processes would run the same sessions, while different ids
coexist. The server drops the lock when the connection ends (a stop, a
crash, ``kill -9``), so a replacement starts at once.

It then writes its ``nodes`` row with a fresh ``incarnation`` and
``lease_until = now + cluster.lease_seconds``, and renews it every third
of that. Lease times are the DATABASE's clock (``clock_timestamp()``),
never a node's, so nodes' clocks may disagree without harm. A node counts
its own lease by its monotonic clock from the start of its last renewal
that succeeded: that start is before the database's ``now`` of the
renewal, so a node always thinks its lease ends no later than the others
do, and stops in time.

The renewals run on a thread of their own (blocking psycopg, never the
IOLoop), so neither a busy writer nor a hung database delays them or the
loop's view of the deadline.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from roo_daemon import __version__

log = logging.getLogger("roo_daemon.cluster")

# The two-key advisory lock space (separate from the one-key space the
# store's locks use): (NODE_LOCK_CLASS, the node id's hash).
NODE_LOCK_CLASS = 0x726F6F6E  # "roon"

DB_NOW = "extract(epoch from clock_timestamp())"


class NodeIdInUse(Exception):
    """Another running daemon has this ``cluster.node_id`` on this database."""


def node_lock_key(node_id: str) -> int:
    """The node id's 32-bit advisory lock key (signed, as PostgreSQL's int4)."""
    return int.from_bytes(hashlib.blake2b(node_id.encode(), digest_size=4).digest(), "big", signed=True)


class NodeLease:
    """This node's ``nodes`` row and lease. ``held`` says whether the lease
    is still good as far as this node can tell; callbacks say when that
    changes and after each renewal:

    - ``on_lost()``: the lease ran out unrenewed (the database unreachable
      for longer than ``lease_seconds``): stop writing, stop taking work;
    - ``on_regained()``: renewed again after that (awaited);
    - ``on_renewed()``: after every renewal that succeeded (awaited), e.g.
      to look for expired nodes' sessions.
    """

    def __init__(self, db: Any, node_id: str, lease_seconds: float, info: dict[str, Any] | None = None) -> None:
        self.db = db
        self.node_id = node_id
        self.lease_seconds = float(lease_seconds)
        self.interval = self.lease_seconds / 3
        self.incarnation = secrets.token_hex(8)
        self.info = {"pid": os.getpid(), "version": __version__, **(info or {})}
        self.held = False
        self.deadline = 0.0  # monotonic: the lease holds until then, as far as this node knows
        self.on_lost: list[Callable[[], None]] = []
        self.on_regained: list[Callable[[], Awaitable[None]]] = []
        self.on_renewed: list[Callable[[], Awaitable[None]]] = []
        self.on_outcome: Callable[[str], None] | None = None  # metrics: each renewal's "ok", "lost" or "error"
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="cluster-lease")
        self._conn: Any = None  # holds the node's advisory lock
        self._renewing: Future | None = None
        self._task: asyncio.Task | None = None
        self._closed = False
        self.replaced = False  # another process took this node id: never renew again

    # -- start -------------------------------------------------------------

    async def register(self) -> None:
        """Take the node id's lock and write the ``nodes`` row. Raises
        :class:`NodeIdInUse` if a running daemon has the id. Once, at start."""
        started = time.monotonic()
        await asyncio.get_running_loop().run_in_executor(self._thread, self._register)
        self.deadline = started + self.lease_seconds
        self.held = True
        log.info("cluster: node %s registered (lease %.0fs)", self.node_id, self.lease_seconds)

    def start(self) -> None:
        """Renew from now on, every third of the lease."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="cluster lease")

    def _register(self) -> None:
        c = self._lock_conn()
        c.execute(
            "INSERT INTO nodes (id, incarnation, lease_until, started_at, doc)"
            f" VALUES (?, ?, {DB_NOW} + ?, {DB_NOW}, ?)"
            " ON CONFLICT (id) DO UPDATE SET incarnation = excluded.incarnation,"
            " lease_until = excluded.lease_until, started_at = excluded.started_at, doc = excluded.doc",
            (self.node_id, self.incarnation, self.lease_seconds, json.dumps(self.info)),
        )

    def _lock_conn(self) -> Any:
        """The connection holding the node's lock; made (and the lock taken)
        again if it was lost."""
        c = self._conn
        if c is not None and not c.conn.closed and not c.conn.broken:
            return c
        if c is not None:
            c.conn.close()
            self._conn = None
        # A renewal must not hang past the lease on a silent network.
        timeout = max(1, int(self.interval))
        c = self.db.connect(connect_timeout=timeout, tcp_user_timeout=int(self.lease_seconds * 1000))
        try:
            c.execute(f"SET statement_timeout = {int(self.interval * 1000)}")
            got = c.execute("SELECT pg_try_advisory_lock(?, ?)", (NODE_LOCK_CLASS, node_lock_key(self.node_id)))
            if not got.fetchone()[0]:
                raise NodeIdInUse(
                    f"another roo-daemon already runs as node {self.node_id!r} on {self.db.where}; give each"
                    " daemon its own cluster.node_id (docs/postgresql.md)"
                )
        except BaseException:
            c.conn.close()
            raise
        self._conn = c
        return c

    # -- renewal -----------------------------------------------------------

    def _renew(self) -> None:
        c = self._lock_conn()
        before = time.time()
        row = c.execute(
            f"UPDATE nodes SET lease_until = {DB_NOW} + ? WHERE id = ? AND incarnation = ? RETURNING {DB_NOW}",
            (self.lease_seconds, self.node_id, self.incarnation),
        ).fetchone()
        if row is not None:
            # The renewal's round trip measures the database's clock against
            # this node's again, so a clock stepped since start (NTP, a resumed
            # VM) skews the notification-lag metric for one interval at most.
            self.db.clock_offset = float(row[0]) - (before + time.time()) / 2
            return
        # No row: the database lost it (restored from a backup, a commit lost
        # in a crash): this node, which holds the id's lock, registers again.
        inserted = c.execute(
            "INSERT INTO nodes (id, incarnation, lease_until, started_at, doc)"
            f" VALUES (?, ?, {DB_NOW} + ?, {DB_NOW}, ?) ON CONFLICT (id) DO NOTHING",
            (self.node_id, self.incarnation, self.lease_seconds, json.dumps(self.info)),
        ).rowcount
        if inserted != 1:
            # The row is another incarnation's: a daemon with this id started
            # while this one had lost its lock's connection.
            raise NodeIdInUse(f"node {self.node_id!r} was registered again by another process")

    async def renew(self) -> bool:
        """One renewal; True if it succeeded within a third of the lease. A
        renewal still hanging from before is not doubled: this one waits."""
        if self.replaced or self._closed:
            return False
        started = time.monotonic()
        if self._renewing is None or self._renewing.done():
            self._renewing = self._thread.submit(self._renew)
        try:
            await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(self._renewing)), self.interval)
        except NodeIdInUse as e:
            self.replaced = True
            self._outcome("lost")
            log.error("cluster: %s; this daemon stops running sessions", e)
            self._lose()
            return False
        except Exception as e:
            self._outcome("error")
            if self.held:
                log.warning("cluster: node %s could not renew its lease: %s", self.node_id, _first_line(e))
            return False
        self._outcome("ok")
        self.deadline = started + self.lease_seconds
        if not self.held:
            self.held = True
            log.warning("cluster: node %s has its lease again", self.node_id)
            for callback in list(self.on_regained):
                await _quietly(callback)
        for callback in list(self.on_renewed):
            await _quietly(callback)
        return True

    def _outcome(self, outcome: str) -> None:
        if self.on_outcome is not None:
            self.on_outcome(outcome)

    def check(self) -> None:
        """Past the deadline with no renewal: the lease is lost."""
        if self.held and time.monotonic() >= self.deadline:
            log.error(
                "cluster: node %s could not renew its lease for %.0fs; it stops its tasks and takes no new"
                " work until the database answers again",
                self.node_id,
                self.lease_seconds,
            )
            self._lose()

    def _lose(self) -> None:
        if not self.held:
            return
        self.held = False
        for callback in list(self.on_lost):
            try:
                callback()
            except Exception:
                log.exception("cluster: a lease-lost callback failed")

    async def _run(self) -> None:
        while not self._closed:
            # Wake for the next renewal, or at the deadline if that is sooner.
            wait = self.interval if not self.held else min(self.interval, self.deadline - time.monotonic())
            await asyncio.sleep(max(0.05, wait))
            if self._closed:
                return
            ok = await self.renew()
            if not ok:
                self.check()

    def seconds_left(self) -> float:
        """For metrics: how long the lease holds without another renewal (0: lost)."""
        return max(0.0, self.deadline - time.monotonic()) if self.held else 0.0

    async def close(self) -> None:
        """Stop renewing and drop the lock (the row stays: its lease runs
        out, and a restart with the same id gets the sessions back)."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        await asyncio.get_running_loop().run_in_executor(self._thread, self._close)
        self._thread.shutdown(wait=False)

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.conn.close()
            self._conn = None


async def _quietly(callback: Callable[[], Awaitable[None]]) -> None:
    try:
        await callback()
    except Exception:
        log.exception("cluster: a lease callback failed")


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
