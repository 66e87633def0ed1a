"""The agent loop: request a turn from the provider, stream its text as
events, run its tool calls (with approval), feed the results back, until
``attempt_completion``.

This is the seam's first engine: enough of Roo-Code's Task loop to run any
provider's turns end to end (text, tool calls, approvals, follow-up
questions, todos, request limits, the no-tool-used reminder and the mistake
limit). The full tool set, modes and prompts grow behind the same interface.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from roo_daemon.engine.base import TaskContext, TaskFailure
from roo_daemon.engine.providers.base import Provider, ProviderError, ProviderRequest, TextDelta, ToolCall, Usage
from roo_daemon.engine.tools.base import ToolRegistry

# Roo-Code's reminder after a turn without a tool call (formatResponse.noToolsUsed, abridged).
NO_TOOLS_USED = (
    "[ERROR] You did not use a tool in your previous response! Please retry with a tool use.\n\n"
    "# Next Steps\n\n"
    "If you have completed the user's task, use the attempt_completion tool.\n"
    "If you require additional information from the user, use the ask_followup_question tool.\n"
    "Otherwise, if you have not completed the task and do not need additional information, "
    "then proceed with the next step of the task.\n"
    "(This is an automated message, so do not respond to it conversationally.)"
)


class AgentLoop:
    def __init__(
        self,
        providers: dict[str, Provider],
        tools: ToolRegistry,
        mistake_limit: int = 3,
    ) -> None:
        self.providers = providers
        self.tools = tools
        self.mistake_limit = mistake_limit

    def system_prompt(self, ctx: TaskContext) -> str:
        return (
            f"You are Roo, a highly skilled software engineer, working in {ctx.task.mode} mode.\n"
            f"The workspace is {ctx.session.workspace}. Use exactly one or more tools each turn; "
            "finish with attempt_completion."
        )

    async def run(self, ctx: TaskContext) -> str:
        provider = self.providers.get(ctx.task.provider)
        if provider is None:
            raise TaskFailure("provider_unknown", f"no provider profile named {ctx.task.provider!r}")
        first: dict[str, Any] = {"role": "user", "content": f"<task>\n{ctx.task.prompt}\n</task>"}
        if ctx.images:
            first["images"] = ctx.images
        messages: list[dict[str, Any]] = [first]
        system = self.system_prompt(ctx)
        requests_allowed = ctx.task.limits.get("max_requests")
        requests = mistakes = 0
        while True:
            if requests_allowed is not None and requests >= requests_allowed:
                answer = await ctx.ask(
                    "limit_reached", message=f"The task has made {requests} requests; approve to allow more."
                )
                if not answer.approve:
                    raise TaskFailure("limit_reached", f"request limit of {requests_allowed} reached")
                requests_allowed += ctx.task.limits["max_requests"]
            requests += 1
            text, calls = await self._turn(ctx, provider, ProviderRequest(system, messages, self.tools.specs()))
            messages.append({"role": "assistant", "content": text, "tool_calls": [asdict(c) for c in calls]})
            if not calls:
                mistakes += 1
                messages.append({"role": "user", "content": NO_TOOLS_USED})
            for call in calls:
                outcome = await self.tools.execute(ctx, call)
                if outcome.completed:
                    return outcome.content
                messages.append({"role": "tool", "tool_call_id": call.id, "content": outcome.content})
                mistakes = (
                    mistakes + 1 if outcome.is_error and outcome.content.startswith(("Unknown", "Invalid")) else 0
                )
            if mistakes >= self.mistake_limit:
                answer = await ctx.ask(
                    "mistake_limit",
                    message=f"The model made {mistakes} mistakes in a row. Give guidance to continue, or cancel.",
                )
                if not answer.approve:
                    raise TaskFailure("mistake_limit", "stopped after repeated mistakes")
                mistakes = 0
                if answer.text:
                    messages.append({"role": "user", "content": f"<user_message>\n{answer.text}\n</user_message>"})

    async def _turn(self, ctx: TaskContext, provider: Provider, request: ProviderRequest) -> tuple[str, list[ToolCall]]:
        parts: list[str] = []
        calls: list[ToolCall] = []
        try:
            async for chunk in provider.stream(request):
                if isinstance(chunk, TextDelta):
                    parts.append(chunk.text)
                    ctx.publish("message.delta", {"text": chunk.text})
                elif isinstance(chunk, ToolCall):
                    calls.append(chunk)
                elif isinstance(chunk, Usage):
                    await ctx.add_usage(asdict(chunk))
        except ProviderError as e:
            raise TaskFailure("provider_error", str(e)) from None
        text = "".join(parts)
        if text:
            await ctx.emit("message", {"role": "assistant", "text": text, "provider_kind": provider.kind})
        return text, calls
