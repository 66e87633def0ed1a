"""File tools, confined to the session's workspace. File I/O runs in a
thread (``asyncio.to_thread``) so the IOLoop never waits on the disk."""

from __future__ import annotations

import asyncio
import difflib
from pathlib import Path
from typing import Any

from roo_daemon.engine.base import TaskContext
from roo_daemon.engine.tools.base import Tool, ToolError, ToolOutcome
from roo_daemon.engine.workspace import PathEscape, resolve_inside

MAX_READ_BYTES = 256 * 1024


def _path(ctx: TaskContext, rel: str) -> Path:
    try:
        return resolve_inside(ctx.session.workspace, rel)
    except PathEscape as e:
        raise ToolError(str(e)) from None


def _read_numbered(path: Path, offset: int, limit: int | None) -> str:
    data = path.read_bytes()[:MAX_READ_BYTES]
    lines = data.decode("utf-8", errors="replace").splitlines()
    end = len(lines) if limit is None else min(len(lines), offset - 1 + limit)
    return "\n".join(f"{n} | {lines[n - 1]}" for n in range(offset, end + 1))


async def _read_file(ctx: TaskContext, args: dict[str, Any]) -> ToolOutcome:
    path = _path(ctx, args["path"])
    if not await asyncio.to_thread(path.is_file):
        raise ToolError(f"File not found: {args['path']}")
    body = await asyncio.to_thread(_read_numbered, path, args.get("offset", 1), args.get("limit"))
    return ToolOutcome(f"<file><path>{args['path']}</path>\n<content>\n{body}\n</content></file>")


async def _approve_read(ctx: TaskContext, args: dict[str, Any]) -> dict[str, Any] | None:
    return None if ctx.session.auto_approve.get("read_only") else {"kind": "tool"}


def _diff(path: Path, rel: str, new: str) -> str:
    old = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
    return "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True), f"a/{rel}", f"b/{rel}"))


async def _approve_write(ctx: TaskContext, args: dict[str, Any]) -> dict[str, Any] | None:
    path = _path(ctx, args["path"])
    if ctx.session.auto_approve.get("write"):
        return None
    return {"kind": "tool", "diff": await asyncio.to_thread(_diff, path, args["path"], args["content"])}


def _write(path: Path, content: str) -> bool:
    existed = path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content, encoding="utf-8")
    return existed


async def _write_to_file(ctx: TaskContext, args: dict[str, Any]) -> ToolOutcome:
    path = _path(ctx, args["path"])
    existed = await asyncio.to_thread(_write, path, args["content"])
    verb = "modified" if existed else "created"
    return ToolOutcome(f"The content was successfully saved to {args['path']} ({verb}).")


FILE_TOOLS = [
    Tool(
        "read_file",
        "read",
        "Read a file of the workspace; lines come numbered.",
        {
            "type": "object",
            "properties": {
                "path": {"type": "string", "minLength": 1},
                "offset": {"type": "integer", "minimum": 1},
                "limit": {"type": "integer", "minimum": 1},
            },
            "required": ["path"],
            "additionalProperties": False,
        },
        _read_file,
        _approve_read,
    ),
    Tool(
        "write_to_file",
        "edit",
        "Write a whole file of the workspace, creating parent folders as needed.",
        {
            "type": "object",
            "properties": {"path": {"type": "string", "minLength": 1}, "content": {"type": "string"}},
            "required": ["path", "content"],
            "additionalProperties": False,
        },
        _write_to_file,
        _approve_write,
    ),
]
