"""Does a provider's error say the request is too long for the model's
context window? Roo-Code's ``checkContextWindowExceededError``
(src/core/context/context-management/context-error-handling.ts), on the
status and error text our providers see:

- OpenAI: a 400 whose message mentions tokens or the context length
  (``context_length_exceeded``: "This model's maximum context length is...").
- OpenAI-compatible servers and gateways (OpenRouter, vLLM, llama.cpp,
  Ollama, LiteLLM): a 400 saying "context length/window/size", "maximum
  context", "tokens exceed" or "too many tokens".
- Anthropic: an ``invalid_request_error`` saying "prompt is too long",
  "maximum ... tokens", "context ... too long", "exceeds ... context",
  "token ... limit", ``context_length_exceeded`` or ``max_tokens_to_sample``.
"""

from __future__ import annotations

import re

_OPENAI_COMPATIBLE = [
    re.compile(r"\bcontext\s*(?:length|window|size)\b", re.I),
    re.compile(r"\bmaximum\s*context\b", re.I),
    re.compile(r"\b(?:input\s*)?tokens?\s*exceed", re.I),
    re.compile(r"\btoo\s*many\s*tokens?\b", re.I),
    re.compile(r"context_length_exceeded", re.I),
]
_ANTHROPIC = [
    re.compile(p, re.I)
    for p in (
        r"prompt is too long",
        r"maximum.*tokens",
        r"context.*too.*long",
        r"exceeds.*context",
        r"token.*limit",
        r"context_length_exceeded",
        r"max_tokens_to_sample",
    )
]


def is_context_window_error(kind: str, status: int | None, text: str) -> bool:
    """``kind``: the provider kind; ``text``: the error body's message (with its type)."""
    if status != 400:
        return False
    if kind == "anthropic":
        return "invalid_request_error" in text and any(p.search(text) for p in _ANTHROPIC)
    return any(p.search(text) for p in _OPENAI_COMPATIBLE)
