"""What the model is told when a task goes on after it stopped: continued by
the client after it finished, or resumed after the daemon stopped while it
ran. Roo-Code's ``resumeTaskFromHistory`` (src/core/task/Task.ts, as of the
release whose text still carried the note on tool calls without a result):
every tool call left without a result gets one saying it was interrupted,
then one user message with the ``[TASK RESUMPTION]`` note and the client's
new instructions.

Two sentences of Roo's note are left out on purpose: the one about
``browser_action`` (no browser tool here) and the one that says an
interrupted ``write_to_file`` was reverted (ours are atomic, not reverted).
"""

from __future__ import annotations

import time
from typing import Any

INTERRUPTED_TOOL_RESULT = "Task was interrupted before this tool call could be completed."
RESUMPTION = (
    "[TASK RESUMPTION] This task was interrupted {ago}. It may or may not be complete, so please reassess the "
    "task context. Be aware that the project state may have changed since then. If the task has not been "
    "completed, retry the last step before interruption and proceed with completing the task.\n\n"
    "Note: If you previously attempted a tool use that the user did not provide a result for, you should "
    "assume the tool use was not successful and assess whether you should retry."
)
NEW_INSTRUCTIONS = "\n\nNew instructions for task continuation:\n<user_message>\n{text}\n</user_message>"
USER_MESSAGE = "<user_message>\n{text}\n</user_message>"


def ago(since: float | None, now: float | None = None) -> str:
    """Roo's wording: "2 days ago", "1 hour ago", "5 minutes ago", "just now"."""
    if since is None:
        return "just now"
    minutes = int(((now or time.time()) - since) // 60)
    hours, days = minutes // 60, minutes // 1440
    for count, unit in ((days, "day"), (hours, "hour"), (minutes, "minute")):
        if count > 0:
            return f"{count} {unit}{'s' if count > 1 else ''} ago"
    return "just now"


def interrupted_results(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A result for each call the task stopped before finishing."""
    return [
        {
            "role": "tool",
            "tool_call_id": c["id"],
            "name": c["name"],
            "content": INTERRUPTED_TOOL_RESULT,
            "is_error": True,
            "source": "engine",
        }
        for c in calls
    ]


def resumption(since: float | None, inbox: list[dict[str, Any]]) -> dict[str, Any]:
    """The user message that restarts the loop: the note, then the client's
    messages (text joined, images kept)."""
    text = RESUMPTION.format(ago=ago(since))
    texts = [m["text"] for m in inbox if m.get("text")]
    if texts:
        text += NEW_INSTRUCTIONS.format(text="\n\n".join(texts))
    return user_message(text, inbox, "engine")


def steering(inbox: list[dict[str, Any]]) -> dict[str, Any]:
    """Messages the client sent while the task worked, given at the next turn."""
    text = "\n\n".join(USER_MESSAGE.format(text=m["text"]) for m in inbox if m.get("text"))
    return user_message(text, inbox, "user")


def user_message(text: str, inbox: list[dict[str, Any]], source: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "user", "content": text, "source": source}
    images = [url for m in inbox for url in m.get("images") or []]
    if images:
        message["images"] = images
    return message
