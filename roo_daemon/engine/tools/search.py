"""``search_files``: a regex search across the workspace with one line of
context, run by ripgrep with the arguments and in the output format of
Roo-Code's ripgrep service (src/services/ripgrep/index.ts)::

    Found 2 results.

    # src/app.py
      9 | def handler():
     10 |     # TODO: validate
     11 |     return ok
    ----

ripgrep's defaults hold, as in Roo: ``.gitignore``'d, hidden and binary
files are skipped, symlinks are not followed, ``file_pattern`` is a ripgrep
``--glob`` and the regex is Rust's (linear time: no pattern can hang it).
On top of Roo's arguments: ``.gitignore`` applies without a git repository
(as ``list_files`` has it) and never from above the workspace, and rg's
regex and DFA memory are bounded. Every result is checked again here, so
``.rooignore`` and the ``.gitignore`` files above the searched folder hold
whatever rg did. rg runs as a child process (:mod:`.ripgrep`) under
``tools.search_timeout_seconds``, killed when the task is cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from roo_daemon.engine.base import TaskContext
from roo_daemon.engine.tools.base import Tool, ToolError, ToolOutcome
from roo_daemon.engine.tools.fileio import Target, approves, in_thread, locate
from roo_daemon.engine.tools.ripgrep import DFA_SIZE_LIMIT, REGEX_SIZE_LIMIT, Record, Ripgrep, find_rg
from roo_daemon.engine.workspace import GitIgnoreChain, quoted, shown

MAX_LINE_LENGTH = 500  # Roo's ripgrep MAX_LINE_LENGTH
CONTEXT_LINES = 1  # ripgrep --context 1, as Roo runs it
LINES_PER_RESULT = 5  # Roo reads at most MAX_RESULTS * 5 lines of rg's output
NO_RG = (
    "Error searching files: ripgrep (rg) is not installed on the daemon's host. It comes with the ripgrep "
    "package (pip install ripgrep==14.1.0), or put rg on the PATH."
)


@dataclass
class _FileHits:
    rel: str  # as shown to the model
    blocks: list[list[tuple[int, str]]] = field(default_factory=list)

    def continues(self, number: int) -> bool:
        """Whether line ``number`` joins the last result (Roo's contiguity rule)."""
        return bool(self.blocks) and number <= self.blocks[-1][-1][0] + 1

    def add(self, number: int, text: str) -> None:
        if self.continues(number):
            if self.blocks[-1][-1][0] < number:
                self.blocks[-1].append((number, text))
        else:
            self.blocks.append([(number, text)])


def _clip(text: str) -> str:
    text = text.rstrip("\n").rstrip("\r")
    return text[:MAX_LINE_LENGTH] + " [truncated...]" if len(text) > MAX_LINE_LENGTH else text


class _Results:
    """rg's records grouped into Roo's results, for the files ``keep``
    allows, up to ``max_results`` results and ``LINES_PER_RESULT`` times as
    many lines (Roo stops reading rg there too: one result of a file where
    every line matches would otherwise be the whole file)."""

    def __init__(self, max_results: int, keep: Callable[[str], bool]) -> None:
        self.max_results = max_results
        self.max_lines = max_results * LINES_PER_RESULT
        self.keep = keep
        self.files: list[_FileHits] = []
        self.total = 0
        self.lines = 0
        self.capped = False
        self._current: _FileHits | None = None

    def add(self, rec: Record) -> bool:
        """Take one record; ``True`` once a cap is reached (stop reading)."""
        if rec.kind == "begin":
            rel = os.path.normpath(rec.path).replace(os.sep, "/")
            self._current = _FileHits(shown(rel)) if self.keep(rel) else None
        elif rec.kind == "end":
            self._close()
        elif self._current is not None:
            starts = not self._current.continues(rec.line)
            if (starts and self.total >= self.max_results) or self.lines >= self.max_lines:
                self.capped = True
                self._close()
                return True
            self._current.add(rec.line, _clip(rec.text))
            self.total += starts
            self.lines += 1
        return False

    def _close(self) -> None:
        if self._current is not None and self._current.blocks:
            self.files.append(self._current)
        self._current = None

    def text(self) -> str:
        self._close()
        return format_results(self.files, self.total, self.capped or self.total >= self.max_results)


def format_results(files: list[_FileHits], total: int, capped: bool) -> str:
    """Roo's formatResults. Its cap notice names MAX_RESULTS; cut short by
    the line cap first, it names the results shown."""
    if capped:
        head = f"Showing first {total:,} of {total:,}+ results. Use a more specific search if necessary."
    else:
        head = f"Found {'1 result' if total == 1 else f'{total:,} results'}."
    out = [head, ""]
    for hits in files:
        out.append(f"# {hits.rel}")
        for block in hits.blocks:
            out += [f"{str(number).rjust(3)} | {text.rstrip()}" for number, text in block]
            out.append("----")
        out.append("")
    return "\n".join(out).strip()


def rg_args(target: Target, regex: str, file_pattern: str | None) -> list[str]:
    """Roo's ``--json -e regex [--glob p] --context 1 --no-messages path``,
    plus what a shared service needs (see the module docstring)."""
    args = ["--no-config", "--json", "--sort", "path", "--no-require-git", "--no-ignore-parent", "--no-ignore-global"]
    args += ["--regex-size-limit", REGEX_SIZE_LIMIT, "--dfa-size-limit", DFA_SIZE_LIMIT]
    if target.rooignore.spec is not None:
        args += ["--ignore-file", ".rooignore"]  # matched from rg's cwd, the workspace root
    args += ["-e", regex]
    if file_pattern:
        args += ["--glob", file_pattern]
    return [*args, "--context", str(CONTEXT_LINES), "--no-messages", "--", target.rel]


def _kind(target: Target) -> str:
    """``dir``, ``file``, ``missing`` or ``other`` (a FIFO would block rg forever)."""
    try:
        mode = os.stat(target.path).st_mode
    except FileNotFoundError:
        return "missing"
    return "dir" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode) else "other"


@dataclass
class _Plan:
    kind: str
    rg: str | None
    chain: GitIgnoreChain | None  # for a folder: the .gitignore rules from the root down to it


def _plan(target: Target) -> _Plan:
    """What the target is, where rg is, and for a folder the ``.gitignore``
    rules above it (rg, told not to look above its start, does not see them)."""
    kind = _kind(target)
    return _Plan(kind, find_rg(), GitIgnoreChain.down_to(target.root, target.rel) if kind == "dir" else None)


def _keeper(target: Target, chain: GitIgnoreChain | None) -> Callable[[str], bool]:
    def keep(rel: str) -> bool:
        if target.rooignore.blocks(rel):
            return False
        return chain is None or not chain.hides(rel, target.rel)

    return keep


def _rg_failure(regex: str, stderr: str) -> str:
    detail = stderr.removeprefix("rg: ").strip() or "ripgrep failed"
    if "regex" in detail:
        return f"Error searching files: invalid regex {quoted(regex)}: {detail}"
    return f"Error searching files: {detail}"


def _checked_text(name: str, value: str | None) -> None:
    """rg gets its arguments as bytes: a lone surrogate cannot be passed."""
    if value is not None:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ToolError(f"Error searching files: the {name} is not valid Unicode text.") from None


async def _run(rg_path: str, target: Target, args: list[str], results: _Results, timeout: float) -> None:
    try:
        async with Ripgrep(rg_path, args, str(target.root)) as rg, asyncio.timeout(timeout):
            async with contextlib.aclosing(rg.records()) as records:
                async for rec in records:
                    if results.add(rec):
                        return  # the cap: leaving the block kills rg
            code, stderr = await rg.finish()
    except TimeoutError:
        raise ToolError(
            f"Error searching files: the search did not finish within {timeout:g} s and was stopped. "
            "Search a narrower path, or use a more specific regex or file_pattern."
        ) from None
    if code == 2 and not results.total:
        raise ToolError(_rg_failure(args[args.index("-e") + 1], stderr))


async def _search_files(ctx: TaskContext, args: dict[str, Any]) -> ToolOutcome:
    target = await locate(ctx, args["path"], is_dir=True)
    plan = await in_thread("searching files", _plan, target)
    if plan.kind == "missing":
        raise ToolError(f"Error searching files: path {quoted(args['path'])} does not exist.")
    if plan.kind == "other":
        raise ToolError(f"Error searching files: {quoted(args['path'])} is not a regular file or directory.")
    _checked_text("regex", args["regex"])
    _checked_text("file_pattern", args.get("file_pattern"))
    if plan.rg is None:
        raise ToolError(NO_RG)
    results = _Results(int(ctx.settings.get("search_max_results", 300)), _keeper(target, plan.chain))
    timeout = float(ctx.settings.get("search_timeout_seconds", 60))
    await _run(plan.rg, target, rg_args(target, args["regex"], args.get("file_pattern")), results, timeout)
    return ToolOutcome(results.text())


async def _approve_search(ctx: TaskContext, args: dict[str, Any]) -> dict[str, Any] | None:
    await locate(ctx, args["path"], is_dir=True)
    return None if approves(ctx, "read_only") else {"kind": "tool"}


# Roo's native tool description (src/core/prompts/tools/native-tools/search_files.ts),
# plus what it skips.
SEARCH_FILES_DESCRIPTION = """Request to perform a regex search across files in a specified directory, \
providing context-rich results. This tool searches for patterns or specific content across multiple files, \
displaying each match with encapsulating context. .gitignore'd, hidden, binary and .rooignore'd files are skipped.

Craft your regex patterns carefully to balance specificity and flexibility. Use this tool to find code patterns, \
TODO comments, function definitions, or any text-based information across the project. The results include \
surrounding context, so analyze the surrounding code to better understand the matches. Leverage this tool in \
combination with other tools for more comprehensive analysis.

Parameters:
- path: (required) The path of the directory to search in (relative to the current workspace directory). This \
directory will be recursively searched.
- regex: (required) The regular expression pattern to search for. Uses Rust regex syntax.
- file_pattern: (optional) Glob pattern to filter files (e.g., '*.ts' for TypeScript files). If not provided, it \
will search all files (*).

Example: Searching for all .ts files in the current directory
{ "path": ".", "regex": ".*", "file_pattern": "*.ts" }

Example: Searching for function definitions in JavaScript files
{ "path": "src", "regex": "function\\s+\\w+", "file_pattern": "*.js" }"""

SEARCH_TOOLS = [
    Tool(
        "search_files",
        "read",
        SEARCH_FILES_DESCRIPTION,
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
                    "description": "Rust-compatible regular expression pattern to match",
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
