"""Keeping the conversation inside the model's context window.

As Roo-Code's sliding window (src/core/sliding-window): the tokens of the
last request (input + output, from the provider's usage) estimate the next
request's size; when that passes the window less a 10 % buffer and the
reserved output tokens, the oldest half of the conversation after the first
user message is dropped. We drop whole turns (an assistant message with its
tool results), so no tool result is ever left without its call.
"""

from __future__ import annotations

from typing import Any

TOKEN_BUFFER_FRACTION = 0.1
DEFAULT_RESERVED_FRACTION = 0.2


def allowed_tokens(context_window: int, max_tokens: int | None) -> int:
    reserved = max_tokens if max_tokens else int(context_window * DEFAULT_RESERVED_FRACTION)
    return int(context_window * (1 - TOKEN_BUFFER_FRACTION)) - reserved


def _turns(messages: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Messages after the first, grouped: each group starts at an assistant message."""
    groups: list[list[dict[str, Any]]] = []
    for m in messages[1:]:
        if m["role"] == "assistant" or not groups:
            groups.append([m])
        else:
            groups[-1].append(m)
    return groups


def truncate(messages: list[dict[str, Any]], fraction: float = 0.5) -> tuple[list[dict[str, Any]], int]:
    """Drop the oldest ``fraction`` of turns after the first message. Returns
    the new list and how many messages were removed."""
    turns = _turns(messages)
    drop = int(len(turns) * fraction)
    if drop == 0 and len(turns) > 1:
        drop = 1
    if drop == 0:
        return messages, 0
    kept = [messages[0]] + [m for t in turns[drop:] for m in t]
    # A conversation must not continue with a dangling user turn right after
    # the first user message: providers want user/assistant alternation.
    return kept, len(messages) - len(kept)


def needs_truncation(last_tokens: int, context_window: int | None, max_tokens: int | None) -> bool:
    return bool(context_window) and last_tokens > allowed_tokens(context_window, max_tokens)  # type: ignore[arg-type]
