"""The route table, and nothing else: route → handler → manager.

Each route is the path template of ``openapi.yaml``; its regex is derived
from it, and :func:`make_app` refuses to start if a handler's operations and
the spec disagree, so the table and the contract cannot drift.
"""

from __future__ import annotations

import re
from asyncio import Future
from typing import Any

from tornado import httputil
from tornado.web import Application, RequestHandler, URLSpec

from roo_daemon.api.base import ApiHandler, NotFoundHandler, header
from roo_daemon.api.docs import DocsAssetHandler, DocsHandler, DocsRedirectHandler
from roo_daemon.api.meta import (
    HealthHandler,
    MetricsHandler,
    OpenApiJsonHandler,
    OpenApiYamlHandler,
    ReadyHandler,
)
from roo_daemon.api.modes import ModesHandler
from roo_daemon.api.providers import ProvidersHandler
from roo_daemon.checkpoints.handlers import CheckpointDiffHandler, CheckpointRestoreHandler, CheckpointsHandler
from roo_daemon.context import AppContext
from roo_daemon.dashboard.handlers import DashboardAssetHandler, DashboardHandler
from roo_daemon.logs import access_logger
from roo_daemon.mcp.handlers import McpServersHandler
from roo_daemon.sessions.handlers import SessionHandler, SessionsHandler
from roo_daemon.tasks.handlers import (
    AllTasksHandler,
    TaskEventsHandler,
    TaskHandler,
    TaskMessagesHandler,
    TaskResponsesHandler,
    TasksHandler,
)
from roo_daemon.webhooks.handlers import SessionWebhooksHandler
from roo_daemon.ws.handlers import EventSocket

ROUTES: list[tuple[str, type]] = [
    ("/", DashboardHandler),
    ("/dashboard/{asset}", DashboardAssetHandler),
    ("/healthz", HealthHandler),
    ("/readyz", ReadyHandler),
    ("/metrics", MetricsHandler),
    ("/openapi.yaml", OpenApiYamlHandler),
    ("/openapi.json", OpenApiJsonHandler),
    ("/docs", DocsHandler),
    ("/docs/", DocsRedirectHandler),
    ("/docs/assets/{asset}", DocsAssetHandler),
    ("/ws", EventSocket),
    ("/api/v1/sessions", SessionsHandler),
    ("/api/v1/sessions/{session_id}", SessionHandler),
    ("/api/v1/sessions/{session_id}/tasks", TasksHandler),
    ("/api/v1/sessions/{session_id}/webhooks", SessionWebhooksHandler),
    ("/api/v1/sessions/{session_id}/tasks/{task_id}", TaskHandler),
    ("/api/v1/sessions/{session_id}/tasks/{task_id}/responses", TaskResponsesHandler),
    ("/api/v1/sessions/{session_id}/tasks/{task_id}/events", TaskEventsHandler),
    ("/api/v1/sessions/{session_id}/tasks/{task_id}/messages", TaskMessagesHandler),
    ("/api/v1/sessions/{session_id}/tasks/{task_id}/checkpoints", CheckpointsHandler),
    ("/api/v1/sessions/{session_id}/tasks/{task_id}/diff", CheckpointDiffHandler),
    ("/api/v1/sessions/{session_id}/tasks/{task_id}/checkpoints/{checkpoint_id}/restore", CheckpointRestoreHandler),
    ("/api/v1/providers", ProvidersHandler),
    ("/api/v1/modes", ModesHandler),
    ("/api/v1/tasks", AllTasksHandler),
    ("/api/v1/mcp/servers", McpServersHandler),
]


def route_regex(template: str) -> str:
    return re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template) + "$"


def check_routes(ctx: AppContext) -> None:
    """Every spec operation has a handler at its path, and vice versa."""
    served = {}
    for template, cls in ROUTES:
        for method, op_id in getattr(cls, "operations", {}).items():
            served[op_id] = (template, method)
    served["connectWebSocket"] = ("/ws", "GET")
    for op_id, op in ctx.spec.operations.items():
        if served.get(op_id) != (op.path, op.method):
            raise RuntimeError(f"openapi.yaml operation {op_id} ({op.method} {op.path}) has no matching route")
    for op_id in served:
        if op_id not in ctx.spec.operations:
            raise RuntimeError(f"route operation {op_id} is missing from openapi.yaml")


class RooApplication(Application):
    """Tornado's ``Application``, handling a request without a body in one
    step even when its handler streams bodies.

    ``ApiHandler`` streams request bodies (``@stream_request_body``: the size
    and media type are refused before a body is read). For every request,
    bodyless GETs included, Tornado then runs the handler as soon as the
    headers arrive, suspends it until the (absent) body is read, and resumes
    it: three more trips through the event loop for each request. A request
    with neither ``Content-Length`` nor ``Transfer-Encoding`` has no body
    (RFC 9112 §6.3), so nothing can stream: its handler runs once the request
    is read, as for a non-streaming handler, with the body already complete.

    It also finds a request's route among those with as many ``/`` as its
    path, not by trying every route's regex in turn: each ``{param}`` matches
    one segment (``[^/]+``), so a path can only match a template with as many
    slashes, and the route table holds a dozen templates ahead of the busiest
    ones. The order within a depth is the table's, so the first match wins as
    before.
    """

    def __init__(self, handlers: list[URLSpec], **settings: Any) -> None:
        super().__init__(handlers, **settings)
        self._by_depth: dict[int, list[Any]] = {}
        for rule in self.wildcard_router.rules:
            self._by_depth.setdefault(rule.depth, []).append(rule)  # type: ignore[attr-defined]

    def find_handler(self, request: httputil.HTTPServerRequest, **kwargs: Any) -> Any:
        router = self.wildcard_router
        for rule in self._by_depth.get(request.path.count("/"), ()):
            params = rule.matcher.match(request)
            if params is not None:
                if rule.target_kwargs:
                    params["target_kwargs"] = rule.target_kwargs
                delegate = router.get_target_delegate(rule.target, request, **params)
                if delegate is not None:
                    return delegate
        return super().find_handler(request, **kwargs)  # no route: Tornado's own way to the default handler

    def get_handler_delegate(
        self,
        request: httputil.HTTPServerRequest,
        target_class: type[RequestHandler],
        target_kwargs: dict[str, Any] | None = None,
        path_args: list[bytes] | None = None,
        path_kwargs: dict[str, bytes] | None = None,
    ) -> Any:
        delegate = super().get_handler_delegate(request, target_class, target_kwargs, path_args, path_kwargs)
        headers = request.headers
        if (
            delegate.stream_request_body
            and header(headers, "Content-Length") is None
            and header(headers, "Transfer-Encoding") is None
        ):
            # Tornado's own fields (no public seam): the delegate runs the
            # handler in finish(), and the body the handler awaits is done.
            delegate.stream_request_body = False
            done: Future[None] = Future()
            done.set_result(None)
            request._body_future = done
        return delegate


def make_app(ctx: AppContext) -> Application:
    check_routes(ctx)
    handlers = []
    for template, cls in ROUTES:
        cls.route = template
        spec = URLSpec(route_regex(template), cls, {"ctx": ctx})
        spec.depth = template.count("/")  # type: ignore[attr-defined]  # see RooApplication
        handlers.append(spec)
    return RooApplication(
        handlers,
        default_handler_class=NotFoundHandler,
        default_handler_args={"ctx": ctx},
        log_function=access_logger(ctx.metrics),
        # Keepalive is ours (ws/keepalive.py): Tornado's clamps a ping timeout
        # longer than the interval to the interval.
        websocket_ping_interval=None,
        websocket_max_message_size=ctx.config["websocket"]["max_message_bytes"],
        serve_traceback=False,
    )


__all__ = ["ROUTES", "ApiHandler", "make_app"]
