"""The agent loop, after Roo-Code's ``Task`` (src/core/task/Task.ts): ask the
provider for a turn, stream its text as events, run its tool calls (mode
rules, approval), feed the results back, until ``attempt_completion``.

Along the way, as Roo does: a turn with no tool call gets the "no tool used"
reminder; consecutive mistakes (bad calls, refused tools, failed edits, no
tool use) up to ``consecutive_mistake_limit`` make the task wait for
guidance (ask kind ``mistake_limit``); a rejected call skips the rest of its
message; ``max_requests`` and ``max_cost_usd`` make it wait (kind
``limit_reached``); messages the client sent while the task worked are given
at the next turn; the conversation is condensed (or cut) to fit the model's
window (``condense.py``).

The conversation and the loop's counters are durable (``conversation.py``,
``task.state``), so the loop can start from any stored point: a new task, a
task continued by the client, one resumed after the daemon stopped, or one
whose ask was answered while no loop was waiting for it (``resume.py``).
"""

from __future__ import annotations

import asyncio
import functools
import random
from dataclasses import asdict
from typing import Any

from roo_daemon.engine.base import TaskContext, TaskFailure
from roo_daemon.engine.coalesce import DEFAULT_WINDOW_SECONDS, DeltaCoalescer
from roo_daemon.engine.condense import MAX_CONTEXT_WINDOW_RETRIES, ContextManager
from roo_daemon.engine.conversation import Conversation
from roo_daemon.engine.environment import environment_details, is_environment_details, makes_no_file_calls
from roo_daemon.engine.modes import Mode, ModeError, available_modes
from roo_daemon.engine.prompts import system_prompt
from roo_daemon.engine.providers.base import (
    Provider,
    ProviderError,
    ProviderRequest,
    ReasoningDelta,
    StreamReset,
    TextDelta,
    ThinkingBlock,
    ToolCall,
    Usage,
)
from roo_daemon.engine.providers.retry import RetryPolicy
from roo_daemon.engine.repetition import ASK_MESSAGE, FEEDBACK, RESULT, repeated
from roo_daemon.engine.responses import too_many_mistakes, tool_error
from roo_daemon.engine.resume import interrupted_results, resumption, steering
from roo_daemon.engine.tools import artifacts, background
from roo_daemon.engine.tools.base import ToolOutcome, ToolRegistry, result_event

# Roo-Code's refusal of attempt_completion after a failed call in the same
# message (AttemptCompletionTool, errors.attempt_completion_tool_failed).
COMPLETION_AFTER_FAILURE = (
    "Cannot execute attempt_completion because a previous tool call failed in this turn. Please address the tool "
    "failure before attempting completion."
)

# Roo-Code's reminder after a turn without a tool call (formatResponse.noToolsUsed,
# with the native-protocol tool instructions reminder).
NO_TOOLS_USED = (
    "[ERROR] You did not use a tool in your previous response! Please retry with a tool use.\n\n"
    "# Reminder: Instructions for Tool Use\n\n"
    "Tools are invoked using the platform's native tool calling mechanism. Each tool requires specific parameters "
    "as defined in the tool descriptions. Refer to the tool definitions provided in your system instructions for "
    "the correct parameter structure and usage examples.\n\n"
    "Always ensure you provide all required parameters for the tool you wish to use.\n\n"
    "# Next Steps\n\n"
    "If you have completed the user's task, use the attempt_completion tool.\n"
    "If you require additional information from the user, use the ask_followup_question tool.\n"
    "Otherwise, if you have not completed the task and do not need additional information, "
    "then proceed with the next step of the task.\n"
    "(This is an automated message, so do not respond to it conversationally.)"
)
# Roo's error when the model answers with neither text nor a tool call.
EMPTY_RESPONSE = (
    "Unexpected API Response: The language model did not provide any assistant messages. This may indicate an "
    "issue with the API or the model's output."
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
        condense_threshold_percent: float = 80,
        checkpoints: Any = None,
    ) -> None:
        self.checkpoints = checkpoints  # roo_daemon.checkpoints.manager.CheckpointManager, or None
        self.providers = providers
        self.tools = tools
        self.metrics = metrics
        self.mistake_limit = mistake_limit
        self.config_modes = config_modes or []
        self.custom_instructions = custom_instructions
        self.delta_window = delta_window
        self.context = ContextManager(condense_threshold_percent)
        self._rng = random.Random()  # backoff jitter before an empty response is retried

    async def run(self, ctx: TaskContext) -> str:
        """Carry the task out; whatever it left running in the background
        is killed when this returns, fails or is cancelled (its end, as Roo
        disposes of a task's terminals), and its command-output artifacts go."""
        try:
            return await self._run(ctx)
        finally:
            await asyncio.shield(background.end_task(ctx.task.id))
            await asyncio.shield(artifacts.remove_task(ctx.settings, ctx.task.id))

    async def _run(self, ctx: TaskContext) -> str:
        provider = self.providers.get(ctx.task.provider)
        if provider is None:
            raise TaskFailure("provider_unknown", f"no provider profile named {ctx.task.provider!r}")
        ctx.supports_images = bool(getattr(provider, "supports_images", False))
        try:
            ctx.modes = await asyncio.to_thread(available_modes, self.config_modes, ctx.session.workspace)
        except ModeError as e:
            raise TaskFailure("bad_modes", str(e)) from None
        state = ctx.task.state
        limits = ctx.task.limits
        state.setdefault("requests", 0)
        state.setdefault("mistakes", 0)
        state.setdefault("max_requests", limits.get("max_requests"))
        state.setdefault("max_cost_usd", limits.get("max_cost_usd"))
        conv = await ctx.load_conversation()
        if conv.empty:  # a new task (or one from a release that stored no conversation: it starts over)
            state.pop("answer", None)
            state.pop("resume", None)
            await self._first_message(ctx, provider, conv)
            await self._started(ctx, conv)
            return await self._loop(ctx, provider, conv, resumed=False)
        await self._started(ctx, conv)  # before a resumed call runs again
        result = await self._resume(ctx, conv)
        if result is not None:
            return result
        return await self._loop(ctx, provider, conv, resumed=True)

    async def _environment(self, ctx: TaskContext, provider: Provider, listing: bool) -> str:
        """Roo's environment details for the next user turn: off the loop with
        the file listing (it walks the workspace); a later turn's block is a
        few strings, made on the loop (a thread hop on every turn cost more
        than making it: bench/engine.py's per-turn overhead)."""
        terminals = background.report(ctx.task.id)  # on the loop: it takes their new output
        details = functools.partial(
            environment_details,
            self._mode(ctx),
            ctx.session.workspace,
            listing,
            model=provider.model,
            cost_usd=ctx.task.usage.get("cost_usd"),
            todos=ctx.task.todos,
            terminals=terminals,
        )
        return details() if makes_no_file_calls(listing) else await asyncio.to_thread(details)

    async def _first_message(self, ctx: TaskContext, provider: Provider, conv: Conversation) -> None:
        details = await self._environment(ctx, provider, True)
        first: dict[str, Any] = {
            "role": "user",
            "content": f"<task>\n{ctx.task.prompt}\n</task>\n\n{details}",
            "source": "user",
        }
        if ctx.images:
            first["images"] = ctx.images
        ctx.record([conv.add(first)])

    async def _resume(self, ctx: TaskContext, conv: Conversation) -> str | None:
        """Pick the stored conversation up where it stopped. An answer to the
        ask a call was waiting on (given while no loop waited for it) lets that
        call and the ones after it run; otherwise the calls left open get
        Roo's "interrupted" result and the model gets the resumption note,
        with the messages the client sent to continue the task."""
        state = ctx.task.state
        reason = state.pop("resume", None)
        calls = conv.open_calls()
        answer = state.get("answer")
        if answer is not None and answer.get("call_id") in ({c["id"] for c in calls} if calls else {None}):
            return await self._run_calls(ctx, conv, [ToolCall(c["id"], c["name"], c["args"]) for c in calls])
        state.pop("answer", None)  # an answer to nothing still open: the resumption note instead
        inbox = await ctx.inbox()
        if reason is None and not calls and not inbox:
            return None  # stopped at a turn boundary with nothing to add (a queued task restarted)
        rows = [conv.add(m) for m in interrupted_results(calls)]
        rows.append(conv.add(resumption(conv.last_ts, [doc for _, doc in inbox])))
        ctx.record(rows, consumed=[seq for seq, _ in inbox], state=True)
        return None

    async def _loop(self, ctx: TaskContext, provider: Provider, conv: Conversation, *, resumed: bool) -> str:
        """Turn after turn. Each user turn ends with fresh environment details
        (Roo's getEnvironmentDetails); the first of a resumed or continued
        run also lists the workspace, as Roo's first request of a run does."""
        state = ctx.task.state
        prompt_key: tuple[str, bool] | None = None
        system = ""
        details_due, listing = resumed, resumed  # a new task's first message has them already
        while True:
            await self._boundary_asks(ctx, conv)
            inbox = await ctx.inbox()
            if inbox:
                ctx.record([conv.add(steering([doc for _, doc in inbox]))], consumed=[seq for seq, _ in inbox])
            mode = self._mode(ctx)
            if details_due and not is_environment_details(conv.messages[-1]):
                details = await self._environment(ctx, provider, listing)
                ctx.record([conv.add({"role": "user", "content": details, "source": "engine"})])
                listing = False
            details_due = False  # an empty response is retried as it was: no second block
            tools = await self.tools.specs_for(ctx, mode)  # the daemon's tools and the task's MCP tools
            mcp = len(tools) > len(self.tools.specs(mode))  # MCP tools are the only dynamic ones
            if (mode.slug, mcp) != prompt_key:  # first turn, after switch_mode, or MCP tools came or went
                system = await asyncio.to_thread(
                    system_prompt, mode, ctx.modes, ctx.session.workspace, self.custom_instructions, mcp
                )
                prompt_key = (mode.slug, mcp)
            await self.context.fit(ctx, provider, conv, system, tools)
            text, calls, usage, thinking = await self._request(ctx, provider, conv, system, tools)
            if not text and not calls:
                await self._empty_response(ctx, provider)
                continue
            state["empty_responses"] = 0
            message = {
                "role": "assistant",
                "content": text,
                "tool_calls": [asdict(c) for c in calls],
                "source": "model",
            }
            if thinking:  # Anthropic's signed thinking blocks: sent back with this turn (providers/anthropic.py)
                message["thinking"] = thinking
            row = conv.add(message)
            details_due = True  # what follows this turn (results, reminders) is a new user turn
            self.context.after_turn(conv, usage)
            event = ("message", {"role": "assistant", "text": text, "provider_kind": provider.kind}) if text else None
            ctx.record([row], event, state=True)
            if not calls:
                # Roo's grace: the first turn without a tool only gets the
                # reminder; from the second in a row each counts as a mistake.
                state["no_tool_turns"] = state.get("no_tool_turns", 0) + 1
                if state["no_tool_turns"] >= 2:
                    state["mistakes"] += 1
                ctx.record([conv.add({"role": "user", "content": NO_TOOLS_USED, "source": "engine"})], state=True)
                continue
            state["no_tool_turns"] = 0
            result = await self._run_calls(ctx, conv, calls)
            if result is not None:
                return result

    async def _request(
        self, ctx: TaskContext, provider: Provider, conv: Conversation, system: str, tools: list[dict[str, Any]]
    ) -> tuple[str, list[ToolCall], Usage | None, list[dict[str, Any]]]:
        """One model turn. A provider error saying the context is too long
        forces a condense (or a cut) and a retry, up to Roo's three times."""
        turn = ctx.task.state["requests"]
        ctx.task.state["requests"] = turn + 1
        for attempt in range(MAX_CONTEXT_WINDOW_RETRIES + 1):
            request = ProviderRequest(system, conv.messages, tools, turn=turn)
            try:
                return await self._turn(ctx, provider, request)
            except ProviderError as e:
                if not getattr(e, "context_exceeded", False) or attempt == MAX_CONTEXT_WINDOW_RETRIES:
                    raise TaskFailure("provider_error", str(e)) from None
                await self.context.fit(ctx, provider, conv, system, tools, forced=True)
        raise AssertionError("unreachable")

    async def _empty_response(self, ctx: TaskContext, provider: Provider) -> None:
        """A turn with neither text nor a tool call is not stored and not a
        mistake: the same request is sent again after the provider's
        backoff, as Roo retries it. Unlike Roo (which retries forever when
        auto-approving), the provider's ``max_retries`` bounds it."""
        state = ctx.task.state
        failures = state.get("empty_responses", 0) + 1
        state["empty_responses"] = failures
        policy = getattr(provider, "retry", None) or RetryPolicy(backoff_base_seconds=0)
        if failures > policy.max_retries:
            state["empty_responses"] = 0
            raise TaskFailure("empty_response", f"{EMPTY_RESPONSE} (after {failures} attempts)")
        ctx.publish("message.reset", {"reason": "empty response: the request is sent again"})
        await asyncio.sleep(policy.backoff(failures - 1, self._rng))

    async def _boundary_asks(self, ctx: TaskContext, conv: Conversation) -> None:
        """Between turns: the mistake limit, then the request and cost limits."""
        state, limits = ctx.task.state, ctx.task.limits
        if self.mistake_limit > 0 and state["mistakes"] >= self.mistake_limit:  # 0: unlimited, as in Roo
            guidance = await self._mistake_limit(ctx, state["mistakes"])
            state["mistakes"] = 0
            if guidance:
                message = {"role": "user", "content": too_many_mistakes(guidance), "source": "user"}
                ctx.record([conv.add(message)], state=True)
        max_requests, max_cost = state["max_requests"], state["max_cost_usd"]
        if max_requests is not None and state["requests"] >= max_requests:
            await self._limit(ctx, f"The task has made {state['requests']} requests (limit {max_requests}).")
            state["max_requests"] = max_requests + (limits.get("max_requests") or max_requests)
        cost = ctx.task.usage["cost_usd"]
        if max_cost is not None and cost >= max_cost:
            await self._limit(ctx, f"The task has cost ${cost:.4f} (limit ${max_cost}).")
            state["max_cost_usd"] = max_cost + (limits.get("max_cost_usd") or max_cost)

    async def _run_calls(self, ctx: TaskContext, conv: Conversation, calls: list[ToolCall]) -> str | None:
        """Run a message's calls in order, each result stored with its
        ``tool.result`` event; the completion's result ends the task."""
        state = ctx.task.state
        denied = False
        failed = False  # Roo's didToolFailInCurrentTurn: a call of this message failed
        feedback: list[str] = []  # the client's guidance after a repeated call
        for call in calls:
            ran = not denied
            if denied:
                outcome = await self.tools.skip(ctx, call, SKIPPED.format(call.name))
            elif failed and call.name == "attempt_completion":
                # A failure must not become a completed task in the same message
                # (Roo's AttemptCompletionTool): the model is told and goes on.
                ran = False
                outcome = await self.tools.skip(ctx, call, tool_error(COMPLETION_AFTER_FAILURE))
            elif await self._repeated(ctx, call, feedback):
                ran = False
                outcome = await self.tools.skip(ctx, call, tool_error(RESULT.format(call.name)))
            else:
                outcome = await self.tools.execute(ctx, call, self._mode(ctx))
                self._count(call.name, outcome)
            if outcome.completed:  # reported, not stored: a continuation answers this call as interrupted
                ctx.publish("tool.result", result_event(call, outcome))
                return outcome.content
            denied = denied or outcome.denied
            failed = failed or (ran and outcome.is_error and not outcome.denied)
            message = {
                "role": "tool",
                "tool_call_id": call.id,
                "name": call.name,
                "content": outcome.content,
                "is_error": outcome.is_error,
                "source": "tool",
                **({"images": outcome.images} if outcome.images else {}),  # an MCP tool's images
            }
            ctx.record([conv.add(message)], ("tool.result", result_event(call, outcome)))
            if ran and not outcome.denied:  # it ran: it may have changed files
                await self._checkpoint(ctx, call, conv)
            if outcome.mistake:
                state["mistakes"] += 1
            elif not outcome.is_error:
                state["mistakes"] = 0
        if feedback:  # after the results: tool messages must follow their calls
            rows = [conv.add({"role": "user", "content": FEEDBACK.format(text), "source": "user"}) for text in feedback]
            ctx.record(rows)
        return None

    async def _repeated(self, ctx: TaskContext, call: ToolCall, feedback: list[str]) -> bool:
        """Roo's ToolRepetitionDetector: one identical call too many is not
        run; the client is asked (kind ``mistake_limit``) whether to go on,
        with guidance in ``text``; a rejection fails the task."""
        tool, _ = await self.tools.find(ctx, call.name)
        if tool is None or not repeated(ctx.task.state, call, self.mistake_limit):
            return False  # an unknown tool is refused before Roo's check too
        answer = await ctx.ask("mistake_limit", message=ASK_MESSAGE.format(call.name), tool=call.name)
        if not answer.approve:
            raise TaskFailure("mistake_limit", f"stopped: the model repeated the same {call.name} call")
        if answer.text:
            feedback.append(answer.text)
        return True

    async def _started(self, ctx: TaskContext, conv: Conversation) -> None:
        """The task's starting point, for its checkpoints (each records the
        conversation row it follows: where a restore of files and
        conversation cuts)."""
        if self.checkpoints is not None:
            await self.checkpoints.task_started(ctx, conv.next_n - 1)

    async def _checkpoint(self, ctx: TaskContext, call: ToolCall, conv: Conversation) -> None:
        """After a call of a tool that may change files, stored with its result."""
        if self.checkpoints is None:
            return
        tool, _ = await self.tools.find(ctx, call.name)  # an MCP tool included
        if tool is not None and tool.changes_files:
            await self.checkpoints.after_tool(ctx, call.name, call.id, conv.next_n - 1)

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
        name = self.tools.metric_label(tool)  # model-chosen names: keep labels bounded
        result = "denied" if outcome.denied else "error" if outcome.is_error else "ok"
        self.metrics.tool_calls.labels(name, result).inc()

    async def _turn(
        self, ctx: TaskContext, provider: Provider, request: ProviderRequest
    ) -> tuple[str, list[ToolCall], Usage | None, list[dict[str, Any]]]:
        """Stream one answer. Nothing of it is stored until it is whole: a
        stream that breaks for good leaves the conversation as it was. The
        model's thinking streams as ``message.reasoning`` events, to every
        subscriber of the task like ``message.delta`` (the log is one
        replayable order for all); it is not part of the answer's text."""
        parts: list[str] = []
        calls: list[ToolCall] = []
        thinking: list[dict[str, Any]] = []
        usage: Usage | None = None
        deltas = DeltaCoalescer(ctx.publish, self.delta_window)
        thoughts = DeltaCoalescer(ctx.publish, self.delta_window, event="message.reasoning")
        try:
            async for chunk in provider.stream(request):
                if isinstance(chunk, TextDelta):
                    thoughts.flush()  # events in the stream's order
                    parts.append(chunk.text)
                    deltas.add(chunk.text)
                    await ctx.flow_control()
                    continue
                deltas.flush()
                if isinstance(chunk, ReasoningDelta):
                    thoughts.add(chunk.text)
                    await ctx.flow_control()
                    continue
                thoughts.flush()
                if isinstance(chunk, ThinkingBlock):
                    thinking.append(chunk.block)
                elif isinstance(chunk, ToolCall):
                    calls.append(chunk)
                elif isinstance(chunk, Usage):
                    usage = chunk
                    await ctx.add_usage(asdict(chunk))
                elif isinstance(chunk, StreamReset):
                    # The provider restarts a broken stream: forget this turn's
                    # partial output so nothing is duplicated in the history.
                    parts.clear()
                    calls.clear()
                    thinking.clear()
                    ctx.publish("message.reset", {"reason": chunk.reason})
        except BaseException:
            deltas.discard()
            thoughts.discard()
            raise
        thoughts.flush()
        deltas.flush()
        return "".join(parts), calls, usage, thinking
