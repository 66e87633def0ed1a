"""``Idempotency-Key`` for creating POSTs.

The key, a hash of the body and the created resource's id are committed in
the same transaction as the resource, so a retry after a crash still finds
them. A per-key lock makes two concurrent requests with one key create once.
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

KEY_TTL_SECONDS = 24 * 3600
Create = Callable[[Callable[[str], WriteFn] | None], Awaitable[str]]


def body_hash(body: Any) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class IdempotencyGuard:
    def __init__(self, store: IdempotencyStore) -> None:
        self.store = store
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
                now = time.time()
                resource_id = await create(lambda rid: IdempotencyStore.insert(principal, scope, key, digest, rid, now))
                return resource_id, False
        finally:
            if not lock.locked() and self._locks.get(ident) is lock:
                del self._locks[ident]
