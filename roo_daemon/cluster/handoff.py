"""Hand-off: a request for a session another node owns, run by its owner.

Any node accepts any request, but a session's tasks run on the node that
owns it (``cluster/ownership.py``), where its workspace and its live runs
are. A mutation that needs them (create a task, cancel, answer, post a
message, PATCH or DELETE the session, restore a checkpoint) arriving at
another node is handed to the owner through the database:

1. the requester INSERTs a ``node_requests`` row (the op, the principal,
   the arguments with the Idempotency-Key) and ``pg_notify``s
   ``roo_daemon_requests`` with its id, in one transaction;
2. the owner (it LISTENs, and polls every ``poll_seconds`` for lost
   notifications) claims it with ``UPDATE ... SET claimed_by = me WHERE
   claimed_by IS NULL`` (one winner), only for a session it owns, runs the
   op through the SAME manager method a local request runs (so
   idempotency, 409s and 422s are the same), stores ``reply`` (the result,
   or the problem it raised) and notifies ``roo_daemon_replies``;
3. the requester wakes on that notification (or its poll), deletes the row
   and answers as the owner would have.

No claim within ``timeout_seconds`` (the owner is dead and nobody took its
sessions over): the requester deletes the unclaimed row (a conditional
DELETE: the owner's claim and this cannot both win) and answers 503
``owner-unavailable``: nothing was done. Claimed but unanswered in time: 504
``owner-timeout``: it may still take effect; a retry with the same
Idempotency-Key is safe. An owner known dead answers 503 at once.

PostgreSQL only: on SQLite one node owns everything and nothing is handed
off (there is no ``Handoff``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from roo_daemon.auth import Principal
from roo_daemon.models import new_id
from roo_daemon.problems import Problem, not_found

log = logging.getLogger("roo_daemon.cluster")

REQUESTS_CHANNEL = "roo_daemon_requests"
REPLIES_CHANNEL = "roo_daemon_replies"
RETRY_AFTER_SECONDS = 5
# A row nobody deleted (its requester died waiting) is removed this long
# after it was made, by whichever node polls.
ABANDONED_AFTER_TIMEOUTS = 4

# Runs an op on the owner: (principal, args) -> a JSON value (the result).
Op = Callable[[Principal, dict[str, Any]], Awaitable[Any]]


class OwnerLike(Protocol):
    node_id: str
    alive: bool


class OwnershipLike(Protocol):
    """What the hand-off needs of ``cluster.ownership.Ownership``."""

    node_id: str

    def is_local(self, session_id: str) -> bool: ...

    async def owner(self, session_id: str) -> OwnerLike | None: ...  # None: no such session


def owner_unavailable(node_id: str, session_id: str, why: str) -> Problem:
    """503: the session's owner cannot run the request, and nothing was done."""
    return Problem(
        503,
        f"session {session_id} is served by node {node_id!r}, which {why}; nothing was done. "
        "Retry later: the node may come back, or another take its sessions over",
        slug="owner-unavailable",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        node_id=node_id,
    )


def owner_timeout(node_id: str, session_id: str, seconds: float) -> Problem:
    """504: the owner took the request but did not answer in time."""
    return Problem(
        504,
        f"node {node_id!r}, which serves session {session_id}, took the request but did not answer within "
        f"{seconds:g} s; it may still take effect. Check the resource, or retry with the same Idempotency-Key",
        slug="owner-timeout",
        node_id=node_id,
    )


def principal_doc(principal: Principal) -> dict[str, Any]:
    return {
        "name": principal.name,
        "scopes": sorted(principal.scopes),
        "workspace_roots": list(principal.workspace_roots) if principal.workspace_roots is not None else None,
    }


def principal_from(doc: dict[str, Any]) -> Principal:
    roots = doc.get("workspace_roots")
    return Principal(doc["name"], frozenset(doc["scopes"]), tuple(roots) if roots is not None else None)


def problem_doc(problem: Problem) -> dict[str, Any]:
    return {
        "status": problem.status_code,
        "detail": problem.detail,
        "slug": problem.slug,
        "title": problem.title,
        "headers": problem.headers,
        "extra": problem.extra,
    }


def problem_from(doc: dict[str, Any]) -> Problem:
    return Problem(
        doc["status"], doc["detail"], slug=doc["slug"], title=doc["title"], headers=doc["headers"], **doc["extra"]
    )


# -- the SQL (PostgreSQL: times from the database's clock) -------------------


def _insert(rid: str, session_id: str, op: str, doc: str) -> Callable[[Any], None]:
    def write(c: Any) -> None:
        c.execute(
            "INSERT INTO node_requests (id, session_id, op, doc, created_at)"
            " VALUES (?, ?, ?, ?, extract(epoch from clock_timestamp()))",
            (rid, session_id, op, doc),
        )
        # Delivered at commit. With the session: a node that does not own it
        # ignores it without reading the row.
        c.execute("SELECT pg_notify(?, ?)", (REQUESTS_CHANNEL, f"{rid} {session_id}"))

    return write


def _claim(rid: str, node_id: str) -> Callable[[Any], bool]:
    return lambda c: (
        c.execute(
            "UPDATE node_requests SET claimed_by = ? WHERE id = ? AND claimed_by IS NULL", (node_id, rid)
        ).rowcount
        == 1
    )


def _answer(rid: str, reply: str) -> Callable[[Any], None]:
    def write(c: Any) -> None:
        c.execute("UPDATE node_requests SET reply = ? WHERE id = ?", (reply, rid))
        c.execute("SELECT pg_notify(?, ?)", (REPLIES_CHANNEL, rid))

    return write


def _give_up(rid: str) -> Callable[[Any], bool]:
    """True if the row was still unclaimed (and is now gone)."""
    return lambda c: c.execute("DELETE FROM node_requests WHERE id = ? AND claimed_by IS NULL", (rid,)).rowcount == 1


def _delete(rid: str) -> Callable[[Any], None]:
    return lambda c: c.execute("DELETE FROM node_requests WHERE id = ?", (rid,))


def _prune(older_than_seconds: float) -> Callable[[Any], int]:
    return lambda c: (
        c.execute(
            "DELETE FROM node_requests WHERE created_at < extract(epoch from clock_timestamp()) - ?",
            (older_than_seconds,),
        ).rowcount
    )


class Handoff:
    """Hands requests for other nodes' sessions to their owners, and runs
    the ones handed to this node. ``register`` the ops first, then
    ``start``; ``forward`` from the managers when a session is not local."""

    def __init__(
        self,
        db: Any,
        ownership: OwnershipLike,
        timeout_seconds: float = 30.0,
        poll_seconds: float = 1.0,
    ) -> None:
        self.db = db
        self.ownership = ownership
        self.timeout_seconds = timeout_seconds
        self.poll_seconds = poll_seconds
        self.ops: dict[str, Op] = {}
        # Metrics hooks: (op, outcome, seconds) once per request handed on,
        # outcome ok | problem | owner_unavailable | timeout; (op) once per
        # request run here for another node.
        self.on_outcome: Callable[[str, str, float], None] | None = None
        self.on_run: Callable[[str], None] | None = None
        self._waiting: dict[str, asyncio.Future] = {}  # this node's requests: id -> reply
        self._running: set[str] = set()  # requests this node is claiming or running
        self._tasks: set[asyncio.Task] = set()
        self._poller: asyncio.Task | None = None
        self._closed = False

    def register(self, op: str, run: Op) -> None:
        """``run(principal, args)`` runs ``op`` on this node (the owner) and
        returns its JSON result; a :class:`Problem` it raises is the answer."""
        self.ops[op] = run

    async def start(self) -> None:
        """LISTEN on both channels (the store's one listener connection), then
        poll: lost notifications, requests for sessions this node took over."""
        await self.db.listen(REQUESTS_CHANNEL, self._on_request, convert=str, skip_own=False)
        await self.db.listen(REPLIES_CHANNEL, self._on_reply, convert=str, skip_own=False)
        self._poller = asyncio.get_running_loop().create_task(self._poll())

    async def close(self) -> None:
        """Stop claiming; requests being run finish (their reply is stored)."""
        self._closed = True
        if self._poller is not None:
            self._poller.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=self.timeout_seconds)

    # -- the requester ----------------------------------------------------------

    async def forward(self, session_id: str, op: str, principal: Principal, args: dict[str, Any]) -> Any:
        """Run ``op`` on ``session_id``'s owner; its result, or its problem
        raised here. 503 ``owner-unavailable`` / 504 ``owner-timeout`` as above."""
        started = time.monotonic()
        outcome = "problem"
        try:
            result = await self._forward(session_id, op, principal, args)
            outcome = "ok"
            return result
        except Problem as p:
            outcome = {"owner-unavailable": "owner_unavailable", "owner-timeout": "timeout"}.get(p.slug, "problem")
            raise
        finally:
            if self.on_outcome is not None:
                self.on_outcome(op, outcome, time.monotonic() - started)

    async def _forward(self, session_id: str, op: str, principal: Principal, args: dict[str, Any]) -> Any:
        owner = await self.ownership.owner(session_id)
        if owner is None:  # deleted meanwhile (by its owner, or a request handed to it)
            raise not_found("session", session_id)
        if not owner.alive:
            raise owner_unavailable(owner.node_id, session_id, "is not running (its lease has expired)")
        rid = new_id("req")
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        self._waiting[rid] = fut
        doc = json.dumps({"principal": principal_doc(principal), "args": args, "from": self.ownership.node_id})
        try:
            await self.db.write(_insert(rid, session_id, op, doc))
            try:
                reply = await asyncio.wait_for(asyncio.shield(fut), self.timeout_seconds)
            except TimeoutError:
                reply = await self._late(rid, session_id, owner.node_id)
        finally:
            self._waiting.pop(rid, None)
        await self._forget(rid)
        if "problem" in reply:
            raise problem_from(reply["problem"])
        return reply["ok"]

    async def _late(self, rid: str, session_id: str, node_id: str) -> dict[str, Any]:
        """The deadline passed: unclaimed -> 503 (the row is deleted, so it
        can never run); claimed -> its reply if it came meanwhile, else 504."""
        if await self.db.write(_give_up(rid)):
            raise owner_unavailable(node_id, session_id, f"did not take the request within {self.timeout_seconds:g} s")
        row = await self.db.read(
            lambda c: c.execute("SELECT claimed_by, reply FROM node_requests WHERE id = ?", (rid,)).fetchone()
        )
        if row is not None and row[1] is not None:
            return json.loads(row[1])
        await self._forget(rid)  # its reply, if it ever comes, changes nothing
        raise owner_timeout(row[0] if row is not None else node_id, session_id, self.timeout_seconds)

    async def _forget(self, rid: str) -> None:
        """Delete a row whose outcome is known. Best effort: the op has taken
        effect (or not) already, and the answer must say so, not that the
        store failed; a row left behind is pruned later."""
        try:
            await self.db.write(_delete(rid))
        except Exception as e:
            log.warning("hand-off: request %s not deleted (%s); it will be pruned", rid, e)

    def _on_reply(self, rid: str | None) -> None:
        if rid is None:  # the listener reconnected: what came meanwhile is unknown
            self._spawn(self._check_replies(list(self._waiting)))
        elif rid in self._waiting:
            self._spawn(self._check_replies([rid]))

    async def _check_replies(self, ids: list[str]) -> None:
        if not ids:
            return
        marks = ",".join("?" * len(ids))
        rows = await self.db.read(
            lambda c: c.execute(
                f"SELECT id, reply FROM node_requests WHERE id IN ({marks}) AND reply IS NOT NULL", ids
            ).fetchall()
        )
        for rid, reply in rows:
            fut = self._waiting.get(rid)
            if fut is not None and not fut.done():
                fut.set_result(json.loads(reply))

    # -- the owner ----------------------------------------------------------------

    def _on_request(self, payload: str | None) -> None:
        if self._closed:
            return
        if payload is None:
            self._spawn(self.scan())
            return
        rid, _, session_id = payload.partition(" ")
        if rid not in self._running and self.ownership.is_local(session_id):
            self._spawn(self._take(rid))

    def wake(self, session_id: str | None = None) -> None:
        """Look for unclaimed requests now (an ownership callback: a session
        this node just took over may have some waiting)."""
        if not self._closed and self._poller is not None:
            self._spawn(self.scan())

    async def scan(self) -> None:
        """Claim every unclaimed request for a session this node owns (a lost
        notification; sessions just taken over: call it then)."""
        rows = await self.db.read(
            lambda c: c.execute(
                "SELECT id, session_id FROM node_requests WHERE claimed_by IS NULL ORDER BY created_at"
            ).fetchall()
        )
        for rid, session_id in rows:
            if rid not in self._running and self.ownership.is_local(session_id) and not self._closed:
                self._spawn(self._take(rid))

    async def _take(self, rid: str) -> None:
        self._running.add(rid)
        try:
            row = await self.db.read(
                lambda c: c.execute(
                    "SELECT session_id, op, doc FROM node_requests WHERE id = ? AND claimed_by IS NULL", (rid,)
                ).fetchone()
            )
            if row is None or not self.ownership.is_local(row[0]):
                return  # taken, given up, or another node's session
            if not await self.db.write(_claim(rid, self.ownership.node_id)):
                return  # the requester gave up first, or another node claimed it
            reply = await self._run(row[0], row[1], json.loads(row[2]))
            await self.db.write(_answer(rid, json.dumps(reply)))
        except Exception:
            log.exception("hand-off: request %s could not be run or answered", rid)
        finally:
            self._running.discard(rid)

    async def _run(self, session_id: str, op: str, doc: dict[str, Any]) -> dict[str, Any]:
        """The op's reply: ``{"ok": result}`` or ``{"problem": ...}``, as the
        same request made to this node would have been answered."""
        run = self.ops.get(op)
        if self.on_run is not None:
            self.on_run(op)
        if run is None:  # a newer node's op this one does not know
            why = f"runs a release that cannot run {op!r}"
            return {"problem": problem_doc(owner_unavailable(self.ownership.node_id, session_id, why))}
        try:
            return {"ok": await run(principal_from(doc["principal"]), doc["args"])}
        except Problem as p:
            return {"problem": problem_doc(p)}
        except Exception:
            log.exception("hand-off: %s from node %s failed", op, doc.get("from"))
            return {"problem": problem_doc(Problem(500, "an unexpected error occurred on the session's node"))}

    # -- both ---------------------------------------------------------------------

    async def _poll(self) -> None:
        """The fallback for lost notifications: every ``poll_seconds``,
        replies to this node's requests and requests for its sessions; now
        and then, rows nobody will delete (a requester that died)."""
        pruned = time.monotonic()
        failing = False
        while not self._closed:
            await asyncio.sleep(self.poll_seconds)
            try:
                await self._check_replies(list(self._waiting))
                await self.scan()
                if time.monotonic() - pruned > self.timeout_seconds:
                    pruned = time.monotonic()
                    await self.db.write(_prune(self.timeout_seconds * ABANDONED_AFTER_TIMEOUTS))
            except Exception as e:  # the database away: the next round tries again (said once)
                if not failing:
                    log.warning(
                        "hand-off: cannot look for requests and replies (%s); retrying every %gs", e, self.poll_seconds
                    )
                failing = True
            else:
                if failing:
                    log.info("hand-off: looking for requests and replies again")
                failing = False

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_log_failure)


def _log_failure(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("hand-off: %s", task.exception())
