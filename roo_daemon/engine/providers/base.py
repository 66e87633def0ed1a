"""What every provider streams: text deltas, whole tool calls, usage."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


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


Chunk = TextDelta | ToolCall | Usage


@dataclass
class ProviderRequest:
    system: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] = field(default_factory=list)


class ProviderError(Exception):
    """The provider could not answer (after its own retries)."""


class Provider(Protocol):
    name: str
    kind: str
    model: str

    def stream(self, request: ProviderRequest) -> AsyncIterator[Chunk]: ...
