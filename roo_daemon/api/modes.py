"""REST handler for ``GET /api/v1/modes``: the modes a session's tasks can use."""

from __future__ import annotations

from roo_daemon.api.base import ApiHandler


class ModesHandler(ApiHandler):
    operations = {"GET": "listModes"}

    async def get(self) -> None:
        """Sessions are tenant-scoped as everywhere: another principal's
        session is 404. Without ``session_id``: built-in and config modes."""
        modes = await self.ctx.sessions.modes(self.principal, self.params.get("session_id"))
        self.send_json({"items": modes})
