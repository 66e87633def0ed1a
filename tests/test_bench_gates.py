"""``bench/run_all.py`` fails (exit 1, saying what) when the fan-out or the
replay benchmark lost or skipped events: those are correctness, not speed.
Checked with ``--check`` on a saved report (the fan-out and replay parts
from a real small run: ``ws_fanout.py --clients 50``, ``eventlog_replay.py
--seconds 2``), so no benchmark runs here."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

RUN_ALL = Path(__file__).resolve().parents[1] / "bench" / "run_all.py"

PHASE = {"events": 50, "messages_delivered": 2500, "messages_expected": 2500, "seconds": 0.5}
PHASE |= {"messages_per_second": 5000, "delay_p50_ms": 4.1, "delay_p99_ms": 26.6, "delay_max_ms": 26.9}
RESULTS: dict[str, Any] = {
    "rest": {"ratio": 0.8, "roo_daemon_rps": 5500, "bare_tornado_rps": 6800},
    "fanout": {
        "subscribers": 50,
        "phases": {"paced@50": dict(PHASE), "burst": dict(PHASE, messages_per_second=45496)},
        "clients_dropped_by_daemon": 0.0,
        "connections_closed": {},
    },
    "eventlog": {
        "events_per_second_alone": 8820,
        "events_per_second_while_replaying": 7411,
        "ratio_replaying_vs_alone": 0.84,
        "follower": {
            "reconnects": 2,
            "events_replayed": 5888,
            "events_live": 7936,
            "seq_discontinuities": [],
            "closed_by_daemon": [],
        },
    },
    "memory": {"kb_per_session": 1.7, "kb_per_connection": 18.0},
    "startstop": {
        "ready_median_seconds": 0.4,
        "ready_max_seconds": 0.43,
        "exit_median_seconds": 0.02,
        "exit_max_seconds": 0.03,
    },
    "engine": {
        "overhead": {"engine_overhead_ms_per_turn": 0.37, "ms_per_turn_total": 1.62},
        "concurrent": {
            "tasks": 200,
            "all_streaming_delta_delay_p99_ms": 16,
            "delta_delay_p99_ms": 16,
            "delta_delay_p50_ms": 2,
            "all_streaming_deltas": 23740,
            "peak_tasks_streaming": 200,
            "tasks_ended": 200,
        },
    },
    "sandbox": {
        "echo hi": {
            "none": {"median_ms": 2.0},
            "bwrap": {"median_ms": 6.0, "ratio_to_none": 3.0},
            "bwrap-offline": {"median_ms": 7.0},
            "bwrap-rooignore": {"median_ms": 9.0},
        }
    },
    "checkpoints": {
        "checkpoint": {
            "files": 10000,
            "first_checkpoint_ms": 2500.0,
            "one_file_changed": {"median_ms": 120.0, "p90_ms": 180.0},
            "nothing_changed": {"median_ms": 60.0, "p90_ms": 80.0},
        },
        "per_tool_call": {
            "small": {"added_ms_per_call": 30.0, "ms_per_call_checkpoints_off": 3.0},
            "large": {"added_ms_per_call": 120.0, "ms_per_call_checkpoints_off": 3.5},
        },
    },
    "mcp": {"ratio": 1000, "mcp_call_us": {"median": 4000.0}, "in_process_us": {"median": 4.0}, "overhead_us": 3996.0},
}


def check(tmp_path: Path, results: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    saved = tmp_path / "results.json"
    saved.write_text(json.dumps(results))
    return subprocess.run(
        [sys.executable, str(RUN_ALL), "--check", str(saved)], capture_output=True, text=True, timeout=60
    )


def test_a_run_that_kept_every_promise_passes(tmp_path: Path) -> None:
    proc = check(tmp_path, RESULTS)
    assert proc.returncode == 0, proc.stderr
    assert "| WebSocket fan-out to 50 subscribers" in proc.stdout
    assert "| checkpoint of 10,000 small files, one changed (median / p90) | 120 ms / 180 ms" in proc.stdout
    assert "FAILED" not in proc.stderr


def broken(change: str) -> dict[str, Any]:
    r = copy.deepcopy(RESULTS)
    fan, follower = r["fanout"], r["eventlog"]["follower"]
    if change == "missed":
        fan["phases"]["burst"]["messages_delivered"] -= 1
    elif change == "closed":
        fan["connections_closed"] = {"7": 1013}
    elif change == "dropped":
        fan["clients_dropped_by_daemon"] = 1.0
    elif change == "gap":
        follower["seq_discontinuities"] = [[101, 103]]
    elif change == "no-replay":
        follower["reconnects"], follower["events_replayed"] = 0, 0
    return r


@pytest.mark.parametrize(
    "change, message",
    [
        ("missed", "fan-out burst: 2,499 of 2,500 messages delivered: a subscriber did not receive every event"),
        ("closed", "fan-out: the daemon closed subscribers (index: close code): {'7': 1013}"),
        ("dropped", "fan-out: the daemon dropped 1 slow subscribers"),
        ("gap", "replay: seq gaps (expected, received): (101, 103)"),
        ("no-replay", "replay: not exercised (0 reconnects, 0 events replayed)"),
    ],
)
def test_a_lost_event_or_a_seq_gap_fails_the_run_and_says_which(tmp_path: Path, change: str, message: str) -> None:
    proc = check(tmp_path, broken(change))
    assert proc.returncode == 1
    assert f"bench: FAILED: {message}" in proc.stderr
    assert "| benchmark | result | target | met |" in proc.stdout  # the table is still printed
