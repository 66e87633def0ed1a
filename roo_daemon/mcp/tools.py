"""MCP servers' tools as the agent's native tools (the engine's
:class:`~roo_daemon.engine.tools.base.ToolSource` for MCP).

As in Roo-Code (src/core/prompts/tools/native-tools/mcp_server.ts,
src/core/tools/UseMcpToolTool.ts, AccessMcpResourceTool.ts): each tool of
each server the task can use is a function ``mcp--{server}--{tool}`` with
the server's description and input schema, in the ``mcp`` group (offered
only in modes with that group); ``access_mcp_resource`` is offered when a
server has resources. A call asks first (kind ``mcp``: server, tool,
arguments) unless the server's ``alwaysAllow`` lists the tool or the
session's ``auto_approve.mcp`` is on. Every failure is a tool error the
model reads, never a task failure.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from roo_daemon.engine.base import TaskContext
from roo_daemon.engine.tools.base import Tool, ToolError, ToolOutcome
from roo_daemon.mcp.errors import CallTimeout, ResultTooLarge, ServerError, Unavailable
from roo_daemon.mcp.hub import Entry, McpHub, ToolSet
from roo_daemon.mcp.naming import normalize, parse, sanitize

if TYPE_CHECKING:
    from roo_daemon.mcp.connection import ServerConnection
    from roo_daemon.mcp.results import Formatted

log = logging.getLogger("roo_daemon.mcp")
ACCESS = "access_mcp_resource"
BUILT_CACHE = 256

# Roo's native tool definition, verbatim (native-tools/access_mcp_resource.ts).
ACCESS_DESCRIPTION = """Request to access a resource provided by a connected MCP server. Resources represent data \
sources that can be used as context, such as files, API responses, or system information.

Parameters:
- server_name: (required) The name of the MCP server providing the resource
- uri: (required) The URI identifying the specific resource to access

Example: Accessing a weather resource
{ "server_name": "weather-server", "uri": "weather://san-francisco/current" }

Example: Accessing a file resource from an MCP server
{ "server_name": "filesystem-server", "uri": "file:///path/to/data.json" }"""
ACCESS_PARAMETERS = {
    "type": "object",
    "properties": {
        "server_name": {"type": "string", "description": "The name of the MCP server providing the resource"},
        "uri": {"type": "string", "description": "The URI identifying the specific resource to access"},
    },
    "required": ["server_name", "uri"],
    "additionalProperties": False,
}


def _auto_approved(ctx: TaskContext) -> bool:
    return bool(ctx.session.auto_approve.get("mcp"))


class McpToolSource:
    def __init__(self, hub: McpHub) -> None:
        self.hub = hub
        self._built: collections.OrderedDict[tuple, list[Tool]] = collections.OrderedDict()
        self.access = Tool(ACCESS, "mcp", ACCESS_DESCRIPTION, ACCESS_PARAMETERS, self._access, self._approve_access)

    # -- ToolSource ------------------------------------------------------

    async def tools(self, ctx: TaskContext) -> list[Tool]:
        toolset = await self.hub.toolset(ctx.session)
        built = self._built.get(toolset.key)
        if built is None:
            built = [self._tool(entry) for entry in toolset.entries.values()]
            self._built[toolset.key] = built
            if len(self._built) > BUILT_CACHE:
                self._built.popitem(last=False)
        else:
            self._built.move_to_end(toolset.key)
        return [*built, self.access] if toolset.has_resources else built

    async def resolve(self, ctx: TaskContext, name: str) -> Tool | None:
        if name == ACCESS:
            return self.access
        if parse(name) is None:
            return None
        toolset = await self.hub.toolset(ctx.session)
        entry = toolset.lookup(name)
        if entry is not None:
            return next((t for t in await self.tools(ctx) if t.name == entry.function), None)
        return _missing(toolset, name)

    def metric_label(self, name: str) -> str | None:
        return "mcp" if name == ACCESS or parse(name) is not None else None

    # -- tools -----------------------------------------------------------

    def _tool(self, entry: Entry) -> Tool:
        conn, tool = entry.conn, entry.tool
        server = conn.cfg.name

        async def run(ctx: TaskContext, args: dict[str, Any]) -> ToolOutcome:
            what = f"The MCP tool '{tool.name}' of server '{server}'"
            formatted = await self._measured(conn, tool.name, what, lambda: conn.call_tool(tool.name, args), "tool")
            return ToolOutcome(formatted.text, is_error=formatted.is_error, images=formatted.images)

        async def approval(ctx: TaskContext, args: dict[str, Any]) -> dict[str, Any] | None:
            if conn.cfg.allows_without_asking(tool.name) or _auto_approved(ctx):
                return None
            return {"kind": "mcp", "server": server, "tool": tool.name, "args": args, "source": conn.cfg.source}

        # The MCP spec's readOnlyHint (default false): a tool that may change
        # its environment gets a checkpoint after each call, like an edit.
        read_only = bool(tool.annotations and tool.annotations.read_only_hint)
        return Tool(entry.function, "mcp", tool.description or "", tool.input_schema, run, approval, not read_only)

    async def _measured(self, conn: ServerConnection, name: str, what: str, call: Any, kind: str) -> Formatted:
        """Run one call, with its metric; every failure becomes a ToolError.
        What the server returns is scrubbed of its own secrets, like its errors."""
        from roo_daemon.mcp import results  # the SDK's types: loaded once a server runs

        started = time.monotonic()
        outcome = "error"
        try:
            answer = await call()
            formatted = (results.tool_result if kind == "tool" else results.resource_result)(answer)
            formatted = results.capped(formatted, self.hub.settings.max_result_bytes, what)
            formatted.text = conn.scrub(formatted.text)
            outcome = "error" if formatted.is_error else "ok"
            return formatted
        except CallTimeout as e:
            outcome = "timeout"
            raise ToolError(f"{what} timed out: {e}. It was cancelled; do not retry it as it is.") from None
        except Unavailable as e:
            outcome = "unavailable"
            raise ToolError(f"The MCP server '{conn.cfg.name}' is not available: {e}") from None
        except ResultTooLarge as e:
            log.warning("MCP server %s: %s", conn.label, e, extra={"mcp_server": conn.cfg.name})
            raise ToolError(str(e)) from None
        except ServerError as e:
            raise ToolError(f"{what} failed: the server answered with error {e.code}: {e.message}") from None
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        except Exception as e:  # an answer the SDK could not parse, a broken transport: the server's fault
            text = conn.scrub(f"{type(e).__name__}: {e}")[:500]
            log.warning("MCP server %s: unusable answer: %s", conn.label, text, extra={"mcp_server": conn.cfg.name})
            raise ToolError(f"{what} gave an answer the daemon cannot use ({text})") from None
        finally:
            if self.hub.metrics is not None:
                self.hub.metrics.observe(conn.cfg, name, outcome, time.monotonic() - started)

    async def _access(self, ctx: TaskContext, args: dict[str, Any]) -> ToolOutcome:
        toolset = await self.hub.toolset(ctx.session)
        conn = toolset.server(args["server_name"])
        if conn is None:
            raise ToolError(_unknown_server(args["server_name"], toolset))
        uri = args["uri"]
        what = f"Reading {uri!r} from the MCP server '{conn.cfg.name}'"
        formatted = await self._measured(conn, ACCESS, what, lambda: conn.read_resource(uri), "resource")
        return ToolOutcome(formatted.text, images=formatted.images)

    async def _approve_access(self, ctx: TaskContext, args: dict[str, Any]) -> dict[str, Any] | None:
        if _auto_approved(ctx):
            return None
        return {"kind": "mcp", "server": args["server_name"], "uri": args["uri"]}


def _unknown_server(name: str, toolset: ToolSet) -> str:
    """Roo's formatResponse.unknownMcpServerError."""
    return json.dumps(
        {
            "status": "error",
            "type": "unknown_server",
            "message": "Server is not configured",
            "server": name,
            "available_servers": sorted(toolset.servers),
        }
    )


def _missing(toolset: ToolSet, name: str) -> Tool | None:
    """A call to an MCP function the task was not offered: a tool that says
    why (its server is down, disabled, or has no such tool), so the model
    gets a clear error instead of 'unknown tool'."""
    conn = toolset.server_of(name)
    parts = parse(name)
    assert parts is not None
    mistake = True  # Roo counts an unknown server or tool as the model's mistake...
    if conn is None:
        text = _unknown_server(parts[0], toolset)
    elif conn.status != "connected":
        text = f"The MCP server '{conn.cfg.name}' is not available: {conn.unavailable_text()}"
        mistake = False  # ...but a server that is down is not the model's doing
    else:
        wanted = parts[1]
        same = [n for n in conn.invalid_tools if normalize(sanitize(n)) == normalize(wanted)]
        invalid = conn.invalid_tools[same[0]] if same else None
        if invalid is not None:
            text = f"The MCP server '{conn.cfg.name}' offers a tool '{wanted}' that cannot be used: {invalid}."
        else:
            # Roo's formatResponse.unknownMcpToolError.
            text = json.dumps(
                {
                    "status": "error",
                    "type": "unknown_tool",
                    "message": "Tool does not exist on server",
                    "server": conn.cfg.name,
                    "tool": wanted,
                    "available_tools": sorted(conn.tools),
                    "suggestion": "Please use one of the available tools or check if the server is properly configured",
                }
            )

    async def refuse(ctx: TaskContext, args: dict[str, Any]) -> ToolOutcome:
        return ToolOutcome(text, is_error=True, mistake=mistake)

    return Tool(name, "mcp", "", {"type": "object"}, refuse)
