"""The live ``/metrics`` output after real traffic: the families operations
rely on, with their types and bounded labels, accepted by ``promtool check
metrics`` (where promtool is installed) and all listed in docs/operations.md."""

from __future__ import annotations

import asyncio
import re
import signal
from pathlib import Path
from typing import Any

import pytest

from roo_daemon.app import ROUTES
from tests.conftest import Api, wait_status
from tests.needs import which_or_skip

ROOT = Path(__file__).resolve().parents[2]

# family -> (type, label names) that the daemon must always expose.
REQUIRED: dict[str, tuple[str, set[str]]] = {
    "http_requests_total": ("counter", {"method", "route", "code"}),
    "http_request_duration_seconds": ("histogram", {"method", "route"}),
    "websocket_connections": ("gauge", set()),
    "websocket_messages_sent_total": ("counter", set()),
    "websocket_clients_dropped_total": ("counter", set()),
    "tasks_total": ("counter", {"status"}),
    "tasks_active": ("gauge", {"status"}),
    "task_duration_seconds": ("histogram", set()),
    "events_appended_total": ("counter", set()),
    "event_loop_lag_seconds": ("histogram", set()),
    "event_store_write_seconds": ("histogram", set()),
    "rate_limited_total": ("counter", {"class"}),
    "roo_daemon_build_info": ("gauge", {"version", "python"}),
    "process_resident_memory_bytes": ("gauge", set()),
    "process_cpu_seconds_total": ("counter", set()),
    "process_open_fds": ("gauge", set()),
    "python_info": ("gauge", {"implementation", "major", "minor", "patchlevel", "version"}),
}
# Bounded label values: enumerations, route templates, never ids or raw paths.
BOUNDED_VALUES: dict[str, set[str]] = {
    "route": {template for template, _ in ROUTES} | {"(unmatched)"},
    "method": {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"},
    "status": {"queued", "running", "waiting", "completed", "failed", "cancelled", "interrupted"},
    "state": {"stopped", "starting", "connected", "error", "disabled"},  # mcp_servers
}
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse(text: str) -> tuple[dict[str, str], list[tuple[str, dict[str, str], float]]]:
    """``({family: type}, [(sample name, labels, value)])`` of an exposition."""
    types, samples = {}, []
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind
        elif line and not line.startswith("#"):
            m = SAMPLE.match(line)
            assert m, f"not an exposition line: {line!r}"
            samples.append((m.group(1), dict(LABEL.findall(m.group(2) or "")), float(m.group(3))))
    return types, samples


def family_of(sample: str, types: dict[str, str]) -> str:
    for suffix in ("_bucket", "_count", "_sum", ""):
        base = sample.removesuffix(suffix)
        if base in types and (suffix == "" or types[base] == "histogram"):
            return base
    raise AssertionError(f"sample {sample} belongs to no declared family")


async def exposition_after_traffic(api: Api, ws_connect: Any) -> str:
    """/metrics after a session, a completed task, a 404, a WebSocket and its events."""
    ws = await ws_connect()
    await ws.send({"op": "subscribe", "id": "all", "after": 0})
    session = await api.session(name="metrics")
    task = await api.task(session["id"], "quick", provider="instant")
    await wait_status(api, session["id"], task["id"], {"completed"}, ws)
    assert (await api.get(f"/api/v1/sessions/{session['id']}/tasks/tsk_{'0' * 32}")).status == 404
    assert (await api.get("/docs")).status == 200
    r = await api.get("/metrics")
    assert r.status == 200
    return r.body.decode()


@pytest.mark.gen_test(timeout=20)
async def test_required_families_with_types_and_bounded_labels(api: Api, ws_connect: Any) -> None:
    text = await exposition_after_traffic(api, ws_connect)
    types, samples = parse(text)
    for name, (kind, labels) in REQUIRED.items():
        assert types.get(name) == kind, f"{name}: {types.get(name)} instead of {kind}"
        for sample, sample_labels, _ in samples:
            if family_of(sample, types) == name:
                assert set(sample_labels) - {"le"} == labels, f"{sample}: labels {set(sample_labels)}"
    for sample, labels, _ in samples:
        for key, allowed in BOUNDED_VALUES.items():
            if key in labels:
                assert labels[key] in allowed, f"{sample}: unbounded {key}={labels[key]!r}"
        assert not any(re.search(r"(ses|tsk)_[0-9a-f]{8}", v) for v in labels.values()), f"an id in {sample}"
    by_name = {(s, tuple(sorted(lbl.items()))): v for s, lbl, v in samples}
    assert by_name[("tasks_total", (("status", "completed"),))] == 1
    assert by_name[("task_duration_seconds_count", ())] == 1
    assert by_name[("websocket_connections", ())] == 1
    assert by_name[("events_appended_total", ())] >= 5
    assert by_name[("websocket_messages_sent_total", ())] >= 5
    assert by_name[("event_store_write_seconds_count", ())] >= 1
    route_404 = (("code", "404"), ("method", "GET"), ("route", "/api/v1/sessions/{session_id}/tasks/{task_id}"))
    assert by_name[("http_requests_total", route_404)] == 1


@pytest.mark.gen_test(timeout=20)
async def test_promtool_check_metrics_accepts_the_live_output(api: Api, ws_connect: Any) -> None:
    promtool = which_or_skip("promtool")
    text = await exposition_after_traffic(api, ws_connect)
    proc = await asyncio.create_subprocess_exec(
        promtool,
        "check",
        "metrics",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate(text.encode())
    # promtool prints lint problems (naming, units, counters without _total)
    # and exits non-zero on any of them.
    assert proc.returncode == 0 and not out.strip() and not err.strip(), (out + err).decode()


@pytest.mark.gen_test(timeout=20)
async def test_readme_lists_every_exposed_metric(api: Api, ws_connect: Any) -> None:
    doc = (ROOT / "docs" / "operations.md").read_text()
    section = doc.split("\n## Metrics\n", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `([a-z_:]+)`", section, re.M))
    types, _ = parse(await exposition_after_traffic(api, ws_connect))
    missing = sorted(set(types) - listed)
    assert not missing, f"metrics missing from docs/operations.md's Metrics table: {missing}"


@pytest.mark.gen_test(timeout=30)
async def test_a_running_daemon_samples_its_event_loop_lag(ops_daemon: Any, short_tmp: Path) -> None:
    """The lag monitor runs in the real daemon (Daemon.start): its histogram fills."""
    d = ops_daemon()
    await d.astart_notified(short_tmp)
    api = Api(d.base_url)
    count = 0.0
    for _ in range(100):  # a sample every 0.25 s; wait up to 10 s for two
        text = (await api.get("/metrics")).body.decode()
        match = re.search(r"^event_loop_lag_seconds_count ([0-9.e+]+)$", text, re.M)
        count = float(match.group(1)) if match else 0.0
        if count >= 2:
            break
        await asyncio.sleep(0.1)
    assert count >= 2
    d.send_signal(signal.SIGTERM)
    assert await d.await_exit() == 0


def test_request_series_count_as_the_client_library_does() -> None:
    """observe_request's direct path (roo_daemon.metrics._RequestSeries,
    plain numbers published when the registry is read) fills the same
    buckets, sum and count as Counter.inc/Histogram.observe."""
    from roo_daemon.metrics import Metrics

    ours, reference = Metrics(), Metrics()
    for seconds in (0.0, 0.0005, 0.00050001, 0.003, 0.3, 10.0, 10.5, 1e9, -1.0):
        for code in (200, 404):
            ours.observe_request("GET", "/api/v1/sessions/{session_id}", code, seconds)
            reference.http_requests.labels("GET", "/api/v1/sessions/{session_id}", str(code)).inc()
            reference.http_duration.labels("GET", "/api/v1/sessions/{session_id}").observe(seconds)
        ours.exposition()  # published at each read: totals set, not added again
    ours.observe_request("BREW", "(unmatched)", 404, 0.01)  # an unknown method is "other"
    reference.http_requests.labels("other", "(unmatched)", "404").inc()
    reference.http_duration.labels("other", "(unmatched)").observe(0.01)

    def http_lines(m: Metrics) -> list[str]:
        return [line for line in m.exposition().decode().splitlines() if line.startswith("http_")]

    assert http_lines(ours) == http_lines(reference)
    ours.observe_request("GET", "/api/v1/sessions/{session_id}", 200, 0.02)
    labels = {"method": "GET", "route": "/api/v1/sessions/{session_id}"}
    # Any read of the registry sees the requests up to now, not only a scrape.
    assert ours.registry.get_sample_value("http_requests_total", {**labels, "code": "200"}) == 10.0
    assert ours.registry.get_sample_value("http_request_duration_seconds_count", labels) == 19.0
    assert any('le="0.0005"' in line and line.endswith(" 6.0") for line in http_lines(ours))
