"""Operational routes: liveness, readiness, metrics and the served spec."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import Api

SPEC_FILE = Path(__file__).resolve().parents[2] / "openapi.yaml"


@pytest.mark.gen_test(timeout=10)
async def test_healthz(api: Api) -> None:
    """Liveness answers 200 {"status": "ok"}."""
    r = await api.get("/healthz")
    assert r.status == 200 and r.json == {"status": "ok"}
    assert r.headers["Content-Type"].startswith("application/json")


@pytest.mark.gen_test(timeout=10)
async def test_readyz_ready_then_503_when_shutting_down(api: Api, ctx: Any) -> None:
    """Readiness is 200 while serving and a 503 problem once shutdown begins,
    while liveness stays 200."""
    r = await api.get("/readyz")
    assert r.status == 200 and r.json == {"status": "ready"}
    ctx.shutting_down = True
    try:
        r = await api.get("/readyz")
        assert r.status == 503
        assert r.headers["Content-Type"].startswith("application/problem+json")
        assert r.json["type"] == "urn:roo-daemon:problem:shutting-down"
        assert (await api.get("/healthz")).status == 200
    finally:
        ctx.shutting_down = False


def samples(text: str, name: str) -> dict[str, float]:
    """``{label string: value}`` for every sample of metric ``name``."""
    out = {}
    for line in text.splitlines():
        m = re.match(rf"^{re.escape(name)}(\{{.*\}})? (\S+)$", line)
        if m:
            out[m.group(1) or ""] = float(m.group(2))
    return out


@pytest.mark.gen_test(timeout=10)
async def test_metrics_exposition_uses_route_templates(api: Api) -> None:
    """Prometheus text with request, WebSocket, task and event metrics;
    request labels are route templates, never raw ids."""
    session = await api.session()
    sid = session["id"]
    assert (await api.get(f"/api/v1/sessions/{sid}")).status == 200
    assert (await api.get(f"/api/v1/sessions/{sid}")).status == 200
    assert (await api.get("/api/v1/sessions/ses_" + "f" * 32)).status == 404
    assert (await api.get("/no/such/route")).status == 404
    r = await api.get("/metrics")
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = r.body.decode()
    for family in ("http_requests_total", "websocket_connections", "tasks_active", "events_appended_total"):
        assert f"# TYPE {family.removesuffix('_total')}" in text, family
    reqs = samples(text, "http_requests_total")
    assert reqs['{code="200",method="GET",route="/api/v1/sessions/{session_id}"}'] == 2
    assert reqs['{code="404",method="GET",route="/api/v1/sessions/{session_id}"}'] == 1
    assert reqs['{code="201",method="POST",route="/api/v1/sessions"}'] == 1
    assert reqs['{code="404",method="GET",route="(unmatched)"}'] == 1
    assert "ses_" not in text and "/no/such/route" not in text
    assert samples(text, "events_appended_total")[""] >= 1  # session.created
    assert samples(text, "websocket_connections")[""] == 0
    assert set(samples(text, "tasks_active")) == {'{status="queued"}', '{status="running"}', '{status="waiting"}'}


@pytest.mark.gen_test(timeout=10)
async def test_openapi_yaml_is_the_file(api: Api) -> None:
    """/openapi.yaml serves the contract file verbatim."""
    r = await api.get("/openapi.yaml")
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("application/yaml")
    assert r.body == SPEC_FILE.read_bytes()
    assert yaml.safe_load(r.body) == yaml.safe_load(SPEC_FILE.read_text())


@pytest.mark.gen_test(timeout=10)
async def test_openapi_yaml_as_text_yaml_when_asked(api: Api) -> None:
    """``Accept: text/yaml`` (what generated clients can read as text) gets
    the same bytes as ``text/yaml``; ``application/yaml`` stays the default."""
    r = await api.get("/openapi.yaml", headers={"Accept": "text/yaml"})
    assert r.headers["Content-Type"] == "text/yaml; charset=utf-8"
    assert r.body == SPEC_FILE.read_bytes()
    both = await api.get("/openapi.yaml", headers={"Accept": "application/yaml, text/yaml"})
    assert both.headers["Content-Type"].startswith("application/yaml")


@pytest.mark.gen_test(timeout=10)
async def test_openapi_json_equals_the_yaml(api: Api) -> None:
    """/openapi.json is the same document as JSON."""
    r = await api.get("/openapi.json")
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("application/json")
    doc = json.loads(r.body)
    assert doc == yaml.safe_load(SPEC_FILE.read_text())
    assert doc["openapi"].startswith("3.1")
