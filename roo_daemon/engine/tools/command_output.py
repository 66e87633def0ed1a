"""``read_command_output``: read or search a command's full output kept as an
artifact (:mod:`artifacts`), with Roo-Code's parameters and result texts
(src/core/tools/ReadCommandOutputTool.ts).

Reads run in a thread (positional reads, bounded by ``limit``); a search
runs ripgrep over the file (linear-time regex, killed on timeout), as
``search_files`` does, rather than a backtracking regex in the daemon.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from roo_daemon.engine.base import TaskContext
from roo_daemon.engine.tools.artifacts import artifact_path
from roo_daemon.engine.tools.base import Tool, ToolError, ToolOutcome
from roo_daemon.engine.tools.fileio import in_thread
from roo_daemon.engine.tools.ripgrep import DFA_SIZE_LIMIT, REGEX_SIZE_LIMIT, Ripgrep, find_rg

DEFAULT_LIMIT = 40 * 1024  # Roo's DEFAULT_LIMIT
CHUNK = 64 * 1024
SEARCH_TIMEOUT_SECONDS = 30.0


def _size(size: int) -> str:
    """Roo's formatBytes in ReadCommandOutputTool."""
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f}KB"
    return f"{size / (1024 * 1024):.1f}MB"


def _numbered(content: str, start: int) -> str:
    lines = content.split("\n")
    width = len(str(start + len(lines) - 1))
    return "\n".join(f"{str(start + i).rjust(width)} | {line}" for i, line in enumerate(lines))


def _read(path: Path, artifact_id: str, offset: int, limit: int) -> str:
    total = path.stat().st_size
    if offset < 0 or offset >= total:
        raise ToolError(
            f"Error: Invalid offset: {offset}. File size is {total} bytes. Offset must be between 0 and {total - 1}."
        )
    with open(path, "rb") as f:
        line = 1
        done = 0
        while done < offset:  # count newlines before the offset in bounded chunks
            chunk = f.read(min(CHUNK, offset - done))
            if not chunk:
                break
            line += chunk.count(b"\n")
            done += len(chunk)
        f.seek(offset)
        data = f.read(min(limit, total - offset))
    end = offset + len(data)
    header = (
        f"[Command Output: {artifact_id}]\n"
        f"Total size: {_size(total)} | Showing bytes {offset}-{end} | {'TRUNCATED' if end < total else 'COMPLETE'}\n"
    )
    return header + _numbered(data.decode("utf-8", errors="replace"), line)


async def _search(path: Path, artifact_id: str, pattern: str, limit: int) -> str:
    rg = find_rg()
    if rg is None:
        raise ToolError("Error reading command output: ripgrep is not available to search it.")
    total = path.stat().st_size
    matches: list[str] = []
    used = 0
    for fixed in (False, True):  # Roo: an invalid regex is searched for literally
        base = ["--no-config", "--json", "-i", "--no-messages", "--text"]
        base += ["--regex-size-limit", REGEX_SIZE_LIMIT, "--dfa-size-limit", DFA_SIZE_LIMIT]
        args = [*base, *(["-F"] if fixed else []), "-e", pattern, "--", path.name]
        refused = False
        async with Ripgrep(rg, args, str(path.parent)) as run, asyncio.timeout(SEARCH_TIMEOUT_SECONDS):
            async for record in run.records():
                if record.kind != "match":
                    continue
                text = record.text.rstrip("\n")
                size = len(text.encode())
                if used + size > limit:
                    break
                matches.append(f"{str(record.line).rjust(5)} | {text}")
                used += size
            else:
                code, _ = await run.finish()
                refused = code == 2  # rg refused the pattern (or the file)
        if not refused or fixed:
            break
    if not matches:
        return (
            f'[Command Output: {artifact_id}] (search: "{pattern}")\nTotal size: {_size(total)}\n\n'
            "No matches found for the search pattern."
        )
    return (
        f'[Command Output: {artifact_id}] (search: "{pattern}")\n'
        f"Total matches: {len(matches)} | Showing first {len(matches)}\n\n" + "\n".join(matches)
    )


async def _read_command_output(ctx: TaskContext, args: dict[str, Any]) -> ToolOutcome:
    artifact_id = args["artifact_id"]
    if not artifact_id.startswith("cmd-") or not artifact_id.endswith(".txt") or not artifact_id[4:-4].isdigit():
        return ToolOutcome(
            f'Error: Invalid artifact_id format: "{artifact_id}". Expected format: cmd-{{timestamp}}.txt (e.g., '
            '"cmd-1706119234567.txt")',
            is_error=True,
            mistake=True,
        )
    path = await in_thread("reading command output", artifact_path, ctx.settings, ctx.task.id, artifact_id)
    if path is None:
        return ToolOutcome(
            f'Error: Artifact not found: "{artifact_id}". Please verify the artifact_id from the command output '
            "message. Available artifacts are created when command output exceeds the preview size.",
            is_error=True,
        )
    limit = int(args.get("limit") or DEFAULT_LIMIT)
    search = args.get("search")
    try:
        if search:
            return ToolOutcome(await _search(path, artifact_id, search, limit))
        return ToolOutcome(
            await in_thread("reading command output", _read, path, artifact_id, args.get("offset") or 0, limit)
        )
    except TimeoutError:
        raise ToolError("Error reading command output: the search took too long; use a simpler pattern.") from None


COMMAND_OUTPUT_TOOLS = [
    Tool(
        "read_command_output",
        "command",
        "Retrieve the full output from a command that was truncated in execute_command. Use this tool when:\n"
        '1. The execute_command result says "Output (...) persisted. Artifact ID: cmd-XXXX.txt"\n'
        "2. You need to see more of the command output beyond the preview\n"
        "3. You want to search for specific content in large command output\n\n"
        "The tool supports two modes:\n"
        "- **Read mode**: Read output starting from a byte offset with optional limit\n"
        "- **Search mode**: Filter lines matching a regex or literal pattern (like grep)",
        {
            "type": "object",
            "properties": {
                "artifact_id": {
                    "type": "string",
                    "minLength": 1,
                    "description": "The artifact filename from the truncated command output "
                    '(e.g., "cmd-1706119234567.txt")',
                },
                "search": {
                    "type": "string",
                    "description": "Optional regex or literal pattern to filter lines (case-insensitive, like grep). "
                    "Omit this parameter if not searching - do not pass null or empty string.",
                },
                "offset": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "Byte offset to start reading from (default: 0, for pagination)",
                },
                "limit": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": 1048576,
                    "description": "Maximum bytes to return (default: 40KB)",
                },
            },
            "required": ["artifact_id"],
            "additionalProperties": False,
        },
        _read_command_output,
        changes_files=False,
    ),
]
