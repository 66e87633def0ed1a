"""Keeping a long conversation inside the model's window: condensing, as
Roo-Code does it (src/core/condense, src/core/context-management).

Before each request the loop asks :meth:`ContextManager.fit` whether the
request would pass ``engine.condense_threshold_percent`` of the window (or
the window less its buffer and reserved output). If so, the task's own
provider is asked for a summary of the older conversation with Roo's
condensing prompts (``condense_prompts.py``); the summary replaces it, while
the first message (the task) and the most recent turns stay verbatim. If the
summary cannot be had (an error, an empty answer, a summary no smaller than
what it replaces), the older half is hidden instead, with Roo's truncation
notice in its place. A provider error that says the context is too long
forces one of these and a retry (``loop.py``), up to Roo's three times.

The size of the next request is the last request's tokens (from the
provider's usage) plus an estimate of what was added since (tool results can
be large); without usage, an estimate of the whole request.

Unlike Roo's current "fresh start" condensing (the summary alone), the
summary sits between the first message and the recent turns, as Roo's
earlier condensing did: the task's own words are never paraphrased.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from typing import Any

from roo_daemon.engine import context_window
from roo_daemon.engine.base import TaskContext
from roo_daemon.engine.condense_prompts import CONDENSE, SUMMARY_PROMPT
from roo_daemon.engine.conversation import Conversation, estimate_text, estimate_tokens
from roo_daemon.engine.providers.base import Provider, ProviderError, ProviderRequest, TextDelta, Usage

log = logging.getLogger("roo_daemon.engine")
MAX_CONTEXT_WINDOW_RETRIES = 3  # Roo's, on a context-window error
FORCED_CONTEXT_REDUCTION_PERCENT = 75  # Roo's threshold when a provider said the context is too long
N_MESSAGES_TO_KEEP = 3  # the most recent messages kept verbatim (as whole turns)
TRUNCATION_NOTICE = "[Sliding window truncation: {} messages hidden to reduce context]"
DEFERRED = "Context condensation triggered. Tool execution deferred."


def tool_call_text(call: dict[str, Any]) -> str:
    """Roo's ``toolUseToText``: a call as text, so the summary request needs no tools."""
    args = call.get("args") or {}
    lines = [f"{k}: {json.dumps(v, indent=2) if isinstance(v, dict | list) else v}" for k, v in args.items()]
    return f"[Tool Use: {call['name']}]\n" + "\n".join(lines)


def as_text(message: dict[str, Any]) -> dict[str, Any]:
    """A message for the summary request: tool calls and results as text
    (Roo's ``transformMessagesForCondensing``), images left out."""
    role = message["role"]
    if role == "tool":
        suffix = " (Error)" if message.get("is_error") else ""
        return {"role": "user", "content": f"[Tool Result{suffix}]\n{message.get('content', '')}"}
    text = message.get("content") or ""
    if role == "assistant":
        text = "\n".join([text, *(tool_call_text(c) for c in message.get("tool_calls") or [])]).strip()
    return {"role": role, "content": text}


class ContextManager:
    def __init__(self, threshold_percent: float = 80) -> None:
        self.threshold = threshold_percent
        # (usage total, view estimate) right after the last request: the next
        # request is that usage plus whatever the view grew by since.
        self._base: tuple[int, int] | None = None

    def after_turn(self, conv: Conversation, usage: Usage | None) -> None:
        """After a turn's answer is in the view: the provider's count of it."""
        if usage is None:
            self._base = None
            return
        total = usage.tokens_in + usage.tokens_out + usage.cache_reads + usage.cache_writes
        self._base = (total, conv.tokens) if total else None

    def estimate(self, conv: Conversation, system: str, tools: list[dict[str, Any]]) -> int:
        if self._base is not None:
            total, then = self._base
            return total + max(0, conv.tokens - then)
        return conv.tokens + estimate_text(system) + estimate_text(json.dumps(tools))

    async def fit(
        self,
        ctx: TaskContext,
        provider: Provider,
        conv: Conversation,
        system: str,
        tools: list[dict[str, Any]],
        *,
        forced: bool = False,
    ) -> None:
        """Condense (or cut) the view if the next request would not fit.
        ``forced``: the provider said it did not; reduce whatever the estimate."""
        window = getattr(provider, "context_window", None)
        if not window:
            return
        tokens = self.estimate(conv, system, tools)
        allowed = context_window.allowed_tokens(window, getattr(provider, "max_tokens", None))
        threshold = FORCED_CONTEXT_REDUCTION_PERCENT if forced else self.threshold
        if not forced and 100 * tokens / window < threshold and tokens <= allowed:
            return
        failure = await self._condense(ctx, provider, conv, tokens)
        if failure is None:
            return
        log.info("task %s: condensing failed (%s)", ctx.task.id, failure)
        if forced or tokens > allowed:
            self._truncate(ctx, conv, tokens, window, failure)

    async def _condense(self, ctx: TaskContext, provider: Provider, conv: Conversation, tokens: int) -> str | None:
        """Replace the older turns by a summary; None when done, else why not."""
        keep = context_window.keep_point(conv.messages, N_MESSAGES_TO_KEEP)
        if keep == 0:
            return "not enough messages to condense"
        older = conv.messages[:keep]
        request = ProviderRequest(
            SUMMARY_PROMPT,
            [*(as_text(m) for m in _answered(older)), {"role": "user", "content": CONDENSE}],
            [],
            turn=ctx.task.state.get("requests", 0),
            purpose="condense",
        )
        parts: list[str] = []
        cost = 0.0
        try:
            async for chunk in provider.stream(request):
                if isinstance(chunk, TextDelta):
                    parts.append(chunk.text)
                elif isinstance(chunk, Usage):
                    cost = chunk.cost_usd
                    await ctx.add_usage(asdict(chunk))  # the summary's cost is the task's
        except ProviderError as e:
            return str(e)[:500]
        summary = "".join(parts).strip()
        if not summary:
            return "the summary was empty"
        marker = {"role": "user", "content": f"## Conversation Summary\n{summary}", "source": "engine"}
        after = tokens - sum(estimate_tokens(m) for m in older[1:]) + estimate_tokens(marker)
        if after >= tokens:
            return "the summary was no smaller than what it replaced"
        row = conv.replace_older(keep, marker, "condensed")
        marker.update(tokens_before=tokens, tokens_after=after, cost_usd=cost)
        self._base = None
        data = {
            "tokens_before": tokens,
            "tokens_after": after,
            "cost_usd": cost,
            "removed_messages": keep - 1,
            "message_n": row.n,
        }
        ctx.record([row], ("context.condensed", data), state=True)
        return None

    def _truncate(self, ctx: TaskContext, conv: Conversation, tokens: int, window: int, why: str) -> None:
        point = context_window.truncation_point(conv.messages)
        if point == 0:
            return
        removed = point - 1
        marker = {"role": "user", "content": TRUNCATION_NOTICE.format(removed), "source": "engine"}
        row = conv.replace_older(point, marker, "truncated")
        self._base = None
        data = {
            "removed_messages": removed,
            "context_tokens": tokens,
            "context_window": window,
            "message_n": row.n,
            "condense_error": why,
        }
        ctx.record([row], ("context.truncated", data), state=True)


def _answered(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Roo's ``injectSyntheticToolResults``: a result for any call without one."""
    called = [c["id"] for m in messages if m["role"] == "assistant" for c in m.get("tool_calls") or []]
    done = {m.get("tool_call_id") for m in messages if m["role"] == "tool"}
    open_ids = [i for i in called if i not in done]
    return messages + [{"role": "tool", "tool_call_id": i, "content": DEFERRED} for i in open_ids]
