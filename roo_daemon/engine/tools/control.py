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


def _suggestions(args: dict[str, Any]) -> list[dict[str, Any]]:
    """``follow_up`` as Roo's ``{text, mode}`` objects (a plain string is a
    suggestion without a mode)."""
    return [
        {"text": s, "mode": None} if isinstance(s, str) else {"text": s["text"], "mode": s.get("mode") or None}
        for s in args["follow_up"]
    ]


async def _ask_followup(ctx: TaskContext, args: dict[str, Any]) -> ToolOutcome:
    """Roo's AskFollowupQuestionTool. Choosing a suggestion that names a mode
    switches the task to it, as Roo's chat view does on a suggestion click:
    the answer is that suggestion's text (the API's ``suggestion`` index, the
    CLI's number, or the text itself)."""
    follow_up = _suggestions(args)
    answer = await ctx.ask(
        "followup", question=args["question"], suggestions=[s["text"] for s in follow_up], follow_up=follow_up
    )
    # An expiry's answer (the first suggestion) is no choice: like Roo's
    # auto-approval timeout it answers without switching modes.
    chosen = None if answer.expired else next((s for s in follow_up if s["text"] == answer.text), None)
    if chosen is not None and chosen["mode"] and chosen["mode"] in ctx.modes and chosen["mode"] != ctx.task.mode:
        await ctx.switch_mode(chosen["mode"], "the user chose a suggestion that switches to this mode")
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


# Roo's native tool descriptions (src/core/prompts/tools/native-tools/).
ASK_FOLLOWUP_DESCRIPTION = """Ask the user a question to gather additional information needed to complete the task. \
Use when you need clarification or more details to proceed effectively.

Parameters:
- question: (required) A clear, specific question addressing the information needed
- follow_up: (required) A list of 2-4 suggested answers. Suggestions must be complete, actionable answers without \
placeholders. Optionally include mode to switch modes (code/architect/etc.)

Example: Asking for file path
{ "question": "What is the path to the frontend-config.json file?", "follow_up": [{ "text": \
"./src/frontend-config.json", "mode": null }, { "text": "./config/frontend-config.json", "mode": null }, { "text": \
"./frontend-config.json", "mode": null }] }

Example: Asking with mode switch
{ "question": "Would you like me to implement this feature?", "follow_up": [{ "text": "Yes, implement it now", \
"mode": "code" }, { "text": "No, just plan it out", "mode": "architect" }] }"""

NEW_TASK_DESCRIPTION = """Create a new task instance in the chosen mode using your provided message and initial todo \
list (if required).

CRITICAL: This tool MUST be called alone. Do NOT call this tool alongside other tools in the same message turn. If \
you need to gather information before delegating, use other tools in a separate turn first, then call new_task by \
itself in the next turn."""

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
        ASK_FOLLOWUP_DESCRIPTION,
        {
            "type": "object",
            "properties": {
                "question": {
                    "type": "string",
                    "minLength": 1,
                    "description": "Clear, specific question that captures the missing information you need",
                },
                "follow_up": {
                    "type": "array",
                    "description": "Required list of 2-4 suggested responses; each suggestion must be a complete, "
                    "actionable answer and may include a mode switch",
                    "items": {
                        "anyOf": [
                            {
                                "type": "object",
                                "properties": {
                                    "text": {
                                        "type": "string",
                                        "minLength": 1,
                                        "description": "Suggested answer the user can pick",
                                    },
                                    "mode": {
                                        "type": ["string", "null"],
                                        "description": "Optional mode slug to switch to if this suggestion is "
                                        "chosen (e.g., code, architect)",
                                    },
                                },
                                "required": ["text"],
                                "additionalProperties": False,
                            },
                            {"type": "string", "minLength": 1},
                        ]
                    },
                    "minItems": 1,
                    "maxItems": 4,
                },
            },
            "required": ["question", "follow_up"],
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
        NEW_TASK_DESCRIPTION,
        {
            "type": "object",
            "properties": {
                "mode": {
                    "type": "string",
                    "minLength": 1,
                    "description": "Slug of the mode to begin the new task in (e.g., code, debug, architect)",
                },
                "message": {
                    "type": "string",
                    "minLength": 1,
                    "description": "Initial user instructions or context for the new task",
                },
                "todos": {
                    "type": ["string", "null"],
                    "description": "Optional initial todo list written as a markdown checklist; required when the "
                    "workspace mandates todos",
                },
            },
            "required": ["mode", "message"],
            "additionalProperties": False,
        },
        _new_task,
        _approve_subtask,
    ),
]
