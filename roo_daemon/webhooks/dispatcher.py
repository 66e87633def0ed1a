"""Delivery: one worker per (session, webhook), reading the session's events
from the durable log after its cursor, POSTing each wanted one until the
receiver answers 2xx (retrying with doubling waits), then moving the cursor
in the store. One event at a time per worker keeps the order; a receiver
that is down holds back only its own webhook.

The bus only wakes a worker (its ``deliver``); what is sent is read back
from the store, so an event is delivered exactly when it is durable, and a
restart resumes from the cursor with nothing skipped. Nothing here blocks
the loop: the store reads and writes run on its threads, DNS in the loop's
executor, HTTP in Tornado's non-blocking client.

Several nodes (PostgreSQL): a session's webhooks are delivered by its owner
alone (the node that runs its tasks), whichever node's bus saw the event.
A node starts the workers of the sessions it owns; when it comes to own
another one (a takeover, a reclaim after a lost lease: ``acquired``) it
starts that session's workers from the cursors stored in the database, and
when it stops owning one (``released``) it stops them and stores where they
were. Between the two nodes a delivery that was in flight may be sent again
(the same ``X-Roo-Delivery``), as across a restart: at least once, in order,
nothing skipped."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from tornado.httpclient import HTTPRequest
from tornado.simple_httpclient import HTTPTimeoutError, SimpleAsyncHTTPClient

from roo_daemon import __version__
from roo_daemon.events.bus import Event
from roo_daemon.metrics import Metrics
from roo_daemon.models import Session, iso
from roo_daemon.store.database import Database, WriteFn
from roo_daemon.store.sqlite import chain
from roo_daemon.webhooks.hooks import Webhook, from_doc, hooks_of, shape_problems
from roo_daemon.webhooks.policy import GuardedResolver, HostPolicy, HostRefused
from roo_daemon.webhooks.signing import HEADER, sign
from roo_daemon.webhooks.store import CursorStore

log = logging.getLogger("roo_daemon.webhooks")
PAGE = 200  # events read from the store at a time, per worker
STORE_RETRY_SECONDS = 5  # after the store failed a worker's read or write (a full disk)


def _discard(chunk: bytes) -> None:
    """A receiver's answer body, dropped as it arrives."""


FAILURE_REASONS = ("http_status", "timeout", "network", "host_refused", "no_secret")


@dataclass(eq=False)
class Worker:
    """One (session, webhook): its cursor, counters and what it is doing."""

    session_id: str
    hook: Webhook
    cursor: int
    counters: dict[str, Any]
    persisted: int = -1  # the cursor the store holds
    status: str = "idle"  # idle | delivering | retrying
    consecutive_failures: int = 0
    last_error: str | None = None
    last_attempt_at: float | None = None
    next_attempt_at: float | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    waiting: bool = False  # asleep on ``wake`` after a read found nothing new
    task: asyncio.Task | None = None

    def state(self, admin: bool) -> dict[str, Any]:
        c = self.counters
        return {
            "id": self.hook.id,
            "source": self.hook.source,
            "url": self.hook.public_url(admin),
            "events": list(self.hook.events),
            "secret_env": self.hook.secret_env,
            "status": self.status,
            "cursor": self.cursor,
            "delivered": c.get("delivered", 0),
            "failed_attempts": c.get("failed_attempts", 0),
            "consecutive_failures": self.consecutive_failures,
            "last_delivered_seq": c.get("last_delivered_seq"),
            "last_delivered_at": c.get("last_delivered_at"),
            "last_attempt_at": iso(self.last_attempt_at) if self.last_attempt_at else None,
            "next_attempt_at": iso(self.next_attempt_at) if self.next_attempt_at else None,
            "last_error": self.last_error,
        }


class WebhookDispatcher:
    def __init__(self, settings: dict[str, Any], db: Database, metrics: Metrics) -> None:
        self.settings = settings
        self.db = db
        self.cursors = CursorStore(db)
        self.metrics = metrics
        self.policy = HostPolicy(settings["allowed_hosts"])
        self.defaults = [from_doc(d, "config") for d in settings["default"]]
        self.resolver = GuardedResolver(policy=self.policy)
        self.client: SimpleAsyncHTTPClient | None = None
        self.workers: dict[str, list[Worker]] = {}  # session id -> its workers
        # Several nodes: whether this node owns a session (delivers its
        # webhooks), the session itself, the log's last seq. Set by the daemon;
        # alone, every session is this node's.
        self.is_local: Callable[[str], bool] = lambda session_id: True
        self.session_of: Callable[[str], Session | None] = lambda session_id: None
        self.last_seq: Callable[[], int] = lambda: 0
        # Where the workers of sessions this node stopped owning were, should
        # it own one again before their cursors are stored.
        self._left: dict[str, dict[tuple[str, str], tuple[int, dict[str, Any]]]] = {}
        self._changing: set[asyncio.Task] = set()  # acquisitions and releases under way
        self._slots = asyncio.Semaphore(settings["max_concurrent"])
        self._closing = asyncio.Event()

    # -- sessions -------------------------------------------------------

    def hooks_for(self, session: Session) -> list[Webhook]:
        return hooks_of(session.webhooks, self.defaults)

    async def check(self, docs: list[dict[str, Any]]) -> list[dict[str, str]]:
        """Problems with a new session's webhooks (``{pointer, message}``):
        their shape, their secret variable, and their host, resolved now and
        checked against ``allowed_hosts`` (again at every delivery)."""
        problems: list[dict[str, str]] = []
        seen: set[str] = set()
        for i, doc in enumerate(docs):
            pointer = f"/body/webhooks/{i}"
            found = shape_problems(doc, pointer, session=True)
            problems += found
            hook_id = from_doc(doc, "session").id
            if hook_id in seen:
                problems.append({"pointer": pointer, "message": "the same webhook twice"})
            seen.add(hook_id)
            if any(p["pointer"] == f"{pointer}/url" for p in found):
                continue
            parts = urlsplit(doc["url"])
            try:
                await self.resolver.resolve(parts.hostname or "", parts.port or 443)
            except OSError as e:  # HostRefused, or a name that does not resolve
                problems.append({"pointer": f"{pointer}/url", "message": str(e)})
        return problems

    def start_cursors(self, session: Session) -> WriteFn:
        """For the session's creating transaction: its webhooks deliver from its first event."""
        return self.cursors.start(session.id, [h.id for h in self.hooks_for(session)], 0)

    def add_session(self, session: Session, found: dict[tuple[str, str], tuple[int, dict]] | None = None) -> None:
        """Start the session's workers (after its creating transaction committed)."""
        workers = []
        for hook in self.hooks_for(session):
            seq, counters = (found or {}).get((session.id, hook.id), (0, {}))
            w = Worker(session.id, hook, seq, dict(counters), persisted=seq)
            w.task = asyncio.get_running_loop().create_task(self._run(w))
            workers.append(w)
        if workers:
            self.workers[session.id] = workers

    async def remove_session(self, session_id: str) -> WriteFn:
        """Stop the session's workers (a delivery in flight is dropped: the
        session is going); returns the write that deletes its cursors."""
        workers = self.workers.pop(session_id, [])
        for w in workers:
            if w.task is not None:
                w.task.cancel()
        await asyncio.gather(*(w.task for w in workers if w.task is not None), return_exceptions=True)
        return CursorStore.delete_session(session_id)

    def acquired(self, session_id: str) -> None:
        """This node now owns the session (``Ownership.on_acquire``: taken
        over, reclaimed, or just created): deliver its webhooks from the
        stored cursors. A session whose workers run already is left as is."""
        if session_id in self.workers or self._closing.is_set():
            return
        self._spawn(self._acquire(session_id))

    async def _acquire(self, session_id: str) -> None:
        if session_id in self.workers:
            return  # a session just created: its workers started right after the callback (no read)
        found = await self.cursors.load_session(session_id)
        session = self.session_of(session_id)
        if session is None or session_id in self.workers or not self.is_local(session_id) or self._closing.is_set():
            return  # gone, started meanwhile, or owned elsewhere again
        for key, (seq, counters) in self._left.pop(session_id, {}).items():
            if seq > found.get(key, (-1, {}))[0]:
                found[key] = (seq, counters)  # this node's own, not stored yet: further than the store's
        new: list[WriteFn] = []
        for hook in self.hooks_for(session):
            if (session.id, hook.id) not in found:
                seq = 0 if hook.source == "session" else self.last_seq()
                found[(session.id, hook.id)] = (seq, {})
                new.append(CursorStore.put(session.id, hook.id, seq, {}))
        if new:
            await self.db.write(chain(*new))
        if session_id not in self.workers and self.is_local(session_id):
            self.add_session(session, found)
            log.info("webhooks of session %s are delivered by this node from their stored cursors", session_id)

    def released(self, session_id: str) -> None:
        """This node no longer owns the session (``Ownership.on_release``):
        stop its workers now (a delivery in flight is dropped; the new owner
        sends it again) and store their cursors, which never move back."""
        workers = self.workers.pop(session_id, [])
        if not workers:
            return
        for w in workers:
            if w.task is not None:
                w.task.cancel()
        self._left[session_id] = {(w.session_id, w.hook.id): (w.cursor, dict(w.counters)) for w in workers}
        self._spawn(self._store_left(session_id, workers))

    async def _store_left(self, session_id: str, workers: list[Worker]) -> None:
        await asyncio.gather(*(w.task for w in workers if w.task is not None), return_exceptions=True)
        moved = [w for w in workers if w.cursor > w.persisted]
        try:
            if moved:
                await self.db.write(
                    chain(*(CursorStore.put(w.session_id, w.hook.id, w.cursor, dict(w.counters)) for w in moved))
                )
        except Exception as e:  # the database is down: the next owner repeats a little more
            log.warning("webhooks of session %s: could not store their cursors on release (%s)", session_id, e)
            return
        if session_id not in self.workers:
            self._left.pop(session_id, None)

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._changing.add(task)
        task.add_done_callback(self._changed)

    def _changed(self, task: asyncio.Task) -> None:
        self._changing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("webhooks: taking or giving up a session's deliveries failed: %s", task.exception())

    def snapshot(self, session_id: str, admin: bool) -> list[dict[str, Any]]:
        return [w.state(admin) for w in self.workers.get(session_id, [])]

    async def states(self, session: Session, admin: bool) -> list[dict[str, Any]]:
        """The session's webhooks and where their delivery stands: this
        node's workers when it owns the session; else what the owner last
        stored (cursor and counters; the attempt in progress, a retry's
        error and timing are the owner's to know: shown as idle, none)."""
        if session.id in self.workers or self.is_local(session.id):
            return self.snapshot(session.id, admin)
        found = await self.cursors.load_session(session.id)
        out = []
        for hook in self.hooks_for(session):
            seq, counters = found.get((session.id, hook.id), (0, {}))
            out.append(Worker(session.id, hook, seq, counters, persisted=seq).state(admin))
        return out

    # -- lifecycle --------------------------------------------------------

    async def start(self, sessions: Iterable[Session], last_seq: int) -> None:
        """Resume every session's workers from their cursors. A daemon-wide
        webhook added since the last run has none for older sessions: it
        starts at the present (``last_seq``), not with their whole history."""
        self.client = SimpleAsyncHTTPClient(
            force_instance=True, max_clients=self.settings["max_concurrent"], resolver=self.resolver
        )
        found = await self.cursors.load()
        new: list[WriteFn] = []
        for session in sessions:
            if not self.is_local(session.id):
                continue  # another node's: it delivers them
            for hook in self.hooks_for(session):
                if (session.id, hook.id) not in found:
                    seq = 0 if hook.source == "session" else last_seq
                    found[(session.id, hook.id)] = (seq, {})
                    new.append(CursorStore.put(session.id, hook.id, seq, {}))
            self.add_session(session, found)
        if new:
            await self.db.write(chain(*new))

    async def close(self) -> None:
        """Stop: a delivery in flight is let finish (within the timeout) and
        its cursor stored, so a restart neither repeats nor skips it."""
        self._closing.set()
        if self._changing:
            await asyncio.gather(*self._changing, return_exceptions=True)
        workers = [w for ws in self.workers.values() for w in ws]
        for w in workers:
            w.wake.set()
        tasks = [w.task for w in workers if w.task is not None]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self.settings["timeout_seconds"] + 5)
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self.client is not None:
            self.client.close()
        self.resolver.close()

    def deliver(self, event: Event) -> None:
        """The bus's subscriber call, after the event's commit: wake its
        session's workers. A worker waiting with every earlier event of the
        session read (it is asleep and nothing woke it since its last read)
        passes an event it does not want here, without a store read: a
        streamed delta costs a webhook that wants only ``task.completed``
        nothing but this."""
        for w in self.workers.get(event.session_id or "", ()):
            if w.waiting and not w.wake.is_set() and not w.hook.wants(event.name):
                w.cursor = max(w.cursor, event.seq)  # stored with the next delivery, or at stop
            else:
                w.wake.set()

    # -- a worker ---------------------------------------------------------

    async def _run(self, w: Worker) -> None:
        while not self._closing.is_set():
            try:
                await self._pass(w)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the store failing (a full disk): try again later
                log.warning("webhook %s of session %s: %s; retrying", w.hook.id, w.session_id, e)
                await self._sleep(min(STORE_RETRY_SECONDS, self.settings["retry_max_seconds"]))
        await self._persist(w)

    async def _pass(self, w: Worker) -> None:
        """Deliver what the store has after the cursor; wait for more when there is none."""
        w.wake.clear()  # before the read: an event committed after it wakes the next wait
        rows = await self.cursors.events(w.session_id, w.cursor, PAGE)
        if not rows:
            w.status = "idle"
            w.waiting = True
            try:
                await w.wake.wait()
            finally:
                w.waiting = False
            return
        try:
            for seq, name, frame in rows:
                if w.hook.wants(name):
                    if not await self._deliver(w, seq, name, frame.encode()):
                        return  # closing
                    c = w.counters
                    c["delivered"] = c.get("delivered", 0) + 1
                    c["last_delivered_seq"] = seq
                    c["last_delivered_at"] = iso(time.time())
                    w.cursor = seq
                    await self._persist(w)
                else:
                    # Stored with the next delivery (or at stop), not now: a
                    # write per streamed delta would double the store's load,
                    # and a cursor left behind only re-reads unwanted events.
                    w.cursor = seq
        finally:
            w.status = "idle" if w.status == "delivering" else w.status

    async def _persist(self, w: Worker) -> None:
        if w.cursor != w.persisted and w.session_id in self.workers:
            seq = w.cursor
            await self.db.write(CursorStore.put(w.session_id, w.hook.id, seq, dict(w.counters)))
            w.persisted = max(w.persisted, seq)

    async def _deliver(self, w: Worker, seq: int, name: str, body: bytes) -> bool:
        """POST until a 2xx; False if the daemon is stopping first."""
        initial, longest = self.settings["retry_initial_seconds"], self.settings["retry_max_seconds"]
        while not self._closing.is_set():
            w.status, w.last_attempt_at, w.next_attempt_at = "delivering", time.time(), None
            reason, error = await self._post(w.hook, seq, name, body)
            if reason is None:
                if w.consecutive_failures:
                    log.info("webhook %s of session %s delivers again", w.hook.id, w.session_id)
                w.consecutive_failures, w.last_error = 0, None
                self.metrics.webhook_deliveries.inc()
                return True
            self.metrics.webhook_failures.labels(reason).inc()
            w.counters["failed_attempts"] = w.counters.get("failed_attempts", 0) + 1
            w.consecutive_failures += 1
            w.last_error = error
            if w.consecutive_failures == 1:
                log.warning(
                    "webhook %s of session %s failed: %s; retrying until it answers 2xx",
                    w.hook.id,
                    w.session_id,
                    error,
                    extra={"session_id": w.session_id, "webhook": w.hook.id, "seq": seq},
                )
            delay = min(longest, initial * 2 ** min(w.consecutive_failures - 1, 30)) * random.uniform(0.8, 1.0)
            w.status, w.next_attempt_at = "retrying", time.time() + delay
            await self._sleep(delay)
        return False

    async def _sleep(self, seconds: float) -> None:
        """Wait, but not past the start of a shutdown."""
        try:
            await asyncio.wait_for(self._closing.wait(), seconds)
        except TimeoutError:
            pass

    async def _post(self, hook: Webhook, seq: int, name: str, body: bytes) -> tuple[str | None, str | None]:
        """One attempt: ``(None, None)`` on a 2xx, else ``(reason, error)``."""
        secret = hook.secret()
        if secret is None:
            return "no_secret", f"{hook.secret_env} is not set in the daemon's environment"
        assert self.client is not None
        timeout = self.settings["timeout_seconds"]
        request = HTTPRequest(
            hook.url,
            method="POST",
            body=body,
            headers={
                "Content-Type": "application/json",
                "User-Agent": f"roo-daemon/{__version__}",
                HEADER: sign(secret, body),
                "X-Roo-Event": name,
                "X-Roo-Webhook": hook.id,
                "X-Roo-Delivery": f"{hook.id}.{seq}",  # the same on every attempt: receivers can deduplicate
            },
            connect_timeout=timeout,
            request_timeout=timeout,
            follow_redirects=False,  # a redirect could lead anywhere; the resolver checks only where we go
            streaming_callback=_discard,  # only the status matters: a receiver's body is never held in memory
        )
        async with self._slots:
            try:
                response = await self.client.fetch(request, raise_error=False)
            except HostRefused as e:
                return "host_refused", str(e)
            except OSError as e:
                return "network", str(e)[:300]
        if 200 <= response.code < 300:
            return None, None
        if response.code == 599:
            error = response.error
            if isinstance(error, HostRefused):
                return "host_refused", str(error)
            if isinstance(error, HTTPTimeoutError | TimeoutError):
                return "timeout", f"no answer within {timeout} s"
            return "network", str(error)[:300]
        return "http_status", f"HTTP {response.code}"
