"""The ``openai`` provider: any OpenAI-compatible Chat Completions endpoint
(OpenAI, OpenRouter, Ollama, vLLM, LM Studio, llama.cpp's server, LiteLLM).

``POST {base_url}/chat/completions`` with ``stream: true`` and
``stream_options: {include_usage: true}``; the answer is SSE ``data:`` lines
of ``chat.completion.chunk`` objects, then ``data: [DONE]``. Text comes as
``delta.content``; tool calls as ``delta.tool_calls`` fragments keyed by
``index``: the first carries ``id`` and ``function.name``, the rest pieces of
``function.arguments`` (a JSON string) to concatenate. Usage arrives in a
last chunk with empty ``choices``.

Reasoning: the profile's ``reasoning_effort`` is sent as is (Roo's
``getOpenAiReasoning``); thinking streams as ``delta.reasoning_content``
(DeepSeek, vLLM, as Roo reads it) or ``delta.reasoning`` (OpenRouter), or
inside a leading ``<think>`` tag in the text (``think_tags.py``), and is
never sent back. Its tokens are part of ``completion_tokens``.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from roo_daemon.engine.providers import wire_json
from roo_daemon.engine.providers.base import Chunk, ProviderRequest, ReasoningDelta, TextDelta, ToolCall
from roo_daemon.engine.providers.caching import add_cache_breakpoints, strategy_for
from roo_daemon.engine.providers.network import HttpProvider, TokenCounts, WireError, parse_arguments
from roo_daemon.engine.providers.retry import is_retryable_status
from roo_daemon.engine.providers.sse import SseEvent
from roo_daemon.engine.providers.think_tags import ThinkTagMatcher

# Error codes a gateway may put in a mid-stream error object that a retry can cure.
_RETRYABLE_ERROR_CODES = frozenset(
    {"server_error", "rate_limit_exceeded", "rate_limit_error", "overloaded", "overloaded_error", "timeout"}
)


class OpenAIProvider(HttpProvider):
    kind = "openai"
    default_base_url = "https://api.openai.com/v1"

    def __init__(self, name: str, profile: dict[str, Any], metrics: Any = None, **kw: Any) -> None:
        super().__init__(name, profile, metrics, **kw)
        # OpenAI's newer models take max_completion_tokens; compatible servers, max_tokens.
        self.max_tokens_param = str(profile.get("max_tokens_param") or "max_tokens")
        self.reasoning_effort: str | None = profile.get("reasoning_effort")
        self.cache_strategy = strategy_for(profile.get("prompt_caching"), self.model)

    def url(self) -> str:
        return f"{self.base_url}/chat/completions"

    def headers(self, api_key: str | None) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream", **self.extra_headers}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        return headers

    def body(self, request: ProviderRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": to_openai_messages(request.system, request.messages),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if self.cache_strategy is not None:
            add_cache_breakpoints(body["messages"], self.cache_strategy)
        if request.tools:
            body["tools"] = [to_openai_tool(t) for t in request.tools]
        if self.max_tokens:
            body[self.max_tokens_param] = self.max_tokens
        if self.temperature is not None:
            body["temperature"] = self.temperature
        if self.reasoning_effort and request.purpose == "turn":
            body["reasoning_effort"] = self.reasoning_effort
        return body

    def parser(self) -> OpenAITurnParser:
        return OpenAITurnParser()


def to_openai_tool(tool: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": tool["name"],
            "description": tool.get("description", ""),
            "parameters": tool["parameters"],
        },
    }


def to_openai_messages(system: str, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The neutral conversation (see ``engine/loop.py``) in Chat Completions form."""
    out: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    # Chat Completions tool messages carry text only: images a tool returned
    # (MCP) follow its run of tool messages as one user message, which the
    # tool's text points to, as Roo-Code words it.
    tool_images: list[str] = []

    def flush_images() -> None:
        if tool_images:
            out.append(
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": u}} for u in tool_images]}
            )
            tool_images.clear()

    for m in messages:
        role = m["role"]
        if role != "tool":
            flush_images()
        if role == "user":
            images = m.get("images") or []
            content: Any = m.get("content", "")
            if images:
                content = [{"type": "text", "text": content}] + [
                    {"type": "image_url", "image_url": {"url": url}} for url in images
                ]
            out.append({"role": "user", "content": content})
        elif role == "assistant":
            calls = m.get("tool_calls") or []
            message: dict[str, Any] = {"role": "assistant", "content": m.get("content") or ("" if not calls else None)}
            if calls:
                message["tool_calls"] = [
                    {
                        "id": c["id"],
                        "type": "function",
                        "function": {"name": c["name"], "arguments": json.dumps(c.get("args") or {})},
                    }
                    for c in calls
                ]
            out.append(message)
        elif role == "tool":
            content = m.get("content", "")
            if m.get("images"):
                tool_images.extend(m["images"])
                content = f"{content}\n(see following user message for image)"
            out.append({"role": "tool", "tool_call_id": m["tool_call_id"], "content": content})
        else:
            raise ValueError(f"unknown message role {role!r}")
    flush_images()
    return out


@dataclass
class _PendingCall:
    id: str
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class OpenAITurnParser:
    """Chunks from one streamed chat completion."""

    def __init__(self) -> None:
        self.done = False
        self.finish_reason: str | None = None
        self._calls: dict[int, _PendingCall] = {}
        self._order: list[int] = []
        self._usage: dict[str, Any] | None = None
        self._flushed = False
        self._think = ThinkTagMatcher()

    def feed(self, event: SseEvent) -> list[Chunk]:
        data = event.data.strip()
        if data == "[DONE]":
            self.done = True
            return self._flush()
        try:
            doc = wire_json.loads(data)
        except ValueError:
            raise WireError(f"malformed JSON in the stream: {data[:200]!r}", retryable=True) from None
        if not isinstance(doc, dict):
            raise WireError(f"unexpected stream data: {data[:200]!r}", retryable=True)
        if doc.get("error"):
            raise _stream_error(doc["error"])
        if doc.get("usage"):
            self._usage = doc["usage"]
        out: list[Chunk] = []
        for choice in doc.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue  # n > 1 is never requested
            delta = choice.get("delta") or {}
            thought = delta.get("reasoning_content") or delta.get("reasoning")
            if thought and isinstance(thought, str):
                out.append(ReasoningDelta(thought))
            if delta.get("content"):
                out += self._text(delta["content"])
            for fragment in delta.get("tool_calls") or []:
                self._add(fragment)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
                out += self._flush()
        return out

    def finish(self) -> TokenCounts:
        # Some compatible servers end the body without [DONE]; a finish_reason
        # still tells a complete answer from a cut one.
        if not self.done and self.finish_reason is None:
            raise WireError("the stream ended before the answer did (no finish_reason, no [DONE])", retryable=True)
        return self.counts()

    def counts(self) -> TokenCounts:
        u = self._usage or {}
        prompt = int(u.get("prompt_tokens") or 0)
        details = u.get("prompt_tokens_details") or {}
        cached = int(details.get("cached_tokens") or u.get("prompt_cache_hit_tokens") or 0)  # the latter: DeepSeek
        cost = u.get("cost")  # OpenRouter
        return TokenCounts(
            tokens_in=max(0, prompt - cached),
            tokens_out=int(u.get("completion_tokens") or 0),
            cache_reads=cached,
            reported_cost_usd=float(cost) if isinstance(cost, int | float) else None,
        )

    def _add(self, fragment: dict[str, Any]) -> None:
        index = fragment.get("index")
        call_id = fragment.get("id")
        if index is None:  # servers that omit it send each call whole, or continue the last one
            known = [i for i in self._order if call_id and self._calls[i].id == call_id]
            index = known[0] if known else self._next_index() if call_id or not self._order else self._order[-1]
        pending = self._calls.get(index)
        if pending is not None and call_id and pending.id != call_id and pending.name:
            # A new id on a used index: a server numbering every call 0. Treat it as a new call.
            index = self._next_index()
            pending = None
        if pending is None:
            pending = self._calls[index] = _PendingCall(id=call_id or f"call_{uuid.uuid4().hex[:24]}")
            self._order.append(index)
        elif call_id:
            pending.id = call_id
        function = fragment.get("function") or {}
        if function.get("name"):
            pending.name = function["name"]
        if function.get("arguments"):
            pending.arguments.append(function["arguments"])

    def _text(self, content: str) -> list[Chunk]:
        """Text, less a leading ``<think>`` region, which is reasoning (as Roo's TagMatcher)."""
        if self._think.plain:
            return [TextDelta(content)]
        return [ReasoningDelta(t) if inside else TextDelta(t) for inside, t in self._think.update(content) if t]

    def _next_index(self) -> int:
        return max(self._order, default=-1) + 1

    def _flush(self) -> list[Chunk]:
        if self._flushed:
            return []
        self._flushed = True
        held: list[Chunk] = [ReasoningDelta(t) if inside else TextDelta(t) for inside, t in self._think.final() if t]
        return held + [
            ToolCall(self._calls[i].id, self._calls[i].name, parse_arguments("".join(self._calls[i].arguments)))
            for i in self._order
        ]


def _stream_error(error: Any) -> WireError:
    if not isinstance(error, dict):
        return WireError(f"error in the stream: {error}", retryable=False)
    code = error.get("code") or error.get("type")
    message = error.get("message") or json.dumps(error)[:300]
    if isinstance(code, int) or (isinstance(code, str) and code.isdigit()):
        retryable = is_retryable_status(int(code))
    else:
        retryable = code in _RETRYABLE_ERROR_CODES
    return WireError(
        f"error in the stream: {code}: {message}" if code else f"error in the stream: {message}", retryable=retryable
    )
