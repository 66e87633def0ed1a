"""What the file tools share (the edit and search tools too): a path
confined to the workspace and checked against its ``.rooignore``
(:class:`Target`), file work in a thread with Roo's error wording, binary
sniffing, diffs for approval payloads, atomic writes and the write-approval
rule. A path or file name in a result goes through
:func:`~roo_daemon.engine.workspace.shown` (undecodable bytes as ``\\xNN``).
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from roo_daemon.engine.base import TaskContext
from roo_daemon.engine.protect import PROTECTION_MESSAGE, any_write_protected
from roo_daemon.engine.tools.base import ToolError
from roo_daemon.engine.workspace import (
    PathEscape,
    RooIgnore,
    quoted,
    relative_posix,
    resolve_inside,
    shown,
)

T = TypeVar("T")

BINARY_SNIFF_BYTES = 8192

# Roo's DiffViewProvider.pushToolWriteResult (the JSON form).
WRITE_NOTICE = (
    "You do not need to re-read the file, as you have seen all changes "
    "Proceed with the task using these changes as the new baseline."
)


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
