"""The system prompt, after Roo-Code's ``src/core/prompts/system.ts``, and the
workspace listing of the first environment details (``environment.py``): role, tool-use
rules, the mode's capabilities, the modes, rules, system information,
objective, and custom instructions (config, the mode's own, and the
workspace's rule files: :mod:`roo_daemon.engine.rules`).

Everything here that reads files runs in a thread (the loop calls it through
``asyncio.to_thread``).
"""

from __future__ import annotations

import platform
from pathlib import Path

from roo_daemon.engine.command_shell import SHELL
from roo_daemon.engine.modes import Mode
from roo_daemon.engine.rules import ROOIGNORE_INSTRUCTIONS, custom_instructions
from roo_daemon.engine.tools.fileio import Target
from roo_daemon.engine.tools.listing import list_text
from roo_daemon.engine.workspace import RooIgnore

__all__ = ["ROOIGNORE_INSTRUCTIONS", "custom_instructions", "system_prompt", "workspace_listing"]

LISTING_CAP = 200  # Roo's maxWorkspaceFiles default
# Roo's words (src/core/prompts/sections/capabilities.ts), verbatim.
MCP_CAPABILITY = (
    "- You have access to MCP servers that may provide additional tools and resources. Each server may provide "
    "different capabilities that you can use to accomplish tasks more effectively."
)


def system_prompt(
    mode: Mode, modes: dict[str, Mode], workspace: str, global_instructions: str, mcp: bool = False
) -> str:
    """``mcp``: the task has MCP servers' tools (Roo adds its line about MCP
    servers to CAPABILITIES when the mode has the mcp group and servers exist)."""
    shell = SHELL  # the shell execute_command runs, not the daemon's $SHELL
    mode_lines = "\n".join(m.prompt_line() for m in modes.values())
    sections = [
        mode.role_definition,
        "====\n\nMARKDOWN RULES\n\nALL responses MUST show ANY `language construct` OR filename reference as "
        "clickable, exactly as [`filename OR language.declaration()`](relative/file/path.ext:line).",
        "====\n\nTOOL USE\n\nYou have access to a set of tools that are executed upon the user's approval. Use the "
        "provider's native tool-calling interface. You may call several tools in one message; each call's result "
        "is returned to you. Work step by step: each tool use is informed by the result of the previous one.",
        "====\n\nCAPABILITIES\n\n- You can list, read and search the files of the workspace"
        + (", edit them" if "edit" in mode.groups else "")
        + (", and execute CLI commands in it" if "command" in mode.groups else "")
        + f".\n- The workspace directory is: {workspace}. All paths you use are relative to it."
        + (f"\n{MCP_CAPABILITY}" if mcp else ""),
        f"====\n\nMODES\n\n- These are the currently available modes:\n{mode_lines}",
        "====\n\nRULES\n\n"
        f"- The project base directory is: {workspace}\n"
        "- All file paths must be relative to this directory; you cannot access anything outside it.\n"
        "- Do not ask for more information than necessary. Use the tools provided to accomplish the user's "
        "request efficiently. When you've completed your task, you must use the attempt_completion tool to "
        "present the result to the user.\n"
        "- You are only allowed to ask the user questions using the ask_followup_question tool.\n"
        "- Your goal is to try to accomplish the user's task, NOT engage in a back and forth conversation.\n"
        "- NEVER end attempt_completion result with a question or request to engage in further conversation.",
        "====\n\nSYSTEM INFORMATION\n\n"
        f"Operating System: {platform.system()} {platform.release()}\n"
        f"Default Shell: {shell}\n"
        f"Current Workspace Directory: {workspace}",
        "====\n\nOBJECTIVE\n\nYou accomplish a given task iteratively, breaking it down into clear steps and "
        "working through them methodically. Once you've completed the user's task, you must use the "
        "attempt_completion tool to present the result of the task to the user.",
    ]
    custom = custom_instructions(mode, workspace, global_instructions)
    if custom:
        sections.append(
            "====\n\nUSER'S CUSTOM INSTRUCTIONS\n\nThe following additional instructions are provided by the "
            f"user, and should be followed to the best of your ability.\n\n{custom}"
        )
    return "\n\n".join(sections)


def workspace_listing(workspace: str, cap: int = LISTING_CAP) -> str:
    """The first prompt's file listing: exactly what ``list_files`` returns
    for the recursive listing of the workspace (the same walk, filters,
    order and truncation note), as Roo's getEnvironmentDetails does."""
    root = Path(workspace).resolve()
    try:
        target = Target(root, root, ".", RooIgnore.load(root))
    except OSError:
        return "(The workspace's .rooignore cannot be read, so no file is listed. Fix or remove it.)"
    return list_text(target, True, cap)
