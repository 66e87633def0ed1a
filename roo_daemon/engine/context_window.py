"""The arithmetic of the model's context window, as Roo-Code's context
management (src/core/context-management) does it: the next request must fit
in the window less a 10 % buffer and the tokens reserved for the answer
(the profile's ``max_tokens``, else Roo's 8,192, at most a fifth of the
window); condensing starts at ``engine.condense_threshold_percent`` of the
window; truncation hides the older half of the conversation after the
first message.

We cut whole turns (an assistant message with the results of its calls), so
no tool result is ever left without its call, and the part kept always
starts with an assistant message.
"""

from __future__ import annotations

import math
from typing import Any

TOKEN_BUFFER_FRACTION = 0.1
DEFAULT_MAX_TOKENS = 8192  # Roo's ANTHROPIC_DEFAULT_MAX_TOKENS
MAX_RESERVED_FRACTION = 0.2  # Roo clamps a model's max output tokens to 20 % of its window


def reserved_tokens(context_window: int, max_tokens: int | None) -> int:
    return min(max_tokens or DEFAULT_MAX_TOKENS, math.ceil(context_window * MAX_RESERVED_FRACTION))


def allowed_tokens(context_window: int, max_tokens: int | None) -> int:
    return int(context_window * (1 - TOKEN_BUFFER_FRACTION)) - reserved_tokens(context_window, max_tokens)


def turn_starts(messages: list[dict[str, Any]]) -> list[int]:
    """Indexes (after the first message) where a turn starts: each assistant message."""
    return [i for i in range(1, len(messages)) if messages[i]["role"] == "assistant"]


def truncation_point(messages: list[dict[str, Any]], fraction: float = 0.5) -> int:
    """Where the kept part starts when the oldest ``fraction`` of the turns
    after the first message is hidden: an index into ``messages``, or 0 when
    there is nothing to hide (fewer than two turns)."""
    starts = turn_starts(messages)
    if len(starts) < 2:
        return 0
    drop = max(1, int(len(starts) * fraction))
    return starts[min(drop, len(starts) - 1)]


def keep_point(messages: list[dict[str, Any]], keep_messages: int) -> int:
    """Where the kept part starts when at least the last ``keep_messages``
    messages stay, as whole turns; 0 if that leaves nothing before it to replace."""
    starts = [i for i in turn_starts(messages) if len(messages) - i >= keep_messages]
    point = starts[-1] if starts else 0
    return point if point > 1 else 0
