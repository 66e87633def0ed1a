"""Prometheus metrics for MCP, on the daemon's registry.

Labels stay bounded whatever servers say: ``server`` is a name from the
daemon's config, or ``workspace`` for every server a repository defines;
``tool`` is a tool name a config server listed, up to ``TOOL_LABELS`` of
them in all, else ``other``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from roo_daemon.mcp.config import ServerConfig

TOOL_LABELS = 500
OUTCOMES = ("ok", "error", "timeout", "unavailable", "cancelled")
STATUSES = ("stopped", "starting", "connected", "error", "disabled")


class McpMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.calls = Counter(
            "mcp_tool_calls_total",
            "MCP tool calls and resource reads, by server, tool and outcome (ok, error, timeout, unavailable, "
            "cancelled).",
            ["server", "tool", "outcome"],
            registry=registry,
        )
        self.duration = Histogram(
            "mcp_tool_call_duration_seconds",
            "Time from sending an MCP tool call (or resource read) to its answer, by server.",
            ["server"],
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=registry,
        )
        self.starts = Counter(
            "mcp_server_starts_total",
            "MCP server starts, by server and outcome (ok: connected, error: it did not start).",
            ["server", "outcome"],
            registry=registry,
        )
        self.servers = Gauge(
            "mcp_servers",
            "MCP server connections by state (stopped, starting, connected, error, disabled).",
            ["state"],
            registry=registry,
        )
        for status in STATUSES:
            self.servers.labels(status)
        self._tools: set[tuple[str, str]] = set()

    @staticmethod
    def server_label(cfg: ServerConfig) -> str:
        return cfg.name if cfg.source == "config" else "workspace"

    def tool_label(self, cfg: ServerConfig, tool: str) -> str:
        if cfg.source != "config":
            return "other"
        key = (cfg.name, tool)
        if key in self._tools:
            return tool
        if len(self._tools) >= TOOL_LABELS:
            return "other"
        self._tools.add(key)
        return tool

    def observe(self, cfg: ServerConfig, tool: str, outcome: str, seconds: float) -> None:
        server = self.server_label(cfg)
        self.calls.labels(server, self.tool_label(cfg, tool), outcome).inc()
        self.duration.labels(server).observe(seconds)
