"""What every provider streams: text and reasoning deltas, whole tool calls, usage."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """A piece of the model's thinking (Anthropic extended thinking, an
    OpenAI-compatible server's ``reasoning_content``): shown, never part of
    the answer's text."""

    text: str


@dataclass(frozen=True, slots=True)
class ThinkingBlock:
    """A whole Anthropic ``thinking`` (with its ``signature``) or
    ``redacted_thinking`` block, kept with the turn: with thinking on, the
    API wants the last assistant turn's thinking back before its ``tool_use``."""

    block: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    args: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Usage:
    tokens_in: int = 0
    tokens_out: int = 0
    cache_reads: int = 0
    cache_writes: int = 0
    cost_usd: float = 0.0


@dataclass(frozen=True, slots=True)
class StreamReset:
    """The provider restarted a stream that broke midway: the consumer drops
    this turn's text and tool calls received so far."""

    reason: str


Chunk = TextDelta | ReasoningDelta | ThinkingBlock | ToolCall | Usage | StreamReset


@dataclass
class ProviderRequest:
    system: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] = field(default_factory=list)
    # How many requests this task made before this one. The scripted provider
    # plays turn ``turn``: counting assistant messages breaks once the
    # context window has dropped some.
    turn: int = 0
    # "turn" (a model turn) or "condense" (a summary of the conversation, no tools).
    purpose: str = "turn"


class ProviderError(Exception):
    """The provider could not answer (after its own retries).
    ``context_exceeded``: it said the request is too long for the model's
    context window (the loop condenses and retries instead of failing)."""

    def __init__(self, message: str, *, context_exceeded: bool = False) -> None:
        super().__init__(message)
        self.context_exceeded = context_exceeded


class Provider(Protocol):
    name: str
    kind: str
    model: str

    def stream(self, request: ProviderRequest) -> AsyncIterator[Chunk]: ...

    def close(self) -> None:
        """Release what the provider holds between requests (kept-alive connections)."""
