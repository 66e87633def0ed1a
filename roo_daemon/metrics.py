"""Prometheus metrics, in a registry of the daemon's own (so tests can run
several daemons in one process). Labels are bounded: route templates and
enumerations, never raw paths or ids."""

from __future__ import annotations

import platform

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

from roo_daemon import __version__

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        self.build_info = Gauge(
            "roo_daemon_build_info", "Build information; the value is always 1.", ["version", "python"], registry=r
        )
        self.build_info.labels(__version__, platform.python_version()).set(1)
        self.http_requests = Counter(
            "http_requests_total", "HTTP requests answered.", ["method", "route", "code"], registry=r
        )
        self.http_duration = Histogram(
            "http_request_duration_seconds",
            "Time to answer an HTTP request.",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.ws_connections = Gauge("websocket_connections", "Open WebSocket connections.", registry=r)
        self.ws_sent = Counter("websocket_messages_sent_total", "WebSocket frames sent to clients.", registry=r)
        self.ws_dropped = Counter(
            "websocket_clients_dropped_total", "WebSocket clients closed because they could not keep up.", registry=r
        )
        self.tasks_total = Counter("tasks_total", "Tasks that reached a final status.", ["status"], registry=r)
        self.tasks_active = Gauge("tasks_active", "Tasks queued, running or waiting now.", ["status"], registry=r)
        for status in ("queued", "running", "waiting"):
            self.tasks_active.labels(status)
        self.task_duration = Histogram(
            "task_duration_seconds",
            "Time from a task's start to its final status.",
            buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600),
            registry=r,
        )
        self.events_appended = Counter("events_appended_total", "Events appended to the durable log.", registry=r)
        self.store_write = Histogram(
            "event_store_write_seconds",
            "Time to commit one batch of writes (group commit) to the store.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )

    def observe_request(self, method: str, route: str, code: int, seconds: float) -> None:
        self.http_requests.labels(method, route, str(code)).inc()
        self.http_duration.labels(method, route).observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
