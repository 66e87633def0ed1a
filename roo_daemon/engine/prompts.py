"""The system prompt and the per-turn environment details, after Roo-Code's
``src/core/prompts/system.ts`` and ``getEnvironmentDetails``: role, tool-use
rules, the mode's capabilities, the modes, rules, system information,
objective, and custom instructions (config, the mode's own, and the
workspace's ``.roo/rules/``, ``.roo/rules-{mode}/``, ``.roorules``,
``.roorules-{mode}`` and ``AGENTS.md``).

Everything here that reads files runs in a thread (the loop calls it through
``asyncio.to_thread``).
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

from roo_daemon.engine.modes import Mode

LISTING_CAP = 200
_SKIP_DIRS = {".git", "node_modules", "__pycache__", ".venv", "venv", ".mypy_cache", ".pytest_cache", "dist", "build"}
_RULE_FILE_CAP = 64 * 1024


def system_prompt(mode: Mode, modes: dict[str, Mode], workspace: str, global_instructions: str) -> str:
    shell = os.environ.get("SHELL", "/bin/sh")
    mode_lines = "\n".join(
        f'  * "{m.name}" mode ({m.slug}) - {m.when_to_use or m.role_definition[:120]}' for m in modes.values()
    )
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
        + f".\n- The workspace directory is: {workspace}. All paths you use are relative to it.",
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
            "user, and should be followed to the best of your ability without interfering with the TOOL USE "
            f"guidelines.\n\n{custom}"
        )
    return "\n\n".join(sections)


def _read_rules_dir(path: Path) -> list[tuple[str, str]]:
    if not path.is_dir():
        return []
    out = []
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        out.append((str(f), f.read_text(encoding="utf-8", errors="replace")[:_RULE_FILE_CAP]))
    return out


def custom_instructions(mode: Mode, workspace: str, global_instructions: str) -> str:
    root = Path(workspace)
    parts: list[str] = []
    if global_instructions.strip():
        parts.append(f"Global Instructions:\n{global_instructions.strip()}")
    if mode.custom_instructions.strip():
        parts.append(f"Mode-specific Instructions:\n{mode.custom_instructions.strip()}")
    mode_rules = _read_rules_dir(root / ".roo" / f"rules-{mode.slug}")
    legacy_mode = root / f".roorules-{mode.slug}"
    if legacy_mode.is_file():
        mode_rules.append((str(legacy_mode), legacy_mode.read_text(encoding="utf-8", errors="replace")))
    for name, text in mode_rules:
        parts.append(f"Rules from {os.path.relpath(name, workspace)}:\n{text.strip()}")
    rules = _read_rules_dir(root / ".roo" / "rules")
    for legacy in (root / ".roorules", root / "AGENTS.md"):
        if legacy.is_file():
            rules.append((str(legacy), legacy.read_text(encoding="utf-8", errors="replace")[:_RULE_FILE_CAP]))
    for name, text in rules:
        parts.append(f"Rules from {os.path.relpath(name, workspace)}:\n{text.strip()}")
    return "\n\n".join(parts)


def workspace_listing(workspace: str, cap: int = LISTING_CAP) -> str:
    lines: list[str] = []
    root = Path(workspace)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        rel = Path(dirpath).relative_to(root)
        for d in dirnames:
            lines.append(f"{(rel / d).as_posix()}/")
        for f in sorted(filenames):
            lines.append((rel / f).as_posix())
        if len(lines) >= cap:
            break
    if not lines:
        return "(No files found.)"
    if len(lines) > cap:
        return "\n".join(lines[:cap]) + "\n\n(File list truncated. Use list_files on specific subdirectories.)"
    return "\n".join(lines)


def environment_details(mode: Mode, workspace: str, first: bool) -> str:
    now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    parts = [
        "<environment_details>",
        f"# Current Time\n{now}",
        f"# Current Mode\n<slug>{mode.slug}</slug>\n<name>{mode.name}</name>",
    ]
    if first:
        parts.append(f"# Current Workspace Directory ({workspace}) Files\n{workspace_listing(workspace)}")
    parts.append("</environment_details>")
    return "\n\n".join(parts)
