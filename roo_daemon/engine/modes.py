"""Modes: who the agent is and which tools it may use.

Built-in modes and tool groups follow Roo-Code (packages/types/src/mode.ts,
src/shared/tools.ts): a mode lists groups (``read``, ``edit``, ``command``,
``browser``, ``mcp``), an ``edit`` group may carry a ``fileRegex`` that
restricts which files it may change (architect: Markdown only), and some
tools are always available. Custom modes come from config (``modes``) and
from a workspace's ``.roomodes`` (YAML or JSON, ``customModes: [...]``); a
custom mode with a built-in slug replaces it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

TOOL_GROUPS: dict[str, tuple[str, ...]] = {
    "read": ("read_file", "list_files", "search_files"),
    "edit": ("write_to_file", "apply_diff", "search_replace"),
    "command": ("execute_command",),
    "browser": (),
    "mcp": ("use_mcp_tool", "access_mcp_resource"),  # and every MCP server's tools (roo_daemon/mcp)
    "modes": ("switch_mode", "new_task"),
}
ALWAYS_AVAILABLE = frozenset(
    {"ask_followup_question", "attempt_completion", "switch_mode", "new_task", "update_todo_list"}
)


@dataclass(frozen=True)
class Mode:
    slug: str
    name: str
    role_definition: str
    groups: tuple[str, ...]
    file_regex: str | None = None  # restricts the edit group
    file_regex_description: str | None = None
    when_to_use: str = ""
    custom_instructions: str = ""
    source: str = "built-in"
    _compiled: Any = field(default=None, compare=False, repr=False)

    def allows(self, tool: str) -> bool:
        if tool in ALWAYS_AVAILABLE:
            return True
        return any(tool in TOOL_GROUPS.get(g, ()) for g in self.groups)

    def allows_group(self, group: str) -> bool:
        """Tools that exist per task (MCP servers' tools) belong to a group
        only: Roo offers them when the mode has the ``mcp`` group."""
        return group in self.groups

    def edit_refusal(self, path: str) -> str | None:
        """Roo's FileRestrictionError text when this mode may not edit ``path``."""
        if self.file_regex is None or re.search(self.file_regex, path):
            return None
        what = f" ({self.file_regex_description})" if self.file_regex_description else ""
        return f"This mode ({self.name}) can only edit files matching pattern: {self.file_regex}{what}. Got: {path}"


BUILT_IN: dict[str, Mode] = {
    m.slug: m
    for m in (
        Mode(
            "code",
            "💻 Code",
            "You are Roo, a highly skilled software engineer with extensive knowledge in many programming "
            "languages, frameworks, design patterns, and best practices.",
            ("read", "edit", "browser", "command", "mcp"),
            when_to_use="Writing, modifying, or refactoring code.",
        ),
        Mode(
            "architect",
            "🏗️ Architect",
            "You are Roo, an experienced technical leader who is inquisitive and an excellent planner. Your goal "
            "is to gather information and get context to create a detailed plan for accomplishing the user's "
            "task, which the user will review and approve before they switch into another mode to implement "
            "the solution.",
            ("read", "edit", "browser", "mcp"),
            file_regex=r"\.md$",
            file_regex_description="Markdown files only",
            when_to_use="Planning, designing, or strategizing before implementation.",
        ),
        Mode(
            "ask",
            "❓ Ask",
            "You are Roo, a knowledgeable technical assistant focused on answering questions and providing "
            "information about software development, technology, and related topics.",
            ("read", "browser", "mcp"),
            when_to_use="Explanations, documentation, or answers to technical questions.",
        ),
        Mode(
            "debug",
            "🪲 Debug",
            "You are Roo, an expert software debugger specializing in systematic problem diagnosis and resolution.",
            ("read", "edit", "browser", "command", "mcp"),
            when_to_use="Troubleshooting issues, investigating errors, or diagnosing problems.",
        ),
        Mode(
            "orchestrator",
            "🪃 Orchestrator",
            "You are Roo, a strategic workflow orchestrator who coordinates complex tasks by delegating them to "
            "appropriate specialized modes. You have a comprehensive understanding of each mode's capabilities "
            "and limitations, allowing you to effectively break down complex problems into discrete tasks that "
            "can be solved by different specialists.",
            (),
            when_to_use="Complex, multi-step projects that need coordination across specialties.",
        ),
    )
}


class ModeError(ValueError):
    """A custom mode that cannot be used (bad groups, bad regex, bad file)."""


def mode_from_config(doc: dict[str, Any], source: str) -> Mode:
    """A mode from Roo's custom-mode shape: ``{slug, name, roleDefinition,
    groups: ["read", ["edit", {fileRegex, description}], ...], ...}``."""
    try:
        slug = doc["slug"]
        groups: list[str] = []
        file_regex = regex_description = None
        for g in doc.get("groups", []):
            if isinstance(g, list):
                name, options = g[0], (g[1] if len(g) > 1 else {})
                groups.append(name)
                if name == "edit":
                    file_regex = options.get("fileRegex")
                    regex_description = options.get("description")
            else:
                groups.append(g)
        unknown = [g for g in groups if g not in TOOL_GROUPS]
        if unknown:
            raise ModeError(f"mode {slug!r} in {source}: unknown tool group {unknown[0]!r}")
        if file_regex is not None:
            re.compile(file_regex)
        return Mode(
            slug=slug,
            name=doc.get("name", slug),
            role_definition=doc.get("roleDefinition", ""),
            groups=tuple(groups),
            file_regex=file_regex,
            file_regex_description=regex_description,
            when_to_use=doc.get("whenToUse", ""),
            custom_instructions=doc.get("customInstructions", ""),
            source=source,
        )
    except (KeyError, TypeError, re.error) as e:
        raise ModeError(f"bad custom mode in {source}: {e}") from None


def workspace_modes(workspace: str) -> dict[str, Mode]:
    """Custom modes from ``.roomodes`` (YAML or JSON). Reads a file: call it
    off the loop. A broken file is reported, not fatal."""
    path = Path(workspace, ".roomodes")
    if not path.is_file():
        return {}
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        doc = json.loads(text)
    except ValueError:
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ModeError(f".roomodes is neither JSON nor YAML: {e}") from None
    modes = {}
    for entry in (doc or {}).get("customModes", []) or []:
        mode = mode_from_config(entry, ".roomodes")
        modes[mode.slug] = mode
    return modes


def available_modes(config_modes: list[dict[str, Any]], workspace: str) -> dict[str, Mode]:
    """Built-in, then config, then the workspace's: later ones win."""
    modes = dict(BUILT_IN)
    for entry in config_modes:
        mode = mode_from_config(entry, "config")
        modes[mode.slug] = mode
    modes.update(workspace_modes(workspace))
    return modes
