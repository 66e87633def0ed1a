"""File tools: ``read_file``, ``list_files`` and ``write_to_file``, with the
names, parameters and result texts of Roo-Code's native tools
(src/core/tools/ReadFileTool.ts, ListFilesTool.ts, WriteToFileTool.ts).

Every path is confined to the session's workspace and checked against its
``.rooignore``. A path or file name in a result goes through
:func:`~roo_daemon.engine.workspace.shown` (undecodable bytes as ``\\xNN``).
All file-system work runs in a thread (``asyncio.to_thread``) so the IOLoop
never waits on the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import functools
import json
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from roo_daemon.engine.base import TaskContext
from roo_daemon.engine.protect import PROTECTION_MESSAGE, SHIELD, any_write_protected, is_write_protected
from roo_daemon.engine.tools.base import Tool, ToolError, ToolOutcome
from roo_daemon.engine.tools.images import is_image, read_image
from roo_daemon.engine.workspace import (
    LIST_RULES,
    PathEscape,
    RooIgnore,
    quoted,
    relative_posix,
    resolve_inside,
    shown,
    walk,
)

T = TypeVar("T")

DEFAULT_LINE_LIMIT = 2000  # Roo's read_file default `limit`
MAX_LINE_LENGTH = 2000  # longer lines are cut, as in Roo
MAX_INDENTATION_FILE_BYTES = 32 * 1024 * 1024  # indentation mode holds the whole file in memory
BINARY_SNIFF_BYTES = 8192

# Roo's DiffViewProvider.pushToolWriteResult (the JSON form).
WRITE_NOTICE = (
    "You do not need to re-read the file, as you have seen all changes "
    "Proceed with the task using these changes as the new baseline."
)
LIST_TRUNCATED = "(File list truncated. Use list_files on specific subdirectories if you need to explore further.)"


# -- shared helpers (edit.py and search.py use them too) --------------------


@dataclass(frozen=True)
class Target:
    """A path a tool may touch: resolved inside the workspace, not rooignored."""

    root: Path
    path: Path
    rel: str  # posix, relative to the workspace root
    rooignore: RooIgnore


def _locate(workspace: str, rel: str, is_dir: bool) -> Target:
    try:
        path = resolve_inside(workspace, rel)
    except PathEscape as e:
        raise ToolError(str(e)) from None
    root = Path(workspace).resolve()
    rooignore = RooIgnore.load(root)
    target_rel = relative_posix(root, path)
    if rooignore.blocks(target_rel, is_dir=is_dir or path.is_dir()):
        raise ToolError(rooignore.error(shown(rel)))
    return Target(root, path, target_rel, rooignore)


async def in_thread(action: str, fn: Callable[..., T], *args: Any) -> T:
    """Run blocking file work in a thread; an OS error (permissions, a file
    where a folder should be, a full disk...) becomes a :class:`ToolError`
    the model sees, as Roo's handleError words it (no host paths)."""
    try:
        return await asyncio.to_thread(fn, *args)
    except OSError as e:
        raise ToolError(f"Error {action}: {e.strerror or e.__class__.__name__}") from None


async def locate(ctx: TaskContext, rel: str, is_dir: bool = False) -> Target:
    """Resolve ``rel`` for a tool; a path escape or a ``.rooignore`` match
    becomes a :class:`ToolError` with Roo's wording."""
    return await in_thread(f"resolving {quoted(rel)}", _locate, ctx.session.workspace, rel, is_dir)


def looks_binary(head: bytes) -> bool:
    """Roughly what the ``isbinaryfile`` package Roo uses decides from a file's
    first bytes: a NUL byte, or too many control bytes, or not text in UTF-8."""
    if not head:
        return False
    if head.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
        return False  # a text BOM
    if b"\x00" in head:
        return True
    suspicious = sum(1 for b in head if b < 32 and b not in (9, 10, 12, 13, 27, 8))
    if suspicious > len(head) * 0.1:
        return True
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        # A multi-byte character cut by the sniff window is still text.
        if e.start < len(head) - 4:
            latin = sum(1 for b in head if b >= 0x80)
            return latin > len(head) * 0.3
    return False


def unified_diff(rel: str, old: str, new: str) -> str:
    """A unified diff for approval payloads, with git's no-newline markers."""
    rel = shown(rel)
    lines = []
    for line in difflib.unified_diff(old.splitlines(True), new.splitlines(True), f"a/{rel}", f"b/{rel}"):
        lines.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(lines)


def write_result(rel: str, created: bool) -> str:
    return json.dumps({"path": shown(rel), "operation": "created" if created else "modified", "notice": WRITE_NOTICE})


def _process_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# Read once at import (os.umask can only be read by setting it, which is not
# thread-safe later): new files get the mode an ordinary open() would give.
NEW_FILE_MODE = 0o666 & ~_process_umask()


def write_atomically(path: Path, content: str) -> bool:
    """Write through a temporary file and ``os.replace`` so a reader never
    sees half a file; an existing file keeps its permissions, a new one gets
    the umask's. Returns whether the file is new."""
    created = not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".roo-tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(content)
        os.chmod(tmp, NEW_FILE_MODE if created else path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return created


def approves(ctx: TaskContext, key: str) -> bool:
    return bool(ctx.session.auto_approve.get(key))


def approves_write(ctx: TaskContext, *rels: str) -> bool:
    """Roo's rule for the write tools: ``write`` auto-approves, but a
    write-protected path (:mod:`roo_daemon.engine.protect`) also needs
    ``write_protected``. ``rels``: the path as the model gave it and as it
    resolves (a symlink to ``.roomodes`` is ``.roomodes``)."""
    if not approves(ctx, "write"):
        return False
    return approves(ctx, "write_protected") or not any_write_protected(*rels)


def write_ask(diff: str, *rels: str) -> dict[str, Any]:
    """The ask for an edit: its diff, and for a protected path Roo's
    protection message with ``protected: true``."""
    ask: dict[str, Any] = {"kind": "tool", "diff": diff}
    if any_write_protected(*rels):
        ask.update(protected=True, message=PROTECTION_MESSAGE)
    return ask


# -- read_file ----------------------------------------------------------------


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


# -- list_files ---------------------------------------------------------------


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


# -- write_to_file ------------------------------------------------------------

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

FILE_TOOLS = [
    Tool(
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
    ),
    Tool(
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
    ),
    Tool(
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
    ),
]
