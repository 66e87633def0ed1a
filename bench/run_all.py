"""Run every benchmark of ``bench/`` once, one after another, and print a
table of the figures (Markdown, as README.md's Performance section holds
it), then each benchmark's full JSON report.

    python bench/run_all.py [--json results.json]
    python bench/run_all.py --check results.json   # re-check a saved run

Each benchmark runs in its own process, so one's daemon never shares memory
or a loop with another's. Takes about three minutes on 2 cores.

A figure below its target is reported ("met: no"): speed depends on the
machine. Lost or out-of-order events are not speed: if a fan-out subscriber
missed an event, or the replaying client saw a seq gap, the run exits 1 and
says which.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

BENCH = Path(__file__).resolve().parent


def run(script: str, *args: str) -> dict:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(BENCH / script), *args], capture_output=True, text=True, cwd=BENCH, timeout=900
    )
    if proc.returncode != 0:
        raise SystemExit(f"{script} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    # The report is the last JSON document printed (indented: it starts at a line "{").
    start = proc.stdout.rfind("\n{\n") + 1
    report = json.loads(proc.stdout[start:])
    report["wall_seconds"] = round(time.monotonic() - started, 1)
    print(f"  {script}: done in {report['wall_seconds']} s", file=sys.stderr)
    return report


def machine_description() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor() or platform.machine(),
    )
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if "MemTotal" in line)
    return (
        f"{cpu}, {os.cpu_count()} cores, {mem_kb / 2**20:.0f} GiB RAM; Linux {platform.release()}; "
        f"Python {platform.python_version()}"
    )


Row = tuple[str, str, str, Callable[[], bool]]


def rows(r: dict[str, dict]) -> list[Row]:
    rest, fan, log, mem, ss, eng = r["rest"], r["fanout"], r["eventlog"], r["memory"], r["startstop"], r["engine"]
    box = r["sandbox"]["echo hi"]
    mcp = r["mcp"]
    phases = fan["phases"]
    out: list[Row] = [
        (
            "REST `GET /api/v1/sessions/{id}` vs bare Tornado, access line on (rps ratio)",
            f"{rest['ratio']:.2f} ({rest['roo_daemon_rps']:.0f} vs {rest['bare_tornado_rps']:.0f} rps"
            + (f"; {rest['client']}, CPU-time ratio {rest['cpu_ratio']:.2f})" if "cpu_ratio" in rest else ")"),
            "≥ 0.8",
            lambda: rest["ratio"] >= 0.8,
        ),
        (
            f"WebSocket fan-out to {fan['subscribers']} subscribers: messages/s delivered (burst)",
            f"{phases['burst']['messages_per_second']:,}",
            "≥ 50,000",
            lambda: phases["burst"]["messages_per_second"] >= 50_000,
        ),
    ]
    for name, phase in phases.items():
        if name.startswith("paced@"):
            offered = float(name.removeprefix("paced@")) * fan["subscribers"]
            out.append(
                (
                    f"fan-out p99 delivery delay at {offered:,.0f} messages/s offered",
                    f"{phase['delay_p99_ms']:,.0f} ms (p50 {phase['delay_p50_ms']:,.0f} ms)",
                    "≤ 100 ms",
                    lambda phase=phase: phase["delay_p99_ms"] <= 100,
                )
            )
    conc = eng["concurrent"]
    out += [
        (
            "engine overhead per turn, a fake provider answering at once (everything but the model)",
            f"{eng['overhead']['engine_overhead_ms_per_turn']:.2f} ms "
            f"(of {eng['overhead']['ms_per_turn_total']:.2f} ms per turn)",
            "(measured)",
            lambda: True,
        ),
        (
            f"{conc['tasks']} concurrent streaming tasks: message.delta p99 delay to a WebSocket client, "
            "while all stream (over the whole run, creation burst included)",
            f"{conc['all_streaming_delta_delay_p99_ms']:.0f} ms ({conc['delta_delay_p99_ms']:.0f} ms; "
            f"p50 {conc['delta_delay_p50_ms']:.0f} ms; {conc['all_streaming_deltas']:,} deltas with all "
            f"{conc['peak_tasks_streaming']} streaming; {conc['tasks_ended']} ended)",
            "< 50 ms",
            lambda: (
                conc["all_streaming_delta_delay_p99_ms"] < 50
                and conc["delta_delay_p99_ms"] < 50
                and conc["peak_tasks_streaming"] == conc["tasks_ended"] == conc["tasks"]
            ),
        ),
    ]
    out += [
        (
            "event log: durable appends/s while replaying to a reconnecting client",
            f"{log['events_per_second_while_replaying']:,} (alone {log['events_per_second_alone']:,}; "
            f"ratio {log['ratio_replaying_vs_alone']:.2f})",
            "≥ 20,000",
            lambda: log["events_per_second_while_replaying"] >= 20_000,
        ),
        (
            "resident memory per idle session",
            f"{mem['kb_per_session']:.1f} KB",
            "≤ 20 KB",
            lambda: mem["kb_per_session"] <= 20,
        ),
        (
            "resident memory per idle WebSocket connection",
            f"{mem['kb_per_connection']:.1f} KB",
            "≤ 64 KB",
            lambda: mem["kb_per_connection"] <= 64,
        ),
        (
            "time to READY=1 (median / max of runs)",
            f"{ss['ready_median_seconds']:.2f} s / {ss['ready_max_seconds']:.2f} s",
            "≤ 1 s",
            lambda: ss["ready_max_seconds"] <= 1,
        ),
        (
            "time to exit after SIGTERM with 100 idle WebSockets (median / max)",
            f"{ss['exit_median_seconds']:.2f} s / {ss['exit_max_seconds']:.2f} s",
            "≤ 1 s",
            lambda: ss["exit_max_seconds"] <= 1,
        ),
        (
            "`execute_command` start-up (`echo hi`) in the bubblewrap sandbox vs without (median ratio)",
            f"{box['bwrap']['ratio_to_none']:.1f}× ({box['bwrap']['median_ms']:.1f} vs {box['none']['median_ms']:.1f} "
            f"ms; network off {box['bwrap-offline']['median_ms']:.1f} ms; .rooignore, 1,000 files "
            f"{box['bwrap-rooignore']['median_ms']:.1f} ms)",
            "(measured)",
            lambda: True,
        ),
        (
            "one MCP tool call to a stdio server (the daemon's whole path) vs the same function in-process (median)",
            f"{mcp['ratio']:,}× ({mcp['mcp_call_us']['median'] / 1000:.2f} ms vs "
            f"{mcp['in_process_us']['median']:.1f} µs; +{mcp['overhead_us'] / 1000:.2f} ms per call)",
            "(measured)",
            lambda: True,
        ),
    ]
    if "cpu_ms_late" in r.get("conversation", {}):  # saved runs from before the alternating blocks have none
        conv = r["conversation"]
        out.append(
            (
                "per-turn engine overhead late in a long task vs early in fresh ones (CPU time, alternating blocks)",
                f"{conv['ratio_late_to_early']:.2f} ({conv['cpu_ms_late']:.2f} vs {conv['cpu_ms_early']:.2f} ms; "
                f"wall {conv['wall_ratio']:.2f})",
                "≤ 1.2",
                lambda: conv["ratio_late_to_early"] <= 1.2,
            )
        )
    if "search" in r:  # reports saved before bench/search.py existed have no such part
        search = r["search"]["cases"]
        out.append(
            (
                f"`search_files` on {r['search']['files']:,} files: ripgrep vs the Python search it replaced "
                "(time ratio; literal / regex / no match / 300-result cap)",
                " / ".join(f"{c['ratio_python_over_ripgrep']:.1f}×" for c in search.values())
                + f" ({search['literal']['ripgrep_ms']:.0f} vs {search['literal']['python_ms']:.0f} ms, literal)",
                "(measured)",
                lambda: True,
            )
        )
    if "checkpoints" in r:  # reports saved before checkpoints existed have none
        ckp, call = r["checkpoints"]["checkpoint"], r["checkpoints"]["per_tool_call"]
        out += [
            (
                f"checkpoint of {ckp['files']:,} small files, one changed (median / p90)",
                f"{ckp['one_file_changed']['median_ms']:.0f} ms / {ckp['one_file_changed']['p90_ms']:.0f} ms "
                f"(nothing changed {ckp['nothing_changed']['median_ms']:.0f} ms; first, a new repository, "
                f"{ckp['first_checkpoint_ms'] / 1000:.1f} s)",
                "< 300 ms",
                lambda: ckp["one_file_changed"]["median_ms"] < 300,
            ),
            (
                "what checkpoints add to a `write_to_file` call (100 files / 10,000 files)",
                f"+{call['small']['added_ms_per_call']:.0f} ms / +{call['large']['added_ms_per_call']:.0f} ms "
                f"({call['small']['ms_per_call_checkpoints_off']:.1f} ms without)",
                "(measured)",
                lambda: True,
            ),
        ]
    return out


def broken_promises(r: dict[str, dict]) -> list[str]:
    """What the fan-out and replay runs got wrong, as opposed to slow: every
    subscriber must receive every event, and a resuming client must see no
    seq gap (and must have resumed at all, or the check proves nothing)."""
    out: list[str] = []
    fan, follower = r["fanout"], r["eventlog"]["follower"]
    for name, phase in fan["phases"].items():
        if phase["messages_delivered"] != phase["messages_expected"]:
            out.append(
                f"fan-out {name}: {phase['messages_delivered']:,} of {phase['messages_expected']:,} messages "
                "delivered: a subscriber did not receive every event"
            )
    if fan["connections_closed"]:
        out.append(f"fan-out: the daemon closed subscribers (index: close code): {fan['connections_closed']}")
    if fan["clients_dropped_by_daemon"]:
        out.append(f"fan-out: the daemon dropped {fan['clients_dropped_by_daemon']:.0f} slow subscribers")
    if follower["seq_discontinuities"]:
        out.append(
            "replay: seq gaps (expected, received): "
            + ", ".join(f"({a}, {b})" for a, b in follower["seq_discontinuities"][:10])
        )
    if not follower["reconnects"] or not follower["events_replayed"]:
        out.append(
            f"replay: not exercised ({follower['reconnects']} reconnects, {follower['events_replayed']} events "
            "replayed), so no gap check happened"
        )
    return out


def report(results: dict[str, dict]) -> int:
    """Print the table and every report; 1 if a correctness promise broke."""
    print(f"Machine: {machine_description()}")
    print("Command: `python bench/run_all.py`")
    print()
    print("| benchmark | result | target | met |")
    print("| --- | --- | --- | --- |")
    for what, figure, target, met in rows(results):
        print(f"| {what} | {figure} | {target} | {'yes' if met() else '**no**'} |")
    print()
    print(json.dumps(results, indent=2))
    broken = broken_promises(results)
    for line in broken:
        print(f"bench: FAILED: {line}", file=sys.stderr)
    return 1 if broken else 0


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--json", help="also write every report to this file")
    p.add_argument("--check", metavar="FILE", help="do not run: report and check a file --json wrote")
    a = p.parse_args()
    if a.check:
        sys.exit(report(json.loads(Path(a.check).read_text())))
    print("running the benchmarks (about three minutes)...", file=sys.stderr)
    results = {
        "rest": run("rest_ratio.py"),
        "fanout": run("ws_fanout.py"),
        "eventlog": run("eventlog_replay.py"),
        "memory": run("memory.py"),
        "startstop": run("startstop.py"),
        "engine": run("engine.py"),
        "conversation": run("conversation.py"),
        "sandbox": run("sandbox.py"),
        "search": run("search.py"),
        "checkpoints": run("checkpoints.py"),
        "mcp": run("mcp_tool_call.py"),
    }
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2))
    sys.exit(report(results))


if __name__ == "__main__":
    main()
