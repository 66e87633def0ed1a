"""The daemon's parts, built once at start and shared by every handler."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from roo_daemon.auth import Authenticator
from roo_daemon.checkpoints.manager import CheckpointManager
from roo_daemon.checkpoints.nodelock import RepoLocks
from roo_daemon.checkpoints.store import CheckpointStore
from roo_daemon.clientip import parse_networks
from roo_daemon.cluster.caps import Caps, LocalCaps, make_caps
from roo_daemon.cluster.handoff import Handoff
from roo_daemon.cluster.nodes import NodeIdInUse
from roo_daemon.cluster.ownership import Ownership, SessionOwnership, SoleNode, open_ownership
from roo_daemon.cluster.remote import start as start_handoff
from roo_daemon.config import Config, checkpoints_dir, managed_dir, prepare_data_dir
from roo_daemon.engine.loop import AgentLoop
from roo_daemon.engine.providers import Provider, build_providers
from roo_daemon.engine.sandbox import SETTINGS_KEY, Sandbox, daemon_files
from roo_daemon.engine.tools import default_registry
from roo_daemon.engine.tools.artifacts import SETTINGS_KEY as OUTPUT_KEY
from roo_daemon.events import EventBus
from roo_daemon.idempotency import IdempotencyGuard
from roo_daemon.mcp import McpHub, McpToolSource, build_hub
from roo_daemon.metrics import ClusterMetrics, Metrics
from roo_daemon.ratelimit import RateLimiter
from roo_daemon.sessions.manager import SessionManager
from roo_daemon.spec import Spec
from roo_daemon.store import Database, EventStore, IdempotencyStore, SessionStore, TaskStore
from roo_daemon.store.backends import StoreConfigError, event_store, make_database
from roo_daemon.store.database import DB_FILE, storage_error  # noqa: F401 (DB_FILE: the cli and tests import it from here)
from roo_daemon.store.lock import DataDirLock, DataDirLocked
from roo_daemon.tasks.manager import TaskManager
from roo_daemon.tasks.recovery import recover
from roo_daemon.tasks.runner import TaskRunner
from roo_daemon.webhooks import WebhookDispatcher
from roo_daemon.ws.protocol import FrameValidator

log = logging.getLogger("roo_daemon")


class StartupError(Exception):
    """The daemon cannot start on this data dir: another daemon holds it, or
    its store cannot be opened or written. The CLI prints the message as one
    line and exits 2, like a configuration error."""


@dataclass
class AppContext:
    config: Config
    spec: Spec
    metrics: Metrics
    auth: Authenticator
    db: Database
    bus: EventBus
    events: EventStore
    runner: TaskRunner
    sessions: SessionManager
    tasks: TaskManager
    ws_validator: FrameValidator
    data_dir: Path
    limiter: RateLimiter
    trusted_proxies: list[Any]
    providers: dict[str, Provider]
    checkpoints: CheckpointManager
    inflight: set[Any] = field(default_factory=set)  # REST handlers not yet finished
    websockets: set[Any] = field(default_factory=set)
    shutting_down: bool = False
    recovered: dict[str, int] = field(default_factory=dict)
    lock: DataDirLock | None = None  # the data dir's flock, released last in close()
    mcp: McpHub | None = None  # MCP server connections (roo_daemon/mcp)
    webhooks: WebhookDispatcher | None = None  # event deliveries (roo_daemon/webhooks)
    caps: Caps = field(default_factory=LocalCaps)  # per-principal caps across nodes (roo_daemon/cluster/caps.py)
    ownership: SessionOwnership = field(default_factory=SoleNode)  # which node runs each session (roo_daemon/cluster)
    handoff: Handoff | None = None  # requests for other nodes' sessions, and theirs for ours (PostgreSQL)

    def update_limits(self, limits: dict[str, Any], max_subscriptions: int | None = None) -> None:
        """Apply a new ``limits`` section (and ``websocket.max_subscriptions``)
        to every part that enforces one, on a SIGHUP reload. Rate-limit buckets
        keep their fill; caps apply from the next request, connection or
        subscribe on, and nothing already over a lowered cap is closed or evicted.

        The WebSocket handler reads its caps from ``config`` when it checks them
        (``ws_connections_per_principal``, ``websocket.max_subscriptions``); open
        connections retune their frame bucket (``ws_frames``) here."""
        self.limiter.update_limits(limits)
        self.tasks.update_limits(limits)
        self.sessions.update_limits(limits["max_sessions_per_principal"])
        self.config["limits"] = limits
        if max_subscriptions is not None:
            self.config["websocket"]["max_subscriptions"] = max_subscriptions
        for ws in self.websockets:
            ws.update_limits(limits)

    async def close(self) -> None:
        """After the server stopped taking requests: interrupt the running
        tasks, drop kept-alive provider connections, close the store."""
        if self.handoff is not None:
            await self.handoff.close()  # takes no more requests of other nodes; those running finish
        await self.runner.shutdown()
        if self.webhooks is not None:
            # After the tasks (their last events are stored, and sent after the
            # restart); before the store: a delivery in flight stores its cursor.
            self.bus.unsubscribe(self.webhooks)
            await self.webhooks.close()
        await self.checkpoints.close()
        await self.ownership.close()  # stops renewing the lease (its row's lease runs out)
        if self.mcp is not None:
            await self.mcp.close()  # after the tasks: no call is in flight; every server process ends
        for provider in self.providers.values():
            provider.close()
        try:
            await self.caps.close()  # this node's WebSocket connections no longer count
            await self.db.close()
        finally:
            if self.lock is not None:
                self.lock.release()


async def open_context(cfg: Config, spec: Spec | None = None) -> AppContext:
    """Lock the data dir, open the store, load sessions, recover tasks a
    previous run left live. Raises :class:`StartupError` if the data dir is
    another daemon's, or its store cannot be written (a full disk)."""
    spec = spec or Spec()
    data_dir = prepare_data_dir(cfg)  # once, before serving: blocking is fine here
    lock = DataDirLock(data_dir)
    try:
        lock.acquire()  # before anything reads or writes the store
    except DataDirLocked as e:
        raise StartupError(str(e)) from None
    try:
        ctx = await _build_context(cfg, spec, data_dir)
    except StoreConfigError as e:
        lock.release()
        raise StartupError(str(e)) from None
    except BaseException as e:
        lock.release()
        failure = storage_error(e, data_dir)
        if failure is not None:
            where = data_dir if cfg["store"]["backend"] == "sqlite" else f"PostgreSQL (${cfg['store']['dsn_env']})"
            raise StartupError(f"cannot write the store in {where}: {failure.reason}") from None
        raise
    ctx.lock = lock
    return ctx


async def _build_context(cfg: Config, spec: Spec, data_dir: Path) -> AppContext:
    metrics = Metrics()
    db = make_database(cfg["store"], data_dir)
    await db.open()
    try:
        ownership = await open_ownership(cfg, db)  # PostgreSQL: the node's lease (one process per node id)
    except NodeIdInUse as e:
        await db.close()
        raise StoreConfigError(str(e)) from None
    except BaseException:
        await db.close()
        raise
    db.on_commit = lambda n, seconds: metrics.store_write.observe(seconds)
    metrics.store_writable.set(1)  # open() proved it with a write
    db.on_writable = lambda ok: metrics.store_writable.set(1 if ok else 0)
    if db.backend == "postgresql":
        for state, key in (("open", "pool_size"), ("idle", "pool_available"), ("waiting", "requests_waiting")):
            metrics.store_pool.labels(state).set_function(lambda key=key: db.pool_stats().get(key, 0))
        metrics.store_pool.labels("in_use").set_function(lambda: _pool_in_use(db.pool_stats()))
        # Lease, hand-off and notification-lag series (roo_daemon/metrics.py).
        # Serving from the start: the store is open and this node has claimed it.
        metrics.enable_cluster().node_serving.set(1)
    caps = make_caps(db, cfg)
    await caps.start()
    events = event_store(db)
    bus = EventBus(db, events)
    if db.backend == "postgresql":
        # Every write of a task is fenced: refused once another node owns its session.
        bus.fence = ownership.fence_check
        bus.on_fenced = ownership.lost
        if metrics.cluster is not None and isinstance(ownership, Ownership):
            _cluster_metrics(metrics.cluster, ownership, bus)
    bus.on_append = lambda name: metrics.events_appended.inc()
    if metrics.cluster is not None:
        bus.on_lag = metrics.cluster.notification_lag.observe  # another node's commit -> fan-out here
    await bus.open()
    providers = build_providers(cfg["providers"], cfg["_config_dir"], metrics)
    engine_cfg = cfg["engine"]
    tools = cfg["tools"]
    ckpt_dir = checkpoints_dir(cfg, data_dir)
    sandbox = Sandbox(tools["sandbox"], daemon_files(cfg, data_dir), tools["sandbox_read_only_paths"])
    mcp = build_hub(cfg, sandbox, metrics.registry)
    mcp.publish = bus.publish
    engine = AgentLoop(
        providers,
        default_registry([McpToolSource(mcp)]),
        metrics=metrics,
        mistake_limit=engine_cfg["consecutive_mistake_limit"],
        config_modes=engine_cfg["custom_modes"],
        custom_instructions=engine_cfg["custom_instructions"],
        delta_window=engine_cfg["delta_coalesce_ms"] / 1000,
        condense_threshold_percent=engine_cfg["condense_threshold_percent"],
    )
    task_store = TaskStore(db)
    await sandbox.start()  # logs how commands will run (or that they cannot)
    runner = TaskRunner(
        bus,
        task_store,
        engine,
        cfg["engine"]["max_concurrent_tasks"],
        metrics,
        {**tools, SETTINGS_KEY: sandbox, OUTPUT_KEY: str(data_dir / "command-output")},
    )
    idempotency = IdempotencyGuard(IdempotencyStore(db))
    webhooks = WebhookDispatcher(cfg["webhooks"], db, metrics)
    sessions = SessionManager(
        SessionStore(db),
        bus,
        runner,
        idempotency,
        providers,
        data_dir,
        cfg["workspaces"]["roots"],
        {"provider": engine_cfg["default_provider"], "mode": engine_cfg["default_mode"]},
        engine_cfg["custom_modes"],
        cfg["limits"]["max_sessions_per_principal"],
        webhooks,
        caps,
        ownership,
        managed_dir(cfg, data_dir),
        ckpt_dir,
    )
    await sessions.load()
    if db.backend == "postgresql":
        sessions.shared_store = True  # other nodes create, change and delete sessions too
        bus.subscribe(sessions)
    ownership.on_release.append(runner.forget_session)  # a session lost to another node stops here
    # Webhooks are delivered by the session's owner only; one gained (taken
    # over, reclaimed) goes on from its stored cursors.
    webhooks.is_local = ownership.is_local
    ownership.on_acquire.append(webhooks.acquired)
    ownership.on_release.append(webhooks.released)
    await ownership.start()  # reclaims this node's sessions, before their tasks are recovered
    bus.subscribe(webhooks)
    webhooks.session_of = lambda session_id: sessions.sessions.get(session_id)  # one this node comes to own
    webhooks.last_seq = lambda: bus.last_seq
    await webhooks.start(sessions.sessions.values(), bus.last_seq)
    sandbox.workspaces = lambda: [s.workspace for s in sessions.sessions.values()]
    mcp.session_alive = lambda session_id: session_id in sessions.sessions  # its workspace servers stop with it
    tasks = TaskManager(
        sessions,
        task_store,
        events,
        bus,
        runner,
        idempotency,
        {"max_requests": cfg["engine"]["max_requests"], "max_cost_usd": cfg["engine"]["max_cost_usd"]},
        cfg["limits"],
        caps,
    )
    # Nodes sharing workspaces share checkpoints.dir too (by default beside
    # the managed workspaces): their writes to one repository take turns.
    cross = RepoLocks(db) if db.backend == "postgresql" and cfg["workspaces"]["shared"] else None
    if cross is not None and ckpt_dir.is_relative_to(data_dir):
        log.warning(
            "checkpoints: workspaces.shared is set but checkpoints.dir (%s) is in this node's data dir: a session"
            " taken over cannot diff or restore its earlier checkpoints; set workspaces.managed_dir or"
            " checkpoints.dir to the shared storage (docs/cluster.md)",
            ckpt_dir,
        )
    checkpoints = CheckpointManager(
        cfg["checkpoints"], data_dir, CheckpointStore(db), bus, sessions, tasks, idempotency, ckpt_dir, cross
    )
    await checkpoints.start()  # says once if git is missing
    engine.checkpoints = checkpoints
    ctx = AppContext(
        config=cfg,
        spec=spec,
        metrics=metrics,
        auth=Authenticator(cfg["auth"]["keys"]),
        db=db,
        bus=bus,
        events=events,
        runner=runner,
        sessions=sessions,
        tasks=tasks,
        ws_validator=FrameValidator(spec),
        data_dir=data_dir,
        limiter=RateLimiter(cfg["limits"]),
        trusted_proxies=parse_networks(cfg["server"]["trusted_proxies"]),
        providers=providers,
        checkpoints=checkpoints,
        mcp=mcp,
        webhooks=webhooks,
        caps=caps,
    )
    ctx.ownership = ownership
    local = ownership.local_ids()
    owned = sessions.sessions if local is None else {k: v for k, v in sessions.sessions.items() if k in local}
    ctx.recovered = await recover(runner, owned, engine_cfg["resume_interrupted"])

    async def recover_gained(session_ids: list[str]) -> None:
        """Sessions this node gained while running (taken over, reclaimed):
        their rows (perhaps created elsewhere after this node started),
        then their tasks, as at a start."""
        gained = {}
        for session_id in session_ids:
            session = await sessions.refresh(session_id)
            if session is not None:
                gained[session_id] = session
        counts = await recover(runner, gained, engine_cfg["resume_interrupted"])
        log.info("cluster: recovered the tasks of %d sessions: %s", len(gained), counts)

    if isinstance(ownership, Ownership):
        ownership.recover = recover_gained
        # After recovery, so a request handed here finds this node's tasks live.
        ctx.handoff = await start_handoff(
            db, ownership, sessions, tasks, checkpoints, cfg["cluster"]["handoff_timeout_seconds"]
        )
        if metrics.cluster is not None:
            ctx.handoff.on_outcome = metrics.cluster.handoff_outcome
            ctx.handoff.on_run = metrics.cluster.handoff_run
        ownership.on_acquire.append(ctx.handoff.wake)  # requests waiting for a session just taken over
    return ctx


def _cluster_metrics(cluster: ClusterMetrics, ownership: Ownership, bus: EventBus) -> None:
    """The lease and ownership series (roo_daemon/metrics.py ClusterMetrics)."""
    lease = ownership.lease
    cluster.node_serving.set_function(lambda: 1 if lease.held else 0)
    cluster.lease_seconds_left.set_function(lease.seconds_left)
    cluster.sessions_owned.set_function(lambda: len(ownership.local_ids()))
    lease.on_outcome = lambda outcome: cluster.lease_renewals.labels(outcome).inc()
    ownership.on_gained = cluster.sessions_taken_over.inc

    def fenced(session_id: str) -> None:
        cluster.fenced.inc()
        ownership.lost(session_id)

    bus.on_fenced = fenced


def _pool_in_use(stats: dict[str, int]) -> int:
    """The read pool's connections lent out to a read now."""
    return max(0, stats.get("pool_size", 0) - stats.get("pool_available", 0))
