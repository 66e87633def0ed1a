"""``search_files``: a regex search across the workspace with one line of
context, in the output format of Roo-Code's ripgrep service
(src/services/ripgrep/index.ts)::

    Found 2 results.

    # src/app.py
      9 | def handler():
     10 |     # TODO: validate
     11 |     return ok
    ----

The search follows ripgrep's defaults, as Roo's does: ``.gitignore``'d,
hidden and binary files are skipped, and so is anything ``.rooignore``
matches. ``file_pattern`` is a ripgrep ``--glob`` (gitignore syntax, with
``{a,b}`` alternatives). Python's ``re`` stands in for ripgrep's regex
engine, so the search works where no ``rg`` binary is installed; it runs in
a thread that stops between files once the task is cancelled.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pathspec import GitIgnoreSpec

from roo_daemon.engine.base import TaskContext
from roo_daemon.engine.tools.base import Tool, ToolError, ToolOutcome
from roo_daemon.engine.tools.files import BINARY_SNIFF_BYTES, Target, approves, in_thread, locate, looks_binary
from roo_daemon.engine.workspace import SEARCH_RULES, Entry, walk

MAX_LINE_LENGTH = 500  # Roo's ripgrep MAX_LINE_LENGTH
CONTEXT_LINES = 1  # ripgrep --context 1, as Roo runs it


def expand_braces(pattern: str) -> list[str]:
    """``*.{ts,tsx}`` -> ``*.ts``, ``*.tsx`` (ripgrep globs allow alternatives;
    gitignore syntax does not)."""
    m = re.search(r"\{([^{}]*)\}", pattern)
    if not m:
        return [pattern]
    out = []
    for alt in m.group(1).split(","):
        out.extend(expand_braces(pattern[: m.start()] + alt + pattern[m.end() :]))
    return out


def glob_spec(pattern: str) -> GitIgnoreSpec:
    patterns = expand_braces(pattern.strip())
    if all(p.startswith("!") for p in patterns):
        patterns = ["*", *patterns]  # ripgrep: a lone negated glob excludes, everything else stays
    return GitIgnoreSpec.from_lines(patterns)


@dataclass
class _FileHits:
    rel: str
    blocks: list[list[tuple[int, str]]] = field(default_factory=list)

    def add(self, number: int, text: str) -> None:
        if self.blocks and self.blocks[-1][-1][0] >= number - 1:
            if self.blocks[-1][-1][0] < number:
                self.blocks[-1].append((number, text))
        else:
            self.blocks.append([(number, text)])


def _clip(text: str) -> str:
    return text[:MAX_LINE_LENGTH] + " [truncated...]" if len(text) > MAX_LINE_LENGTH else text


def _search_file(path: Path, rel: str, regex: re.Pattern[str], budget: int, cancel: threading.Event) -> _FileHits:
    """Matching lines with their context, until ``budget`` result blocks."""
    hits = _FileHits(rel)
    previous: tuple[int, str] | None = None
    after = 0
    with path.open("rb") as f:
        if looks_binary(f.read(BINARY_SNIFF_BYTES)):
            return hits
        f.seek(0)
        for number, raw in enumerate(f, 1):
            if number % 10000 == 0 and cancel.is_set():
                break
            text = raw.decode("utf-8", errors="replace").rstrip("\n").rstrip("\r")
            if regex.search(text):
                if len(hits.blocks) >= budget and (not hits.blocks or hits.blocks[-1][-1][0] < number - 2):
                    break  # this match would start a new result past the cap
                if previous is not None:
                    hits.add(*previous)
                hits.add(number, _clip(text))
                after = CONTEXT_LINES
            elif after:
                hits.add(number, _clip(text))
                after -= 1
                if after == 0 and len(hits.blocks) >= budget:
                    break
            previous = (number, _clip(text))
    return hits


def _candidates(target: Target) -> Iterable[Entry]:
    if target.path.is_file():
        return [Entry(target.rel, target.path, False)]
    return walk(target.root, target.path, True, SEARCH_RULES, target.rooignore)


def search(
    target: Target, regex: re.Pattern[str], pattern: str | None, max_results: int, cancel: threading.Event
) -> str:
    glob = glob_spec(pattern) if pattern else None
    base = "" if target.rel == "." or target.path.is_file() else target.rel + "/"
    files: list[_FileHits] = []
    total = 0
    for entry in _candidates(target):
        if cancel.is_set():
            break
        if entry.is_dir:
            continue
        if glob is not None and not glob.match_file(entry.rel[len(base) :] if base else entry.rel):
            continue
        try:
            hits = _search_file(entry.path, entry.rel, regex, max_results - total, cancel)
        except OSError:
            continue
        if hits.blocks:
            files.append(hits)
            total += len(hits.blocks)
        if total >= max_results:
            break
    return format_results(files, total, max_results)


def format_results(files: list[_FileHits], total: int, max_results: int) -> str:
    if total >= max_results:
        out = f"Showing first {max_results} of {max_results}+ results. Use a more specific search if necessary.\n\n"
    else:
        out = f"Found {'1 result' if total == 1 else f'{total:,} results'}.\n\n"
    for hits in files:
        out += f"# {hits.rel}\n"
        for block in hits.blocks:
            for number, text in block:
                out += f"{str(number).rjust(3)} | {text.rstrip()}\n"
            out += "----\n"
        out += "\n"
    return out.strip()


async def _search_files(ctx: TaskContext, args: dict[str, Any]) -> ToolOutcome:
    target = await locate(ctx, args["path"], is_dir=True)
    if not await in_thread("searching files", target.path.exists):
        raise ToolError(f"Error searching files: path '{args['path']}' does not exist.")
    try:
        regex = re.compile(args["regex"])
    except re.error as e:
        raise ToolError(f"Error searching files: invalid regex {args['regex']!r}: {e}") from None
    max_results = int(ctx.settings.get("search_max_results", 300))
    cancel = threading.Event()
    try:
        text = await in_thread("searching files", search, target, regex, args.get("file_pattern"), max_results, cancel)
    finally:
        cancel.set()  # a cancelled task's thread stops at the next file
    return ToolOutcome(text)


async def _approve_search(ctx: TaskContext, args: dict[str, Any]) -> dict[str, Any] | None:
    await locate(ctx, args["path"], is_dir=True)
    return None if approves(ctx, "read_only") else {"kind": "tool"}


SEARCH_TOOLS = [
    Tool(
        "search_files",
        "read",
        "Request to perform a regex search across files in a specified directory, providing context-rich results. "
        "This tool searches for patterns or specific content across multiple files, displaying each match with "
        "encapsulating context. .gitignore'd, hidden, binary and .rooignore'd files are skipped. Craft your regex "
        "patterns carefully to balance specificity and flexibility.",
        {
            "type": "object",
            "properties": {
                "path": {
                    "type": "string",
                    "minLength": 1,
                    "description": "Directory to search recursively, relative to the workspace ('.' for its root)",
                },
                "regex": {
                    "type": "string",
                    "minLength": 1,
                    "description": "Regular expression pattern to match",
                },
                "file_pattern": {
                    "type": ["string", "null"],
                    "description": "Optional glob to limit which files are searched (e.g., *.ts)",
                },
            },
            "required": ["path", "regex"],
            "additionalProperties": False,
        },
        _search_files,
        _approve_search,
    ),
]
