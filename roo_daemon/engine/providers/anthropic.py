"""The ``anthropic`` provider: the Messages API, streaming.

``POST {base_url}/v1/messages`` with ``x-api-key``, ``anthropic-version:
2023-06-01`` and ``stream: true``. The answer is SSE events: ``message_start``
(input and cache usage), per content block ``content_block_start`` (``text``,
or ``tool_use`` with id and name), ``content_block_delta`` (``text_delta``, or
``input_json_delta`` pieces of the tool input's JSON), ``content_block_stop``;
then ``message_delta`` (stop reason, output tokens so far), ``message_stop``.
``ping`` keeps the stream alive; ``error`` reports a failure mid-stream.

Prompt caching as Roo-Code does it: ``cache_control: ephemeral`` on the
system prompt and on the last block of the last two user messages, so each
turn reads the previous turn's prefix from the cache and writes its own.

Extended thinking (profile ``thinking_budget_tokens``), as Roo's
``getModelParams``/``getAnthropicReasoning``: ``thinking: {type: enabled,
budget_tokens}`` with the budget held between 1024 and 80 % of
``max_tokens``, at temperature 1. ``thinking_delta`` pieces stream as
reasoning; each finished ``thinking`` block (with its ``signature``) and
``redacted_thinking`` block is kept with the turn and sent back first in
that assistant turn, which the API requires when a turn with thinking used
a tool. (Roo's Anthropic handler does not capture the signature.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from roo_daemon.engine.providers import wire_json
from roo_daemon.engine.providers.base import (
    Chunk,
    ProviderRequest,
    ReasoningDelta,
    TextDelta,
    ThinkingBlock,
    ToolCall,
)
from roo_daemon.engine.providers.network import HttpProvider, TokenCounts, WireError, parse_arguments
from roo_daemon.engine.providers.sse import SseEvent

API_VERSION = "2023-06-01"
CACHE_CONTROL = {"type": "ephemeral"}
CACHED_USER_MESSAGES = 2
MIN_THINKING_TOKENS = 1024  # the API's minimum budget
THINKING_SHARE_OF_MAX_TOKENS = 0.8  # Roo: "Reasoning cannot exceed 80% of the maxTokens value"
# Error types of an ``error`` event (and of error bodies) that a retry can cure.
RETRYABLE_ERRORS = frozenset({"overloaded_error", "api_error", "rate_limit_error", "timeout_error"})
_DATA_URL = re.compile(r"^data:(?P<media>[\w.+-]+/[\w.+-]+);base64,(?P<data>.*)$", re.DOTALL)


class AnthropicProvider(HttpProvider):
    kind = "anthropic"
    default_base_url = "https://api.anthropic.com"
    default_max_tokens = 8192  # the API requires max_tokens
    default_context_window = 200_000
    default_supports_images = True  # every Claude model since 3 takes images

    def __init__(self, name: str, profile: dict[str, Any], metrics: Any = None, **kw: Any) -> None:
        super().__init__(name, profile, metrics, **kw)
        budget = profile.get("thinking_budget_tokens")
        self.thinking_budget: int | None = None
        if budget:
            cap = int((self.max_tokens or self.default_max_tokens) * THINKING_SHARE_OF_MAX_TOKENS)
            self.thinking_budget = max(MIN_THINKING_TOKENS, min(int(budget), cap))

    def url(self) -> str:
        return f"{self.base_url}/v1/messages"

    def headers(self, api_key: str | None) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "Accept": "text/event-stream",
            "anthropic-version": API_VERSION,
            **self.extra_headers,
        }
        if api_key:
            headers["x-api-key"] = api_key
        return headers

    def body(self, request: ProviderRequest) -> dict[str, Any]:
        # Summaries (condense) are asked without thinking, and so without
        # the thinking blocks, which the API refuses when thinking is off.
        thinking = self.thinking_budget is not None and request.purpose == "turn"
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": self.max_tokens,
            "messages": to_anthropic_messages(request.messages, thinking=thinking),
            "stream": True,
        }
        if request.system:
            body["system"] = [{"type": "text", "text": request.system, "cache_control": CACHE_CONTROL}]
        if request.tools:
            body["tools"] = [
                {"name": t["name"], "description": t.get("description", ""), "input_schema": t["parameters"]}
                for t in request.tools
            ]
        if thinking:
            body["thinking"] = {"type": "enabled", "budget_tokens": self.thinking_budget}
            body["temperature"] = 1.0  # the only temperature thinking allows (Roo sends 1.0 too)
        elif self.temperature is not None:
            body["temperature"] = self.temperature
        return body

    def parser(self) -> AnthropicTurnParser:
        return AnthropicTurnParser()


def to_anthropic_messages(messages: list[dict[str, Any]], *, thinking: bool = False) -> list[dict[str, Any]]:
    """The neutral conversation as Messages API turns: tool results become
    ``tool_result`` blocks of a user turn, consecutive same-role messages are
    merged (the API wants user and assistant to alternate, tool results
    first), empty blocks are left out (the API refuses them), and the last
    two user turns get a cache breakpoint. With ``thinking``, an assistant
    turn's thinking blocks lead it, unchanged (their signatures are checked)."""
    out: list[dict[str, Any]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        if not blocks:
            return
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})

    for m in messages:
        role = m["role"]
        if role == "user":
            blocks = [_image_block(url) for url in m.get("images") or []]
            if m.get("content"):
                blocks.insert(0, {"type": "text", "text": m["content"]})
            add("user", blocks)
        elif role == "assistant":
            blocks = [dict(b) for b in m.get("thinking") or []] if thinking else []
            if (m.get("content") or "").strip():
                blocks.append({"type": "text", "text": m["content"]})
            for c in m.get("tool_calls") or []:
                blocks.append({"type": "tool_use", "id": c["id"], "name": c["name"], "input": c.get("args") or {}})
            add("assistant", blocks)
        elif role == "tool":
            content: Any = m["content"]
            if m.get("images"):  # Roo's formatResponse.toolResult: the text, then the images
                content = [{"type": "text", "text": content}, *(_image_block(url) for url in m["images"])]
            block: dict[str, Any] = {"type": "tool_result", "tool_use_id": m["tool_call_id"], "content": content}
            if m.get("is_error"):
                block["is_error"] = True
            add("user", [block])
        else:
            raise ValueError(f"unknown message role {role!r}")
    users = [msg for msg in out if msg["role"] == "user"]
    for msg in users[-CACHED_USER_MESSAGES:]:
        msg["content"][-1] = {**msg["content"][-1], "cache_control": CACHE_CONTROL}
    return out


def _image_block(url: str) -> dict[str, Any]:
    match = _DATA_URL.match(url)
    if match:
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": match["media"], "data": match["data"]},
        }
    return {"type": "image", "source": {"type": "url", "url": url}}


@dataclass
class _Block:
    type: str
    id: str = ""
    name: str = ""
    start_input: dict[str, Any] = field(default_factory=dict)  # the input given at content_block_start
    json_parts: list[str] = field(default_factory=list)  # tool_use input, or thinking text
    signature: str = ""  # thinking
    data: str = ""  # redacted_thinking

    def arguments(self) -> dict[str, Any]:
        """The tool input: the ``input_json_delta`` pieces joined, else the
        start block's ``input`` (``{}`` today; the pieces carry it all)."""
        text = "".join(self.json_parts)
        return parse_arguments(text) if text.strip() else dict(self.start_input)


class AnthropicTurnParser:
    """Chunks from one streamed message."""

    def __init__(self) -> None:
        self.done = False
        self.stop_reason: str | None = None
        self._blocks: dict[int, _Block] = {}
        self._usage: dict[str, int] = {}
        self._started = False

    def feed(self, event: SseEvent) -> list[Chunk]:
        try:
            doc = wire_json.loads(event.data)
        except ValueError:
            raise WireError(f"malformed JSON in the stream: {event.data[:200]!r}", retryable=True) from None
        kind = doc.get("type") or event.event
        if kind == "message_start":
            self._started = True
            self._take_usage((doc.get("message") or {}).get("usage") or {})
        elif kind == "content_block_start":
            block = doc.get("content_block") or {}
            start_input = block.get("input") if isinstance(block.get("input"), dict) else {}
            kept = self._blocks[doc.get("index", 0)] = _Block(
                block.get("type", ""), block.get("id", ""), block.get("name", ""), start_input
            )
            if block.get("type") == "text" and block.get("text"):
                return [TextDelta(block["text"])]
            if block.get("type") == "thinking":
                kept.signature = block.get("signature") or ""
                if block.get("thinking"):
                    kept.json_parts.append(block["thinking"])
                    return [ReasoningDelta(block["thinking"])]
            if block.get("type") == "redacted_thinking":
                kept.data = block.get("data") or ""
        elif kind == "content_block_delta":
            delta = doc.get("delta") or {}
            if delta.get("type") == "text_delta" and delta.get("text"):
                return [TextDelta(delta["text"])]
            if delta.get("type") == "input_json_delta":
                block = self._blocks.get(doc.get("index", 0))
                if block is not None:
                    block.json_parts.append(delta.get("partial_json") or "")
            elif delta.get("type") == "thinking_delta" and delta.get("thinking"):
                block = self._blocks.get(doc.get("index", 0))
                if block is not None:
                    block.json_parts.append(delta["thinking"])
                return [ReasoningDelta(delta["thinking"])]
            elif delta.get("type") == "signature_delta":
                block = self._blocks.get(doc.get("index", 0))
                if block is not None:
                    block.signature += delta.get("signature") or ""
            # citations_delta: not part of the conversation here
        elif kind == "content_block_stop":
            block = self._blocks.pop(doc.get("index", 0), None)
            if block is not None and block.type == "tool_use":
                return [ToolCall(block.id, block.name, block.arguments())]
            if block is not None and block.type == "thinking":
                text = "".join(block.json_parts)
                return [ThinkingBlock({"type": "thinking", "thinking": text, "signature": block.signature})]
            if block is not None and block.type == "redacted_thinking":
                return [ThinkingBlock({"type": "redacted_thinking", "data": block.data})]
        elif kind == "message_delta":
            self.stop_reason = (doc.get("delta") or {}).get("stop_reason") or self.stop_reason
            self._take_usage(doc.get("usage") or {})
        elif kind == "message_stop":
            self.done = True
        elif kind == "error":
            error = doc.get("error") or {}
            etype = error.get("type", "error")
            raise WireError(f"error event: {etype}: {error.get('message', '')}", retryable=etype in RETRYABLE_ERRORS)
        return []  # ping, and event types added to the API later

    def finish(self) -> TokenCounts:
        if not self.done:
            raise WireError("the stream ended before message_stop", retryable=True)
        return self.counts()

    def counts(self) -> TokenCounts:
        u = self._usage
        return TokenCounts(
            tokens_in=u.get("input_tokens", 0),
            tokens_out=u.get("output_tokens", 0),
            cache_reads=u.get("cache_read_input_tokens", 0),
            cache_writes=u.get("cache_creation_input_tokens", 0),
        )

    def _take_usage(self, usage: dict[str, Any]) -> None:
        """Counts in ``message_delta`` are cumulative: a later value replaces an earlier one."""
        for key, value in usage.items():
            if isinstance(value, int):
                self._usage[key] = value
