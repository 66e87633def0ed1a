"""The MCP server bench/mcp_tool_call.py calls: one tool, ``add``, over stdio, written
with the official SDK's server side. ``add`` is also what the bench calls
in-process, so the two figures differ only by the MCP round trip."""

from mcp.server.mcpserver import MCPServer


def add(a: float, b: float) -> str:
    """Add two numbers."""
    return str(a + b)


if __name__ == "__main__":
    server = MCPServer("bench")
    server.add_tool(add)
    server.run()
