"""A command's full output, kept when the tool result had to cut it (Roo-Code's
``OutputInterceptor``): the bytes are held in memory up to the result's cap
(``command_output_max_bytes``); past it everything (what was held, then the
rest as it comes) goes to ``cmd-<digits>.txt`` in the task's own directory,
outside the workspace (under the data dir, which the command sandbox
masks). ``read_command_output`` reads and searches it.

Bounded: a task's artifacts hold at most ``command_artifact_max_bytes`` in
all; beyond it the rest is dropped and the artifact says so at its end.
Removed with the task's run (:func:`remove_task`, called when it ends).
File writes run in a thread, one writer task per artifact.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, BinaryIO

SETTINGS_KEY = "_command_output_dir"  # the daemon's directory, in the runner's copy of the ``tools`` settings
ARTIFACT_ID = re.compile(r"^cmd-\d+\.txt$")  # Roo's isValidArtifactId: no path can be named
DEFAULT_TASK_BUDGET = 64 * 1024 * 1024

_SEQ = itertools.count()
_USED: dict[str, int] = {}  # task id -> bytes its artifacts hold
_FALLBACK: list[Path] = []  # tools called without the daemon (tests): one private directory per process


def base_dir(settings: dict[str, Any]) -> Path:
    configured = settings.get(SETTINGS_KEY)
    if configured:
        return Path(configured)
    if not _FALLBACK:
        _FALLBACK.append(Path(tempfile.mkdtemp(prefix="roo-command-output-")))
    return _FALLBACK[0]


def task_dir(settings: dict[str, Any], task_id: str) -> Path:
    return base_dir(settings) / task_id


def _open(path: Path) -> BinaryIO:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    return open(path, "xb")  # noqa: SIM115 (closed by the writer task)


class Artifact:
    """The full output of one command, spilled to disk past ``threshold``."""

    def __init__(self, settings: dict[str, Any], task_id: str, threshold: int) -> None:
        self.dir = task_dir(settings, task_id)
        self.task_id = task_id
        self.threshold = threshold
        self.budget = int(settings.get("command_artifact_max_bytes", DEFAULT_TASK_BUDGET))
        self.total = 0  # bytes the command printed
        self.dropped = 0  # bytes past the task's budget
        self.id: str | None = None
        self._pending: list[bytes] = []
        self._buffer = bytearray()
        self._wake = asyncio.Event()
        self._closing = False
        self._writer: asyncio.Task[None] | None = None

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        if self.id is None:
            self._pending.append(chunk)
            if self.total > self.threshold:
                self._spill()
            return
        self._keep(chunk)

    def _spill(self) -> None:
        self.id = f"cmd-{time.time_ns() // 1_000_000}{next(_SEQ) % 1000:03d}.txt"
        pending, self._pending = self._pending, []
        for chunk in pending:
            self._keep(chunk)
        self._writer = asyncio.ensure_future(self._write())

    def _keep(self, chunk: bytes) -> None:
        room = self.budget - _USED.get(self.task_id, 0)
        if room < len(chunk):
            self.dropped += len(chunk) - max(room, 0)
            chunk = chunk[: max(room, 0)]
        if chunk:
            _USED[self.task_id] = _USED.get(self.task_id, 0) + len(chunk)
            self._buffer += chunk
            self._wake.set()

    async def _write(self) -> None:
        assert self.id is not None
        f = await asyncio.to_thread(_open, self.dir / self.id)
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._buffer:
                    data = bytes(self._buffer)
                    self._buffer.clear()
                    await asyncio.to_thread(f.write, data)
                if self._closing:
                    if self.dropped:
                        note = f"\n[...{self.dropped} more bytes not kept: the task's command output limit]\n"
                        await asyncio.to_thread(f.write, note.encode())
                    return
        finally:
            await asyncio.shield(asyncio.to_thread(f.close))

    async def close(self) -> str | None:
        """Flush and close; the artifact id if the output was spilled."""
        if self._writer is None:
            return None
        self._closing = True
        self._wake.set()
        try:
            await self._writer
        except OSError:
            return None  # could not be written (a full disk): the preview stands alone
        return self.id

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.cancel()


async def remove_task(settings: dict[str, Any], task_id: str) -> None:
    """Delete the task's artifacts (its run ended)."""
    _USED.pop(task_id, None)
    path = task_dir(settings, task_id)
    with contextlib.suppress(OSError):
        await asyncio.to_thread(shutil.rmtree, path, True)


def artifact_path(settings: dict[str, Any], task_id: str, artifact_id: str) -> Path | None:
    """The artifact's file, if the id is well formed and it exists."""
    if not ARTIFACT_ID.match(artifact_id):
        return None
    path = task_dir(settings, task_id) / artifact_id
    return path if os.path.isfile(path) else None


def format_size(size: int) -> str:
    """Roo's formatBytes in ExecuteCommandTool."""
    if size < 1024:
        return f"{size}B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f}KB"
    return f"{size / (1024 * 1024):.1f}MB"
