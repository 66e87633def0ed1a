"""The workspace's rule files for the system prompt, as Roo-Code's
addCustomInstructions gathers them (src/core/prompts/sections/custom-instructions.ts):

1. the mode's rules: the files under ``.roo/rules-{mode}/``, else
   ``.roorules-{mode}``, else ``.clinerules-{mode}``;
2. the ``.rooignore`` instructions;
3. ``AGENTS.md`` (else ``AGENT.md``), then ``AGENTS.local.md``;
4. the generic rules: the files under ``.roo/rules/``, else ``.roorules``,
   else ``.clinerules``.

Roo's headers, order, trimming, file-name sort and cache-file filter are
kept. Unlike Roo, every file is confined like a tool path: a symlink is
followed only when it resolves inside the workspace and not to a file
``.rooignore`` blocks (a rule file is sent to the provider, so a link to
``/etc/...`` or to a hidden secret would leak it), and the daemon's own
``~/.roo`` is never read (it is not the tenant's). A file is read up to
:data:`RULE_FILE_CAP`.

Blocking file work: the loop calls this through ``asyncio.to_thread``.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from roo_daemon.engine.modes import Mode
from roo_daemon.engine.workspace import PathEscape, RooIgnore, relative_posix, resolve_inside, shown

RULE_FILE_CAP = 64 * 1024
MAX_LINK_DEPTH = 5  # Roo's MAX_DEPTH against cyclic symlinks
# Roo's shouldIncludeRuleFile: cache and system files are not rules.
_NOT_RULES_SUFFIXES = (
    ".DS_Store", ".bak", ".cache", ".crdownload", ".db", ".dmp", ".dump", ".eslintcache", ".lock", ".log",
    ".old", ".part", ".partial", ".pyc", ".pyo", ".stackdump", ".swo", ".swp", ".temp", ".tmp",
)  # fmt: skip

# Roo's RooIgnoreController.getInstructions, except the sentence about 🔒
# marks: our list_files leaves blocked files out instead of marking them.
ROOIGNORE_INSTRUCTIONS = (
    "# .rooignore\n\n(The following is provided by a root-level .rooignore file where the user has specified "
    "files and directories that should not be accessed. list_files and search_files leave them out. Attempting "
    "to access the file's contents e.g. through read_file will result in an error.)\n\n{content}\n.rooignore"
)


@dataclass(frozen=True)
class _Workspace:
    root: Path
    rooignore: RooIgnore

    def confined(self, rel: str) -> Path | None:
        """``rel`` resolved, if it exists inside the workspace and, when a
        symlink led there, its target is not rooignored; else ``None``."""
        try:
            path = resolve_inside(str(self.root), rel)
        except PathEscape:
            return None
        if not os.path.lexists(path):
            return None
        resolved_rel = relative_posix(self.root, path)
        if resolved_rel != os.path.normpath(rel) and self.rooignore.blocks(resolved_rel, path.is_dir()):
            return None
        return path

    def read(self, path: Path) -> str | None:
        """A regular file's text, trimmed (``None`` if not one, or unreadable:
        a FIFO would block the thread forever)."""
        try:
            if not stat.S_ISREG(os.stat(path).st_mode):
                return None
            with path.open("rb") as f:
                return f.read(RULE_FILE_CAP).decode("utf-8", errors="replace").strip()
        except OSError:
            return None

    def read_rel(self, rel: str) -> str:
        path = self.confined(rel)
        return (self.read(path) if path is not None else None) or ""

    def shown_rel(self, path: Path) -> str:
        return shown(relative_posix(self.root, path))


def _rule_files(ws: _Workspace, directory: Path, depth: int = 0) -> list[tuple[str, Path]]:
    """Files under ``directory`` (resolved) with the name to sort them by
    (the link's, for a symlink), following confined symlinks as Roo does."""
    found: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(directory):  # does not enter symlinked folders itself
        for name in [*filenames, *(d for d in dirnames if os.path.islink(os.path.join(dirpath, d)))]:
            path = Path(dirpath, name)
            if not path.is_symlink():
                # Below a followed link, .rooignore still decides (a linked folder may hold blocked files).
                if depth == 0 or not ws.rooignore.blocks(relative_posix(ws.root, path)):
                    found.append((name, path))
                continue
            if depth >= MAX_LINK_DEPTH:
                continue
            target = ws.confined(relative_posix(ws.root, path))
            if target is None:
                continue
            if target.is_dir():
                found += _rule_files(ws, target, depth + 1)
            else:
                found.append((name, target))
    return found


def _rules_dir(ws: _Workspace, rel: str) -> list[str]:
    """Roo's readTextFilesFromDirectory + formatDirectoryContent."""
    directory = ws.confined(rel)
    if directory is None or not directory.is_dir():
        return []
    files = sorted(_rule_files(ws, directory), key=lambda item: item[0].lower())
    out = []
    for _, path in files:
        if path.name.endswith(_NOT_RULES_SUFFIXES) or path.name == "Thumbs.db":
            continue
        text = ws.read(path)
        if text is not None:
            out.append(f"# Rules from {ws.shown_rel(path)}:\n{text}")
    return out


def _first_legacy(ws: _Workspace, names: tuple[str, ...]) -> str:
    for name in names:
        text = ws.read_rel(name)
        if text:
            return f"# Rules from {name}:\n{text}"
    return ""


def _mode_rules(ws: _Workspace, slug: str) -> str:
    files = _rules_dir(ws, f".roo/rules-{slug}")
    if files:
        # Roo labels these with its usedRuleFile string, then the files' own headers.
        return f"# Rules from rules-{slug} directories:\n\n" + "\n\n".join(files)
    return _first_legacy(ws, (f".roorules-{slug}", f".clinerules-{slug}"))


def _agent_rules(ws: _Workspace) -> str:
    parts = []
    for name in ("AGENTS.md", "AGENT.md"):
        text = ws.read_rel(name)
        if text:
            parts.append(f"# Agent Rules Standard ({name}):\n{text}")
            break
    local = ws.read_rel("AGENTS.local.md")
    if local:
        parts.append(f"# Agent Rules Local (AGENTS.local.md):\n{local}")
    return "\n\n".join(parts)


def _generic_rules(ws: _Workspace) -> str:
    files = _rules_dir(ws, ".roo/rules")
    if files:
        return "# Rules from .roo directories:\n\n" + "\n\n".join(files)
    return _first_legacy(ws, (".roorules", ".clinerules"))


def _rooignore_instructions(root: Path) -> str:
    try:
        with (root / ".rooignore").open("rb") as f:
            content = f.read(RULE_FILE_CAP).decode("utf-8", errors="replace")
    except OSError:
        return ""
    return ROOIGNORE_INSTRUCTIONS.format(content=content) if content else ""


def custom_instructions(mode: Mode, workspace: str, global_instructions: str) -> str:
    """The sections of Roo's USER'S CUSTOM INSTRUCTIONS, joined (empty when
    there are none)."""
    root = Path(workspace).resolve()
    try:
        ws = _Workspace(root, RooIgnore.load(root))
    except OSError:  # an unreadable .rooignore: no workspace file is trusted
        ws = None
    sections = []
    if global_instructions.strip():
        sections.append(f"Global Instructions:\n{global_instructions.strip()}")
    if mode.custom_instructions.strip():
        sections.append(f"Mode-specific Instructions:\n{mode.custom_instructions.strip()}")
    if ws is not None:
        sources = (_mode_rules(ws, mode.slug), _rooignore_instructions(root), _agent_rules(ws), _generic_rules(ws))
        rules = [text.strip() for text in sources if text.strip()]
        if rules:
            sections.append("Rules:\n\n" + "\n\n".join(rules))
    return "\n\n".join(sections)
