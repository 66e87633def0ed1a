"""REST handler for ``GET /api/v1/providers``: the provider profiles a
session or task may name."""

from __future__ import annotations

from roo_daemon.api.base import ApiHandler
from roo_daemon.engine.providers.catalog import catalog


class ProvidersHandler(ApiHandler):
    operations = {"GET": "listProviders"}

    def get(self) -> None:
        """Every principal sees every profile: any of them may use any."""
        sessions = self.ctx.sessions
        self.send_json({"items": catalog(sessions.providers, sessions.defaults["provider"])})
