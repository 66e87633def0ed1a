"""Prompt-cache breakpoints for Chat Completions requests that an
OpenRouter-style gateway forwards to Anthropic or Gemini models, as Roo-Code's
``src/api/transform/caching/anthropic.ts`` and ``gemini.ts`` place them.

Those models cache only what a request marks: a text part carrying
``cache_control: {type: ephemeral}``. Both strategies mark the system prompt
(turned into one text part). Anthropic's also marks the last text part of
the last two user messages, so each turn reads the previous turn's prefix
from the cache and writes its own; Gemini's marks every tenth user message
(its cache writes cost more and last longer). A user message whose parts
are all images gets a ``"..."`` text part to carry the mark, as Roo does.

Behind the profile option ``prompt_caching`` (``auto``: by the model name,
as Roo picks by OpenRouter's ``anthropic/`` and ``google/`` prefixes;
``anthropic`` or ``gemini`` to force one; unset: off). The ``anthropic``
kind caches on its own (``anthropic.py``).
"""

from __future__ import annotations

from typing import Any

EPHEMERAL = {"type": "ephemeral"}
ANTHROPIC_CACHED_USER_MESSAGES = 2
GEMINI_FREQUENCY = 10


def strategy_for(option: str | None, model: str) -> str | None:
    """``anthropic``, ``gemini`` or None (no breakpoints) for a profile."""
    if option in ("anthropic", "gemini"):
        return option
    if option != "auto":
        return None
    name = model.lower()
    if name.startswith("anthropic/") or "claude" in name:
        return "anthropic"
    if name.startswith("google/") or "gemini" in name:
        return "gemini"
    return None


def add_cache_breakpoints(messages: list[dict[str, Any]], strategy: str) -> None:
    """Mark ``messages`` (Chat Completions form, system first) in place."""
    if messages and messages[0]["role"] == "system" and isinstance(messages[0]["content"], str):
        messages[0] = {
            "role": "system",
            "content": [{"type": "text", "text": messages[0]["content"], "cache_control": EPHEMERAL}],
        }
    users = [m for m in messages if m["role"] == "user"]
    for m in users:  # every user message in parts form, as Roo converts them
        if isinstance(m["content"], str):
            m["content"] = [{"type": "text", "text": m["content"]}]
    if strategy == "anthropic":
        marked = users[-ANTHROPIC_CACHED_USER_MESSAGES:]
    else:
        marked = [m for i, m in enumerate(users) if i % GEMINI_FREQUENCY == GEMINI_FREQUENCY - 1]
    for m in marked:
        _mark_last_text(m)


def _mark_last_text(message: dict[str, Any]) -> None:
    parts = message["content"]
    for i in range(len(parts) - 1, -1, -1):
        if parts[i].get("type") == "text":
            parts[i] = {**parts[i], "cache_control": EPHEMERAL}
            return
    parts.append({"type": "text", "text": "...", "cache_control": EPHEMERAL})
