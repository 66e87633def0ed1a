"""What changed since the last checkpoint, and what a checkpoint must skip.

Git would fail the whole ``add`` on a file it cannot read or on a nested
repository without a commit, and would store a 50 MB file as happily as a
small one. So the paths ``git ls-files`` reports as changed or new are looked
at first (``lstat``, never following a link) and the ones to skip are kept
out of the ``add`` by exclude pathspecs:

- a nested git repository (a directory with its own ``.git``): Roo-Code
  turns checkpoints off for the whole workspace; we skip that directory and
  checkpoint the rest;
- a regular file over ``checkpoints.max_file_bytes``;
- a file the daemon cannot open.

Symbolic links are stored as links (their target path), never followed, so
a link pointing outside the workspace reads nothing outside it.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Changed:
    """One path ``git ls-files`` reported: ``tracked`` if the index has it."""

    path: str
    tracked: bool
    deleted: bool = False


def display(path: str) -> str:
    """A path as the API shows it: a name that is not UTF-8 (kept as
    surrogate escapes, to reach the file) gets ``\\xNN`` escapes instead,
    which JSON and the event log can carry."""
    return path.encode(errors="surrogateescape").decode(errors="backslashreplace")


def parse_listing(out: bytes) -> list[Changed]:
    """Parse ``git ls-files -z -t -m -d -o --exclude-standard``: ``?`` new,
    ``C`` changed, ``R`` removed (a removed file is also listed as changed).
    A nested repository is one new entry ending in ``/``."""
    changed: dict[str, Changed] = {}
    for record in out.split(b"\0"):
        if len(record) < 3:
            continue
        tag, path = record[:1], record[2:].decode(errors="surrogateescape")
        if tag == b"?":
            changed[path] = Changed(path, False)
        elif tag == b"R":
            changed[path] = Changed(path, True, deleted=True)
        elif path not in changed:
            changed[path] = Changed(path, True)
    return list(changed.values())


def classify(workspace: str, changed: list[Changed], max_bytes: int) -> list[dict[str, str]]:
    """``[{path, reason}]`` for the paths a checkpoint must skip. Blocking
    (``lstat`` and ``open`` per path): run in a thread."""
    skipped = []
    for entry in changed:
        if entry.deleted:
            continue
        reason = _skip_reason(os.path.join(workspace, entry.path), entry.path, max_bytes)
        if reason is not None:
            skipped.append({"path": entry.path.rstrip("/"), "reason": reason})
    return skipped


def _skip_reason(full: str, path: str, max_bytes: int) -> str | None:
    try:
        st = os.lstat(full)
    except FileNotFoundError:
        return None  # gone since git looked: the add records the deletion
    except OSError as e:
        return f"cannot be read: {e.strerror}"
    if path.endswith("/"):  # git lists a directory only when it holds a repository of its own
        return "a nested git repository: its files are not checkpointed"
    if stat.S_ISDIR(st.st_mode):
        return None  # a tracked file that became a directory: git adds what is in it
    if stat.S_ISLNK(st.st_mode):
        return None  # stored as a link, never followed
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    if st.st_size > max_bytes:
        return f"larger than checkpoints.max_file_bytes ({st.st_size} > {max_bytes} bytes)"
    try:
        fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as e:
        return f"cannot be read: {e.strerror}"
    os.close(fd)
    return None
