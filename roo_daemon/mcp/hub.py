"""The hub: every MCP server connection of the daemon, after Roo-Code's
McpHub (src/services/mcp/McpHub.ts), with a daemon's lifecycle.

- **Which servers a task can use**: every enabled server of ``mcp.servers``
  (one connection, shared by all tasks), and, with
  ``mcp.allow_workspace_servers``, those of its workspace's
  ``.roo/mcp.json`` (one connection per session: each session has its own
  workspace and sandbox). A workspace server with a config server's name
  replaces it for that session, as Roo's project servers do.
- **When they run**: a server starts when a task first needs its tools (a
  turn's request), is restarted with backoff when it dies while in use, and
  is stopped after ``mcp.idle_timeout_seconds`` without use, on SIGHUP if
  its definition changed or went away, and at shutdown.
- **What is seen**: ``mcp.server`` events on every status change (config
  servers: admins only; workspace servers: the session's owner), the
  ``mcp_*`` metrics, and :meth:`snapshot` for ``GET /api/v1/mcp/servers``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import importlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from roo_daemon.mcp import naming
from roo_daemon.mcp.config import Limits, ServerConfig, WorkspaceServers, parse_servers, read_workspace_servers
from roo_daemon.mcp.launch import Launcher
from roo_daemon.mcp.metrics import McpMetrics

if TYPE_CHECKING:  # the SDK is imported when a server is first used, not at start (it costs seconds)
    import mcp_types as types

    from roo_daemon.mcp.connection import ServerConnection

log = logging.getLogger("roo_daemon.mcp")
TOOLSET_CACHE = 256


@dataclass(frozen=True)
class Settings:
    servers: dict[str, ServerConfig]
    allow_workspace_servers: bool = False
    start_timeout: float = 30.0
    idle_timeout: float = 600.0
    max_result_bytes: int = 1 << 20
    max_message_bytes: int = 32 << 20
    backoff_max: float = 60.0

    @classmethod
    def from_config(cls, section: dict[str, Any]) -> Settings:
        return cls(
            servers=parse_servers(section.get("servers") or {}, "config"),
            allow_workspace_servers=section.get("allow_workspace_servers", False),
            start_timeout=section.get("start_timeout_seconds", 30.0),
            idle_timeout=section.get("idle_timeout_seconds", 600.0),
            max_result_bytes=section.get("max_result_bytes", 1 << 20),
            max_message_bytes=section.get("max_message_bytes", 32 << 20),
            backoff_max=section.get("restart_backoff_max_seconds", 60.0),
        )

    @property
    def limits(self) -> Limits:
        return Limits(start_timeout=self.start_timeout, backoff_max=self.backoff_max)


@dataclass(frozen=True)
class Entry:
    """One MCP tool as one task sees it: its function name, server and definition."""

    function: str
    conn: ServerConnection
    tool: types.Tool


@dataclass
class ToolSet:
    """The MCP tools and servers one session can use now."""

    entries: dict[str, Entry] = field(default_factory=dict)  # function name -> entry
    servers: dict[str, ServerConnection] = field(default_factory=dict)  # server name -> connection
    key: tuple = ()

    def lookup(self, function: str) -> Entry | None:
        """Exact, else with ``-`` and ``_`` taken as equal (models mangle them)."""
        entry = self.entries.get(function)
        if entry is None:
            wanted = naming.normalize(function)
            entry = next((e for name, e in self.entries.items() if naming.normalize(name) == wanted), None)
        return entry

    def server_of(self, function: str) -> ServerConnection | None:
        """The server a ``mcp--server--tool`` name points at, running or not."""
        parts = naming.parse(function)
        if parts is None:
            return None
        wanted = naming.normalize(parts[0])
        return next((c for n, c in self.servers.items() if naming.normalize(naming.sanitize(n)) == wanted), None)

    def server(self, name: str) -> ServerConnection | None:
        conn = self.servers.get(name)
        if conn is None:
            conn = next((c for n, c in self.servers.items() if naming.normalize(n) == naming.normalize(name)), None)
        return conn

    @property
    def has_resources(self) -> bool:
        return any(c.status == "connected" and (c.resources or c.templates) for c in self.servers.values())


class McpHub:
    def __init__(self, settings: Settings, launcher: Launcher, metrics: McpMetrics | None = None) -> None:
        self.settings = settings
        self.launcher = launcher
        self.metrics = metrics
        self.publish: Callable[..., Any] | None = None  # the event bus's publish, set by the context
        self.connections: dict[tuple, ServerConnection] = {}
        self._reported: dict[tuple, str] = {}
        self._workspace_errors: dict[str, str] = {}
        self._toolsets: collections.OrderedDict[tuple, ToolSet] = collections.OrderedDict()
        self._reaper: asyncio.Task[None] | None = None
        self._closed = False
        self._sdk_loaded = False
        self._stopping: set[asyncio.Task[None]] = set()
        self.session_alive: Callable[[str], bool] = lambda session_id: True  # set by the context

    # -- connections -----------------------------------------------------

    async def _load_sdk(self) -> None:
        """Import the SDK in a thread the first time a server may be needed:
        it takes seconds, which the event loop must not spend."""
        if not self._sdk_loaded:
            for module in ("roo_daemon.mcp.connection", "roo_daemon.mcp.results"):
                await asyncio.to_thread(importlib.import_module, module)
            self._sdk_loaded = True

    def _connection(self, cfg: ServerConfig) -> ServerConnection:
        from roo_daemon.mcp.connection import ServerConnection

        conn = self.connections.get(cfg.key)
        if conn is not None and conn.cfg != cfg:  # redefined (.roo/mcp.json edited): the old one goes
            self._retire(conn, "stopped: its definition changed")
            conn = None
        if conn is None:
            conn = ServerConnection(cfg, self.launcher.open, self.settings.limits, self._changed)
            self.connections[cfg.key] = conn
            self._count_statuses()
        if self._reaper is None and not self._closed:
            self._reaper = asyncio.get_running_loop().create_task(self._reap(), name="mcp idle reaper")
        return conn

    def _retire(self, conn: ServerConnection, reason: str) -> None:
        self.connections.pop(conn.cfg.key, None)
        task = asyncio.get_running_loop().create_task(conn.stop(reason))
        self._stopping.add(task)  # held until done: a task nobody references may be collected
        task.add_done_callback(self._stopping.discard)

    async def connections_for(self, session: Any) -> list[ServerConnection]:
        """The servers a task of ``session`` can use (disabled ones included)."""
        chosen = {name: cfg for name, cfg in self.settings.servers.items()}
        if chosen or self.settings.allow_workspace_servers:
            await self._load_sdk()
        if self.settings.allow_workspace_servers:
            found = await asyncio.to_thread(
                read_workspace_servers,
                session.workspace,
                session.id,
                session.owner,
                bool((getattr(session, "sandbox", None) or {}).get("network", True)),
            )
            self._note_workspace(session.id, found)
            chosen.update(found.servers)
        return [self._connection(cfg) for cfg in chosen.values()]

    def _note_workspace(self, session_id: str, found: WorkspaceServers) -> None:
        if found.error and self._workspace_errors.get(session_id) != found.error:
            log.warning("session %s: %s", session_id, found.error, extra={"session_id": session_id})
        if found.error:
            self._workspace_errors[session_id] = found.error
        else:
            self._workspace_errors.pop(session_id, None)

    async def toolset(self, session: Any) -> ToolSet:
        """Start what is not running (concurrently, each bounded by
        ``mcp.start_timeout_seconds``) and name every tool for this session."""
        conns = await self.connections_for(session)
        wait = self.settings.start_timeout + 1
        await asyncio.gather(*(c.ensure(wait, through_backoff=False) for c in conns if c.status != "disabled"))
        key = tuple((id(c), c.generation, c.status == "connected") for c in conns)
        cached = self._toolsets.get(key)
        if cached is not None:
            self._toolsets.move_to_end(key)
            return cached
        toolset = _name_tools(conns, key)
        self._toolsets[key] = toolset
        if len(self._toolsets) > TOOLSET_CACHE:
            self._toolsets.popitem(last=False)
        return toolset

    # -- status, events, metrics -----------------------------------------

    def _changed(self, conn: ServerConnection) -> None:
        key = conn.cfg.key
        previous = self._reported.get(key)
        self._reported[key] = conn.status
        if self.metrics is not None:
            server = self.metrics.server_label(conn.cfg)
            if conn.status == "connected" and previous != "connected":
                self.metrics.starts.labels(server, "ok").inc()
            elif conn.status == "error" and previous == "starting":
                self.metrics.starts.labels(server, "error").inc()
            self._count_statuses()
        if self.publish is not None and not self._closed:
            data: dict[str, Any] = {
                "server": conn.cfg.name,
                "source": conn.cfg.source,
                "status": conn.status,
                "tools": len(conn.tools),
                "restarts": conn.restarts,
            }
            if conn.status == "error" and conn.last_error:
                data["error"] = conn.last_error[:2000]
            self.publish("mcp.server", data, session_id=conn.cfg.session_id, owner=conn.cfg.owner)

    def _count_statuses(self) -> None:
        if self.metrics is None:
            return
        counts = collections.Counter(c.status for c in self.connections.values())
        for status in ("stopped", "starting", "connected", "error", "disabled"):
            self.metrics.servers.labels(status).set(counts.get(status, 0))

    # -- idle, reload, shutdown ------------------------------------------

    async def _reap(self) -> None:
        """Stop connections nobody used for ``mcp.idle_timeout_seconds``."""
        while not self._closed:
            await asyncio.sleep(max(0.05, min(30.0, self.settings.idle_timeout / 4)))
            limit = self.settings.idle_timeout
            for conn in list(self.connections.values()):
                gone = conn.cfg.session_id is not None and not self.session_alive(conn.cfg.session_id)
                if gone:
                    await conn.stop("stopped: its session was deleted")
                elif conn.status in ("starting", "connected", "error") and conn.idle_seconds() > limit:
                    await conn.stop(f"stopped after {self.settings.idle_timeout:g} s unused")
                else:
                    continue
                if conn.cfg.source == "workspace":
                    self.connections.pop(conn.cfg.key, None)
                    self._reported.pop(conn.cfg.key, None)
                    self._count_statuses()

    def reload(self, section: dict[str, Any]) -> list[str]:
        """SIGHUP: take a new ``mcp.servers``. Servers removed or redefined
        are stopped (a redefined one starts again on its next use, with its
        new definition); running ones that did not change keep running.
        Returns the names that changed."""
        fresh = Settings.from_config(section)
        old = self.settings.servers
        changed = sorted(n for n in old.keys() | fresh.servers.keys() if old.get(n) != fresh.servers.get(n))
        for name in changed:
            conn = self.connections.get(("config", None, name))
            if conn is not None:
                self._retire(conn, "stopped: mcp.servers changed on reload")
                self._reported.pop(conn.cfg.key, None)
        self.settings = Settings(**{**self.settings.__dict__, "servers": fresh.servers})
        if changed:
            log.info("mcp.servers reloaded: changed %s", ", ".join(changed), extra={"mcp_servers": changed})
        self._toolsets.clear()
        self._count_statuses()
        return changed

    async def close(self) -> None:
        """At shutdown: stop every server (and everything it started)."""
        self._closed = True
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        await asyncio.gather(
            *(c.stop("stopped: the daemon is shutting down") for c in self.connections.values()), *self._stopping
        )

    # -- the API's view --------------------------------------------------

    def snapshot(self, is_admin: bool, principal: str | None) -> list[dict[str, Any]]:
        """Every server a principal may see: the config's (each task can
        use them), and the workspace servers of its own sessions (all, for
        an admin) that have been discovered."""
        config = [self.connections.get(("config", None, n)) or self._idle(c) for n, c in self.settings.servers.items()]
        scopes: dict[str | None, list[ServerConnection]] = {None: config}
        for conn in self.connections.values():
            if conn.cfg.source == "workspace" and (is_admin or conn.cfg.owner == principal):
                scopes.setdefault(conn.cfg.session_id, []).append(conn)
        items = []
        for session_id, conns in scopes.items():
            names = _name_tools(conns if session_id is None else [*config, *conns], ()).entries
            functions = {(e.conn.cfg.key, e.tool.name): fn for fn, e in names.items()}
            items += [_describe(c, functions) for c in conns]
        return items

    def _idle(self, cfg: ServerConfig) -> Any:
        """What the API shows of a server that never ran: no SDK needed."""
        return _Never(cfg, "disabled" if cfg.disabled else "stopped")


@dataclass
class _Never:
    cfg: ServerConfig
    status: str
    tools: dict = field(default_factory=dict)
    invalid_tools: dict = field(default_factory=dict)
    resources: list = field(default_factory=list)
    templates: list = field(default_factory=list)
    restarts: int = 0
    last_error: str | None = None


def _name_tools(conns: Iterable[ServerConnection], key: tuple) -> ToolSet:
    servers: dict[str, ServerConnection] = {}
    for conn in conns:
        servers[conn.cfg.name] = conn
    live = [c for c in servers.values() if c.status == "connected"]
    names = naming.assign((c.cfg.name, t) for c in live for t in c.tools)
    entries: dict[str, Entry] = {}
    for conn in live:
        for name, tool in conn.tools.items():
            function = names[(conn.cfg.name, name)]
            entries[function] = Entry(function, conn, tool)
    return ToolSet(entries, servers, key)


def _describe(conn: ServerConnection, functions: dict[tuple, str]) -> dict[str, Any]:
    cfg = conn.cfg
    item: dict[str, Any] = {
        "name": cfg.name,
        "source": cfg.source,
        "session_id": cfg.session_id,
        "status": conn.status,
        **cfg.describe(),
        "tools": [
            {
                "name": name,
                "function": functions.get((cfg.key, name), ""),
                "description": tool.description or "",
                "always_allow": cfg.allows_without_asking(name),
            }
            for name, tool in conn.tools.items()
        ],
        "invalid_tools": [{"name": n, "reason": r} for n, r in conn.invalid_tools.items()],
        "resources": len(conn.resources) + len(conn.templates),
        "restarts": conn.restarts,
        "last_error": conn.last_error,
    }
    return item
