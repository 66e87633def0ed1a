"""MCP servers as the agent's tools (issue #13): definitions (``config``),
function names (``naming``), the process and transport (``launch``,
``transport``), one server's connection (``connection``), all of them
(``hub``), the engine's view (``tools``), result formatting (``results``),
metrics and the REST handler."""

from __future__ import annotations

from typing import Any

from roo_daemon.engine.sandbox import Sandbox
from roo_daemon.mcp.hub import McpHub, Settings
from roo_daemon.mcp.launch import Launcher
from roo_daemon.mcp.metrics import McpMetrics
from roo_daemon.mcp.tools import McpToolSource


def build_hub(cfg: dict[str, Any], sandbox: Sandbox | None, registry: Any = None) -> McpHub:
    """The daemon's hub, from its configuration (``mcp``, ``tools``)."""
    settings = Settings.from_config(cfg["mcp"])
    launcher = Launcher(sandbox, cfg["tools"], cfg.get("_config_dir") or ".", settings.max_message_bytes)
    return McpHub(settings, launcher, McpMetrics(registry) if registry is not None else None)


__all__ = ["McpHub", "McpToolSource", "Settings", "build_hub"]
