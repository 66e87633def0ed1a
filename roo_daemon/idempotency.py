"""``Idempotency-Key`` for creating POSTs.

The key, a hash of the body and the created resource's id are committed in
the same transaction as the resource, so a retry after a crash still finds
them. A per-key lock makes two concurrent requests with one key create once.
Keys are scoped by principal (and by the caller's scope, e.g. a session for
tasks): another client's key never replays, or refuses, your request. A key
is kept ``KEY_TTL_SECONDS`` (24 h, as Stripe does), long enough for any retry.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from roo_daemon.problems import validation_problem
from roo_daemon.store import IdempotencyStore
from roo_daemon.store.database import WriteFn

KEY_TTL_SECONDS = 24 * 3600  # how long a key replays; the daemon's pruner drops older ones
Create = Callable[[Callable[[str], WriteFn] | None], Awaitable[str]]


def body_hash(body: Any) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class IdempotencyGuard:
    def __init__(self, store: IdempotencyStore, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock  # injectable, so the retention can be tested without waiting a day
        self._locks: dict[tuple[str, str, str], asyncio.Lock] = {}

    async def create_once(
        self, principal: str, scope: str, key: str | None, body: Any, create: Create
    ) -> tuple[str, bool]:
        """Run ``create(record)`` unless this key already created something.
        ``create`` must commit ``record(resource_id)`` with the resource.
        Returns ``(resource_id, replayed)``."""
        if key is None:
            return await create(None), False
        digest = body_hash(body)
        ident = (principal, scope, key)
        lock = self._locks.setdefault(ident, asyncio.Lock())
        try:
            async with lock:
                found = await self.store.get(principal, scope, key)
                if found is not None:
                    if found[0] != digest:
                        raise validation_problem(
                            [
                                {
                                    "pointer": "/headers/Idempotency-Key",
                                    "message": "was already used with a different body",
                                }
                            ],
                            detail="this Idempotency-Key was already used with a different request body",
                        )
                    return found[1], True
                now = self.clock()
                resource_id = await create(lambda rid: IdempotencyStore.insert(principal, scope, key, digest, rid, now))
                return resource_id, False
        finally:
            if not lock.locked() and self._locks.get(ident) is lock:
                del self._locks[ident]

    async def prune(self) -> int:
        """Forget keys older than ``KEY_TTL_SECONDS``; returns how many. The
        daemon runs this with the event-log pruning (``server.Daemon._prune``)."""
        delete = IdempotencyStore.prune(self.clock() - KEY_TTL_SECONDS)
        return await self.store.db.write(lambda c: delete(c).rowcount)
