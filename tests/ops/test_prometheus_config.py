"""``config/prometheus/``: the example scrape config and alert rules are valid
(promtool), the alerts fire on the series they should (promtool's rule unit
tests), and they only query metrics the daemon exposes."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from roo_daemon.metrics import Metrics
from tests.needs import which_or_skip

CONFIG = Path(__file__).resolve().parents[2] / "config" / "prometheus"
# PromQL words that look like metric names in an expression.
PROMQL_WORDS = {"sum", "rate", "increase", "and", "or", "unless", "absent", "up", "histogram_quantile"}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    exe = which_or_skip("promtool")
    return subprocess.run([exe, *args], cwd=CONFIG, capture_output=True, text=True, timeout=60)


def test_promtool_accepts_the_scrape_config_and_its_rule_file() -> None:
    proc = promtool("check", "config", "prometheus.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 rule files found" in proc.stdout


def test_promtool_accepts_the_alert_rules() -> None:
    proc = promtool("check", "rules", "alerts.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_alert_rules_unit_tests_pass() -> None:
    """alerts_test.yml: each alert fires on a failing series and stays quiet
    on a healthy one (daemon down, absent, 5xx rate, tasks failing, provider errors)."""
    proc = promtool("test", "rules", "alerts_test.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_the_four_alerts_of_the_issue_exist_and_query_only_real_metrics() -> None:
    rules = yaml.safe_load((CONFIG / "alerts.yml").read_text())["groups"][0]["rules"]
    names = {r["alert"] for r in rules}
    assert {"RooDaemonDown", "RooDaemonHigh5xxRate", "RooDaemonTasksFailing", "RooDaemonProviderErrors"} <= names
    metrics = Metrics()
    metrics.enable_cluster()  # what a node on the PostgreSQL store exposes too (the cluster_* alerts)
    exposed = {line.split()[2] for line in metrics.exposition().decode().splitlines() if line.startswith("# TYPE")}
    for rule in rules:
        # Drop label selectors, ranges, strings and by/without/on (...) label lists.
        expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\"[^\"]*\"", "", rule["expr"])
        expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
        # A histogram's series are its name plus _bucket, _sum or _count.
        used = {re.sub(r"_(bucket|sum|count)$", "", name) for name in re.findall(r"[a-z_:][a-z0-9_:]*", expr)}
        used -= PROMQL_WORDS
        unknown = used - exposed
        assert not unknown, f"{rule['alert']} queries metrics the daemon does not expose: {unknown}"
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
