"""Commands still running after their ``timeout``: Roo-Code moves such a
command to the background (it keeps running; ExecuteCommandTool's agent
timeout) and shows its new output in the environment details of later turns
(``# Actively Running Terminals``), and once more after it ended
(``# Inactive Terminals with Completed Process Output``).

Each belongs to its task: :func:`end_task` kills what is left when the task
ends (the loop calls it however it ends). The daemon's own
``command_timeout_seconds`` still ends a background command, counted from
its start (Roo's user timeout stays armed too). Everything here runs on the
event loop; killing a process group polls ``/proc`` in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Terminal:
    """A command still running in the background (Roo's active terminal)."""

    id: str
    cwd: str
    command: str
    output: str  # what it printed since the model last saw it (and, once ended, how it ended)
    active: bool = True  # still running; else ended since the last details


@dataclass
class Background:
    """One backgrounded command: ``running`` is command.Running (its process,
    pumps and output), ``recent`` what it printed since the model last saw it."""

    id: int
    command: str
    cwd: str
    running: Any
    watchdog: asyncio.Task[None] | None = None
    status: str | None = None  # set when it ended: Roo's exit-status line


_TASKS: dict[str, dict[int, Background]] = {}
_IDS: dict[str, itertools.count[int]] = {}


def add(task_id: str, command: str, cwd: str, running: Any, remaining: float, limit: float) -> Background:
    """Keep ``running`` for ``task_id``; end it after ``remaining`` more
    seconds (``limit`` in all, for the note)."""
    ids = _IDS.setdefault(task_id, itertools.count(1))
    bg = Background(next(ids), command, cwd, running)
    running.start_recent()
    _TASKS.setdefault(task_id, {})[bg.id] = bg
    bg.watchdog = asyncio.ensure_future(_watch(bg, remaining, limit))
    return bg


async def _watch(bg: Background, remaining: float, limit: float) -> None:
    try:
        bg.status = await bg.running.finish(remaining, limit)
    except asyncio.CancelledError:
        raise
    except Exception as e:  # never leave a watchdog's failure unreported
        bg.status = f"Error: {e}"


def report(task_id: str) -> list[Terminal]:
    """The terminals for the next environment details: the running ones
    with their new output, then each ended one once (then forgotten)."""
    out: list[Terminal] = []
    commands = _TASKS.get(task_id, {})
    for bg in list(commands.values()):
        recent = bg.running.take_recent()
        if bg.status is None:
            out.append(Terminal(str(bg.id), bg.cwd, bg.command, recent, active=True))
        else:
            text = f"{recent.rstrip(chr(10))}\n{bg.status}" if recent else bg.status
            out.append(Terminal(str(bg.id), bg.cwd, bg.command, text, active=False))
            del commands[bg.id]
    return out


def running(task_id: str) -> int:
    """How many of the task's background commands are still running."""
    return sum(1 for bg in _TASKS.get(task_id, {}).values() if bg.status is None)


async def end_task(task_id: str) -> None:
    """Kill what the task left running and forget it (its end, however it came)."""
    commands = _TASKS.pop(task_id, {})
    _IDS.pop(task_id, None)
    for bg in commands.values():
        if bg.watchdog is not None:
            bg.watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await bg.watchdog
        await bg.running.kill()
