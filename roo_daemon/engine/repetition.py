"""Roo-Code's ``ToolRepetitionDetector`` (src/core/tools/ToolRepetitionDetector.ts):
a model stuck in a loop calls the same tool with the same arguments again
and again; past the limit the call is not run, the client is asked (kind
``mistake_limit``) and the model is told to try something else.

The counter lives in the task's durable loop state (``state["repetition"]``),
so a task resumed after a restart keeps counting where it was (Roo keeps it
in memory only).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from roo_daemon.engine.providers.base import ToolCall

# Roo's wording: tools:toolRepetitionLimitReached (the ask) and the tool result
# presentAssistantMessage gives, wrapped in formatResponse.toolError.
ASK_MESSAGE = (
    "Roo appears to be stuck in a loop, attempting the same action ({}) repeatedly. This might indicate a problem "
    "with its current strategy. Consider rephrasing the task, providing more specific instructions, or guiding it "
    "towards a different approach."
)
RESULT = "Tool call repetition limit reached for {}. Please try a different approach."
FEEDBACK = "Tool repetition limit reached. User feedback: {}"


def repeated(state: dict[str, Any], call: ToolCall, limit: int) -> bool:
    """Count ``call`` against the previous one; True when it is one identical
    call too many (the ``limit``-th repeat: with Roo's default 3, the fourth
    identical call in a row). ``limit`` 0 means unlimited, as in Roo. A hit
    resets the counter, so the model can go on once the client lets it."""
    canonical = json.dumps({"name": call.name, "args": call.args}, sort_keys=True, ensure_ascii=False)
    key = hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()  # state stays small
    seen = state.get("repetition") or {}
    count = seen.get("count", 0) + 1 if seen.get("last") == key else 0
    if limit > 0 and count >= limit:
        state["repetition"] = {}
        return True
    state["repetition"] = {"last": key, "count": count}
    return False
