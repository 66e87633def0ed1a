"""Write protection for the agent's own configuration, as Roo-Code's
RooProtectedController (src/core/protect/RooProtectedController.ts).

A write to a protected path always asks, even when the session
auto-approves writes, unless ``auto_approve.write_protected`` is on (Roo's
``alwaysAllowWriteProtected``). Without it a model with ``write``
auto-approved could rewrite ``.roomodes`` or ``.roo/rules`` and so widen its
own mode, rules or MCP servers for the next task.

The patterns are Roo's list, matched with gitignore semantics as Roo's
``ignore`` package matches them: case-insensitively (``ignore`` defaults to
``ignorecase``), a pattern without a slash at any depth (``sub/AGENTS.md``
is protected too), ``.roo/**`` and ``.vscode/**`` only at the workspace root.
"""

from __future__ import annotations

import posixpath

from pathspec import GitIgnoreSpec

PROTECTED_PATTERNS = (
    ".rooignore",
    ".roomodes",
    ".roorules*",
    ".clinerules*",
    ".roo/**",
    ".vscode/**",
    "*.code-workspace",
    ".rooprotected",
    "AGENTS.md",
    "AGENT.md",
)

# Roo's getProtectionMessage (shown with the ask) and the list_files marker.
PROTECTION_MESSAGE = "This is a Roo configuration file and requires approval for modifications"
SHIELD = "\U0001f6e1\ufe0f"

_SPEC = GitIgnoreSpec.from_lines([p.lower() for p in PROTECTED_PATTERNS])


def is_write_protected(rel: str) -> bool:
    """Whether ``rel`` (relative to the workspace, posix or not) is protected.
    ``./x`` and ``a/../x`` are normalised first; a path that climbs out of
    the workspace matches nothing (the tools refuse it anyway)."""
    norm = posixpath.normpath(rel.replace("\\", "/")).lstrip("/")
    if norm in (".", "") or norm == ".." or norm.startswith("../"):
        return False
    return _SPEC.match_file(norm.lower())


def any_write_protected(*rels: str) -> bool:
    """Whether any of the names a write goes by (the path the model gave,
    the path it resolves to through symlinks) is protected."""
    return any(is_write_protected(rel) for rel in rels)
