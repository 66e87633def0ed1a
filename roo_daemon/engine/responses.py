"""The texts the model receives for denials, errors and guidance, as
Roo-Code's ``formatResponse`` builds them (src/core/prompts/responses.ts).

Roo sends most of them as compact JSON status objects (``JSON.stringify``:
no spaces, non-ASCII as is, ``undefined`` fields left out); a model prompted
for Roo has seen exactly these shapes, so the daemon sends the same bytes.
"""

from __future__ import annotations

import json
from typing import Any

DENIED_MESSAGE = "The user denied this operation."


def _stringify(payload: dict[str, Any]) -> str:
    """``JSON.stringify``: compact, non-ASCII kept, ``None`` (undefined) fields dropped."""
    return json.dumps({k: v for k, v in payload.items() if v is not None}, separators=(",", ":"), ensure_ascii=False)


def tool_denied() -> str:
    return _stringify({"status": "denied", "message": DENIED_MESSAGE})


def policy_denied(message: str) -> str:
    """A call the policy refused without asking (Roo's auto-deny, which
    says ``tool_denied()``): the same shape, with the rule in ``message``."""
    return _stringify({"status": "denied", "message": message})


def tool_denied_with_feedback(feedback: str | None) -> str:
    return _stringify({"status": "denied", "feedback": feedback})


def tool_error(error: str | None) -> str:
    return _stringify({"status": "error", "message": "The tool execution failed", "error": error})


def roo_ignore_error(path: str) -> str:
    return _stringify(
        {
            "status": "error",
            "type": "access_denied",
            "message": "Access blocked by .rooignore",
            "path": path,
            "suggestion": "Try to continue without this file, or ask the user to update the .rooignore file",
        }
    )


def too_many_mistakes(feedback: str | None) -> str:
    """The client's guidance after the mistake limit."""
    return _stringify({"status": "guidance", "feedback": feedback})


def missing_parameter(name: str) -> str:
    """Roo's missingToolParameterError, with the native tool-use reminder."""
    return (
        f"Missing value for required parameter '{name}'. Please retry with complete response.\n\n"
        "# Reminder: Instructions for Tool Use\n\n"
        "Tools are invoked using the platform's native tool calling mechanism. Each tool requires specific "
        "parameters as defined in the tool descriptions. Refer to the tool definitions provided in your system "
        "instructions for the correct parameter structure and usage examples.\n\n"
        "Always ensure you provide all required parameters for the tool you wish to use."
    )


def user_message(text: str | None) -> str:
    """A follow-up answer (AskFollowupQuestionTool) or a user's message."""
    return f"<user_message>\n{text or ''}\n</user_message>"


def subtask_result(child_id: str, result: str | None) -> str:
    """The parent's new_task result once the child completed (ClineProvider's
    reopenParentFromDelegation)."""
    return f"Subtask {child_id} completed.\n\nResult:\n{result or ''}"
