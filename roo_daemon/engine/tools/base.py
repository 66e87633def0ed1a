"""The tool interface, the registry, and the approval step every call passes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import jsonschema

from roo_daemon.engine.base import TaskContext
from roo_daemon.engine.providers.base import ToolCall

# Roo-Code's wording (formatResponse.toolDenied / toolDeniedWithFeedback).
DENIED = "The user denied this operation."
DENIED_WITH_FEEDBACK = (
    "The user denied this operation and provided the following feedback:\n<feedback>\n{}\n</feedback>"
)


@dataclass
class ToolOutcome:
    content: str
    is_error: bool = False
    completed: bool = False  # attempt_completion: the task is done, ``content`` is the result


class ToolError(Exception):
    """A tool's failure that the model should see (not a daemon failure)."""


@dataclass
class Tool:
    name: str
    group: str  # read, edit, command, modes, or control (always allowed)
    description: str
    parameters: dict[str, Any]
    run: Callable[[TaskContext, dict[str, Any]], Awaitable[ToolOutcome]]
    # Builds the ask payload for approval, or None when no approval is needed.
    approval: Callable[[TaskContext, dict[str, Any]], Awaitable[dict[str, Any] | None]] | None = None

    def __post_init__(self) -> None:
        self._validator = jsonschema.Draft202012Validator(self.parameters)

    def check(self, args: dict[str, Any]) -> str | None:
        error = jsonschema.exceptions.best_match(self._validator.iter_errors(args))
        if error is None:
            return None
        where = "/".join(map(str, error.absolute_path))
        return f"{where + ': ' if where else ''}{error.message}"

    def spec(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "parameters": self.parameters}


class ToolRegistry:
    def __init__(self, tools: list[Tool]) -> None:
        self.tools = {t.name: t for t in tools}

    def specs(self) -> list[dict[str, Any]]:
        return [t.spec() for t in self.tools.values()]

    async def execute(self, ctx: TaskContext, call: ToolCall) -> ToolOutcome:
        """Check, approve and run one call, with its events. Every failure
        becomes an error outcome the model sees; only cancellation escapes."""
        await ctx.emit("tool.call", {"id": call.id, "tool": call.name, "args": call.args})
        outcome = await self._execute(ctx, call)
        await ctx.emit(
            "tool.result",
            {"id": call.id, "tool": call.name, "is_error": outcome.is_error, "content": outcome.content[:4000]},
        )
        return outcome

    async def _execute(self, ctx: TaskContext, call: ToolCall) -> ToolOutcome:
        tool = self.tools.get(call.name)
        if tool is None:
            return ToolOutcome(f"Unknown tool {call.name!r}. Available tools: {', '.join(self.tools)}.", is_error=True)
        problem = tool.check(call.args)
        if problem:
            return ToolOutcome(f"Invalid arguments for {call.name}: {problem}", is_error=True)
        try:
            if tool.approval is not None:
                ask = await tool.approval(ctx, call.args)
                if ask is not None:
                    answer = await ctx.ask(ask.pop("kind", "tool"), tool=call.name, args=call.args, **ask)
                    if not answer.approve:
                        text = DENIED_WITH_FEEDBACK.format(answer.text) if answer.text else DENIED
                        return ToolOutcome(text, is_error=True)
            return await tool.run(ctx, call.args)
        except ToolError as e:
            return ToolOutcome(str(e), is_error=True)
