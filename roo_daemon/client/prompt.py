"""Asks answered by the person at the terminal.

Lines come from stdin through a reader thread (a blocking read must not
hold the event loop, which keeps streaming events and may learn that the
ask was answered elsewhere). End of input means nobody is there to answer.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from typing import Any, TextIO

YES = {"y", "yes"}
NO = {"n", "no"}


class Lines:
    """Lines of ``stream``, read in a daemon thread once first wanted."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdin
        self._queue: asyncio.Queue[str | None] | None = None
        self.closed = False

    def _start(self) -> asyncio.Queue[str | None]:
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        def read() -> None:
            try:
                for line in self.stream:
                    loop.call_soon_threadsafe(queue.put_nowait, line.rstrip("\r\n"))
            except (OSError, ValueError):
                pass  # stdin closed under us: the same as its end
            try:
                loop.call_soon_threadsafe(queue.put_nowait, None)
            except RuntimeError:
                pass  # the loop is gone: nobody is waiting

        threading.Thread(target=read, name="stdin-lines", daemon=True).start()
        return queue

    async def read(self) -> str | None:
        """The next line, or None at the end of input."""
        if self.closed:
            return None
        if self._queue is None:
            self._queue = self._start()
        line = await self._queue.get()
        if line is None:
            self.closed = True
        return line


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (ValueError, OSError):
        return False


async def ask_person(ask: dict[str, Any], lines: Lines, err: TextIO) -> tuple[bool, str | None] | None:
    """Prompt on ``err`` until the answer parses; ``(approve, text)``, or
    None when input ended first."""
    kind = ask.get("kind")
    suggestions = ask.get("suggestions") or []
    if kind == "followup":
        question = f"answer (1-{len(suggestions)} or text): " if suggestions else "answer: "
    elif kind in ("tool", "command"):
        question = "approve? [y]es, [n]o, or type why not: "
    else:
        question = "go on? [y]es, [n]o, or type guidance to go on with: "
    while True:
        err.write(question)
        err.flush()
        line = await lines.read()
        if line is None:
            err.write("\n")
            return None
        if not _isatty(lines.stream):
            err.write(line + "\n")  # a terminal echoes what was typed; a pipe does not
        text = line.strip()
        if not text:
            continue
        if kind == "followup":
            if text.isdigit() and 1 <= int(text) <= len(suggestions):
                return True, suggestions[int(text) - 1]
            return True, text
        if text.lower() in YES:
            return True, None
        if text.lower() in NO:
            return False, None
        # Free text: a reason to deny a tool, guidance to go on otherwise.
        return kind not in ("tool", "command"), text
