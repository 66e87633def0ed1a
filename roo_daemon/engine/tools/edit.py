"""Editing tools: ``apply_diff`` (Roo's SEARCH/REPLACE blocks, see
:mod:`diff_match`) and ``search_replace`` (an exact string replacement,
Roo's ``edit`` semantics with ``replace_all``).

Both compute the new content before asking, so an edit that cannot apply is
refused without bothering the client, and the ask carries the unified diff.
After approval the edit is recomputed from the file as it is then and
written atomically. File work runs in a thread.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from roo_daemon.engine.base import TaskContext
from roo_daemon.engine.tools.base import Tool, ToolError, ToolOutcome
from roo_daemon.engine.tools.diff_match import Block, DiffFailure, DiffFormatError, apply_blocks, parse_blocks
from roo_daemon.engine.tools.fileio import (
    BINARY_SNIFF_BYTES,
    approves_write,
    in_thread,
    locate,
    looks_binary,
    unified_diff,
    write_ask,
    write_atomically,
    write_result,
)

SINGLE_BLOCK_NOTICE = (
    "\n<notice>Making multiple related changes in a single apply_diff is more efficient. If other changes are "
    "needed in this file, please include them as additional SEARCH/REPLACE blocks.</notice>"
)


def read_for_edit(path: Path, rel: str, missing: str) -> str:
    """The file's text for an edit: it must exist, be text and be UTF-8 (an
    edit must never rewrite bytes it could not decode)."""
    if path.is_dir():
        raise ToolError(f"Cannot edit '{rel}': it is a directory.")
    if not path.is_file():
        raise ToolError(missing)
    data = path.read_bytes()
    if looks_binary(data[:BINARY_SNIFF_BYTES]):
        raise ToolError(f"Cannot edit '{rel}': it is a binary file.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ToolError(f"Cannot edit '{rel}': it is not UTF-8 text.") from None


# -- apply_diff ---------------------------------------------------------------


PARTIAL = (
    "But unable to apply all diff parts to file: {}. Use the read_file tool to check the newest file version and "
    "re-apply diffs.\n"
)  # Roo's partFailHint


def _details(failures: list[tuple[Block, str]], total: int) -> str:
    """Roo's ``<error_details>`` for each block that did not apply (Roo shows
    the last one only); with several blocks, each says which it was."""
    parts = []
    for block, reason in failures:
        which = ""
        if total > 1:
            hint = f" (:start_line:{block.start_line})" if block.start_line else " (no :start_line:)"
            which = f"Block {block.number} of {total}{hint}:\n"
        parts.append(f"<error_details>\n{which}{reason}\n</error_details>")
    return "\n\n".join(parts)


def _diffed(path: Path, rel: str, diff: str, threshold: float) -> tuple[str, str, list[Block], list[tuple[Block, str]]]:
    """(original, new content, the blocks, the ones that did not apply), or a
    ToolError with Roo's report when none applied."""
    original = read_for_edit(
        path,
        rel,
        f"File does not exist at path: {rel}\n\n<error_details>\nThe specified file could not be found. "
        "Please verify the file path and try again.\n</error_details>",
    )
    try:
        blocks = parse_blocks(diff)
        new, failures = apply_blocks(original, blocks, threshold)
    except DiffFormatError as e:
        raise ToolError(f"Unable to apply diff to file: {rel}\n\n<error_details>\n{e}\n</error_details>") from None
    except DiffFailure as e:
        raise ToolError(_details(e.failures, e.total)) from None
    return original, new, blocks, failures


def _threshold(ctx: TaskContext) -> float:
    return float(ctx.settings.get("apply_diff_fuzzy_threshold", 1.0))


async def _approve_apply_diff(ctx: TaskContext, args: dict[str, Any]) -> dict[str, Any] | None:
    target = await locate(ctx, args["path"])
    original, new, _, _ = await in_thread(
        "applying diff", _diffed, target.path, args["path"], args["diff"], _threshold(ctx)
    )
    if approves_write(ctx, args["path"], target.rel):
        return None
    return write_ask(await in_thread("diffing", unified_diff, target.rel, original, new), args["path"], target.rel)


def _apply_and_write(path: Path, rel: str, diff: str, threshold: float) -> tuple[list[Block], list[tuple[Block, str]]]:
    _, new, blocks, failures = _diffed(path, rel, diff, threshold)
    write_atomically(path, new)
    return blocks, failures


async def _apply_diff(ctx: TaskContext, args: dict[str, Any]) -> ToolOutcome:
    """Roo's result: the blocks that matched are written; the ones that did
    not are named after the write result (Roo's "But unable to apply all
    diff parts" hint first), so the model can re-read and retry just those."""
    rel = args["path"]
    target = await locate(ctx, rel)
    blocks, failures = await in_thread(
        "applying diff", _apply_and_write, target.path, rel, args["diff"], _threshold(ctx)
    )
    text = write_result(rel, False) + (SINGLE_BLOCK_NOTICE if len(blocks) == 1 else "")
    if failures:
        text = PARTIAL.format(rel) + text + "\n\n" + _details(failures, len(blocks))
    return ToolOutcome(text)


# -- search_replace -----------------------------------------------------------


def _replaced(path: Path, rel: str, old: str, new: str, replace_all: bool) -> tuple[str, str]:
    """(original, new content) with Roo's edit-tool checks and messages. Line
    endings are matched as LF and a CRLF file stays CRLF."""
    if old == new:
        raise ToolError(
            "'old_string' and 'new_string' are identical. No changes needed. If you want to make a change, ensure "
            "'old_string' and 'new_string' are different."
        )
    original = read_for_edit(path, rel, f"File not found: {rel}. Cannot perform edit on a non-existent file.")
    crlf = "\r\n" in original
    content = original.replace("\r\n", "\n")
    old, new = old.replace("\r\n", "\n"), new.replace("\r\n", "\n")
    count = content.count(old)
    if count == 0:
        raise ToolError(
            f"No match found for 'old_string' in {rel}. Make sure the text to find appears exactly in the file, "
            "including whitespace and indentation."
        )
    if count > 1 and not replace_all:
        raise ToolError(
            f"Found {count} matches of 'old_string' in the file. Use 'replace_all: true' to replace all "
            "occurrences, or provide more context in 'old_string' to make it unique."
        )
    updated = content.replace(old, new) if replace_all else content.replace(old, new, 1)
    return original, updated.replace("\n", "\r\n") if crlf else updated


async def _approve_search_replace(ctx: TaskContext, args: dict[str, Any]) -> dict[str, Any] | None:
    target = await locate(ctx, args["file_path"])
    original, new = await in_thread(
        "search and replace",
        _replaced,
        target.path,
        args["file_path"],
        args["old_string"],
        args["new_string"],
        args.get("replace_all", False),
    )
    if approves_write(ctx, args["file_path"], target.rel):
        return None
    diff = await in_thread("diffing", unified_diff, target.rel, original, new)
    return write_ask(diff, args["file_path"], target.rel)


def _replace_and_write(path: Path, rel: str, old: str, new: str, replace_all: bool) -> None:
    _, content = _replaced(path, rel, old, new, replace_all)
    write_atomically(path, content)


async def _search_replace(ctx: TaskContext, args: dict[str, Any]) -> ToolOutcome:
    rel = args["file_path"]
    target = await locate(ctx, rel)
    await in_thread(
        "search and replace",
        _replace_and_write,
        target.path,
        rel,
        args["old_string"],
        args["new_string"],
        args.get("replace_all", False),
    )
    return ToolOutcome(write_result(rel, False))


APPLY_DIFF_DESCRIPTION = (
    "Apply precise, targeted modifications to an existing file using one or more search/replace blocks. This tool "
    "is for surgical edits only; the 'SEARCH' block must match the existing content (whitespace and indentation "
    "differences are tolerated, but nothing else). To make multiple targeted changes, provide multiple "
    "SEARCH/REPLACE blocks in the 'diff' parameter. Blocks that match are applied; any that do not are reported "
    "block by block. Use the 'read_file' tool first if you are not confident in the exact content to search for."
)
DIFF_PARAMETER_DESCRIPTION = (
    "A string containing one or more search/replace blocks defining the changes. The ':start_line:' is required "
    "and indicates the starting line number of the original content. You must not add a start line for the "
    "replacement content. Each block must follow this format:\n<<<<<<< SEARCH\n:start_line:[line_number]\n-------\n"
    "[exact content to find]\n=======\n[new content to replace with]\n>>>>>>> REPLACE"
)

EDIT_TOOLS = [
    Tool(
        "apply_diff",
        "edit",
        APPLY_DIFF_DESCRIPTION,
        {
            "type": "object",
            "properties": {
                "path": {
                    "type": "string",
                    "minLength": 1,
                    "description": "The path of the file to modify, relative to the current workspace directory.",
                },
                "diff": {"type": "string", "minLength": 1, "description": DIFF_PARAMETER_DESCRIPTION},
            },
            "required": ["path", "diff"],
            "additionalProperties": False,
        },
        _apply_diff,
        _approve_apply_diff,
    ),
    Tool(
        "search_replace",
        "edit",
        "Performs an exact string replacement in a file. The edit will FAIL if 'old_string' is not unique in the "
        "file: either provide a larger string with more surrounding context (3-5 lines before and after) to make it "
        "unique, or use 'replace_all' to change every instance of 'old_string'. Preserve the exact indentation as it "
        "appears in the file, and never include read_file's line-number prefixes in old_string or new_string.",
        {
            "type": "object",
            "properties": {
                "file_path": {
                    "type": "string",
                    "minLength": 1,
                    "description": "The path of the file to edit, relative to the workspace.",
                },
                "old_string": {
                    "type": "string",
                    "minLength": 1,
                    "description": "The exact text to find in the file. Must match exactly, including all "
                    "whitespace, indentation, and line endings.",
                },
                "new_string": {
                    "type": "string",
                    "description": "The replacement text that will replace old_string (must be different from it).",
                },
                "replace_all": {
                    "type": "boolean",
                    "description": "When true, replaces ALL occurrences of old_string in the file. When false "
                    "(default), only replaces the one occurrence and errors if multiple matches exist.",
                },
            },
            "required": ["file_path", "old_string", "new_string"],
            "additionalProperties": False,
        },
        _search_replace,
        _approve_search_replace,
    ),
]
