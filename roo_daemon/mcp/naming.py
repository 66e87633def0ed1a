"""Function names for MCP tools, after Roo-Code's src/utils/mcp-name.ts.

A tool ``get_forecast`` of server ``weather`` is offered to the model as
``mcp--weather--get_forecast``: each part sanitised (spaces to ``_``, only
``[A-Za-z0-9_-]`` kept, ``--`` runs squeezed so the separator stays unique,
a leading letter or ``_``). Providers cap function names at 64 characters
(Gemini's limit, the smallest); Roo truncates there and drops later
duplicates. We make every name unique instead, deterministically: names that
would be too long, or would collide with another (also when ``-`` and ``_``
are taken as equal, as the lookup does for models that mangle them), get a
suffix hashed from the original server and tool names, so the same two
servers always give the same names, whatever their order.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable

PREFIX = "mcp"
SEPARATOR = "--"
MAX_LENGTH = 64
VALID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def sanitize(name: str) -> str:
    """Roo's sanitizeMcpName."""
    if not name:
        return "_"
    out = re.sub(r"\s+", "_", name)
    out = re.sub(r"[^A-Za-z0-9_\-]", "", out)
    out = re.sub(r"--+", "-", out)
    if out and not re.match(r"^[A-Za-z_]", out):
        out = "_" + out
    return out or "_unnamed"


def build(server: str, tool: str) -> str:
    """Roo's buildMcpToolName, before truncation."""
    return f"{PREFIX}{SEPARATOR}{sanitize(server)}{SEPARATOR}{sanitize(tool)}"


def normalize(name: str) -> str:
    """Hyphens and underscores as equal (Roo's normalizeForComparison)."""
    return name.replace("-", "_")


def _hashed(base: str, server: str, tool: str, digits: int) -> str:
    digest = hashlib.sha256(f"{server}\x00{tool}".encode()).hexdigest()[:digits]
    return f"{base[: MAX_LENGTH - digits - 1]}_{digest}"


def assign(pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """A valid, unique function name for each ``(server, tool)``."""
    pairs = sorted(set(pairs))
    bases = {p: build(*p) for p in pairs}
    groups: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for pair, base in bases.items():
        groups[normalize(base)].append(pair)
    names: dict[tuple[str, str], str] = {}
    for pair, base in bases.items():
        unique = len(groups[normalize(base)]) == 1
        names[pair] = base if unique and len(base) <= MAX_LENGTH else _hashed(base, *pair, 8)
    # A hashed name meeting another name is astronomically unlikely; if it
    # happens, longer digests settle it (still deterministic).
    seen: dict[str, tuple[str, str]] = {}
    for pair in pairs:
        name, digits = names[pair], 8
        while normalize(name) in seen:
            digits += 4
            name = _hashed(bases[pair], *pair, digits)
        names[pair] = name
        seen[normalize(name)] = pair
    return names


def parse(name: str) -> tuple[str, str] | None:
    """The sanitised ``(server, tool)`` parts of ``mcp--server--tool`` (or
    ``mcp__server__tool``, as some models write it), else None."""
    if not normalize(name).startswith(f"{PREFIX}__"):
        return None
    parts = re.split(r"__|--", name)
    if len(parts) < 3 or parts[0].lower() != PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], "--".join(parts[2:])
