"""Turning git's diff output into the API's shapes.

``--name-status -z`` says what happened to each path, ``--numstat -z`` how
many lines (``-`` for binary files), and the unified patch is split at its
``diff --git`` headers and matched to paths by name, so a file whose type
changed (two sections for one path) still gets one entry. Binary files are
named and counted, never dumped: git writes ``Binary files ... differ``.
A name that is not UTF-8 is shown with ``\\xNN`` escapes (JSON cannot
carry its bytes).
"""

from __future__ import annotations

import re
from typing import Any

STATUS = {"A": "added", "M": "modified", "D": "deleted", "T": "type_changed"}
FILES_CAP = 1000  # paths listed in one checkpoint's event and resource; the diff lists all
_QUOTED = re.compile(rb'^"((?:[^"\\]|\\.)*)"')


def parse_name_status(out: bytes) -> list[dict[str, str]]:
    """``[{path, status}]`` from ``--name-status -z --no-renames``."""
    parts = out.split(b"\0")
    files = []
    for i in range(0, len(parts) - 1, 2):
        code = parts[i].decode()[:1]
        files.append({"path": parts[i + 1].decode(errors="backslashreplace"), "status": STATUS.get(code, code)})
    return files


def parse_numstat(out: bytes) -> dict[str, tuple[int | None, int | None]]:
    """``{path: (additions, deletions)}`` from ``--numstat -z``; None for binary."""
    counts: dict[str, tuple[int | None, int | None]] = {}
    for record in out.split(b"\0"):
        if not record:
            continue
        added, deleted, path = record.split(b"\t", 2)
        counts[path.decode(errors="backslashreplace")] = (
            None if added == b"-" else int(added),
            None if deleted == b"-" else int(deleted),
        )
    return counts


def _unquote(raw: bytes) -> bytes:
    """A C-quoted path as git writes it in patch headers."""
    out = bytearray()
    i = 0
    escapes = {b"n": b"\n", b"t": b"\t", b'"': b'"', b"\\": b"\\", b"a": b"\a", b"b": b"\b", b"f": b"\f"}
    escapes |= {b"r": b"\r", b"v": b"\v"}
    while i < len(raw):
        c = raw[i : i + 1]
        if c == b"\\" and i + 1 < len(raw):
            nxt = raw[i + 1 : i + 2]
            if nxt.isdigit():
                out.append(int(raw[i + 1 : i + 4], 8))
                i += 4
                continue
            out += escapes.get(nxt, nxt)
            i += 2
            continue
        out += c
        i += 1
    return bytes(out)


def header_path(header: bytes) -> str:
    """The path of ``diff --git a/P b/P`` (no renames: both sides are P)."""
    rest = header[len(b"diff --git ") :]
    quoted = _QUOTED.match(rest)
    if quoted:
        path = _unquote(quoted.group(1))[2:]
    else:
        path = rest[2 : (len(rest) - 1) // 2]
    return path.decode(errors="backslashreplace")


def split_patch(patch: bytes) -> dict[str, str]:
    """``{path: its patch text}`` from one unified diff of many files."""
    sections: dict[str, list[bytes]] = {}
    current: list[bytes] | None = None
    for line in patch.splitlines(keepends=True):
        if line.startswith(b"diff --git "):
            current = sections.setdefault(header_path(line.rstrip(b"\n")), [])
        if current is not None:
            current.append(line)
    return {path: b"".join(lines).decode(errors="replace") for path, lines in sections.items()}


def file_entries(name_status: bytes, numstat: bytes, patch: bytes) -> list[dict[str, Any]]:
    """The JSON diff: ``[{path, status, additions, deletions, binary, patch}]``."""
    counts = parse_numstat(numstat)
    patches = split_patch(patch)
    out = []
    for entry in parse_name_status(name_status):
        added, deleted = counts.get(entry["path"], (0, 0))
        binary = added is None
        out.append(
            {
                **entry,
                "additions": added or 0,
                "deletions": deleted or 0,
                "binary": binary,
                "patch": patches.get(entry["path"], ""),
            }
        )
    return out
