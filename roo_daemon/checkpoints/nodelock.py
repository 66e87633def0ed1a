"""One git command at a time in a shadow repository, across nodes.

On one node, each repository's ``asyncio.Lock`` (``ShadowRepo.lock``)
serialises what changes it: its index, its refs. With several nodes on one
PostgreSQL and ``checkpoints.dir`` on storage they all mount, two sessions
in one workspace may be owned by different nodes and write one repository:
their ``git add`` would meet on ``index.lock`` (one fails) or, worse, one
would commit a tree the other staged. :class:`RepoLocks` extends the lock
across nodes with PostgreSQL advisory locks, keyed by the repository's key,
taken after the node's own lock and held around the git commands.

Why PostgreSQL's locks, not a lock file on the shared storage: the nodes
already depend on the database, and its locks end with their holder's
connection (a ``kill -9`` at once; a machine that vanished once the server
notices, within its TCP keepalives). ``flock``/``fcntl`` on NFS go through
the NFS lock protocol: NFSv3's NLM may keep a dead client's lock until that
machine reboots, NFSv4 until its lease runs out, and some shared file
systems (some FUSE ones, object-store mounts) ignore locks or refuse them.

The locks are session-level (``pg_try_advisory_lock``) on one connection of
this node's own, never in a transaction (``idle_in_transaction_session_timeout``
would cut a long ``git add``). They are only ever *tried*: a busy lock is
tried again after a short sleep on the loop, so one connection and one thread
serve every repository, and a wait never holds a thread or the IOLoop.
Contention is rare (two nodes' sessions in one workspace at once).

If the connection is lost while it holds locks, the server has released
them: another node may enter while a command of ours still runs. That is
logged; git's own ``index.lock`` then makes one of the two fail, which costs
one checkpoint (logged and skipped), never a task.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

log = logging.getLogger("roo_daemon.checkpoints")

# The two-key advisory lock space, beside the node locks' (cluster/nodes.py):
# (REPO_LOCK_CLASS, 32 bits of the repository's key).
REPO_LOCK_CLASS = 0x726F6F63  # "rooc"
FIRST_RETRY_SECONDS = 0.01
MAX_RETRY_SECONDS = 0.25


def lock_key(repo_key: str) -> int:
    """A repository key's 32-bit advisory lock key (signed, as PostgreSQL's
    int4). Two keys sharing it only wait for each other."""
    return int.from_bytes(bytes.fromhex(repo_key[:8]), "big", signed=True)


class RepoLocks:
    """Advisory locks on a connection of this node's own (``db.connect``)."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="checkpoint-locks")
        self._conn: Any = None
        self._held: set[int] = set()

    @asynccontextmanager
    async def held(self, repo_key: str) -> AsyncIterator[None]:
        """Hold the repository's lock for the block. Call it while holding
        the node's own lock of the repository: a node never asks twice."""
        key = lock_key(repo_key)
        await self._acquire(key)
        try:
            yield
        finally:
            # Shielded: a cancelled request must not leave the lock held.
            await asyncio.shield(self._call(self._unlock, key))

    async def _acquire(self, key: int) -> None:
        delay = FIRST_RETRY_SECONDS
        while True:
            attempt = asyncio.ensure_future(self._call(self._try, key))
            try:
                got = await asyncio.shield(attempt)
            except asyncio.CancelledError:
                # The try may still succeed on its thread: let it go again.
                attempt.add_done_callback(lambda f: self._release_late(f, key))
                raise
            if got:
                return
            await asyncio.sleep(delay)  # another node is in this repository
            delay = min(delay * 2, MAX_RETRY_SECONDS)

    def _release_late(self, attempt: asyncio.Future, key: int) -> None:
        if not attempt.cancelled() and attempt.exception() is None and attempt.result():
            asyncio.ensure_future(self._call(self._unlock, key))

    async def _call(self, fn: Any, key: int) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, key)

    # -- on the thread ------------------------------------------------------

    def _connection(self) -> Any:
        c = self._conn
        if c is not None and not c.conn.closed and not c.conn.broken:
            return c
        if c is not None:
            c.conn.close()
            if self._held:
                log.warning(
                    "checkpoints: the database connection holding %d shadow repository locks was lost;"
                    " another node may have used those repositories meanwhile",
                    len(self._held),
                )
                self._held.clear()
        self._conn = self.db.connect()
        return self._conn

    def _try(self, key: int) -> bool:
        row = self._connection().execute("SELECT pg_try_advisory_lock(?, ?)", (REPO_LOCK_CLASS, key)).fetchone()
        got = bool(row[0])
        if got:
            self._held.add(key)
        return got

    def _unlock(self, key: int) -> None:
        self._held.discard(key)
        c = self._conn
        if c is None or c.conn.closed or c.conn.broken:
            return  # the server released it with the connection
        try:
            c.execute("SELECT pg_advisory_unlock(?, ?)", (REPO_LOCK_CLASS, key))
        except Exception as e:  # the connection broke: the lock went with it
            log.warning("checkpoints: releasing a shadow repository lock failed: %s", e)

    async def close(self) -> None:
        """At shutdown: closing the connection releases whatever it holds."""
        conn, self._conn = self._conn, None
        if conn is not None:
            await asyncio.get_running_loop().run_in_executor(self._thread, conn.conn.close)
        self._thread.shutdown(wait=False)
