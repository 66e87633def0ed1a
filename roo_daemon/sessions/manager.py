"""Session logic: creation (workspace rules, idempotency), visibility,
listing and deletion. Sessions are few and small, so all of them are also
kept in memory: looking one up (every task request does) costs no I/O."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from roo_daemon.auth import Principal
from roo_daemon.cluster.caps import Caps, LocalCaps, too_many_sessions
from roo_daemon.cluster.ownership import SessionOwnership, SoleNode
from roo_daemon.engine.modes import ModeError, available_modes
from roo_daemon.engine.providers.base import Provider
from roo_daemon.events import EventBus
from roo_daemon.idempotency import IdempotencyGuard
from roo_daemon.models import AUTO_APPROVE_DEFAULTS, CHECKPOINTS_DEFAULTS, SANDBOX_DEFAULTS, Session, new_id, now_iso
from roo_daemon.pagination import decode_cursor, encode_cursor
from roo_daemon.problems import Problem, not_found, validation_problem
from roo_daemon.store import SessionStore
from roo_daemon.store.database import storage_error
from roo_daemon.store.sqlite import chain
from roo_daemon.tasks.runner import TaskRunner
from roo_daemon.webhooks import WebhookDispatcher

if TYPE_CHECKING:
    from roo_daemon.cluster.remote import Remote

log = logging.getLogger("roo_daemon.sessions")


class SessionManager:
    def __init__(
        self,
        store: SessionStore,
        bus: EventBus,
        runner: TaskRunner,
        idempotency: IdempotencyGuard,
        providers: dict[str, Provider],
        data_dir: Path,
        workspace_roots: list[str],
        defaults: dict[str, Any],
        config_modes: list[dict[str, Any]] | None = None,
        max_sessions: int = 10000,
        webhooks: WebhookDispatcher | None = None,
        caps: Caps | None = None,
        ownership: SessionOwnership | None = None,
        managed_dir: Path | None = None,
        checkpoints_dir: Path | None = None,
    ) -> None:
        self.store = store
        self.bus = bus
        self.runner = runner
        self.idempotency = idempotency
        self.providers = providers
        self.data_dir = data_dir
        self.roots = [Path(r).resolve() for r in workspace_roots]
        self.defaults = defaults
        self.config_modes = config_modes or []
        self.max_sessions = max_sessions
        self.webhooks = webhooks
        self.caps = caps or LocalCaps()
        # Which node runs each session's tasks (roo_daemon/cluster); on one
        # daemon (SQLite) this one, always.
        self.ownership: SessionOwnership = ownership or SoleNode()
        self.managed_dir = managed_dir or data_dir / "workspaces"
        self.checkpoints_dir = checkpoints_dir or data_dir / "checkpoints"
        self.sessions: dict[str, Session] = {}
        # Several nodes (PostgreSQL): sessions are also created, changed and
        # deleted by the others; a miss reads the store, and their
        # session.* events refresh this cache (``deliver``).
        self.shared_store = False
        self._refreshing: dict[str, asyncio.Lock] = {}  # per session: one read at a time, in order
        self._refreshes: set[asyncio.Task] = set()
        self._creating: Counter[str] = Counter()  # sessions being created, per principal
        self._updating: dict[str, asyncio.Lock] = {}  # per session: one PATCH at a time
        # Several nodes (PostgreSQL): a PATCH or DELETE of a session another
        # node owns (where its live tasks are) is run by that node.
        self.remote: Remote | None = None

    def update_limits(self, max_sessions: int) -> None:
        """A new per-principal cap (a SIGHUP reload), checked from the next
        create on. Sessions above a lowered cap are kept: only new ones are refused."""
        self.max_sessions = max_sessions

    async def load(self) -> None:
        self.sessions = {s.id: s for s in await self.store.load_all()}

    async def refresh(self, session_id: str) -> Session | None:
        """The session as stored now, into the cache (gone from the store:
        out of it). A cached session is changed in place: its live tasks
        hold that object. For sessions another node created or changed.
        One read at a time per session, in call order, so an older read
        never overwrites a newer one."""
        lock = self._refreshing.setdefault(session_id, asyncio.Lock())
        try:
            async with lock:
                stored = await self.store.get(session_id)
                cached = self.sessions.get(session_id)
                if stored is None:
                    self.sessions.pop(session_id, None)
                    return None
                if cached is None:
                    self.sessions[session_id] = stored
                    return stored
                cached.apply({name: getattr(stored, name) for name in stored.__dataclass_fields__})
                return cached
        finally:
            if not lock.locked() and self._refreshing.get(session_id) is lock:
                del self._refreshing[session_id]

    def deliver(self, event: Any) -> None:
        """A bus subscriber (several nodes only): another node created,
        changed or deleted a session this node does not own: read it again.
        (The owner's own changes are in this cache already.)"""
        if not event.name.startswith("session.") or event.session_id is None:
            return
        if self.ownership.is_local(event.session_id):
            return
        task = asyncio.get_running_loop().create_task(self.refresh(event.session_id))
        self._refreshes.add(task)
        task.add_done_callback(self._refreshed)

    def _refreshed(self, task: asyncio.Task) -> None:
        self._refreshes.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # The store is unreachable: the next event, or a miss, reads it again.
            log.warning("could not refresh a session from the store: %s", task.exception())

    async def visible(self, principal: Principal, session_id: str) -> Session:
        """The session if ``principal`` may see it; 404 otherwise (also when
        it belongs to someone else, so ids of others leak nothing). With
        several nodes, one not cached yet (created on another node a moment
        ago) is read from the store."""
        session = self.sessions.get(session_id)
        if session is None and self.shared_store:
            session = await self.refresh(session_id)
        return self._check_visible(principal, session_id, session)

    def visible_now(self, principal: Principal, session_id: str) -> Session | None:
        """:meth:`visible` from the cache alone (no await: the GET's fast
        path); None when the store must be read (a miss, several nodes)."""
        session = self.sessions.get(session_id)
        if session is None and self.shared_store:
            return None
        return self._check_visible(principal, session_id, session)

    @staticmethod
    def _check_visible(principal: Principal, session_id: str, session: Session | None) -> Session:
        if session is None or not (principal.is_admin or session.owner == principal.name):
            raise not_found("session", session_id)
        return session

    def provider_kind(self, name: str) -> str:
        return self.providers[name].kind

    def check_provider(self, name: str) -> None:
        if name not in self.providers:
            known = ", ".join(sorted(self.providers))
            raise validation_problem(
                [{"pointer": "/body/provider", "message": f"no provider profile named {name!r} (configured: {known})"}]
            )

    async def check_mode(self, mode: str, workspace: str) -> None:
        """A mode must exist: built-in, from config, or from the workspace's .roomodes."""
        try:
            modes = await asyncio.to_thread(available_modes, self.config_modes, workspace)
        except ModeError as e:
            raise validation_problem([{"pointer": "/body/mode", "message": str(e)}]) from None
        if mode not in modes:
            raise validation_problem(
                [{"pointer": "/body/mode", "message": f"no mode {mode!r} (available: {', '.join(modes)})"}]
            )

    async def modes(self, principal: Principal, session_id: str | None) -> list[dict[str, Any]]:
        """The modes a session's tasks can use, as ``GET /api/v1/modes``
        lists them: built-in, config, then its workspace's ``.roomodes``
        (without a session: what every session has). A ``.roomodes`` that
        cannot be read is a 409 that says why: the session's tasks would fail
        with ``bad_modes`` until it is fixed."""
        if session_id is None:
            workspace = None
        else:
            workspace = (await self.visible(principal, session_id)).workspace
            if self.remote is not None and self.remote.elsewhere(session_id) and not self.ownership.shared:
                # The workspace is on its owner's disk only (the same path
                # here is another directory, or none): the owner reads it,
                # or the answer is 503 owner-unavailable, never another
                # node's file or the built-in modes alone.
                return await self.remote.modes(principal, session_id)
        try:
            # .roomodes is a file read: off the loop.
            modes = await asyncio.to_thread(available_modes, self.config_modes, workspace)
        except ModeError as e:
            raise Problem(409, f"the session's modes cannot be read, so its tasks cannot start: {e}") from None
        return [m.to_resource() for m in modes.values()]

    async def create(self, principal: Principal, body: dict[str, Any], key: str | None) -> tuple[Session, bool]:
        async def create(record: Any) -> str:
            cap = self.max_sessions
            if not self.caps.shared:
                # Sessions being created count too: concurrent creates cannot
                # all pass the check before any of them is stored. (PostgreSQL:
                # counted for the cluster in the insert's transaction instead.)
                owned = sum(1 for s in self.sessions.values() if s.owner == principal.name)
                if owned + self._creating[principal.name] >= cap:
                    raise too_many_sessions(principal.name, cap)
            self._creating[principal.name] += 1
            try:
                session = await self._new_session(principal, body)
                try:
                    write = chain(
                        self.caps.session_slot(principal.name, cap),
                        SessionStore.insert(session),
                        self.ownership.claim_new(session.id),  # this node owns what it creates (or 503)
                        record(session.id) if record else None,
                        self.webhooks.start_cursors(session) if self.webhooks else None,
                    )
                    await self.bus.append(
                        "session.created",
                        session.to_resource(),
                        session_id=session.id,
                        owner=session.owner,
                        write=write,
                    )
                except Exception:
                    # Not stored (the transaction rolled back: a full disk...):
                    # the directory made for it belongs to no session.
                    if session.workspace_managed:
                        await asyncio.to_thread(shutil.rmtree, session.workspace, True)
                    raise
                self.sessions[session.id] = session
                self.ownership.committed_new(session.id)
                if self.webhooks is not None:
                    self.webhooks.add_session(session)
            finally:
                self._creating[principal.name] -= 1
            return session.id

        session_id, replayed = await self.idempotency.create_once(principal.name, "createSession", key, body, create)
        return await self.visible(principal, session_id), replayed

    async def _new_session(self, principal: Principal, body: dict[str, Any]) -> Session:
        provider = body.get("provider", self.defaults["provider"])
        self.check_provider(provider)
        hooks = body.get("webhooks", [])
        if hooks:
            problems = (
                await self.webhooks.check(hooks)
                if self.webhooks
                else [{"pointer": "/body/webhooks", "message": "webhooks are not available"}]
            )
            if problems:
                raise validation_problem(problems)
        session_id = new_id("ses")
        if "workspace" in body:
            workspace, managed = await asyncio.to_thread(self._existing_workspace, body["workspace"], principal), False
        else:
            workspace, managed = str(self.managed_dir / session_id), True
            try:
                await asyncio.to_thread(os.makedirs, workspace, exist_ok=True)
            except OSError as e:
                raise storage_error(e) or e from None  # a full disk is a 503, not a 500
        mode = body.get("mode", self.defaults["mode"])
        try:
            await self.check_mode(mode, workspace)
        except Exception:
            if managed:
                await asyncio.to_thread(shutil.rmtree, workspace, True)
            raise
        return Session(
            id=session_id,
            name=body.get("name"),
            workspace=workspace,
            workspace_managed=managed,
            mode=mode,
            provider=provider,
            provider_kind=self.provider_kind(provider),
            auto_approve={**AUTO_APPROVE_DEFAULTS, **body.get("auto_approve", {})},
            metadata=body.get("metadata", {}),
            sandbox={**SANDBOX_DEFAULTS, **body.get("sandbox", {})},
            ask_timeouts=dict(body.get("ask_timeouts", {})),
            checkpoints={**CHECKPOINTS_DEFAULTS, **body.get("checkpoints", {})},
            webhooks=[{"url": h["url"], "events": h["events"], "secret_env": h["secret_env"]} for h in hooks],
            created_at=now_iso(),
            owner=principal.name,
        )

    def _existing_workspace(self, given: str, principal: Principal) -> str:
        """Runs in a thread: it touches the file system."""
        try:
            path = Path(given).expanduser()
        except RuntimeError:  # "~name" for a user this system does not know (found by fuzzing: was a 500)
            message = "names the home directory of an unknown user"
            raise validation_problem([{"pointer": "/body/workspace", "message": message}]) from None
        problem = None
        if not path.is_absolute():
            problem = "must be an absolute path"
        elif not path.is_dir():
            problem = "is not an existing directory"
        else:
            path = path.resolve()
            problem = self._placement_problem(path) or self._key_roots_problem(path, principal)
        if problem:
            raise validation_problem([{"pointer": "/body/workspace", "message": problem}])
        return str(path)

    def _placement_problem(self, path: Path) -> str | None:
        """Why the (resolved) ``path`` cannot be a session's workspace, or None.

        A root is a parent of workspaces, never one itself: a session on a
        root, or on a directory holding one, would reach every workspace
        under it, other tenants' included. And a workspace never overlaps
        the data dir, which holds the store and the managed workspaces."""
        if not self.roots:
            return "cannot be used: no workspaces.roots are configured"
        if path in self.roots:
            return "is a workspaces.roots entry itself: a root holds workspaces; use a directory under it"
        if any(path in root.parents for root in self.roots):
            return "contains a workspaces.roots entry: use a directory that holds no root"
        if not any(root in path.parents for root in self.roots):
            return "is not under any configured workspaces.roots"
        for data in {self.data_dir.resolve(), self.managed_dir.resolve(), self.checkpoints_dir.resolve()}:
            if path == data or data in path.parents or path in data.parents:
                return "overlaps the daemon's data dir (its store, managed workspaces and checkpoints)"
        return None

    @staticmethod
    def _key_roots_problem(path: Path, principal: Principal) -> str | None:
        """Why ``path`` is outside the key's own ``workspace_roots``, or None.
        The message names the key asking, never whose roots hold the path."""
        if principal.workspace_roots is None:
            return None
        allowed = [Path(r).resolve() for r in principal.workspace_roots]
        if any(path == root or root in path.parents for root in allowed):
            return None
        return f"is outside the workspace roots of key {principal.name!r} (auth.keys[].workspace_roots)"

    async def list(self, principal: Principal, limit: int, cursor: str | None) -> tuple[list[Session], str | None]:
        owner = None if principal.is_admin else principal.name
        items, last = await self.store.page(owner, decode_cursor(cursor), limit)
        return items, encode_cursor(last)

    async def update(self, principal: Principal, session_id: str, body: dict[str, Any]) -> Session:
        """Change a session's name and its tasks' defaults (PATCH).

        ``mode`` and ``provider`` are defaults for tasks created from now on
        (a task keeps the ones it started with). ``auto_approve`` (merged
        over the current policy) and ``ask_timeouts`` (replacing them) apply
        to the session's live tasks too, from their next tool call or ask:
        a dashboard can switch on write approval to let a running task go
        on. One update at a time per session, so the stored document and
        the ``session.updated`` events follow the order the updates took."""
        session = await self.visible(principal, session_id)
        if self.remote is not None and self.remote.elsewhere(session_id):
            return await self.remote.update_session(principal, session_id, body)
        lock = self._updating.setdefault(session_id, asyncio.Lock())
        try:
            async with lock:
                return await self._update(principal, session, body)
        finally:
            if not lock.locked() and self._updating.get(session_id) is lock:
                del self._updating[session_id]

    async def _update(self, principal: Principal, session: Session, body: dict[str, Any]) -> Session:
        changes: dict[str, Any] = {}
        if "name" in body:
            changes["name"] = body["name"]
        if "provider" in body:
            self.check_provider(body["provider"])
            changes["provider"] = body["provider"]
            changes["provider_kind"] = self.provider_kind(body["provider"])
        if "mode" in body:
            await self.check_mode(body["mode"], session.workspace)  # reads .roomodes: off the loop
            changes["mode"] = body["mode"]
        if "auto_approve" in body:
            changes["auto_approve"] = {**session.auto_approve, **body["auto_approve"]}
        if "ask_timeouts" in body:
            changes["ask_timeouts"] = dict(body["ask_timeouts"])
        if self.sessions.get(session.id) is not session:  # deleted while the mode was checked
            raise not_found("session", session.id)
        updated = replace(session, **changes)
        await self.bus.append(
            "session.updated",
            updated.to_resource(),
            session_id=session.id,
            owner=session.owner,
            write=SessionStore.update(updated),
        )
        session.apply(changes)  # committed: now the live tasks see it
        return session

    async def delete(self, principal: Principal, session_id: str) -> None:
        session = await self.visible(principal, session_id)
        if self.remote is not None and self.remote.elsewhere(session_id):
            return await self.remote.delete_session(principal, session_id)
        # Forget it first: a concurrent delete now gets 404 and no new task
        # can be created in it while its live tasks are being cancelled.
        del self.sessions[session_id]
        for run in self.runner.live_in_session(session_id):
            await self.runner.cancel(run)
        cursors = await self.webhooks.remove_session(session_id) if self.webhooks else None
        await self.bus.append(
            "session.deleted",
            {"id": session_id},
            session_id=session_id,
            owner=session.owner,
            write=chain(self.ownership.release(session_id), SessionStore.delete(session_id), cursors),
        )
        self.ownership.committed_release(session_id)
        if session.workspace_managed:
            await asyncio.to_thread(shutil.rmtree, session.workspace, True)
