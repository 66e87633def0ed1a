"""``list_files``, as Roo-Code's ListFilesTool and formatFilesList: the
workspace walk with ``.gitignore``/``.rooignore`` rules, Roo's ordering, its
truncation notice and 🛡️ marks. The first prompt's workspace listing is
:func:`list_text` too.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from roo_daemon.engine.base import TaskContext
from roo_daemon.engine.protect import SHIELD, is_write_protected
from roo_daemon.engine.tools.base import Tool, ToolError, ToolOutcome
from roo_daemon.engine.tools.fileio import Target, approves, in_thread, locate
from roo_daemon.engine.workspace import (
    LIST_RULES,
    quoted,
    shown,
    walk,
)

LIST_TRUNCATED = "(File list truncated. Use list_files on specific subdirectories if you need to explore further.)"


def _natural(part: str) -> list[Any]:
    return [int(tok) if tok.isdigit() else tok.casefold() for tok in re.split(r"(\d+)", part)]


def _roo_order(a: str, b: str) -> int:
    """Roo's formatFilesList ordering: entries grouped under their
    directories, natural and case-insensitive within a level."""
    ap, bp = a.split("/"), b.split("/")
    for i in range(min(len(ap), len(bp))):
        if ap[i] != bp[i]:
            if i + 1 == len(ap) and i + 1 < len(bp):
                return -1
            if i + 1 == len(bp) and i + 1 < len(ap):
                return 1
            ka, kb = _natural(ap[i]), _natural(bp[i])
            if ka != kb:
                try:
                    return -1 if ka < kb else 1
                except TypeError:  # a number against a word: compare as text
                    return -1 if ap[i].casefold() < bp[i].casefold() else 1
            return -1 if ap[i] < bp[i] else 1
    return len(ap) - len(bp)


def _list(target: Target, recursive: bool, limit: int) -> tuple[list[str], bool]:
    names: list[str] = []
    base = "" if target.rel == "." else target.rel + "/"
    for entry in walk(target.root, target.path, recursive, LIST_RULES, target.rooignore):
        if len(names) == limit:
            return names, True
        rel = entry.rel[len(base) :]
        names.append(shown(rel + "/" if entry.is_dir else rel))
    return names, False


def list_text(target: Target, recursive: bool, limit: int, shield: bool = False) -> str:
    """list_files' result (Roo's formatFilesList); the first prompt's
    workspace listing is this too. ``shield``: write-protected files get
    Roo's 🛡️ mark (list_files passes its rooProtectedController, the
    environment details do not)."""
    names, hit_limit = _list(target, recursive, limit)
    names.sort(key=functools.cmp_to_key(_roo_order))
    if shield:
        base = "" if target.rel == "." else target.rel + "/"
        names = [f"{SHIELD} {n}" if is_write_protected(base + n) else n for n in names]
    if hit_limit:
        return "\n".join(names) + "\n\n" + LIST_TRUNCATED
    return "\n".join(names) if names else "No files found."


async def _list_files(ctx: TaskContext, args: dict[str, Any]) -> ToolOutcome:
    rel = args["path"]
    target = await locate(ctx, rel, is_dir=True)
    if not await in_thread("listing files", target.path.is_dir):
        raise ToolError(f"Error listing files: {quoted(rel)} is not a directory (use read_file for files).")
    limit = int(ctx.settings.get("list_max_entries", 500))
    text = await in_thread("listing files", list_text, target, bool(args.get("recursive")), limit, True)
    return ToolOutcome(text)


async def _approve_list(ctx: TaskContext, args: dict[str, Any]) -> dict[str, Any] | None:
    await locate(ctx, args["path"], is_dir=True)
    return None if approves(ctx, "read_only") else {"kind": "tool"}


LIST_FILES_TOOL = Tool(
    "list_files",
    "read",
    "Request to list files and directories within the specified directory. If recursive is true, it will list "
    "all files and directories recursively. If recursive is false or not provided, it will only list the "
    "top-level contents. Do not use this tool to confirm the existence of files you may have created, as the "
    "user will let you know if the files were created successfully or not. Directories end with '/'. "
    ".gitignore'd and .rooignore'd paths are left out.",
    {
        "type": "object",
        "properties": {
            "path": {
                "type": "string",
                "minLength": 1,
                "description": "Directory path to inspect, relative to the workspace ('.' for its root)",
            },
            "recursive": {
                "type": "boolean",
                "description": "Set true to list contents recursively; false to show only the top level",
            },
        },
        "required": ["path"],
        "additionalProperties": False,
    },
    _list_files,
    _approve_list,
)
