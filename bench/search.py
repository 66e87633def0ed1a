"""search_files on a 10,000-file workspace: ripgrep (today's tool) against
the Python implementation it replaced, side by side in one run.

The workspace: ``--files`` source-like files (about 2 KB each) in 100
folders, with a ``.gitignore``'d build folder and a ``.rooignore``'d one of
the same size (both skipped by each implementation). Cases:

* ``literal``: a literal that occurs in 1 % of the files (every file read);
* ``regex``: a regex (classes, repetitions, an anchor) matching the same lines;
* ``no match``: a literal found nowhere (every file read, nothing shown);
* ``capped``: the first line of every file (both stop at the 300-result cap).

Each case runs ``--rounds`` times, the two implementations alternating; the
report gives the median wall time of a whole call (ripgrep: spawning rg and
parsing its JSON included; Python: the walk and the regex in one thread) and
the ratio old / new. Both return the same results; the bench checks it.

    python bench/search.py [--files 10000] [--rounds 5]

The old implementation lives only here (``python_search``), verbatim in
substance from roo_daemon/engine/tools/search.py before ripgrep: it held
the GIL for as long as a regex ran, so one catastrophic pattern froze the
daemon (issue 9).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from common import ROOT, machine

sys.path.insert(0, str(ROOT))

from roo_daemon.engine.tools import default_registry  # noqa: E402
from roo_daemon.engine.tools.fileio import BINARY_SNIFF_BYTES, Target, _locate, looks_binary  # noqa: E402
from roo_daemon.engine.tools.search import _FileHits, format_results  # noqa: E402
from roo_daemon.engine.workspace import WalkRules, walk  # noqa: E402

MAX_RESULTS = 300
CASES = {
    "literal": r"TODO: handle the empty case",
    "regex": r"#\s+TODO:\s+\w+ the [a-z]+ case$",
    "no match": r"zzz_not_anywhere_zzz",
    "capped": r"^import module_\d+$",
}

# -- the Python implementation that ripgrep replaced ---------------------------

SEARCH_RULES = WalkRules(hidden_files=False, hidden_dirs=False, skip_dirs=False)  # ripgrep's defaults


def _clip(text: str) -> str:
    return text[:500] + " [truncated...]" if len(text) > 500 else text


def _python_search_file(path: Path, rel: str, regex: re.Pattern[str], budget: int) -> _FileHits:
    hits = _FileHits(rel)
    previous: tuple[int, str] | None = None
    after = 0
    with path.open("rb") as f:
        if looks_binary(f.read(BINARY_SNIFF_BYTES)):
            return hits
        f.seek(0)
        for number, raw in enumerate(f, 1):
            text = raw.decode("utf-8", errors="replace").rstrip("\n").rstrip("\r")
            if regex.search(text):
                if len(hits.blocks) >= budget and (not hits.blocks or hits.blocks[-1][-1][0] < number - 2):
                    break
                if previous is not None:
                    hits.add(*previous)
                hits.add(number, _clip(text))
                after = 1
            elif after:
                hits.add(number, _clip(text))
                after -= 1
                if after == 0 and len(hits.blocks) >= budget:
                    break
            previous = (number, _clip(text))
    return hits


def python_search(workspace: Path, pattern: str) -> str:
    target: Target = _locate(str(workspace), ".", True)
    regex = re.compile(pattern)
    files: list[_FileHits] = []
    total = 0
    for entry in walk(target.root, target.path, True, SEARCH_RULES, target.rooignore):
        if entry.is_dir:
            continue
        hits = _python_search_file(entry.path, entry.rel, regex, MAX_RESULTS - total)
        if hits.blocks:
            files.append(hits)
            total += len(hits.blocks)
        if total >= MAX_RESULTS:
            break
    files.sort(key=lambda h: h.rel)  # the walk is breadth-first; rg --sort path is depth-first
    return format_results(files, total, total >= MAX_RESULTS)


# -- today's tool ---------------------------------------------------------------

TOOL = default_registry().tools["search_files"]


def ripgrep_search(workspace: Path, pattern: str) -> str:
    ctx: Any = SimpleNamespace(
        session=SimpleNamespace(workspace=str(workspace), auto_approve={"read_only": True}),
        settings={"search_max_results": MAX_RESULTS, "search_timeout_seconds": 600},
    )
    outcome = asyncio.run(TOOL.run(ctx, {"path": ".", "regex": pattern}))
    assert not outcome.is_error, outcome.content
    return outcome.content


# -- the workspace ------------------------------------------------------------------


def source_file(rng: random.Random, marked: bool) -> str:
    lines = [f"import module_{rng.randrange(100)}", ""]
    for i in range(12):
        lines += [
            f"def step_{i}_handler(request, value_{i}):",
            f"    result = compute(value_{i}, {rng.randrange(10**6)})",
            "    return result",
        ]
    if marked:
        lines.insert(rng.randrange(2, len(lines)), "    # TODO: handle the empty case")
    return "\n".join(lines) + "\n"


def make_workspace(root: Path, files: int) -> None:
    rng = random.Random(1)
    per_dir = max(1, files // 100)
    for n in range(files):
        path = root / f"pkg{n // per_dir:03d}" / f"mod{n % per_dir:03d}.py"
        path.parent.mkdir(exist_ok=True)
        path.write_text(source_file(rng, n % 100 == 7))
    for skipped in ("build", "private"):
        for n in range(100):
            (root / skipped).mkdir(exist_ok=True)
            (root / skipped / f"gen{n}.py").write_text(source_file(rng, True))
    (root / ".gitignore").write_text("build/\n")
    (root / ".rooignore").write_text("private/\n")


def timed(fn: Any, *args: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - started, out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--files", type=int, default=10_000)
    p.add_argument("--rounds", type=int, default=5)
    a = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="roo-bench-search-") as tmp:
        workspace = Path(tmp)
        make_workspace(workspace, a.files)
        ripgrep_search(workspace, CASES["literal"])  # warm the page cache and rg's first start
        python_search(workspace, CASES["literal"])
        cases = {}
        for name, pattern in CASES.items():
            times: dict[str, list[float]] = {"python": [], "ripgrep": []}
            outputs: dict[str, str] = {}
            for _ in range(a.rounds):
                for impl, fn in (("python", python_search), ("ripgrep", ripgrep_search)):
                    seconds, outputs[impl] = timed(fn, workspace, pattern)
                    times[impl].append(seconds)
            assert outputs["python"] == outputs["ripgrep"], (name, outputs["python"][:300], outputs["ripgrep"][:300])
            py, rg = statistics.median(times["python"]), statistics.median(times["ripgrep"])
            cases[name] = {
                "pattern": pattern,
                "python_ms": round(py * 1000, 1),
                "ripgrep_ms": round(rg * 1000, 1),
                "ratio_python_over_ripgrep": round(py / rg, 1),
                "result_head": outputs["ripgrep"].split("\n", 1)[0],
            }
    report = {
        "benchmark": "search_files: ripgrep vs the Python implementation it replaced",
        "machine": machine(),
        "files": a.files,
        "rounds": a.rounds,
        "cases": cases,
    }
    for name, c in cases.items():
        print(f"{name:>9}: python {c['python_ms']:8.1f} ms  ripgrep {c['ripgrep_ms']:7.1f} ms  "
              f"x{c['ratio_python_over_ripgrep']}  ({c['result_head']})", file=sys.stderr)  # fmt: skip
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
