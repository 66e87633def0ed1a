"""The ``<environment_details>`` block every user turn carries, after Roo-Code's
``getEnvironmentDetails`` (src/core/environment/getEnvironmentDetails.ts) and
its REMINDERS section (src/core/environment/reminder.ts): running background
commands, the time, the cost so far, the mode and model, the workspace
listing (the first turn of each run only) and the todo list.

Roo's editor sections (visible files, open tabs) have no counterpart in a
headless daemon and are left out. The listing reads the workspace: callers
run :func:`environment_details` in a thread.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from roo_daemon.engine.modes import Mode
from roo_daemon.engine.prompts import workspace_listing
from roo_daemon.engine.tools.background import Terminal

OPEN = "<environment_details>"
CLOSE = "</environment_details>"
NO_TODOS = (
    "You have not created a todo list yet. Create one with `update_todo_list` if your task is complicated or "
    "involves multiple steps."
)
STATUS = {"pending": "Pending", "in_progress": "In Progress", "completed": "Completed"}


def reminders(todos: Sequence[dict[str, str]]) -> str:
    """Roo's formatReminderSection: the todo list as a table, or the nudge to make one."""
    if not todos:
        return NO_TODOS
    lines = [
        "====",
        "",
        "REMINDERS",
        "",
        "Below is your current list of reminders for this task. Keep them updated as you progress.",
        "",
        "| # | Content | Status |",
        "|---|---------|--------|",
    ]
    for i, item in enumerate(todos, 1):
        content = item.get("content", "").replace("\\", "\\\\").replace("|", "\\|")
        status = item.get("status", "")
        lines.append(f"| {i} | {content} | {STATUS.get(status, status)} |")
    lines += [
        "",
        "",
        "IMPORTANT: When task status changes, remember to call the `update_todo_list` tool to update your progress.",
        "",
    ]
    return "\n".join(lines)


def _zone() -> tuple[str, str]:
    """The daemon's time zone as Roo names the user's: an IANA name where
    one can be found (``TZ``, the /etc/localtime link), and ``+H:MM`` (now:
    daylight saving time moves it)."""
    offset = datetime.now().astimezone().utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset else 0
    sign = "+" if minutes >= 0 else "-"
    hours, mins = divmod(abs(minutes), 60)
    return _zone_name(), f"{sign}{hours}:{mins:02d}"


@functools.cache
def _zone_name() -> str:
    """Read once per process (the libc the offset comes from reads the zone
    once too): so a later block needs no file-system call and can be made on
    the loop (:func:`makes_no_file_calls`)."""
    name = os.environ.get("TZ", "").lstrip(":")
    if not name:
        try:
            name = str(Path("/etc/localtime").readlink()).split("zoneinfo/", 1)[-1]
        except OSError:
            name = time.tzname[0]
    return name


def makes_no_file_calls(first: bool) -> bool:
    """Whether :func:`environment_details` can run on the loop: not with the
    listing (a walk of the workspace), nor before the zone's name was read."""
    return not first and _zone_name.cache_info().currsize > 0


def environment_details(
    mode: Mode,
    workspace: str,
    first: bool,
    *,
    model: str = "",
    cost_usd: float | None = None,
    todos: Sequence[dict[str, str]] = (),
    terminals: Sequence[Terminal] = (),
) -> str:
    """The block, laid out as Roo lays it out (section order and spacing)."""
    details = ""
    active = [t for t in terminals if t.active]
    ended = [t for t in terminals if not t.active]
    if active:
        details += "\n\n# Actively Running Terminals"
        for t in active:
            details += f"\n## Terminal {t.id} (Active)\n### Working Directory: `{t.cwd}`\n"
            details += f"### Original command: `{t.command}`"
            if t.output:
                details += f"\n### New Output\n{t.output}"
    if ended:
        details += "\n\n# Inactive Terminals with Completed Process Output"
        for t in ended:
            details += f"\n## Terminal {t.id} (Inactive)\n### Working Directory: `{t.cwd}`\n"
            details += f"### New Output\nCommand: `{t.command}`\n{t.output}"
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    zone, offset = _zone()
    details += f"\n\n# Current Time\nCurrent time in ISO 8601 UTC format: {now}\nUser time zone: {zone}, UTC{offset}"
    details += "\n\n# Current Cost\n" + (f"${cost_usd:.2f}" if cost_usd is not None else "(Not available)")
    details += f"\n\n# Current Mode\n<slug>{mode.slug}</slug>\n<name>{mode.name}</name>\n<model>{model}</model>\n"
    if first:
        details += f"\n\n# Current Workspace Directory ({workspace}) Files\n{workspace_listing(workspace)}"
    return f"{OPEN}\n{details.strip()}\n{reminders(todos)}\n{CLOSE}"


def is_environment_details(message: dict[str, object]) -> bool:
    """A user message that is only an environment-details block (Roo's test)."""
    content = message.get("content")
    if message.get("role") != "user" or not isinstance(content, str):
        return False
    text = content.strip()
    return text.startswith(OPEN) and text.endswith(CLOSE)
