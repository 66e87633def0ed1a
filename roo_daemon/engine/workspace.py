"""Path confinement: every path a tool touches resolves inside the workspace."""

from __future__ import annotations

import os
from pathlib import Path


class PathEscape(Exception):
    pass


def resolve_inside(workspace: str, rel: str) -> Path:
    """Resolve ``rel`` against ``workspace``; refuse absolute paths, ``..``
    that climbs out, and symlinks whose target lies outside."""
    if not rel or os.path.isabs(rel):
        raise PathEscape(f"path {rel!r} must be relative to the workspace")
    root = Path(workspace).resolve()
    target = (root / rel).resolve()
    if target != root and root not in target.parents:
        raise PathEscape(f"path {rel!r} resolves outside the workspace")
    return target
