"""Streamed text, coalesced: a provider may send a delta per token; the
event log and every client would pay for each one. Deltas are gathered for
at most ``window`` seconds (or ``max_chars``) and published as one
``message.delta``, which keeps the stream live to the eye while cutting the
events per second several-fold under load."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

DEFAULT_WINDOW_SECONDS = 0.03
DEFAULT_MAX_CHARS = 512


class DeltaCoalescer:
    def __init__(
        self,
        publish: Callable[[str, dict[str, Any]], None],
        window: float = DEFAULT_WINDOW_SECONDS,
        max_chars: int = DEFAULT_MAX_CHARS,
        event: str = "message.delta",  # or "message.reasoning" for the model's thinking
    ) -> None:
        self.publish = publish
        self.event = event
        self.window = window
        self.max_chars = max_chars
        self._parts: list[str] = []
        self._size = 0
        self._timer: asyncio.TimerHandle | None = None

    def add(self, text: str) -> None:
        self._parts.append(text)
        self._size += len(text)
        if self._size >= self.max_chars or self.window <= 0:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.window, self.flush)

    def flush(self) -> None:
        """Publish what is gathered (called by the timer, and before anything
        else the turn publishes, so event order matches the stream)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._parts:
            text = "".join(self._parts)
            self._parts.clear()
            self._size = 0
            self.publish(self.event, {"text": text})

    def discard(self) -> None:
        """Drop what is gathered (the provider restarted its stream)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._parts.clear()
        self._size = 0
