"""Prometheus metrics, in a registry of the daemon's own (so tests can run
several daemons in one process). Labels are bounded: route templates and
enumerations, never raw paths or ids. Every label value that a client can
influence goes through a known set first (:func:`bounded_method`): each new
value is a new series, kept for the process's life, so a client inventing
values could grow ``/metrics`` without limit."""

from __future__ import annotations

import platform
from bisect import bisect_left

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)

from roo_daemon import __version__

# No `*_created` series: they double the series count and nothing here uses
# them (Prometheus derives resets from the counters themselves).
disable_created_metrics()

# The methods HTTP defines that anyone sends; any other token is "other".
HTTP_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"))


def bounded_method(method: str | None) -> str:
    """``method`` if it is a standard one, else ``other`` (the request line's
    method is any token the client likes: ``M00001`` would be a new series)."""
    return method if method in HTTP_METHODS else "other"


_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class _Durations:
    """One (method, route)'s duration histogram, counted in plain numbers
    (see :class:`_RequestSeries`)."""

    __slots__ = ("total", "buckets", "bounds", "histogram", "count", "published")

    def __init__(self, histogram: Histogram) -> None:
        self.histogram = histogram
        self.bounds = histogram._upper_bounds  # type: ignore[attr-defined]  # ends with +Inf
        self.total = 0.0
        self.buckets = [0] * len(self.bounds)
        self.count = 0
        self.published = 0  # self.count when last published

    def publish(self) -> None:
        if self.count == self.published:
            return
        self.published = self.count
        self.histogram._sum.set(self.total)  # type: ignore[attr-defined]
        for value, count in zip(self.histogram._buckets, self.buckets, strict=True):  # type: ignore[attr-defined]
            value.set(float(count))


class _RequestSeries:
    """One (method, route, code)'s request counter, and its (method,
    route)'s duration histogram, counted in plain Python numbers and handed
    to the client library's children only when the registry is read
    (:class:`_Publish`, at a scrape): each request observes both, and the
    library's calls (a lock per value, three per request, and its per-call
    checks and linear bucket walk) cost a sixtieth of a request. The numbers
    here are totals, set (not added) into the library's values, so the
    floating-point sum is the one ``Histogram.observe`` would have made and
    the exposition is unchanged (tests/ops/test_metrics.py compares).
    Observed and published on the event loop only (the access logger,
    /metrics)."""

    __slots__ = ("count", "counter", "durations", "published")

    def __init__(self, counter: Counter, durations: _Durations) -> None:
        self.counter = counter
        self.durations = durations
        self.count = 0
        self.published = 0

    def observe(self, seconds: float) -> None:
        self.count += 1
        durations = self.durations
        durations.count += 1
        durations.total += seconds
        # The first bucket whose bound is >= seconds, as Histogram.observe picks it.
        durations.buckets[bisect_left(durations.bounds, seconds)] += 1

    def publish(self) -> None:
        if self.count != self.published:
            self.published = self.count
            self.counter._value.set(float(self.count))  # type: ignore[attr-defined]
        self.durations.publish()


class _Publish:
    """A collector without series of its own, registered first: whatever
    reads the registry (a scrape, ``get_sample_value``) has the request
    series published before it reads theirs."""

    def __init__(self, series: dict) -> None:
        self.series = series

    def collect(self) -> list:
        for one in list(self.series.values()):
            one.publish()
        return []


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        # (method, route, code) -> the two series' children; as bounded as the labels.
        self._request_children: dict[tuple[str, str, int], _RequestSeries] = {}
        self._request_durations: dict[tuple[str, str], _Durations] = {}  # (method, route) -> its histogram
        r.register(_Publish(self._request_children))  # first: see _Publish
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
        self.tool_calls = Counter(
            "tool_calls_total",
            "Tool calls made by models, by tool and outcome (ok, error, denied).",
            ["tool", "outcome"],
            registry=r,
        )
        # Registered now so dashboards and alerts can rely on it; stays zero
        # until rate limiting lands. `class` is the limit's class (bounded).
        self.rate_limited = Counter(
            "rate_limited_total", "Requests refused by a rate limit, by limit class.", ["class"], registry=r
        )
        # LLM providers. `provider` is the profile name and `model` the model
        # string from the config (both bounded by the config, never by a request).
        self.llm_requests = Counter(
            "llm_requests_total",
            "Provider requests (one per model turn, its retries included), by outcome (ok, error, cancelled).",
            ["provider", "model", "outcome"],
            registry=r,
        )
        self.llm_request_duration = Histogram(
            "llm_request_duration_seconds",
            "Time from sending a provider request to the end of its stream, retries included.",
            ["provider", "model"],
            buckets=(0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600),
            registry=r,
        )
        self.llm_tokens = Counter(
            "llm_tokens_total",
            "Tokens by kind: input (uncached), output, cache_read, cache_write.",
            ["provider", "model", "kind"],
            registry=r,
        )
        self.llm_cost = Counter(
            "llm_cost_usd_total", "Cost of provider requests in US dollars.", ["provider", "model"], registry=r
        )
        self.llm_retries = Counter(
            "llm_retries_total",
            "Provider attempts that failed and were tried again (connection, 408/409/429/5xx, broken stream).",
            ["provider", "model"],
            registry=r,
        )
        self.events_appended = Counter("events_appended_total", "Events appended to the durable log.", registry=r)
        self.store_write = Histogram(
            "event_store_write_seconds",
            "Time to commit one batch of writes (group commit) to the store.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.accept_errors = Counter(
            "accept_errors_total",
            "Connections that could not be accepted for lack of a resource (reason: emfile, enfile, enobufs,"
            " enomem); the daemon pauses accepting, and the clients wait in the backlog.",
            ["reason"],
            registry=r,
        )
        for reason in ("emfile", "enfile", "enobufs", "enomem"):
            self.accept_errors.labels(reason)
        self.store_pool = Gauge(
            "store_pool_connections",
            "PostgreSQL store only: the read pool's connections (state: open, idle, in_use) and reads waiting for one.",
            ["state"],
            registry=r,
        )
        self.store_writable = Gauge(
            "store_writable",
            "1 while the store takes writes; 0 after a write failed for the storage (full disk, I/O error).",
            registry=r,
        )
        self.loop_lag = Histogram(
            "event_loop_lag_seconds",
            "How late the event loop ran a timer due every 0.25 s: time it was busy with other work.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=r,
        )

        self.webhook_deliveries = Counter(
            "webhook_deliveries_total", "Events a webhook receiver acknowledged with a 2xx.", registry=r
        )
        self.webhook_failures = Counter(
            "webhook_delivery_failures_total",
            "Webhook delivery attempts that failed (each is retried), by reason.",
            ["reason"],
            registry=r,
        )
        for reason in ("http_status", "timeout", "network", "host_refused", "no_secret"):
            self.webhook_failures.labels(reason)
        # Several daemons on one PostgreSQL: registered by enable_cluster(),
        # so a single SQLite daemon exports no cluster series (no lease to alert on).
        self.cluster: ClusterMetrics | None = None

    def enable_cluster(self) -> ClusterMetrics:
        """Register the cluster's metrics (PostgreSQL store); once."""
        if self.cluster is None:
            self.cluster = ClusterMetrics(self.registry)
        return self.cluster

    def observe_request(self, method: str, route: str, code: int, seconds: float) -> None:
        """``route`` is a template from the route table or ``(unmatched)``;
        ``code`` is ours; ``method`` comes from the client and is bounded here."""
        method = bounded_method(method)
        key = (method, route, code)
        series = self._request_children.get(key)
        if series is None:  # once per series: .labels() hashes and locks on every call
            durations = self._request_durations.get((method, route))
            if durations is None:
                durations = self._request_durations[method, route] = _Durations(
                    self.http_duration.labels(method, route)
                )
            series = self._request_children[key] = _RequestSeries(
                self.http_requests.labels(method, route, str(code)), durations
            )
        series.observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


# The requests a node hands to a session's owner (roo_daemon/cluster/handoff.py).
HANDOFF_OPS = (  # cluster/remote.py's ops
    "create_task",
    "cancel_task",
    "respond",
    "post_message",
    "update_session",
    "delete_session",
    "restore_checkpoint",
    "checkpoint_diff",
    "list_modes",
)
HANDOFF_OUTCOMES = ("ok", "problem", "owner_unavailable", "timeout")  # cluster/handoff.py's on_outcome
LEASE_RENEWAL_OUTCOMES = ("ok", "lost", "error")


class ClusterMetrics:
    """What a node of a cluster (several daemons on one PostgreSQL database)
    reports: its lease, the sessions it owns, the requests it hands to other
    nodes and how late other nodes' events reach it. Labels are the bounded
    sets above. Set by roo_daemon/cluster/ (nodes.py, ownership.py,
    handoff.py) and the event fan-out (events/merge.py)."""

    def __init__(self, r: CollectorRegistry) -> None:
        self.notification_lag = Histogram(
            "cluster_notification_lag_seconds",
            "From another node's commit of events (its notify, on the database's clock) to their fan-out on this node.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.lease_seconds_left = Gauge(
            "cluster_lease_seconds_left",
            "Seconds until this node's lease expires unless renewed (database clock, as of the last renewal).",
            registry=r,
        )
        self.node_serving = Gauge(
            "cluster_node_serving",
            "1 while this node holds its lease and takes work; 0 once it could not renew it in time.",
            registry=r,
        )
        self.lease_renewals = Counter(
            "cluster_lease_renewals_total",
            "Lease renewals by outcome: ok, lost (another incarnation holds the row), error (the database failed).",
            ["outcome"],
            registry=r,
        )
        for outcome in LEASE_RENEWAL_OUTCOMES:
            self.lease_renewals.labels(outcome)
        self.sessions_owned = Gauge(
            "cluster_sessions_owned", "Sessions this node owns (runs the tasks of).", registry=r
        )
        self.sessions_taken_over = Counter(
            "cluster_sessions_taken_over_total",
            "Sessions this node took over from a node whose lease expired, or reclaimed after losing its own.",
            registry=r,
        )
        self.fenced = Counter(
            "cluster_fenced_writes_total",
            "Writes refused because this node no longer owns the session (its run stopped).",
            registry=r,
        )
        self.handoffs = Counter(
            "cluster_handoffs_total",
            "Requests this node handed to a session's owner, by op and outcome"
            " (ok, problem, owner_unavailable, timeout).",
            ["op", "outcome"],
            registry=r,
        )
        self.handoff_duration = Histogram(
            "cluster_handoff_duration_seconds",
            "From handing a request to the owner to its reply (or giving up), on the requesting node.",
            ["op"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=r,
        )
        self.handoffs_run = Counter(
            "cluster_handoffs_run_total",
            "Requests from other nodes this node ran as the session's owner, by op.",
            ["op"],
            registry=r,
        )
        for op in HANDOFF_OPS:
            self.handoff_duration.labels(op)
            self.handoffs_run.labels(op)
            for outcome in HANDOFF_OUTCOMES:
                self.handoffs.labels(op, outcome)

    def handoff_outcome(self, op: str, outcome: str, seconds: float) -> None:
        """``Handoff.on_outcome``: one request handed to its owner, answered or given up."""
        self.handoffs.labels(op, outcome).inc()
        self.handoff_duration.labels(op).observe(seconds)

    def handoff_run(self, op: str) -> None:
        """``Handoff.on_run``: a request from another node run here, as the session's owner."""
        self.handoffs_run.labels(op).inc()
