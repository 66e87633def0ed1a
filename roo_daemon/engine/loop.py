"""The agent loop, after Roo-Code's ``Task`` (src/core/task/Task.ts): ask the
provider for a turn, stream its text as events, run its tool calls (mode
rules, approval), feed the results back, until ``attempt_completion``.

Along the way, as Roo does: a turn with no tool call gets the "no tool used"
reminder; consecutive mistakes (bad calls, refused tools, failed edits, no
tool use) up to ``consecutive_mistake_limit`` make the task wait for
guidance (ask kind ``mistake_limit``); a rejected call skips the rest of its
message; ``max_requests`` and ``max_cost_usd`` make it wait (kind
``limit_reached``); the conversation is cut to fit the model's window.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Any

from roo_daemon.engine import context_window
from roo_daemon.engine.base import TaskContext, TaskFailure
from roo_daemon.engine.coalesce import DEFAULT_WINDOW_SECONDS, DeltaCoalescer
from roo_daemon.engine.modes import Mode, ModeError, available_modes
from roo_daemon.engine.prompts import environment_details, system_prompt
from roo_daemon.engine.providers.base import (
    Provider,
    ProviderError,
    ProviderRequest,
    StreamReset,
    TextDelta,
    ToolCall,
    Usage,
)
from roo_daemon.engine.tools.base import ToolOutcome, ToolRegistry

# Roo-Code's reminder after a turn without a tool call (formatResponse.noToolsUsed).
NO_TOOLS_USED = (
    "[ERROR] You did not use a tool in your previous response! Please retry with a tool use.\n\n"
    "# Next Steps\n\n"
    "If you have completed the user's task, use the attempt_completion tool.\n"
    "If you require additional information from the user, use the ask_followup_question tool.\n"
    "Otherwise, if you have not completed the task and do not need additional information, "
    "then proceed with the next step of the task.\n"
    "(This is an automated message, so do not respond to it conversationally.)"
)
SKIPPED = "Skipping tool {} due to user rejecting a previous tool."


class AgentLoop:
    def __init__(
        self,
        providers: dict[str, Provider],
        tools: ToolRegistry,
        *,
        metrics: Any = None,
        mistake_limit: int = 3,
        config_modes: list[dict[str, Any]] | None = None,
        custom_instructions: str = "",
        delta_window: float = DEFAULT_WINDOW_SECONDS,
    ) -> None:
        self.providers = providers
        self.tools = tools
        self.metrics = metrics
        self.mistake_limit = mistake_limit
        self.config_modes = config_modes or []
        self.custom_instructions = custom_instructions
        self.delta_window = delta_window

    async def run(self, ctx: TaskContext) -> str:
        provider = self.providers.get(ctx.task.provider)
        if provider is None:
            raise TaskFailure("provider_unknown", f"no provider profile named {ctx.task.provider!r}")
        workspace = ctx.session.workspace
        try:
            ctx.modes = await asyncio.to_thread(available_modes, self.config_modes, workspace)
        except ModeError as e:
            raise TaskFailure("bad_modes", str(e)) from None
        mode = self._mode(ctx)
        details = await asyncio.to_thread(environment_details, mode, workspace, True)
        first: dict[str, Any] = {"role": "user", "content": f"<task>\n{ctx.task.prompt}\n</task>\n\n{details}"}
        if ctx.images:
            first["images"] = ctx.images
        messages: list[dict[str, Any]] = [first]
        limits = ctx.task.limits
        max_requests, max_cost = limits.get("max_requests"), limits.get("max_cost_usd")
        requests = mistakes = last_tokens = 0
        prompt_mode: str | None = None
        system = ""
        while True:
            if max_requests is not None and requests >= max_requests:
                await self._limit(ctx, f"The task has made {requests} requests (limit {max_requests}).")
                max_requests += limits["max_requests"]
            if max_cost is not None and ctx.task.usage["cost_usd"] >= max_cost:
                await self._limit(ctx, f"The task has cost ${ctx.task.usage['cost_usd']:.4f} (limit ${max_cost}).")
                max_cost += limits["max_cost_usd"]
            mode = self._mode(ctx)
            if mode.slug != prompt_mode:  # first turn, or after switch_mode
                system = await asyncio.to_thread(system_prompt, mode, ctx.modes, workspace, self.custom_instructions)
                prompt_mode = mode.slug
            window = getattr(provider, "context_window", None)
            if context_window.needs_truncation(last_tokens, window, getattr(provider, "max_tokens", None)):
                messages, removed = context_window.truncate(messages)
                if removed:
                    ctx.publish(
                        "context.truncated",
                        {"removed_messages": removed, "context_tokens": last_tokens, "context_window": window},
                    )
            request = ProviderRequest(system, messages, self.tools.specs(mode), turn=requests)
            requests += 1
            text, calls, usage = await self._turn(ctx, provider, request)
            if usage is not None:
                last_tokens = usage.tokens_in + usage.tokens_out + usage.cache_reads + usage.cache_writes
            messages.append({"role": "assistant", "content": text, "tool_calls": [asdict(c) for c in calls]})
            if not calls:
                mistakes += 1
                messages.append({"role": "user", "content": NO_TOOLS_USED})
            denied = False
            for call in calls:
                if denied:
                    outcome = await self.tools.skip(ctx, call, SKIPPED.format(call.name))
                else:
                    outcome = await self.tools.execute(ctx, call, self._mode(ctx))
                    self._count(call.name, outcome)
                if outcome.completed:
                    return outcome.content
                denied = denied or outcome.denied
                messages.append(
                    {
                        "role": "tool",
                        "tool_call_id": call.id,
                        "name": call.name,
                        "content": outcome.content,
                        "is_error": outcome.is_error,
                    }
                )
                if outcome.mistake:
                    mistakes += 1
                elif not outcome.is_error:
                    mistakes = 0
            if mistakes >= self.mistake_limit:
                guidance = await self._mistake_limit(ctx, mistakes)
                mistakes = 0
                if guidance:
                    messages.append({"role": "user", "content": f"<user_message>\n{guidance}\n</user_message>"})

    def _mode(self, ctx: TaskContext) -> Mode:
        mode = ctx.modes.get(ctx.task.mode)
        if mode is None:
            raise TaskFailure("mode_unknown", f"no mode named {ctx.task.mode!r} (available: {', '.join(ctx.modes)})")
        return mode

    async def _limit(self, ctx: TaskContext, message: str) -> None:
        answer = await ctx.ask("limit_reached", message=f"{message} Approve to continue.")
        if not answer.approve:
            raise TaskFailure("limit_reached", message)

    async def _mistake_limit(self, ctx: TaskContext, mistakes: int) -> str | None:
        answer = await ctx.ask(
            "mistake_limit",
            message=f"The model made {mistakes} mistakes in a row. Approve (with guidance in text) to continue.",
        )
        if not answer.approve:
            raise TaskFailure("mistake_limit", f"stopped after {mistakes} consecutive mistakes")
        return answer.text

    def _count(self, tool: str, outcome: ToolOutcome) -> None:
        if self.metrics is None:
            return
        name = tool if tool in self.tools.tools else "unknown"  # model-chosen names: keep labels bounded
        result = "denied" if outcome.denied else "error" if outcome.is_error else "ok"
        self.metrics.tool_calls.labels(name, result).inc()

    async def _turn(
        self, ctx: TaskContext, provider: Provider, request: ProviderRequest
    ) -> tuple[str, list[ToolCall], Usage | None]:
        parts: list[str] = []
        calls: list[ToolCall] = []
        usage: Usage | None = None
        deltas = DeltaCoalescer(ctx.publish, self.delta_window)
        try:
            async for chunk in provider.stream(request):
                if isinstance(chunk, TextDelta):
                    parts.append(chunk.text)
                    deltas.add(chunk.text)
                    await ctx.flow_control()
                    continue
                deltas.flush()
                if isinstance(chunk, ToolCall):
                    calls.append(chunk)
                elif isinstance(chunk, Usage):
                    usage = chunk
                    await ctx.add_usage(asdict(chunk))
                elif isinstance(chunk, StreamReset):
                    # The provider restarts a broken stream: forget this turn's
                    # partial output so nothing is duplicated in the history.
                    parts.clear()
                    calls.clear()
                    ctx.publish("message.reset", {"reason": chunk.reason})
        except ProviderError as e:
            deltas.discard()
            raise TaskFailure("provider_error", str(e)) from None
        except BaseException:
            deltas.discard()
            raise
        deltas.flush()
        text = "".join(parts)
        if text:
            ctx.publish("message", {"role": "assistant", "text": text, "provider_kind": provider.kind})
        return text, calls, usage
