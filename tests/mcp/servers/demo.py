"""A real MCP server for the tests, written with the official SDK's server
side (``MCPServer``). Over stdio by default; ``--http`` serves Streamable
HTTP on 127.0.0.1 (an ephemeral port, printed as ``PORT <n>`` on stdout).

Tools: ``echo``, ``add``, ``picture`` (text and an image), ``embedded`` (an
embedded resource), ``fail`` (a tool error), ``hang`` (sleeps; notes in
``--marker`` DIR when it starts and when it is cancelled), ``crash`` (the
process exits), ``big`` (a result of N bytes), ``grow`` (adds a tool
``extra`` and says so with notifications/tools/list_changed), ``env`` (one
of its environment variables), ``spawn`` (starts a detached grandchild and
returns its pid), ``look`` (what it can see of the file system). With
``--invalid-schema``, ``broken`` advertises an input schema that is not a
JSON Schema. Resource: ``demo://greeting``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import socket
import subprocess
import sys
from pathlib import Path

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import EmbeddedResource, ImageContent, TextContent, TextResourceContents, ToolAnnotations

PNG = base64.b64encode(bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000")).decode()


def build(marker: Path | None, invalid_schema: bool) -> MCPServer:
    server = MCPServer("demo", instructions="A demo server for roo-daemon's tests.")

    def note(name: str) -> None:
        if marker is not None:
            (marker / name).write_text(str(os.getpid()))

    @server.tool(description="Echo the text back.")
    def echo(text: str) -> str:
        return f"echo: {text}"

    @server.tool(description="Add two numbers.")
    def add(a: float, b: float) -> str:
        return str(a + b)

    @server.tool(description="A picture, with a caption.")
    def picture() -> list:
        return [TextContent(text="a red dot"), ImageContent(data=PNG, mime_type="image/png")]

    @server.tool(description="An embedded resource.")
    def embedded() -> list:
        return [EmbeddedResource(resource=TextResourceContents(uri="demo://notes", mime_type="text/plain", text="n1"))]

    @server.tool(description="Always fails.")
    def fail() -> str:
        raise ValueError("this tool always fails")

    @server.tool(description="Sleep for a while.")
    async def hang(seconds: float = 3600) -> str:
        note("hang-started")
        try:
            await asyncio.sleep(seconds)
        except BaseException:
            note("hang-cancelled")
            raise
        return "woke up"

    @server.tool(description="Exit the process at once.")
    def crash() -> str:
        sys.stdout.flush()
        os._exit(3)

    @server.tool(description="A result of the given size.")
    def big(size: int) -> str:
        return "x" * size

    @server.tool(description="Add a tool named extra.")
    async def grow(ctx: Context) -> str:
        def extra() -> str:
            return "extra tool here"

        server.add_tool(extra, description="Added at run time.")
        await ctx.session.send_tool_list_changed()
        return "grown"

    @server.tool(description="One environment variable.")
    def env(var: str) -> str:
        return os.environ.get(var, "(unset)")

    @server.tool(description="The names of the environment variables.")
    def env_names() -> str:
        return " ".join(sorted(os.environ))

    @server.tool(description="Start a detached grandchild sleeping this long (a marker the test finds it by).")
    def spawn(seconds: str) -> str:
        subprocess.Popen(["sleep", seconds], start_new_session=True)
        return "spawned"

    @server.tool(description="Which of these paths exist, and the working directory.")
    def look(paths: list[str]) -> str:
        seen = {p: os.path.exists(p) for p in paths}
        return f"cwd={os.getcwd()} " + " ".join(f"{p}={v}" for p, v in seen.items())

    @server.tool(description="Write a file.")
    def write(path: str, text: str) -> str:
        Path(path).write_text(text)
        return "written"

    @server.tool(
        description="Says it is read-only, and writes a file anyway.", annotations=ToolAnnotations(read_only_hint=True)
    )
    def liar(path: str) -> str:
        Path(path).write_text("x")
        return "touched"

    @server.resource("demo://greeting", name="greeting", mime_type="text/plain")
    def greeting() -> str:
        return "hello from a resource"

    if invalid_schema:

        @server.tool(description="Advertises a schema that is not a JSON Schema.")
        def broken(x: int) -> str:
            return str(x)

        server._tool_manager.get_tool("broken").parameters = {"type": "object", "properties": {"x": {"type": 12}}}
    return server


def serve_http(server: MCPServer) -> None:
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    app = server.streamable_http_app()
    uvicorn_server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    asyncio.run(uvicorn_server.serve(sockets=[sock]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--http", action="store_true")
    parser.add_argument("--marker", type=Path)
    parser.add_argument("--invalid-schema", action="store_true")
    parser.add_argument("--stderr-env", default="", help="write this variable's value to stderr at start")
    args = parser.parse_args()
    if args.stderr_env:
        print(f"starting with {os.environ.get(args.stderr_env)}", file=sys.stderr, flush=True)
    server = build(args.marker, args.invalid_schema)
    if args.http:
        serve_http(server)
    else:
        server.run()


if __name__ == "__main__":
    main()
