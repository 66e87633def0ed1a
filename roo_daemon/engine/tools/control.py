"""Tools that steer the task itself: completion, questions, todos."""

from __future__ import annotations

import re
from typing import Any

from roo_daemon.engine.base import TaskContext
from roo_daemon.engine.tools.base import Tool, ToolOutcome

_TODO_LINE = re.compile(r"^\s*(?:[-*]\s*)?\[( |x|X|-|~)\]\s*(.+?)\s*$")
_TODO_STATUS = {" ": "pending", "x": "completed", "X": "completed", "-": "in_progress", "~": "in_progress"}


async def _attempt_completion(ctx: TaskContext, args: dict[str, Any]) -> ToolOutcome:
    return ToolOutcome(args["result"], completed=True)


async def _ask_followup(ctx: TaskContext, args: dict[str, Any]) -> ToolOutcome:
    suggestions = [s if isinstance(s, str) else s.get("text", "") for s in args.get("follow_up") or []]
    answer = await ctx.ask("followup", question=args["question"], suggestions=suggestions)
    return ToolOutcome(f"<answer>\n{answer.text or ''}\n</answer>")


def parse_todos(markdown: str) -> list[dict[str, str]]:
    """Roo's checklist syntax: ``[ ]`` pending, ``[-]`` in progress, ``[x]`` done."""
    todos = []
    for line in markdown.splitlines():
        m = _TODO_LINE.match(line)
        if m:
            todos.append({"content": m.group(2), "status": _TODO_STATUS[m.group(1)]})
    return todos


async def _update_todo_list(ctx: TaskContext, args: dict[str, Any]) -> ToolOutcome:
    todos = parse_todos(args["todos"])
    await ctx.set_todos(todos)
    return ToolOutcome("Todo list updated successfully.")


CONTROL_TOOLS = [
    Tool(
        "attempt_completion",
        "control",
        "Present the final result of the task to the user once it is done.",
        {
            "type": "object",
            "properties": {"result": {"type": "string", "minLength": 1}},
            "required": ["result"],
            "additionalProperties": False,
        },
        _attempt_completion,
    ),
    Tool(
        "ask_followup_question",
        "control",
        "Ask the user a question to gather information needed to go on, with suggested answers.",
        {
            "type": "object",
            "properties": {
                "question": {"type": "string", "minLength": 1},
                "follow_up": {
                    "type": "array",
                    "items": {
                        "anyOf": [
                            {"type": "string"},
                            {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
                        ]
                    },
                },
            },
            "required": ["question"],
            "additionalProperties": False,
        },
        _ask_followup,
    ),
    Tool(
        "update_todo_list",
        "control",
        "Replace the task's todo list: one item a line, [ ] pending, [-] in progress, [x] completed.",
        {
            "type": "object",
            "properties": {"todos": {"type": "string"}},
            "required": ["todos"],
            "additionalProperties": False,
        },
        _update_todo_list,
    ),
]
