"""File tools: ``read_file`` (:mod:`.read`), ``list_files`` (:mod:`.listing`)
and ``write_to_file`` (here), with the names, parameters and result texts
of Roo-Code's native tools (src/core/tools/WriteToFileTool.ts). Every path
is confined to the session's workspace and checked against its
``.rooignore``; all file-system work runs in a thread so the IOLoop never
waits on the disk.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from roo_daemon.engine.base import TaskContext
from roo_daemon.engine.tools.base import Tool, ToolError, ToolOutcome
from roo_daemon.engine.tools.fileio import (
    approves_write,
    in_thread,
    locate,
    unified_diff,
    write_ask,
    write_atomically,
    write_result,
)
from roo_daemon.engine.tools.listing import LIST_FILES_TOOL
from roo_daemon.engine.tools.read import READ_FILE_TOOL
from roo_daemon.engine.workspace import (
    quoted,
    shown,
)

_LINE_NUMBER = re.compile(r"^\s*\d+\s+\|(?!\|)")
_LINE_NUMBER_PREFIX = re.compile(r"^\s*\d+\s+\|\s?")


def prepare_content(content: str) -> str:
    """Roo's clean-up of model output before writing: drop a Markdown code
    fence around the whole content, and ``N | `` prefixes when every line
    carries one (the model copied read_file output)."""
    if content.startswith("```"):
        content = content.split("\n", 1)[1] if "\n" in content else ""
    if content.endswith("```"):
        content = content.rsplit("\n", 1)[0] if "\n" in content else ""
    lines = content.split("\n")
    if content.strip() and all(_LINE_NUMBER.match(line) for line in lines if line.strip()):
        content = "\n".join(_LINE_NUMBER_PREFIX.sub("", line, count=1) for line in lines)
    return content


def _old_content(path: Path) -> str:
    if path.is_dir():
        raise ToolError(f"Cannot write to {quoted(path.name)}: it is a directory.")
    if not path.exists():
        return ""
    return path.read_text(encoding="utf-8", errors="replace")


def _write_preview(path: Path, rel: str, content: str) -> str:
    return unified_diff(rel, _old_content(path), prepare_content(content))


async def _approve_write(ctx: TaskContext, args: dict[str, Any]) -> dict[str, Any] | None:
    target = await locate(ctx, args["path"])
    if approves_write(ctx, args["path"], target.rel):
        await in_thread(f"reading file {shown(args['path'])}", _old_content, target.path)  # refuses a directory
        return None
    action = f"reading file {shown(args['path'])}"
    diff = await in_thread(action, _write_preview, target.path, target.rel, args["content"])
    return write_ask(diff, args["path"], target.rel)


def _write(path: Path, content: str) -> bool:
    _old_content(path)  # refuses a directory
    return write_atomically(path, prepare_content(content))


async def _write_to_file(ctx: TaskContext, args: dict[str, Any]) -> ToolOutcome:
    target = await locate(ctx, args["path"])
    created = await in_thread(f"writing file {shown(args['path'])}", _write, target.path, args["content"])
    return ToolOutcome(write_result(args["path"], created))


WRITE_TO_FILE_TOOL = Tool(
    "write_to_file",
    "edit",
    "Request to write content to a file. This tool is primarily used for creating new files or for scenarios "
    "where a complete rewrite of an existing file is intentionally required. If the file exists, it will be "
    "overwritten. If it doesn't exist, it will be created. This tool will automatically create any directories "
    "needed to write the file. ALWAYS provide the COMPLETE file content: partial updates or placeholders like "
    "'// rest of code unchanged' are forbidden. Prefer apply_diff or search_replace for changes to existing "
    "files.",
    {
        "type": "object",
        "properties": {
            "path": {
                "type": "string",
                "minLength": 1,
                "description": "The path of the file to write to (relative to the current workspace directory)",
            },
            "content": {
                "type": "string",
                "description": "The content to write to the file. ALWAYS provide the COMPLETE intended content "
                "of the file, without any truncation or omissions. Do NOT include line numbers in the content.",
            },
        },
        "required": ["path", "content"],
        "additionalProperties": False,
    },
    _write_to_file,
    _approve_write,
)


FILE_TOOLS = [READ_FILE_TOOL, LIST_FILES_TOOL, WRITE_TO_FILE_TOOL]
