"""``read_file``, with the name, parameters and result texts of Roo-Code's
native tool (src/core/tools/ReadFileTool.ts): slices by line with a byte cap,
Roo's indentation mode, images for models that take them. File work runs in
a thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from roo_daemon.engine.base import TaskContext
from roo_daemon.engine.tools.base import Tool, ToolError, ToolOutcome
from roo_daemon.engine.tools.fileio import BINARY_SNIFF_BYTES, Target, approves, in_thread, locate, looks_binary
from roo_daemon.engine.tools.images import is_image, read_image
from roo_daemon.engine.workspace import (
    shown,
)

DEFAULT_LINE_LIMIT = 2000  # Roo's read_file default `limit`
MAX_LINE_LENGTH = 2000  # longer lines are cut, as in Roo
MAX_INDENTATION_FILE_BYTES = 32 * 1024 * 1024  # indentation mode holds the whole file in memory


def _number(lines: list[tuple[int, str]]) -> str:
    """Roo's formatWithLineNumbers: ``N | text``, numbers padded to one width."""
    if not lines:
        return ""
    width = len(str(lines[-1][0]))
    out = []
    for n, text in lines:
        if len(text) > MAX_LINE_LENGTH:
            text = text[: MAX_LINE_LENGTH - 3] + "..."
        out.append(f"{str(n).rjust(width)} | {text}")
    return "\n".join(out)


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace").rstrip("\n").rstrip("\r")


@dataclass
class _Slice:
    lines: list[tuple[int, str]]
    total: int
    capped: bool  # stopped by the byte cap rather than the line limit


def _read_slice(path: Path, offset: int, limit: int, max_bytes: int) -> _Slice:
    """Lines ``offset``..``offset+limit-1`` (1-based) without loading the
    whole file, stopping early at ``max_bytes`` of output; counts all lines."""
    lines: list[tuple[int, str]] = []
    size = 0
    capped = False
    total = 0
    with path.open("rb") as f:
        for raw in f:
            total += 1
            if total < offset:
                continue
            if len(lines) >= limit:
                break
            text = _decode(raw)
            size += len(text.encode("utf-8", errors="replace")) + len(str(total)) + 4
            if lines and size > max_bytes:
                capped = True
                break
            lines.append((total, text))
        else:
            return _Slice(lines, total, capped)
        # Past the slice: count the remaining lines without decoding them.
        last = b""
        while chunk := f.read(1 << 20):
            total += chunk.count(b"\n")
            last = chunk
        if last and not last.endswith(b"\n"):
            total += 1
    return _Slice(lines, total, capped)


def _read_all_lines(path: Path) -> list[str]:
    with path.open("rb") as f:
        return [_decode(raw) for raw in f]


# Roo's indentation reader (src/integrations/misc/indentation-reader): a
# Codex-style block extraction around an anchor line.
_INDENT_SIZE = 4
_TAB_WIDTH = 4
_COMMENT_PREFIXES = ("#", "//", "--", "/*", "*", "'''", '"""')


def _indent_level(line: str) -> int:
    spaces = 0
    for ch in line:
        if ch == "\t":
            spaces += _TAB_WIDTH
        elif ch == " ":
            spaces += 1
        else:
            break
    return spaces // _INDENT_SIZE


def read_indentation(
    lines: list[str],
    anchor: int,
    max_levels: int = 0,
    include_siblings: bool = False,
    include_header: bool = True,
    limit: int = DEFAULT_LINE_LIMIT,
    max_lines: int | None = None,
) -> tuple[list[tuple[int, str]], bool]:
    """The block containing line ``anchor`` (1-based), found by expanding up
    and down while the indentation stays at or above the anchor's enclosing
    level. Returns the numbered lines and whether the block was cut short."""
    total = len(lines)
    blank = [not line.strip() for line in lines]
    effective: list[int] = []
    previous = 0
    for line, is_blank in zip(lines, blank, strict=True):
        if not is_blank:
            previous = _indent_level(line)
        effective.append(previous)
    idx = anchor - 1
    min_indent = 0 if max_levels == 0 else max(0, effective[idx] - max_levels)
    final_limit = min(limit, max_lines if max_lines is not None else limit, total)
    result = [idx]
    i, j = idx - 1, idx + 1
    i_count = j_count = 0
    while len(result) < final_limit:
        up = False
        if i >= 0 and effective[i] >= min_indent:
            at_min = effective[i] == min_indent and not include_siblings
            is_comment = lines[i].strip().startswith(_COMMENT_PREFIXES)
            if at_min and i_count > 0 and not (include_header and is_comment):
                i = -1
            else:
                result.insert(0, i)
                i_count += 1 if at_min else 0
                i -= 1
                up = True
        else:
            i = -1
        if len(result) >= final_limit:
            break
        down = False
        if j < total and effective[j] >= min_indent:
            at_min = effective[j] == min_indent and not include_siblings
            if at_min and j_count > 0:
                j = total
            else:
                result.append(j)
                j_count += 1 if at_min else 0
                j += 1
                down = True
        else:
            j = total
        if not up and not down:
            break
    while result and blank[result[0]]:
        result.pop(0)
    while result and blank[result[-1]]:
        result.pop()
    cut = (len(result) >= final_limit or i >= 0 or j < total) and len(result) < total
    return [(k + 1, lines[k]) for k in result], cut


def _ranges(numbers: list[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for n in numbers:
        if out and n == out[-1][1] + 1:
            out[-1] = (out[-1][0], n)
        else:
            out.append((n, n))
    return out


def _truncation_header(start: int, end: int, total: int, next_offset: int, limit: int, capped_at: int | None) -> str:
    cap = f" Output capped at {capped_at} bytes." if capped_at else ""
    return (
        "IMPORTANT: File content truncated.\n"
        f"Status: Showing lines {start}-{end} of {total} total lines.{cap}\n"
        f"To read more: Use the read_file tool with offset={next_offset} and limit={limit}.\n\n"
    )


def _read_text(path: Path, rel: str, args: dict[str, Any], max_bytes: int) -> tuple[str, bool]:
    """The body of a read_file result (after ``File: rel``) and whether it is an error."""
    if path.is_dir():
        return f"Error: Cannot read '{rel}' because it is a directory. Use list_files tool instead.", True
    if not path.is_file():
        return f"Error: File not found: {rel}", True
    with path.open("rb") as f:
        head = f.read(BINARY_SNIFF_BYTES)
    if looks_binary(head):
        fmt = path.suffix[1:].lower() or "bin"
        return f"Binary file ({fmt}) - content not displayed", False  # a result, not an error (Roo)
    if args.get("mode") == "indentation":
        return _read_indentation_mode(path, args, max_bytes)
    offset = args.get("offset", 1)
    limit = args.get("limit", DEFAULT_LINE_LIMIT)
    part = _read_slice(path, offset, limit, max_bytes)
    if part.total == 0:
        return "Note: File is empty", False
    if not part.lines:
        return f"Error: offset {offset} is beyond file end ({part.total} lines)", True
    body = _number(part.lines)
    end = part.lines[-1][0]
    if end < part.total:
        return _truncation_header(
            offset, end, part.total, end + 1, limit, max_bytes if part.capped else None
        ) + body, False
    return body, False


def _read_indentation_mode(path: Path, args: dict[str, Any], max_bytes: int) -> tuple[str, bool]:
    if path.stat().st_size > MAX_INDENTATION_FILE_BYTES:
        return "Error: the file is too large for indentation mode; use slice mode with offset and limit.", True
    lines = _read_all_lines(path)
    if not lines:
        return "Note: File is empty", False
    opts = args.get("indentation") or {}
    anchor = opts.get("anchor_line", args.get("offset", 1))
    if anchor > len(lines):
        return f"Error: anchor_line {anchor} is out of range (1-{len(lines)})", True
    limit = args.get("limit", DEFAULT_LINE_LIMIT)
    numbered, cut = read_indentation(
        lines,
        anchor,
        max_levels=opts.get("max_levels", 0),
        include_siblings=opts.get("include_siblings", False),
        include_header=opts.get("include_header", True),
        limit=limit,
        max_lines=opts.get("max_lines"),
    )
    capped = False
    size = 0
    for k, (n, text) in enumerate(numbered):
        size += len(text.encode("utf-8", errors="replace")) + len(str(n)) + 4
        if k and size > max_bytes:
            numbered, capped, cut = numbered[:k], True, True
            break
    body = _number(numbered)
    ranges = _ranges([n for n, _ in numbered])
    if cut and ranges:
        start, end = ranges[0]
        header = _truncation_header(start, end, len(lines), end + 1, limit, max_bytes if capped else None)
        return header + body, False
    listed = ", ".join(f"{a}-{b}" for a, b in ranges)
    return f"{body}\n\nIncluded ranges: {listed} (total: {len(lines)} lines)", False


async def _read_target(ctx: TaskContext, rel: str) -> Target:
    try:
        return await locate(ctx, rel)
    except ToolError as e:
        raise ToolError(f"File: {shown(rel)}\nError: {e}") from None  # Roo's read_file error form


async def _read_file(ctx: TaskContext, args: dict[str, Any]) -> ToolOutcome:
    rel = shown(args["path"])
    if args.get("offset", 1) < 1:
        raise ToolError(
            f"Error: offset must be a 1-indexed line number (got {args['offset']}). Line numbers start at 1."
        )
    anchor = (args.get("indentation") or {}).get("anchor_line")
    if anchor is not None and anchor < 1:
        raise ToolError(f"Error: anchor_line must be a 1-indexed line number (got {anchor}). Line numbers start at 1.")
    target = await _read_target(ctx, args["path"])
    if is_image(target.path):
        supports = bool(getattr(ctx, "supports_images", False))
        image = await in_thread(f"reading file {rel}", read_image, target.path, rel, supports)
        if image is not None:
            return ToolOutcome(image[0], images=image[1])
    max_bytes = int(ctx.settings.get("read_max_bytes", 262144))
    body, is_error = await in_thread(f"reading file {rel}", _read_text, target.path, rel, args, max_bytes)
    return ToolOutcome(f"File: {rel}\n{body}", is_error=is_error)


async def _approve_read(ctx: TaskContext, args: dict[str, Any]) -> dict[str, Any] | None:
    """Refuse escapes and ignored paths before asking; ask unless read-only
    tools are auto-approved."""
    await _read_target(ctx, args["path"])
    return None if approves(ctx, "read_only") else {"kind": "tool"}


READ_FILE_DESCRIPTION = (
    "Read a file and return its contents with line numbers for diffing or discussion. IMPORTANT: This tool reads "
    "exactly one file per call. If you need multiple files, issue multiple parallel read_file calls. Supports two "
    "modes: 'slice' (default) reads lines sequentially with offset/limit; 'indentation' extracts complete semantic "
    "code blocks around an anchor line based on indentation hierarchy. Slice mode is ideal for initial file "
    "exploration, understanding overall structure, reading configuration/data files, or when you need a specific "
    "line range. PREFER indentation mode when you have a specific line number from search results or error "
    "messages - it returns complete code blocks without mid-function truncation. Indentation mode requires "
    f"anchor_line to be useful. Default limit is {DEFAULT_LINE_LIMIT} lines - use this default by omitting the limit "
    f"parameter. Lines longer than {MAX_LINE_LENGTH} characters are truncated. Binary files are not displayed. "
    "Example: { path: 'src/app.ts' } Example (indentation mode): { path: 'src/app.ts', mode: 'indentation', "
    "indentation: { anchor_line: 42 } }"
)

READ_FILE_TOOL = Tool(
    "read_file",
    "read",
    READ_FILE_DESCRIPTION,
    {
        "type": "object",
        "properties": {
            "path": {
                "type": "string",
                "minLength": 1,
                "description": "Path to the file to read, relative to the workspace",
            },
            "mode": {
                "type": "string",
                "enum": ["slice", "indentation"],
                "description": "Reading mode: 'slice' (default) reads lines with offset/limit; 'indentation' "
                "extracts the code block containing indentation.anchor_line (ignores offset).",
            },
            "offset": {
                "type": "integer",
                "description": "1-based line offset to start reading from (slice mode, default: 1)",
            },
            "limit": {
                "type": "integer",
                "minimum": 1,
                "description": f"Maximum number of lines to return (default {DEFAULT_LINE_LIMIT}).",
            },
            "indentation": {
                "type": "object",
                "description": "Indentation mode options. Only used when mode='indentation'.",
                "properties": {
                    "anchor_line": {
                        "type": "integer",
                        "description": "1-based line number to anchor the extraction.",
                    },
                    "max_levels": {
                        "type": "integer",
                        "minimum": 0,
                        "description": "Maximum indentation levels to include above the anchor (0 = unlimited).",
                    },
                    "include_siblings": {
                        "type": "boolean",
                        "description": "Include sibling blocks at the same indentation level (default: false).",
                    },
                    "include_header": {
                        "type": "boolean",
                        "description": "Include file header content such as imports (default: true).",
                    },
                    "max_lines": {
                        "type": "integer",
                        "minimum": 1,
                        "description": "Hard cap on lines returned for indentation mode.",
                    },
                },
                "additionalProperties": False,
            },
        },
        "required": ["path"],
        "additionalProperties": False,
    },
    _read_file,
    _approve_read,
)
