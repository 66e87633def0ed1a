"""REST handler for webhooks: ``GET /api/v1/sessions/{session_id}/webhooks``."""

from __future__ import annotations

from roo_daemon.api.base import ApiHandler


class SessionWebhooksHandler(ApiHandler):
    operations = {"GET": "listSessionWebhooks"}

    async def get(self, session_id: str) -> None:
        session = await self.ctx.sessions.visible(self.principal, session_id)
        webhooks = self.ctx.webhooks
        # Another node's session: what its owner last stored (a read).
        items = await webhooks.states(session, self.principal.is_admin) if webhooks else []
        self.send_json({"items": items})
