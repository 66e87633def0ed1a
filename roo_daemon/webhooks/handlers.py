"""REST handler for webhooks: ``GET /api/v1/sessions/{session_id}/webhooks``."""

from __future__ import annotations

from roo_daemon.api.base import ApiHandler


class SessionWebhooksHandler(ApiHandler):
    operations = {"GET": "listSessionWebhooks"}

    def get(self, session_id: str) -> None:
        session = self.ctx.sessions.visible(self.principal, session_id)
        webhooks = self.ctx.webhooks
        items = webhooks.snapshot(session.id, self.principal.is_admin) if webhooks else []
        self.send_json({"items": items})
