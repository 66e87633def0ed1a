"""The ``scripted`` provider: plays a YAML script of assistant turns.

Deterministic and offline, for demos and tests; it is labelled
``provider_kind: scripted`` on every session, task and message it touches.
Turn *n* of the script answers the *n*-th request of a task. A turn may hold:

``reasoning``   the model's thinking, streamed as reasoning deltas first
``text``        streamed as deltas of ``chunk_chars`` characters
``tool_calls``  ``[{name, args}]``, sent after the text
``usage``       ``{tokens_in, tokens_out, cache_reads, cache_writes, cost_usd}``
``hang: true``  after the text, wait until cancelled (for cancellation demos)
``error``       fail the request with this message

``condense`` (a turn: ``text``, ``usage``, ``error``) answers the requests
for a summary when the task condenses its context; by default a fixed text.

A profile may also hold ``scripts: [{match: REGEX, turns: [...]}]``: the
first whose regex matches the task's first message plays, else ``turns``.
That lets one profile script a parent task and the subtask it creates.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from roo_daemon.engine.providers import wire_json
from roo_daemon.engine.providers.base import (
    Chunk,
    ProviderError,
    ProviderRequest,
    ReasoningDelta,
    TextDelta,
    ToolCall,
    Usage,
)


class ScriptedProvider:
    kind = "scripted"
    supports_images = False

    def __init__(self, name: str, profile: dict[str, Any], config_dir: str) -> None:
        self.name = name
        self.model = "script"
        self.chunk_chars = int(profile.get("chunk_chars", 24))
        # A pause before each delta: a model as slow as a real one, for
        # clients and scripts that must wait for states rather than assume
        # the demo's speed (the README walk-through's test).
        self.delta_seconds = float(profile.get("delta_ms", 0)) / 1000
        self.context_window: int | None = profile.get("context_window")
        self.max_tokens: int | None = None
        if "turns" in profile:
            turns = profile["turns"]
        elif "scripts" in profile:
            turns = []
        elif profile.get("script"):
            path = Path(config_dir, profile["script"]).expanduser()
            turns = yaml.safe_load(path.read_text(encoding="utf-8"))["turns"]
        else:
            text = resources.files("roo_daemon.engine.providers").joinpath("demo_script.yaml").read_text()
            turns = yaml.safe_load(text)["turns"]
        self.turns: list[dict[str, Any]] = list(turns)
        self.scripts = [(re.compile(x["match"]), list(x["turns"])) for x in profile.get("scripts", [])]
        self.condense: dict[str, Any] | None = profile.get("condense")

    def close(self) -> None:
        """Nothing to release: the scripts were read at start."""

    def _turns_for(self, request: ProviderRequest) -> list[dict[str, Any]]:
        first = request.messages[0]["content"] if request.messages else ""
        for pattern, turns in self.scripts:
            if pattern.search(first):
                return turns
        return self.turns

    async def stream(self, request: ProviderRequest) -> AsyncIterator[Chunk]:
        if request.purpose == "condense":
            # A summary request: the profile's ``condense`` turn, else a fixed
            # summary; it plays no turn of the script.
            turn = self.condense or {"text": f"Scripted summary of {len(request.messages) - 1} messages."}
        else:
            turns = self._turns_for(request)
            index = request.turn
            if index >= len(turns):
                raise ProviderError(f"scripted provider {self.name!r}: script has no turn {index + 1}")
            turn = turns[index]
        turn = wire_json.as_text(turn)  # a script's "\ud800" is model output like a provider's: U+FFFD
        if "error" in turn:
            raise ProviderError(str(turn["error"]))
        for kind, key in ((ReasoningDelta, "reasoning"), (TextDelta, "text")):
            text = str(turn.get(key, ""))
            for start in range(0, len(text), self.chunk_chars):
                if self.delta_seconds:
                    await asyncio.sleep(self.delta_seconds)
                yield kind(text[start : start + self.chunk_chars])
                await asyncio.sleep(0)  # let other tasks run between deltas, as a network stream would
        if turn.get("hang"):
            await asyncio.Event().wait()
        for i, call in enumerate(turn.get("tool_calls") or []):
            yield ToolCall(id=f"call_{request.turn + 1}_{i + 1}", name=call["name"], args=dict(call.get("args") or {}))
        if "usage" in turn:
            yield Usage(**turn["usage"])
