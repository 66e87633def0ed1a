"""Tools the model may call. Each has a name, a group (for modes and
auto-approval), a JSON Schema for its arguments, and an async ``run``."""

from collections.abc import Sequence

from roo_daemon.engine.tools.base import Tool, ToolOutcome, ToolRegistry, ToolSource
from roo_daemon.engine.tools.command import COMMAND_TOOLS
from roo_daemon.engine.tools.command_output import COMMAND_OUTPUT_TOOLS
from roo_daemon.engine.tools.control import CONTROL_TOOLS
from roo_daemon.engine.tools.edit import EDIT_TOOLS
from roo_daemon.engine.tools.files import FILE_TOOLS
from roo_daemon.engine.tools.search import SEARCH_TOOLS


def default_registry(sources: Sequence[ToolSource] = ()) -> ToolRegistry:
    """The daemon's tools, and ``sources`` of per-task ones (MCP servers)."""
    return ToolRegistry(
        [*CONTROL_TOOLS, *FILE_TOOLS, *SEARCH_TOOLS, *EDIT_TOOLS, *COMMAND_TOOLS, *COMMAND_OUTPUT_TOOLS], sources
    )


__all__ = ["Tool", "ToolOutcome", "ToolRegistry", "ToolSource", "default_registry"]
