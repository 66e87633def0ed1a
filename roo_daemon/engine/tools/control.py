"""Tools that steer the task itself: completion, questions, todos."""

from __future__ import annotations

import re
from typing import Any

from roo_daemon.engine.base import TaskContext
from roo_daemon.engine.responses import subtask_result, user_message
from roo_daemon.engine.tools.base import Tool, ToolError, ToolOutcome

_CHECKLIST_LINE = re.compile(r"^\s*(?:[-*]\s*)?\[( |x|X|-|~)\]\s*(.+?)\s*$")
_CHECKLIST_STATUS = {" ": "pending", "x": "completed", "X": "completed", "-": "in_progress", "~": "in_progress"}


async def _attempt_completion(ctx: TaskContext, args: dict[str, Any]) -> ToolOutcome:
    return ToolOutcome(args["result"], completed=True)


async def _ask_followup(ctx: TaskContext, args: dict[str, Any]) -> ToolOutcome:
    suggestions = [s if isinstance(s, str) else s.get("text", "") for s in args.get("follow_up") or []]
    answer = await ctx.ask("followup", question=args["question"], suggestions=suggestions)
    return ToolOutcome(user_message(answer.text), images=answer.images)  # Roo's toolResult(text, images)


def parse_todos(markdown: str) -> list[dict[str, str]]:
    """Roo's checklist syntax: ``[ ]`` pending, ``[-]`` in progress, ``[x]`` done."""
    todos = []
    for line in markdown.splitlines():
        m = _CHECKLIST_LINE.match(line)
        if m:
            todos.append({"content": m.group(2), "status": _CHECKLIST_STATUS[m.group(1)]})
    return todos


async def _switch_mode(ctx: TaskContext, args: dict[str, Any]) -> ToolOutcome:
    slug = args["mode_slug"]
    if slug not in ctx.modes:
        raise ToolError(f"Invalid mode: {slug}. Available modes: {', '.join(ctx.modes)}")
    if slug == ctx.task.mode:
        return ToolOutcome(f"Already in {ctx.modes[slug].name} mode.")
    await ctx.switch_mode(slug, args.get("reason", ""))
    reason = f" because: {args['reason']}" if args.get("reason") else ""
    return ToolOutcome(
        f"Successfully switched from {ctx.modes[ctx.previous_mode].name} mode to {ctx.modes[slug].name} mode{reason}."
    )


async def _approve_mode_switch(ctx: TaskContext, args: dict[str, Any]) -> dict[str, Any] | None:
    return None if ctx.session.auto_approve.get("mode_switch") else {"kind": "tool"}


async def _new_task(ctx: TaskContext, args: dict[str, Any]) -> ToolOutcome:
    mode = args["mode"]
    if mode not in ctx.modes:
        raise ToolError(f"Invalid mode: {mode}. Available modes: {', '.join(ctx.modes)}")
    todos = parse_todos(args.get("todos") or "")
    answer = await ctx.run_subtask(mode, args["message"], todos)
    if not answer.approve:
        raise ToolError(f"Subtask did not complete: {answer.text or 'no result'}")
    # Roo resumes the parent with the child's result as the tool's answer.
    child = ctx.task.child_task_ids[-1] if ctx.task.child_task_ids else "?"
    return ToolOutcome(subtask_result(child, answer.text))


async def _approve_subtask(ctx: TaskContext, args: dict[str, Any]) -> dict[str, Any] | None:
    return None if ctx.session.auto_approve.get("subtasks") else {"kind": "tool"}


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
    Tool(
        "switch_mode",
        "modes",
        "Request to switch to a different mode (code, architect, ask, debug, orchestrator or a custom one).",
        {
            "type": "object",
            "properties": {"mode_slug": {"type": "string", "minLength": 1}, "reason": {"type": "string"}},
            "required": ["mode_slug"],
            "additionalProperties": False,
        },
        _switch_mode,
        _approve_mode_switch,
    ),
    Tool(
        "new_task",
        "modes",
        "Create a subtask in the given mode with the given instructions; you resume with its result.",
        {
            "type": "object",
            "properties": {
                "mode": {"type": "string", "minLength": 1},
                "message": {"type": "string", "minLength": 1},
                "todos": {"type": "string"},
            },
            "required": ["mode", "message"],
            "additionalProperties": False,
        },
        _new_task,
        _approve_subtask,
    ),
]
