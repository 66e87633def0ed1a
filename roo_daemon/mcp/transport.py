"""How the daemon reaches an MCP server: a child process over stdio, or a
URL (Streamable HTTP, legacy SSE). The JSON-RPC layer above is the official
SDK's (``mcp.ClientSession``); this module only moves its messages.

The stdio side is ours rather than the SDK's ``stdio_client`` for three
reasons: a server's stdout is read with a cap per message
(``mcp.max_message_bytes``; the SDK buffers an unterminated line without
bound), its stderr goes to the daemon's log under the server's name (the
SDK wants a file), and the process is started and ended the way the
daemon's commands are (an asyncio subprocess in a process group of its own,
optionally inside bubblewrap, ended with SIGTERM then SIGKILL), so nothing
it starts outlives it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import mcp_types as types
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.message import SessionMessage

from roo_daemon.engine.tools.command import end_group

log = logging.getLogger("roo_daemon.mcp")

STDERR_LINE_MAX = 2000  # characters of one stderr line kept for the log
STDERR_TAIL = 20  # lines kept for error messages
EXIT_GRACE_SECONDS = 0.5  # after stdin closes, before SIGTERM (the spec's shutdown order)


class MessageTooLarge(Exception):
    """The server sent a line longer than ``mcp.max_message_bytes``."""


@dataclass
class Link:
    """A live transport: the SDK's two streams, plus what the connection
    watches: ``closed`` is set when the server hung up (or died), and the
    reason, stderr tail and garbage count explain it."""

    read: object
    write: object
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    reason: str | None = None
    pid: int | None = None
    stderr_tail: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=STDERR_TAIL))
    garbage: list[str] = field(default_factory=list)  # the first few stdout lines that were not JSON-RPC
    garbage_count: int = 0

    def close(self, reason: str) -> None:
        if not self.closed.is_set():
            self.reason = reason
            self.closed.set()

    def explain(self) -> str:
        """What went wrong, for a status or an error: the reason, the non-JSON
        output if any, the last stderr lines."""
        parts = [self.reason or "the connection ended"]
        if self.garbage_count:
            parts.append(
                f"it wrote {self.garbage_count} line(s) to stdout that are not JSON-RPC, the first: {self.garbage[0]!r}"
            )
        if self.stderr_tail:
            parts.append("stderr: " + " | ".join(self.stderr_tail))
        return "; ".join(parts)


async def _read_stdout(stream: asyncio.StreamReader, sink: anyio.abc.ObjectSendStream, link: Link, limit: int) -> None:
    async with sink:
        while True:
            try:
                line = await stream.readuntil(b"\n")
            except asyncio.IncompleteReadError as e:
                if e.partial.strip():
                    await _deliver(e.partial, sink, link)
                return  # the end: _watch says why
            except asyncio.LimitOverrunError:
                link.close(f"the server sent a message over {limit:,} bytes (mcp.max_message_bytes); disconnected")
                await sink.send(MessageTooLarge(link.reason))
                return
            except (ConnectionError, OSError) as e:
                link.close(f"reading the server's stdout failed: {e}")
                return
            if line.strip():
                try:
                    await _deliver(line, sink, link)
                except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                    return


async def _deliver(line: bytes, sink: anyio.abc.ObjectSendStream, link: Link) -> None:
    try:
        message = types.jsonrpc_message_adapter.validate_json(line, by_name=False)
    except ValueError as e:
        link.garbage_count += 1
        if len(link.garbage) < 3:
            link.garbage.append(line[:200].decode("utf-8", "replace").strip())
        await sink.send(e)  # the session hands it to its message handler
        return
    await sink.send(SessionMessage(message))


async def _write_stdin(stream: asyncio.StreamWriter, source: anyio.abc.ObjectReceiveStream, link: Link) -> None:
    async with source:
        async for message in source:
            data = message.message.model_dump_json(by_alias=True, exclude_unset=True).encode() + b"\n"
            try:
                stream.write(data)
                await stream.drain()
            except (ConnectionError, OSError) as e:
                link.close(f"writing to the server's stdin failed: {e}")
                return


async def _read_stderr(stream: asyncio.StreamReader, link: Link, on_line: Callable[[str], None]) -> None:
    while True:
        try:
            raw = await stream.readline()
        except ValueError:  # a line over the reader's limit: take what is there
            raw = await stream.read(65536)
        except (ConnectionError, OSError):
            return
        if not raw:
            return
        text = raw.decode("utf-8", "replace").rstrip()[:STDERR_LINE_MAX]
        if text:
            link.stderr_tail.append(text[:300])
            on_line(text)


@asynccontextmanager
async def stdio_link(
    argv: list[str], cwd: Path, env: dict[str, str], limit: int, on_stderr: Callable[[str], None]
) -> AsyncIterator[Link]:
    """Start ``argv`` and yield its :class:`Link`. On exit the server's
    stdin is closed; what is still running half a second later is ended
    with its whole process group (or its sandbox)."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=str(cwd),
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            limit=limit,
        )
    except OSError as e:
        raise OSError(e.errno, f"cannot start {argv[0]!r}: {e.strerror or e}") from None
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    read_send, read_recv = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    write_send, write_recv = anyio.create_memory_object_stream[SessionMessage](0)
    link = Link(read_recv, write_send, pid=proc.pid)
    reader = asyncio.ensure_future(_read_stdout(proc.stdout, read_send, link, limit))
    exited = asyncio.ensure_future(proc.wait())
    pumps = [
        reader,
        asyncio.ensure_future(_write_stdin(proc.stdin, write_recv, link)),
        asyncio.ensure_future(_read_stderr(proc.stderr, link, on_stderr)),
        asyncio.ensure_future(_watch(reader, exited, link, proc)),
    ]
    try:
        yield link
    finally:
        await asyncio.shield(_stop(proc, pumps, exited))
        for stream in (read_recv, write_send, read_send, write_recv):
            stream.close()


async def _watch(reader: asyncio.Future, exited: asyncio.Future, link: Link, proc: asyncio.subprocess.Process) -> None:
    """Close the link when the server's stdout ends or the server exits,
    whichever comes first, after a moment for the other: the exit status
    explains an end of output, and the last lines may follow an exit."""
    await asyncio.wait([reader, exited], return_when=asyncio.FIRST_COMPLETED)
    await asyncio.wait([reader, exited], timeout=EXIT_GRACE_SECONDS)
    if exited.done():
        link.close(_exit_text(proc.returncode))
    else:
        link.close("the server closed its stdout")


async def _stop(proc: asyncio.subprocess.Process, pumps: list[asyncio.Future], exited: asyncio.Future) -> None:
    if proc.stdin is not None:
        with contextlib.suppress(OSError):
            proc.stdin.close()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(exited), EXIT_GRACE_SECONDS)
    await end_group(proc)
    for pump in pumps:
        pump.cancel()
    await asyncio.gather(*pumps, return_exceptions=True)
    exited.cancel()


def _exit_text(code: int | None) -> str:
    if code is None:
        return "the server exited"
    if code < 0:
        return f"the server was killed by signal {-code}"
    return f"the server exited with status {code}"


@asynccontextmanager
async def remote_link(transport: str, url: str, headers: dict[str, str], limit: int) -> AsyncIterator[Link]:
    """The SDK's Streamable HTTP or SSE client. The connection is ``closed``
    when a request finds it broken (see :class:`~roo_daemon.mcp.connection.ServerConnection`)."""
    if transport == "streamable-http":
        client = create_mcp_http_client(headers=headers)
        async with client, streamable_http_client(url, http_client=client, max_sse_event_size=limit) as (read, write):
            yield Link(read, write)
    else:
        async with sse_client(url, headers=headers) as (read, write):
            yield Link(read, write)
