"""The cluster's metrics (PostgreSQL store): registered only there, each
family with its type and labels, accepted by ``promtool check metrics``,
listed in docs/operations.md; the read pool's ``in_use`` state. A SQLite
daemon exports none of them (no lease to alert on)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from roo_daemon.cluster import remote
from roo_daemon.metrics import HANDOFF_OPS, Metrics
from tests.conftest import PG_DSN_ENV, Api, make_config
from tests.needs import which_or_skip
from tests.ops.test_metrics import ROOT, exposition_after_traffic, parse

CLUSTER: dict[str, tuple[str, set[str]]] = {
    "cluster_notification_lag_seconds": ("histogram", set()),
    "cluster_lease_seconds_left": ("gauge", set()),
    "cluster_node_serving": ("gauge", set()),
    "cluster_lease_renewals_total": ("counter", {"outcome"}),
    "cluster_sessions_owned": ("gauge", set()),
    "cluster_sessions_taken_over_total": ("counter", set()),
    "cluster_fenced_writes_total": ("counter", set()),
    "cluster_handoffs_total": ("counter", {"op", "outcome"}),
    "cluster_handoff_duration_seconds": ("histogram", {"op"}),
    "cluster_handoffs_run_total": ("counter", {"op"}),
}


@pytest.fixture
def config(tmp_path: Path, pg_dsn: str, monkeypatch: Any) -> dict[str, Any]:
    monkeypatch.setenv(PG_DSN_ENV, pg_dsn)
    return make_config(tmp_path, store={"backend": "postgresql", "dsn_env": PG_DSN_ENV})


@pytest.mark.gen_test(timeout=60)
async def test_cluster_families_are_exposed_typed_documented_and_promtool_clean(api: Api, ws_connect: Any) -> None:
    text = await exposition_after_traffic(api, ws_connect)
    types, samples = parse(text)
    for name, (kind, labels) in CLUSTER.items():
        assert types.get(name) == kind, f"{name}: {types.get(name)} instead of {kind}"
        for sample, sample_labels, _ in samples:
            if sample.startswith(name) and sample.removeprefix(name) in ("", "_bucket", "_count", "_sum"):
                assert set(sample_labels) - {"le"} == labels, f"{sample}: labels {set(sample_labels)}"
    pool = {lbl["state"]: v for s, lbl, v in samples if s == "store_pool_connections"}
    assert set(pool) == {"open", "idle", "in_use", "waiting"}
    assert pool["in_use"] == pool["open"] - pool["idle"] >= 0

    doc = (ROOT / "docs" / "operations.md").read_text()
    section = doc.split("\n## Metrics\n", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `([a-z_:]+)`", section, re.M))
    assert not sorted(set(types) - listed), f"missing from docs/operations.md: {sorted(set(types) - listed)}"

    promtool = which_or_skip("promtool")
    proc = await asyncio.create_subprocess_exec(
        promtool,
        "check",
        "metrics",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate(text.encode())
    assert proc.returncode == 0 and not out.strip(), out.decode()


def test_a_single_sqlite_daemon_exports_no_cluster_series() -> None:
    assert "cluster_" not in Metrics().exposition().decode()


def test_the_handoff_ops_are_the_ones_handed_off() -> None:
    """The ops pre-registered as label values are every op cluster/remote.py
    hands on (its module constants; a list written here missed checkpoint_diff)."""
    ops = {value for name, value in vars(remote).items() if name.isupper() and isinstance(value, str)}
    assert remote.DIFF in ops and remote.CREATE_TASK in ops
    assert set(HANDOFF_OPS) == ops
