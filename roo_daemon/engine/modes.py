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

from roo_daemon.engine.mode_texts import ROO_MODE_TEXTS

TOOL_GROUPS: dict[str, tuple[str, ...]] = {
    "read": ("read_file", "list_files", "search_files"),
    "edit": ("write_to_file", "apply_diff", "search_replace"),
    "command": ("execute_command", "read_command_output"),
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
    source: str = "built-in"  # or "config", ".roomodes"
    description: str = ""  # Roo's one-line summary (its mode selector shows it)
    _compiled: Any = field(default=None, compare=False, repr=False)

    def allows(self, tool: str) -> bool:
        if tool in ALWAYS_AVAILABLE:
            return True
        return any(tool in TOOL_GROUPS.get(g, ()) for g in self.groups)

    def allows_group(self, group: str) -> bool:
        """Tools that exist per task (MCP servers' tools) belong to a group
        only: Roo offers them when the mode has the ``mcp`` group."""
        return group in self.groups

    def prompt_line(self) -> str:
        """This mode in the system prompt's MODES section, as Roo's
        ``getModesSection`` writes it: ``whenToUse`` (later lines indented),
        else the first sentence of the role."""
        if self.when_to_use.strip():
            summary = self.when_to_use.replace("\n", "\n    ")
        else:
            summary = self.role_definition.split(".")[0]
        return f'  * "{self.name}" mode ({self.slug}) - {summary}'

    def to_resource(self) -> dict[str, Any]:
        """The mode as ``GET /api/v1/modes`` lists it (openapi.yaml ``ModeInfo``)."""
        return {
            "slug": self.slug,
            "name": self.name,
            "source": self.source,
            "groups": list(self.groups),
            "file_regex": self.file_regex,
            "file_regex_description": self.file_regex_description,
            "role_definition": self.role_definition,
            "when_to_use": self.when_to_use,
            "description": self.description,
            "custom_instructions": self.custom_instructions,
        }

    def edit_refusal(self, path: str, tool: str | None = None) -> str | None:
        """Roo's FileRestrictionError text when this mode may not edit ``path``."""
        if self.file_regex is None or re.search(self.file_regex, path):
            return None
        what = f" ({self.file_regex_description})" if self.file_regex_description else ""
        who = f"Tool '{tool}' in mode '{self.name}'" if tool else f"This mode ({self.name})"
        return f"{who} can only edit files matching pattern: {self.file_regex}{what}. Got: {path}"


# Roo's groups for each built-in mode (DEFAULT_MODES), in its order, which
# is also the order of the system prompt's MODES section.
_BUILT_IN_GROUPS: dict[str, tuple[str, ...]] = {
    "architect": ("read", "edit", "mcp"),
    "code": ("read", "edit", "command", "mcp"),
    "ask": ("read", "mcp"),
    "debug": ("read", "edit", "command", "mcp"),
    "orchestrator": (),
}
_BUILT_IN_NAMES = {
    "architect": "🏗️ Architect",
    "code": "💻 Code",
    "ask": "❓ Ask",
    "debug": "🪲 Debug",
    "orchestrator": "🪃 Orchestrator",
}


def _built_in(slug: str) -> Mode:
    texts = ROO_MODE_TEXTS[slug]
    markdown_only = slug == "architect"
    return Mode(
        slug,
        _BUILT_IN_NAMES[slug],
        texts["roleDefinition"],
        _BUILT_IN_GROUPS[slug],
        file_regex=r"\.md$" if markdown_only else None,
        file_regex_description="Markdown files only" if markdown_only else None,
        when_to_use=texts["whenToUse"],
        custom_instructions=texts["customInstructions"],
        description=texts["description"],
    )


BUILT_IN: dict[str, Mode] = {slug: _built_in(slug) for slug in _BUILT_IN_GROUPS}


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
            description=doc.get("description", ""),
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


def available_modes(config_modes: list[dict[str, Any]], workspace: str | None) -> dict[str, Mode]:
    """Built-in, then config, then the workspace's: later ones win (a slug
    defined again keeps its place in the order)."""
    modes = dict(BUILT_IN)
    for entry in config_modes:
        mode = mode_from_config(entry, "config")
        modes[mode.slug] = mode
    if workspace is not None:
        modes.update(workspace_modes(workspace))
    return modes
