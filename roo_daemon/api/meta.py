"""Unauthenticated operational routes: liveness, readiness, metrics, the spec."""

from __future__ import annotations

from roo_daemon.api.base import ApiHandler
from roo_daemon.problems import Problem, StorageUnavailable


class HealthHandler(ApiHandler):
    operations = {"GET": "getHealth"}
    auth_required = False

    def get(self) -> None:
        self.send_json({"status": "ok"})


class ReadyHandler(ApiHandler):
    operations = {"GET": "getReady"}
    auth_required = False

    async def get(self) -> None:
        if self.ctx.shutting_down:
            raise Problem(503, "the daemon is shutting down", slug="shutting-down")
        if not await self.ctx.db.ping():
            raise Problem(503, "the store is not reachable", slug="store-unavailable")
        if not self.ctx.ownership.serving:
            # Several nodes: its lease ran out unrenewed; it runs nothing until it renews.
            raise Problem(503, "this node has lost its lease and takes no work", slug="lease-lost")
        # Reads working is not enough: not ready while writes fail (a full disk).
        failure = await self.ctx.db.check_writable()
        if failure is not None:
            raise StorageUnavailable(failure.reason, failure.retry)
        self.send_json({"status": "ready"})


class MetricsHandler(ApiHandler):
    operations = {"GET": "getMetrics"}
    auth_required = False

    def prepare(self) -> None:
        if self.ctx.config["auth"]["protect_metrics"] and self.request.method != "OPTIONS":
            principal = self._authenticate()
            if not principal.is_admin:
                raise Problem(403, f"the key {principal.name!r} lacks the 'admin' scope that /metrics requires")
        super().prepare()

    def get(self) -> None:
        self.set_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.finish(self.ctx.metrics.exposition())


class OpenApiYamlHandler(ApiHandler):
    operations = {"GET": "getOpenapiYaml"}
    auth_required = False

    def get(self) -> None:
        # text/yaml only when asked for: generated clients read text/* as text.
        accept = self.request.headers.get("Accept", "")
        media = "text/yaml" if "text/yaml" in accept and "application/yaml" not in accept else "application/yaml"
        self.set_header("Content-Type", f"{media}; charset=utf-8")
        self.finish(self.ctx.spec.text)


class OpenApiJsonHandler(ApiHandler):
    operations = {"GET": "getOpenapiJson"}
    auth_required = False

    def get(self) -> None:
        self.send_json(self.ctx.spec.json_bytes)
