"""ripgrep (``rg``) as a child process, for ``search_files``.

Roo-Code searches with ripgrep (src/services/ripgrep/index.ts): a linear-time
regex engine that reads ignore files and skips binary and hidden files. Here
it runs as an asyncio subprocess, so a regex, however bad, costs the daemon
no event-loop time and no GIL; the caller bounds it with a timeout, and
leaving :class:`Ripgrep` (a result cap, a timeout, a cancelled task) kills it.

``rg --json`` writes one JSON record per line. A record holds the whole
matched line, so a minified file can make one record megabytes long: the
reader keeps only the head of such a record (enough for the 500 characters
shown) and picks the line number out of the rest as it streams past, so
memory and parsing stay bounded whatever the file.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import importlib.metadata
import json
import os
import re
import shutil
import sysconfig
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HEAD_BYTES = 64 * 1024  # records up to this size are parsed whole
READ_CHUNK = 64 * 1024
STDERR_KEEP = 8 * 1024
# rg's own limits let one regex take hundreds of MB (a lazy DFA that grows
# with the input); a tenant's regex gets this much, and a bigger one is an
# error the model sees.
REGEX_SIZE_LIMIT = "16M"
DFA_SIZE_LIMIT = "16M"

# In a match or context record, the ``lines`` object is followed by the line
# number. The text ``,"`` cannot occur raw inside a JSON string (its quote
# would be escaped), so this finds the structural key even in the middle of
# a megabyte-long record.
_LINE_NUMBER = re.compile(rb'\},"line_number":(\d+)[,}]')
_MARKER_SPAN = 64
_JSON_CHARS = rb'[^"\\]*(?:\\.[^"\\]*)*'  # a JSON string's body, escapes included
_HEAD = re.compile(
    rb'^\{"type":"(match|context)","data":\{"path":\{"(text|bytes)":"(' + _JSON_CHARS + rb')"\},'
    rb'"lines":\{"(text|bytes)":"(' + _JSON_CHARS + rb")"
)


@functools.cache
def find_rg() -> str | None:
    """The ``rg`` binary: the one the ``ripgrep`` wheel installed (found from
    its own file list, so a venv, ``pip --user`` or ``--prefix`` install all
    work), else the interpreter's scripts directory, else ``PATH``."""
    candidates: list[Path] = []
    try:
        dist = importlib.metadata.distribution("ripgrep")
        candidates += [Path(dist.locate_file(f)) for f in dist.files or () if f.name in ("rg", "rg.exe")]
    except importlib.metadata.PackageNotFoundError:
        pass
    candidates.append(Path(sysconfig.get_path("scripts")) / "rg")
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return str(path.resolve())
    return shutil.which("rg")


@dataclass(frozen=True)
class Record:
    """One record of ``rg --json``: ``begin``/``end`` of a file, or a
    ``match``/``context`` line. ``path`` is a file-system string (undecodable
    bytes as surrogate escapes); ``text`` may be only the head of a huge line."""

    kind: str
    path: str
    line: int = 0
    text: str = ""


def _fs_path(obj: dict[str, Any]) -> str:
    if "text" in obj:
        return obj["text"]
    return os.fsdecode(base64.b64decode(obj["bytes"]))


def _line_text(obj: dict[str, Any]) -> str:
    if "text" in obj:
        return obj["text"]
    return base64.b64decode(obj["bytes"]).decode("utf-8", errors="replace")


def parse(raw: bytes) -> Record | None:
    """A whole record; ``None`` for kinds the search does not use."""
    rec = json.loads(raw)
    kind, data = rec.get("type"), rec.get("data") or {}
    if kind in ("begin", "end"):
        return Record(kind, _fs_path(data["path"]))
    if kind in ("match", "context"):
        return Record(kind, _fs_path(data["path"]), data["line_number"], _line_text(data["lines"]))
    return None


def _json_string_prefix(escaped: bytes) -> str:
    """Decode the start of a JSON string cut anywhere (maybe inside an escape)."""
    for cut in range(7):
        try:
            return json.loads(b'"' + escaped[: len(escaped) - cut] + b'"')
        except ValueError:
            continue
    return ""


def parse_head(head: bytes, line: int | None) -> Record | None:
    """A record too long to keep: its kind, path and the start of its line
    from ``head``, its line number found further on."""
    m = _HEAD.match(head)
    if m is None or line is None:
        return None
    kind, path_kind, path, text_kind, text = m.groups()
    fs_path = _fs_path({path_kind.decode(): json.loads(b'"' + path + b'"')})
    if text_kind == b"text":
        line_text = _json_string_prefix(text)
    else:  # base64, cut to whole 4-character groups
        line_text = base64.b64decode(text[: len(text) - len(text) % 4]).decode("utf-8", errors="replace")
    return Record(kind.decode(), fs_path, line, line_text)


class _Splitter:
    """Cuts the byte stream into records, keeping at most ``HEAD_BYTES`` of each."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.overlong = False
        self.line: int | None = None
        self.tail = b""

    def feed(self, piece: bytes) -> None:
        if not self.overlong:
            self.buf += piece
            if len(self.buf) > HEAD_BYTES:
                self.overlong = True
                self._look(bytes(self.buf))
                del self.buf[HEAD_BYTES:]
        elif self.line is None:
            self._look(self.tail + piece)

    def _look(self, window: bytes) -> None:
        m = _LINE_NUMBER.search(window)
        if m:
            self.line = int(m.group(1))
        self.tail = window[-_MARKER_SPAN:]

    def finish(self) -> Record | None:
        raw, overlong, line = bytes(self.buf), self.overlong, self.line
        self.buf.clear()
        self.overlong, self.line, self.tail = False, None, b""
        if not raw:
            return None
        return parse_head(raw, line) if overlong else parse(raw)


class Ripgrep:
    """One run of ``rg --json``; ``async with`` guarantees it is killed and
    reaped however the caller leaves (result cap, timeout, cancellation)."""

    def __init__(self, rg: str, args: list[str], cwd: str) -> None:
        self.rg = rg
        self.args = args
        self.cwd = cwd
        self.proc: asyncio.subprocess.Process | None = None
        self._stderr: asyncio.Task[bytes] | None = None

    async def __aenter__(self) -> Ripgrep:
        self.proc = await asyncio.create_subprocess_exec(
            self.rg,
            *self.args,
            cwd=self.cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        self._stderr = asyncio.ensure_future(self._read_stderr())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.kill()  # rg starts no children: this ends all of it
        # Shielded: a second cancel while cleaning up must not leave a zombie.
        await asyncio.shield(self._reap())

    async def _reap(self) -> None:
        """Read both pipes to their end, then collect the exit status.
        asyncio's ``wait()`` returns only once the pipes are closed too, and
        a reader left paused with unread output (the result cap stopped
        reading) would never see its end. After the kill the rest is at most
        a pipe's buffer."""
        assert self.proc is not None and self.proc.stdout is not None and self._stderr is not None
        while await self.proc.stdout.read(READ_CHUNK):
            pass
        await self._stderr
        await self.proc.wait()

    async def _read_stderr(self) -> bytes:
        """Drain stderr (so rg never blocks on it), keeping its start."""
        assert self.proc is not None and self.proc.stderr is not None
        kept = b""
        while chunk := await self.proc.stderr.read(READ_CHUNK):
            kept = (kept + chunk)[:STDERR_KEEP]
        return kept

    async def records(self) -> AsyncIterator[Record]:
        assert self.proc is not None and self.proc.stdout is not None
        splitter = _Splitter()
        while chunk := await self.proc.stdout.read(READ_CHUNK):
            start = 0
            while (end := chunk.find(b"\n", start)) >= 0:
                splitter.feed(chunk[start:end])
                rec = splitter.finish()
                if rec is not None:
                    yield rec
                start = end + 1
            splitter.feed(chunk[start:])
        rec = splitter.finish()
        if rec is not None:
            yield rec

    async def finish(self) -> tuple[int, str]:
        """rg's exit status and the start of its stderr, once it has exited."""
        assert self.proc is not None and self._stderr is not None
        code = await self.proc.wait()
        err = await self._stderr
        return code, err.decode("utf-8", errors="replace").strip()
