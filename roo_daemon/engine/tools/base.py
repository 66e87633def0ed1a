"""The tool interface, the registry, and the approval step every call passes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import jsonschema

from roo_daemon.engine.base import TaskContext
from roo_daemon.engine.calls import current_call_id
from roo_daemon.engine.providers.base import ToolCall
from roo_daemon.engine.responses import missing_parameter, tool_denied, tool_denied_with_feedback, tool_error


@dataclass
class ToolOutcome:
    content: str
    is_error: bool = False
    completed: bool = False  # attempt_completion: the task is done, ``content`` is the result
    mistake: bool = False  # counts toward the consecutive-mistake limit (bad call, refused tool, failed edit)
    denied: bool = False  # the user rejected it: the rest of the message's calls are skipped
    images: list[str] = field(default_factory=list)  # data URLs shown to the model after the text (MCP results)


def result_event(call: ToolCall, outcome: ToolOutcome) -> dict[str, Any]:
    """The ``tool.result`` event's data; the loop stores it with the result
    message (the event's content is capped, the stored message is whole)."""
    return {"id": call.id, "tool": call.name, "is_error": outcome.is_error, "content": outcome.content[:4000]}


class ToolError(Exception):
    """A tool's failure that the model should see (not a daemon failure)."""


class ToolDenied(ToolError):
    """Refused by policy without asking (Roo's auto-deny): the model sees it
    as a denial, and the rest of the message's calls are skipped, as after a
    user's rejection (Roo's ``didRejectTool``)."""


@dataclass
class Tool:
    name: str
    group: str  # read, edit, command, modes, or control (always allowed)
    description: str
    parameters: dict[str, Any]
    run: Callable[[TaskContext, dict[str, Any]], Awaitable[ToolOutcome]]
    # Builds the ask payload for approval, or None when no approval is needed.
    approval: Callable[[TaskContext, dict[str, Any]], Awaitable[dict[str, Any] | None]] | None = None
    # May change files in the workspace: a checkpoint follows each call.
    # None: the edit and command tools do; an MCP tool says so itself.
    changes_files: bool | None = None

    def __post_init__(self) -> None:
        if self.changes_files is None:
            self.changes_files = self.group in ("edit", "command")
        self._validator = jsonschema.Draft202012Validator(self.parameters)

    def check(self, args: dict[str, Any]) -> str | None:
        error = jsonschema.exceptions.best_match(self._validator.iter_errors(args))
        if error is None:
            return None
        if error.validator == "required" and not error.absolute_path and isinstance(error.instance, dict):
            missing = [name for name in error.validator_value if name not in error.instance]
            if missing:  # Roo's missingToolParameterError
                return missing_parameter(missing[0])
        where = "/".join(map(str, error.absolute_path))
        return f"{where + ': ' if where else ''}{error.message}"

    def spec(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "parameters": self.parameters}


class ToolSource(Protocol):
    """Tools that exist per task, not per daemon (MCP servers' tools): what
    a task may call depends on its session and on servers that come and go."""

    async def tools(self, ctx: TaskContext) -> list[Tool]:
        """The tools to offer this task's next request."""

    async def resolve(self, ctx: TaskContext, name: str) -> Tool | None:
        """The tool a call names, if this source knows it (offered or not)."""

    def metric_label(self, name: str) -> str | None:
        """A bounded ``tool_calls_total`` label for ``name``, if it is this source's."""


class ToolRegistry:
    def __init__(self, tools: list[Tool], sources: Sequence[ToolSource] = ()) -> None:
        self.tools = {t.name: t for t in tools}
        self.sources = list(sources)
        self._specs: dict[Any, list[dict[str, Any]]] = {}

    def specs(self, mode: Any = None) -> list[dict[str, Any]]:
        """Tool definitions for the provider: only those the mode allows.
        Cached per mode: every request of every task asks for them."""
        key = None if mode is None else (mode.slug, mode.groups)
        cached = self._specs.get(key)
        if cached is None:
            cached = self._specs[key] = [t.spec() for t in self.tools.values() if mode is None or mode.allows(t.name)]
        return cached

    async def specs_for(self, ctx: TaskContext, mode: Any = None) -> list[dict[str, Any]]:
        """The definitions for one request of one task: the daemon's tools the
        mode allows, then the task's dynamic tools whose group it allows."""
        specs = self.specs(mode)
        for source in self.sources:
            extra = [t.spec() for t in await source.tools(ctx) if mode is None or mode.allows_group(t.group)]
            if extra:
                specs = [*specs, *extra]
        return specs

    def metric_label(self, name: str) -> str:
        """A bounded label for a model-chosen name."""
        if name in self.tools:
            return name
        for source in self.sources:
            label = source.metric_label(name)
            if label is not None:
                return label
        return "unknown"

    async def find(self, ctx: TaskContext, name: str) -> tuple[Tool | None, bool]:
        """The tool a call names, and whether it is one of the task's dynamic tools."""
        tool = self.tools.get(name)
        if tool is not None:
            return tool, False
        for source in self.sources:
            tool = await source.resolve(ctx, name)
            if tool is not None:
                return tool, True
        return None, False

    async def execute(self, ctx: TaskContext, call: ToolCall, mode: Any = None) -> ToolOutcome:
        """Check, approve and run one call (its ``tool.call`` event here, its
        ``tool.result`` with the stored result, by the loop). Every failure
        becomes an error outcome the model sees; only cancellation escapes.
        The events are published without waiting for their commit: the log
        keeps their order, and the task's next status change waits for all."""
        ctx.publish("tool.call", {"id": call.id, "tool": call.name, "args": call.args})
        token = current_call_id.set(call.id)  # tool.output events (and asks) name the call they belong to
        try:
            return await self._execute(ctx, call, mode)
        finally:
            current_call_id.reset(token)

    async def skip(self, ctx: TaskContext, call: ToolCall, text: str) -> ToolOutcome:
        """A call that is not run (an earlier one in its message was rejected)."""
        ctx.publish("tool.call", {"id": call.id, "tool": call.name, "args": call.args})
        return ToolOutcome(text, is_error=True)

    async def _execute(self, ctx: TaskContext, call: ToolCall, mode: Any) -> ToolOutcome:
        tool, dynamic = await self.find(ctx, call.name)
        if tool is None:  # Roo's validateToolUse wording, as a toolError
            known = ", ".join(self.tools)
            text = f'Unknown tool "{call.name}". This tool does not exist. Please use one of the available tools: '
            text += f"{known}."
            return ToolOutcome(tool_error(text), is_error=True, mistake=True)
        if mode is not None and not (mode.allows_group(tool.group) if dynamic else mode.allows(tool.name)):
            text = f'Tool "{tool.name}" is not allowed in {mode.slug} mode.'
            return ToolOutcome(tool_error(text), is_error=True, mistake=True)
        if "__invalid_json__" in call.args:  # the provider could not parse the model's arguments
            raw = str(call.args["__invalid_json__"])[:200]
            return ToolOutcome(
                f"Invalid arguments for {call.name}: not valid JSON ({raw!r}). Retry with complete JSON arguments.",
                is_error=True,
                mistake=True,
            )
        problem = tool.check(call.args)
        if problem:
            text = problem if problem.startswith("Missing value") else f"Invalid arguments for {call.name}: {problem}"
            return ToolOutcome(text, is_error=True, mistake=True)
        target = call.args.get("path", call.args.get("file_path"))  # search_replace says file_path
        if mode is not None and tool.group == "edit" and isinstance(target, str):
            refusal = mode.edit_refusal(target, tool.name)
            if refusal:  # Roo's FileRestrictionError, thrown by validateToolUse
                return ToolOutcome(tool_error(refusal), is_error=True, mistake=True)
        try:
            if tool.approval is not None:
                ask = await tool.approval(ctx, call.args)
                if ask is not None:
                    payload = {"tool": call.name, "args": call.args, **ask}  # an ask may name the tool its own way
                    answer = await ctx.ask(payload.pop("kind", "tool"), **payload)
                    if not answer.approve:
                        text = tool_denied_with_feedback(answer.text) if answer.text else tool_denied()
                        return ToolOutcome(text, is_error=True, denied=True)
            outcome = await tool.run(ctx, call.args)
        except ToolDenied as e:
            return ToolOutcome(str(e), is_error=True, denied=True)
        except ToolError as e:
            outcome = ToolOutcome(str(e), is_error=True)
        if outcome.is_error and tool.group == "edit":
            outcome.mistake = True  # a failed edit counts, as in Roo
        return outcome
