"""REST handler for MCP: ``GET /api/v1/mcp/servers``."""

from __future__ import annotations

from roo_daemon.api.base import ApiHandler


class McpServersHandler(ApiHandler):
    operations = {"GET": "listMcpServers"}

    def get(self) -> None:
        """Admins see every server; others the config's (every task can use
        them) and the workspace servers of their own sessions."""
        principal = self.principal
        self.send_json({"items": self.ctx.mcp.snapshot(principal.is_admin, principal.name)})
