"""The session's workspace as the tools see it: path confinement, the
``.rooignore`` and ``.gitignore`` rules, and a walk that honours them.

Every path a tool touches goes through :func:`resolve_inside`, which refuses
absolute paths, ``..`` that climbs out and symlinks whose target lies
outside. Ignore files use gitignore syntax; they are matched with
``pathspec``'s ``GitIgnoreSpec`` (the same semantics as git, including
negation and directory-only patterns) rather than a home-grown matcher.

Everything here is blocking file-system work: callers run it in a thread
(``asyncio.to_thread``), never on the IOLoop.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pathspec import GitIgnoreSpec

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

# Roo's formatResponse.rooIgnoreError (the text form).
ROOIGNORE_ERROR = (
    "Access to {path} is blocked by the .rooignore file settings. You must try to continue in the task "
    "without using this file, or ask the user to update the .rooignore file."
)


class PathEscape(Exception):
    """A path that would leave the workspace; the message is for the model."""


def resolve_inside(workspace: str, rel: str) -> Path:
    """Resolve ``rel`` against ``workspace`` (symlinks followed) and refuse
    anything that is absolute, climbs out with ``..``, or resolves outside
    through a symlink. ``"."`` is the workspace itself."""
    if not rel or "\x00" in rel:
        raise PathEscape(f"Invalid path {rel!r}: a path relative to the workspace is required.")
    if os.path.isabs(rel) or rel.startswith("~"):
        raise PathEscape(
            f"Access denied: {rel!r} is not relative to the workspace. "
            "Use a path relative to the workspace root; absolute paths are refused."
        )
    root = Path(workspace).resolve()
    target = (root / rel).resolve()
    if target != root and root not in target.parents:
        raise PathEscape(f"Access denied: {rel!r} resolves outside the workspace.")
    return target


def relative_posix(root: Path, path: Path) -> str:
    """``path`` relative to ``root`` with ``/`` separators (``"."`` for the root)."""
    rel = path.relative_to(root).as_posix()
    return rel or "."


def _spec_from_file(path: Path) -> GitIgnoreSpec | None:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError):
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
        spec = _spec_from_file(root / ".rooignore")
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
        return ROOIGNORE_ERROR.format(path=rel)


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
    except OSError:
        return None
