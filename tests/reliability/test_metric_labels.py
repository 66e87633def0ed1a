"""Bounded metric labels (issue #9, item 10).

Each made-up HTTP method (``M00001 /x``) used to create a label set of its
own on ``http_requests_total`` and ``http_request_duration_seconds``: 5,000
requests grew ``/metrics`` from 8 KB to 7.9 MB. Every label a client can
influence is now bounded: unknown methods count as ``other``."""

from __future__ import annotations

import pytest

from tests.conftest import Api
from tests.ops.test_metrics import BOUNDED_VALUES, parse

KNOWN_METHODS = BOUNDED_VALUES["method"] | {"other"}


async def _series(api: Api) -> list[tuple[str, dict[str, str]]]:
    r = await api.get("/metrics")
    assert r.status == 200
    _, samples = parse(r.body.decode())
    return [(name, labels) for name, labels, _ in samples]


@pytest.mark.gen_test(timeout=60)
async def test_made_up_methods_and_paths_add_no_series(api: Api) -> None:
    paths = ("/x", "/api/v1/sessions", "/api/v1/sessions/ses_nope/tasks", "/metrics")
    for path in paths:
        r = await api.request("M00000", path)
        assert r.status in (404, 405), r.body
    before = await _series(api)

    for i in range(1, 201):
        r = await api.request(f"M{i:05d}", paths[i % len(paths)] + f"?n={i}")
        assert r.status in (404, 405)
        assert r.headers["Content-Type"] == "application/problem+json"
    after = await _series(api)

    # Same series, only higher counts (the /metrics scrape adds its own GET series once).
    grown = {(n, tuple(sorted(lbl.items()))) for n, lbl in after} - {
        (n, tuple(sorted(lbl.items()))) for n, lbl in before
    }
    assert all(dict(labels).get("method") == "GET" for _, labels in grown), sorted(grown)[:5]
    for name, labels in after:
        for key, allowed in BOUNDED_VALUES.items():
            if key in labels:
                assert labels[key] in (KNOWN_METHODS if key == "method" else allowed), f"{name}: {labels}"
        if "code" in labels:
            assert labels["code"].isdigit() and len(labels["code"]) == 3, f"{name}: {labels}"
    others = [lbl for n, lbl in after if n == "http_requests_total" and lbl.get("method") == "other"]
    assert sum(1 for _ in others) >= 1
