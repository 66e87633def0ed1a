r"""The session's workspace as the tools see it: path confinement, the
``.rooignore`` and ``.gitignore`` rules, and a walk that honours them.

Every path a tool touches goes through :func:`resolve_inside`, which refuses
absolute paths, ``..`` that climbs out and symlinks whose target lies
outside. Ignore files use gitignore syntax; they are matched with
``pathspec``'s ``GitIgnoreSpec`` (the same semantics as git, including
negation and directory-only patterns) rather than a home-grown matcher.

File names that are not valid UTF-8 are file-system strings here (Python's
``surrogateescape``: byte 0xE9 is the lone surrogate U+DCE9). No such
surrogate may leave the engine (a tool result or an event with one cannot be
stored), so every name shown to the model goes through :func:`shown`, which
writes each undecodable byte as ``\xNN``; :func:`resolve_inside` accepts
that rendering back, so the model can use a name exactly as it was shown.

Everything here is blocking file-system work: callers run it in a thread
(``asyncio.to_thread``), never on the IOLoop.
"""

from __future__ import annotations

import errno
import os
import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pathspec import GitIgnoreSpec

from roo_daemon.engine.responses import roo_ignore_error

# Roo-Code's DIRS_TO_IGNORE (src/services/glob/constants.ts): list_files neither
# shows nor enters these. Roo's ".*" entry (hidden directories are shown but
# not entered) is the ``hidden`` rule of :class:`WalkRules`.
DIRS_TO_IGNORE = frozenset(
    {
        "node_modules",
        "__pycache__",
        "env",
        "venv",
        "dist",
        "out",
        "bundle",
        "vendor",
        "tmp",
        "temp",
        "deps",
        "pkg",
        "Pods",
    }
)
NESTED_DIRS_TO_IGNORE = ("target/dependency", "build/dependencies")


class PathEscape(Exception):
    """A path a tool may not use (it leaves the workspace, or cannot be
    resolved); the message is for the model."""


_SURROGATE = re.compile("[\ud800-\udfff]")
_SHOWN_BYTE = re.compile(r"\\x([89a-fA-F][0-9a-fA-F])")


def _show_char(m: re.Match[str]) -> str:
    code = ord(m.group())
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"


def shown(name: str) -> str:
    r"""``name`` safe to show and store: each undecodable byte of a file name
    (a ``surrogateescape`` surrogate) as ``\xNN``, any other lone surrogate
    as ``\uNNNN``. Valid text is returned unchanged."""
    return name if name.isascii() else _SURROGATE.sub(_show_char, name)


def quoted(name: str) -> str:
    return f"'{shown(name)}'"


def _unshown(rel: str) -> str:
    r"""The file-system string a ``\xNN`` rendering stands for."""
    return _SHOWN_BYTE.sub(lambda m: chr(0xDC00 + int(m.group(1), 16)), rel)


def _on_disk(root: Path, rel: str) -> str:
    r"""``rel`` as given, unless only its ``\xNN`` reading names something
    that exists (the file itself, or the folder a new file goes into)."""
    if "\\x" not in rel:
        return rel
    raw = _unshown(rel)
    if raw == rel or os.path.lexists(root / rel):
        return rel
    if os.path.lexists(root / raw):
        return raw
    if not os.path.lexists((root / rel).parent) and os.path.lexists((root / raw).parent):
        return raw
    return rel


def _resolve(path: Path, rel: str) -> Path:
    try:
        return path.resolve()
    except RuntimeError:  # Python < 3.13 reports a loop this way
        pass
    except OSError as e:
        if e.errno != errno.ELOOP:
            raise
    raise PathEscape(
        f"Cannot access {quoted(rel)}: its path runs into a symbolic link loop (too many levels of symbolic links)."
    )


def _below(path: str, roots: tuple[str, ...]) -> str | None:
    """``path`` relative to the first of ``roots`` it starts with, textually
    (its ``..`` kept, so the usual checks judge it as written), or None."""
    for root in roots:
        if path == root:
            return "."
        prefix = root.rstrip("/") + "/"
        if path.startswith(prefix):
            return path[len(prefix) :] or "."
    return None


def resolve_inside(workspace: str, rel: str) -> Path:
    r"""Resolve ``rel`` against ``workspace`` (symlinks followed) and refuse
    anything that is absolute outside it, climbs out with ``..``, resolves outside
    through a symlink, or runs into a symlink loop. ``"."`` is the workspace
    itself; a name may use the ``\xNN`` rendering of :func:`shown`."""
    if not rel or "\x00" in rel:
        raise PathEscape(f"Invalid path {quoted(rel)}: a path relative to the workspace is required.")
    try:
        os.fsencode(rel)
    except UnicodeEncodeError:  # a lone surrogate no file name can hold
        raise PathEscape(f"Invalid path {quoted(rel)}: not valid Unicode text.") from None
    root = Path(workspace).resolve()
    given = rel
    if os.path.isabs(rel):
        rel = _below(rel, (str(root), os.path.abspath(workspace)))  # as Roo: an absolute path inside is fine
    if rel is None or rel.startswith("~"):
        raise PathEscape(
            f"Access denied: {quoted(given)} is not inside the workspace. "
            "Use a path relative to the workspace root; absolute paths are refused outside it."
        )
    target = _resolve(root / _on_disk(root, rel), rel)
    if target != root and root not in target.parents:
        raise PathEscape(f"Access denied: {quoted(rel)} resolves outside the workspace.")
    return target


def relative_posix(root: Path, path: Path) -> str:
    """``path`` relative to ``root`` with ``/`` separators (``"."`` for the root)."""
    rel = path.relative_to(root).as_posix()
    return rel or "."


class RooIgnoreUnreadable(OSError):
    """``.rooignore`` exists but cannot be read: every access is refused
    (an ``OSError``, so each tool's error handling words it for the model)."""


def _spec_from_file(path: Path, required: bool = False) -> GitIgnoreSpec | None:
    """The rules in ``path``; ``None`` when there is no such file. One that
    exists but cannot be read (a symlink loop, say) is skipped, as git skips
    it, unless ``required``: a ``.rooignore`` must not fail open."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    except OSError as e:
        if required:
            raise RooIgnoreUnreadable(
                e.errno, f"the workspace's .rooignore cannot be read ({e.strerror}), so no file is accessible"
            ) from None
        return None
    return GitIgnoreSpec.from_lines(text.splitlines())


@dataclass(frozen=True)
class RooIgnore:
    """The workspace's ``.rooignore`` (Roo's RooIgnoreController): matching
    paths can be neither read, written, listed nor searched. When the file
    exists it also protects itself, as in Roo."""

    spec: GitIgnoreSpec | None = None

    @classmethod
    def load(cls, root: Path) -> RooIgnore:
        spec = _spec_from_file(root / ".rooignore", required=True)
        if spec is None:
            return cls(None)
        return cls(spec + GitIgnoreSpec.from_lines([".rooignore"]))

    def blocks(self, rel: str, is_dir: bool = False) -> bool:
        """Whether ``rel`` (posix, relative to the workspace root) is ignored,
        directly or through one of its parent directories."""
        if self.spec is None or rel in ("", "."):
            return False
        parts = rel.split("/")
        for i in range(1, len(parts)):
            if self.spec.check_file("/".join(parts[:i]) + "/").include:
                return True
        return bool(self.spec.check_file(rel + "/" if is_dir else rel).include)

    def error(self, rel: str) -> str:
        return roo_ignore_error(rel)  # Roo's formatResponse.rooIgnoreError


@dataclass(frozen=True)
class GitIgnoreChain:
    """The ``.gitignore`` files that apply inside one directory, outermost
    first, each with the directory (relative to the workspace root) it sits in.
    A deeper file's decision wins, as in git."""

    specs: tuple[tuple[str, GitIgnoreSpec], ...] = ()

    def entering(self, root: Path, rel_dir: str) -> GitIgnoreChain:
        base = "" if rel_dir == "." else rel_dir
        spec = _spec_from_file(root / base / ".gitignore")
        return self if spec is None else GitIgnoreChain((*self.specs, (base, spec)))

    @classmethod
    def down_to(cls, root: Path, rel_dir: str) -> GitIgnoreChain:
        """The chain for ``rel_dir``: every ``.gitignore`` from the workspace
        root down to it (never above the workspace)."""
        chain = cls().entering(root, ".")
        if rel_dir != ".":
            parts = rel_dir.split("/")
            for i in range(1, len(parts) + 1):
                chain = chain.entering(root, "/".join(parts[:i]))
        return chain

    def ignores(self, rel: str, is_dir: bool) -> bool:
        for base, spec in reversed(self.specs):
            sub = rel[len(base) + 1 :] if base else rel
            decision = spec.check_file(sub + "/" if is_dir else sub).include
            if decision is not None:
                return decision
        return False

    def hides(self, rel: str, below: str) -> bool:
        """Whether these rules ignore file ``rel`` or one of its directories
        under ``below`` (a directory that holds it; ``"."`` for the root)."""
        parts = rel.split("/")
        first = 0 if below == "." else below.count("/") + 1
        for i in range(first + 1, len(parts)):
            if self.ignores("/".join(parts[:i]), True):
                return True
        return self.ignores(rel, False)


@dataclass(frozen=True)
class WalkRules:
    """What a walk shows and enters.

    ``hidden_files``: show dot-files. ``hidden_dirs``: show dot-directories
    (they are entered only when the walk starts inside one, as Roo's
    list_files does). ``skip_dirs``: apply :data:`DIRS_TO_IGNORE`.
    """

    hidden_files: bool
    hidden_dirs: bool
    skip_dirs: bool


LIST_RULES = WalkRules(hidden_files=True, hidden_dirs=True, skip_dirs=True)  # Roo's list_files
SEARCH_RULES = WalkRules(hidden_files=False, hidden_dirs=False, skip_dirs=False)  # ripgrep's defaults


@dataclass(frozen=True)
class Entry:
    rel: str  # posix, relative to the workspace root
    path: Path
    is_dir: bool


@dataclass
class _Dir:
    path: Path
    rel: str
    chain: GitIgnoreChain = field(default_factory=GitIgnoreChain)


def walk(root: Path, start: Path, recursive: bool, rules: WalkRules, rooignore: RooIgnore) -> Iterator[Entry]:
    """Entries under ``start`` breadth-first (so a capped listing still shows
    the top levels), honouring ``.gitignore``, ``.rooignore`` and ``rules``.
    ``.git`` is never shown. Symlinks are shown only when they resolve inside
    the workspace, and symlinked directories are never entered."""
    start_rel = relative_posix(root, start)
    inside_hidden = any(part.startswith(".") for part in start_rel.split("/") if part != ".")
    queue = deque([_Dir(start, start_rel, GitIgnoreChain.down_to(root, start_rel))])
    while queue:
        current = queue.popleft()
        try:
            with os.scandir(current.path) as it:
                children = sorted(it, key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        for child in children:
            entry = _entry(root, current, child)
            if entry is None:
                continue
            hidden = child.name.startswith(".")
            if entry.is_dir:
                if child.name == ".git" or (hidden and not rules.hidden_dirs and not inside_hidden):
                    continue
                if rules.skip_dirs and (child.name in DIRS_TO_IGNORE or entry.rel.endswith(NESTED_DIRS_TO_IGNORE)):
                    continue
            elif hidden and not rules.hidden_files and not inside_hidden:
                continue
            if current.chain.ignores(entry.rel, entry.is_dir) or rooignore.blocks(entry.rel, entry.is_dir):
                continue
            yield entry
            enter = entry.is_dir and recursive and not child.is_symlink() and (not hidden or inside_hidden)
            if enter:
                queue.append(_Dir(entry.path, entry.rel, current.chain.entering(root, entry.rel)))


def _entry(root: Path, parent: _Dir, child: os.DirEntry) -> Entry | None:
    rel = child.name if parent.rel == "." else f"{parent.rel}/{child.name}"
    path = Path(child.path)
    try:
        if child.is_symlink():
            target = path.resolve()
            if target != root and root not in target.parents:
                return None
            return Entry(rel, path, target.is_dir())
        return Entry(rel, path, child.is_dir(follow_symlinks=False))
    except (OSError, RuntimeError):  # unreadable, or a symlink loop (RuntimeError before Python 3.13)
        return None
