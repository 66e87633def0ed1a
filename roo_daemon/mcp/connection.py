"""One MCP server's connection: started on first use, restarted with
backoff when it dies, stopped when idle or on request.

A connection lives in a task of its own (the *runner*): the SDK's
``ClientSession`` is a structured context that must be entered and left in
one task. Calls come from the tasks of the agent loops that use the server
and only send requests on the live session.

Restart policy: a death (or a failed start) counts as a failure; the first
restart after a failure is immediate, the next ones wait 1, 2, 4... seconds
up to ``mcp.restart_backoff_max_seconds``. A successful call, or a minute
connected, forgets the failures. A server nobody used since it died is not
restarted (it stays ``error`` until the next use); idle connections are
stopped by the hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import Any

import anyio
import jsonschema
import mcp_types as types
from mcp import ClientSession
from mcp.shared.exceptions import MCPError

from roo_daemon import __version__
from roo_daemon.mcp.config import Limits, ServerConfig
from roo_daemon.mcp.errors import CallTimeout, ServerError, Unavailable
from roo_daemon.mcp.transport import Link

log = logging.getLogger("roo_daemon.mcp")

CLIENT_INFO = types.Implementation(name="roo-daemon", version=__version__)
STABLE_SECONDS = 60.0
MAX_PAGES = 100
STOP_WAIT_SECONDS = 5.0

Opener = Callable[[ServerConfig, Callable[[str], None]], AbstractAsyncContextManager[Link]]


class Scrubber:
    """Replaces the server's secret values (``env_from``/``headers_from``)
    in any text that leaves the connection: logs, events, errors."""

    def __init__(self, secrets: dict[str, str]) -> None:
        self.values = sorted({v for v in secrets.values() if len(v) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for value in self.values:
            text = text.replace(value, "[redacted]")
        return text


def invalid_schema(schema: Any) -> str | None:
    """Why a tool's ``inputSchema`` cannot be offered to a model, or None."""
    if not isinstance(schema, dict):
        return "its inputSchema is not an object"
    if schema.get("type") != "object":
        return f"its inputSchema has type {schema.get('type')!r}, not 'object'"
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as e:
        where = "/".join(map(str, e.absolute_path))
        return f"its inputSchema is not a valid JSON Schema ({where + ': ' if where else ''}{e.message})"
    return None


class ServerConnection:
    def __init__(
        self, cfg: ServerConfig, opener: Opener, limits: Limits, on_change: Callable[[ServerConnection], None]
    ) -> None:
        self.cfg = cfg
        self.opener = opener
        self.limits = limits
        self.on_change = on_change
        self.scrub = Scrubber(cfg.secrets())
        self.status = "disabled" if cfg.disabled else "stopped"
        self.last_error: str | None = None
        self.tools: dict[str, types.Tool] = {}  # offered: valid schema, not disabled
        self.invalid_tools: dict[str, str] = {}  # name -> why it is not offered
        self.resources: list[types.Resource] = []
        self.templates: list[types.ResourceTemplate] = []
        self.instructions: str | None = None
        self.generation = 0  # bumped whenever the tool list changes
        self.connects = 0  # successful starts; every one after the first is a restart
        self.failures = 0
        self.started_at: float | None = None
        self.retry_at: float | None = None
        self.start_failed = False  # the last start attempt failed (no successful start since)
        self.inflight = 0
        self.last_used = time.monotonic()
        self.session: ClientSession | None = None
        self.link: Link | None = None
        self._runner: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._changed = asyncio.Event()
        self._refresh: asyncio.Task[None] | None = None

    # -- state -----------------------------------------------------------

    @property
    def label(self) -> str:
        where = f" (session {self.cfg.session_id})" if self.cfg.session_id else ""
        return f"{self.cfg.name!r}{where}"

    def _set(self, status: str, error: str | None = None) -> None:
        changed = status != self.status or (error is not None and error != self.last_error)
        self.status = status
        if error is not None:
            self.last_error = self.scrub(error)
        if changed:
            self._pulse()
            self.on_change(self)

    def _pulse(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    @property
    def restarts(self) -> int:
        return max(0, self.connects - 1)

    def idle_seconds(self) -> float:
        return 0.0 if self.inflight else time.monotonic() - self.last_used

    def touch(self) -> None:
        self.last_used = time.monotonic()

    # -- lifecycle -------------------------------------------------------

    async def ensure(self, timeout: float, through_backoff: bool) -> bool:
        """Start the server if it is not running and wait (up to
        ``timeout``) until it is connected. Without ``through_backoff``, a
        server waiting to be restarted is not waited for (listing tools for
        a turn must not stall on a broken server)."""
        if self.status == "disabled":
            return False
        self.inflight += 1  # a start being waited for is use: the idle reaper leaves it alone
        try:
            return await self._ensure(timeout, through_backoff)
        finally:
            self.inflight -= 1
            self.touch()

    async def _ensure(self, timeout: float, through_backoff: bool) -> bool:
        deadline = time.monotonic() + timeout
        while self.status != "connected":
            if self._runner is None or self._runner.done():
                self._start()
            elif not through_backoff and (self.retry_at is not None or self.start_failed):
                return False  # it failed to start (or waits out a backoff): not worth stalling a turn for
            changed = self._changed
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(changed.wait(), remaining)
            except TimeoutError:
                return False
        return True

    def _start(self) -> None:
        """A runner for a server not running: started on use, it tries at once."""
        self.start_failed = False
        self.failures = 0
        self._stop = asyncio.Event()
        self._runner = asyncio.get_running_loop().create_task(self._run(), name=f"mcp server {self.cfg.name}")

    async def stop(self, reason: str = "stopped") -> None:
        """Stop the server (its process and children) and wait for it."""
        runner = self._runner
        if runner is None or runner.done():
            if self.status not in ("disabled", "stopped"):
                self._set("stopped")
            return
        self._stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(runner), STOP_WAIT_SECONDS)
        except TimeoutError:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await runner
        except Exception:
            pass
        log.info("MCP server %s %s", self.label, reason, extra={"mcp_server": self.cfg.name})

    def _delay(self) -> float:
        """0 before the first start, and after the first death of a server
        that had started; else 1, 2, 4... seconds, capped."""
        if self.failures == 0 or (self.failures == 1 and not self.start_failed):
            return 0.0
        n = self.failures if self.start_failed else self.failures - 1
        return min(self.limits.backoff_max, self.limits.backoff_base * 2 ** (n - 1))

    async def _run(self) -> None:
        try:
            while not self._stop.is_set():
                delay = self._delay()
                if delay:
                    self.retry_at = time.time() + delay
                    self._pulse()  # callers that do not wait through a backoff stop waiting now
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), delay)
                    self.retry_at = None
                    if self._stop.is_set():
                        break
                await self._once()
                if not self._stop.is_set() and self.idle_seconds() > STABLE_SECONDS:
                    break  # died, and nobody has used it for a while: restart on the next use
        finally:
            self.session = None
            if self.status != "error" or self._stop.is_set():
                self._set("stopped")

    async def _once(self) -> None:
        self._set("starting")
        try:
            async with AsyncExitStack() as stack:
                link = await stack.enter_async_context(self.opener(self.cfg, self._stderr))
                self.link = link
                session = await stack.enter_async_context(
                    ClientSession(link.read, link.write, message_handler=self._on_message, client_info=CLIENT_INFO)
                )
                try:
                    await self._initialize(session, link)
                except BaseException:
                    self.start_failed = True
                    raise
                self.start_failed = False
                await self._serve(session, link)
        except Exception as e:  # a failed start or a broken connection: the server's problem, not the daemon's
            if self.session is None and self.status == "starting":
                self.start_failed = True
            self._failed(self._explain(e))
        finally:
            self.session = None
            if self._refresh is not None:
                self._refresh.cancel()

    async def _initialize(self, session: ClientSession, link: Link) -> None:
        try:
            with anyio.fail_after(self.limits.start_timeout):
                init = await session.initialize()
                await self._list(session)
        except TimeoutError:
            detail = link.explain() if (link.closed.is_set() or link.garbage_count or link.stderr_tail) else ""
            raise Unavailable(
                f"no answer to initialize within {self.limits.start_timeout:g} s" + (f" ({detail})" if detail else "")
            ) from None
        self.instructions = init.instructions

    async def _serve(self, session: ClientSession, link: Link) -> None:
        self.session = session
        self.started_at = time.time()
        connected_at = time.monotonic()
        self.connects += 1
        self._set("connected")
        log.info(
            "MCP server %s connected: %d tools, %d resources",
            self.label,
            len(self.tools),
            len(self.resources),
            extra={"mcp_server": self.cfg.name},
        )
        stop = asyncio.ensure_future(self._stop.wait())
        closed = asyncio.ensure_future(link.closed.wait())
        try:
            await asyncio.wait([stop, closed], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            closed.cancel()
            self.session = None
        if time.monotonic() - connected_at >= STABLE_SECONDS:
            self.failures = 0
        if not self._stop.is_set():
            self._failed(f"the server stopped: {link.explain()}")

    def _failed(self, text: str) -> None:
        self.failures += 1
        self._set("error", text)
        log.warning("MCP server %s failed: %s", self.label, self.last_error, extra={"mcp_server": self.cfg.name})

    def _explain(self, e: BaseException) -> str:
        if isinstance(e, BaseExceptionGroup) and e.exceptions:
            return self._explain(e.exceptions[0])
        if self.link is not None and self.link.closed.is_set() and not isinstance(e, Unavailable):
            return self.link.explain()  # the server went away: its exit status and stderr say more
        return str(e) or type(e).__name__

    def _stderr(self, line: str) -> None:
        log.info("MCP server %s: %s", self.label, self.scrub(line), extra={"mcp_server": self.cfg.name})

    # -- listings --------------------------------------------------------

    async def _list(self, session: ClientSession) -> None:
        caps = session.server_capabilities
        tools = await _paged(session.list_tools, "tools") if caps is None or caps.tools is not None else []
        self._take_tools(tools)
        if caps is not None and caps.resources is not None:
            self.resources = await _paged(session.list_resources, "resources")
            with contextlib.suppress(MCPError):
                self.templates = await _paged(session.list_resource_templates, "resource_templates")
        else:
            self.resources, self.templates = [], []

    def _take_tools(self, tools: list[types.Tool]) -> None:
        offered: dict[str, types.Tool] = {}
        invalid: dict[str, str] = {}
        for tool in tools:
            problem = invalid_schema(tool.input_schema)
            if problem is not None:
                invalid[tool.name] = problem
                log.warning(
                    "MCP server %s: tool %r is not offered: %s", self.label, tool.name, problem,
                    extra={"mcp_server": self.cfg.name},
                )  # fmt: skip
            elif tool.name not in self.cfg.disabled_tools:
                offered[tool.name] = tool
        if list(offered) != list(self.tools) or offered != self.tools or invalid != self.invalid_tools:
            self.generation += 1
        self.tools, self.invalid_tools = offered, invalid

    async def _on_message(self, message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification | types.ResourceListChangedNotification):
            if self._refresh is None or self._refresh.done():
                # In a task of its own: the handler runs on the session's
                # receive path, which must stay free to deliver the answer.
                self._refresh = asyncio.ensure_future(self._relist())

    async def _relist(self) -> None:
        session = self.session
        if session is None:
            return
        before = self.generation
        try:
            await self._list(session)
        except Exception as e:
            log.warning("MCP server %s: refreshing the tool list failed: %s", self.label, self.scrub(str(e)))
            return
        log.info("MCP server %s changed its lists: %d tools", self.label, len(self.tools))
        if self.generation != before:
            self.on_change(self)

    # -- calls -----------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _using(self, timeout: float) -> AsyncIterator[ClientSession]:
        self.inflight += 1
        try:
            if not await self.ensure(timeout, through_backoff=True) or self.session is None:
                raise Unavailable(self.unavailable_text())
            yield self.session
        finally:
            self.inflight -= 1
            self.touch()

    async def call_tool(self, name: str, args: dict[str, Any]) -> types.CallToolResult:
        """Call a tool within the server's ``timeout`` (its start included).
        Cancelling the caller cancels the call (the SDK tells the server)."""
        timeout = self.cfg.timeout
        try:
            async with asyncio.timeout(timeout), self._using(timeout) as session:
                result = await session.call_tool(name, args)
        except TimeoutError:
            raise CallTimeout(f"no answer within {timeout:g} s (the server's timeout)") from None
        except MCPError as e:
            raise await self._call_error(e) from None
        self.failures = 0
        await self._settle_lists()
        return result

    async def _settle_lists(self) -> None:
        """A call that changed the server's tools (it sent list_changed before
        its answer) returns once the new list is in: the next turn offers it."""
        refresh = self._refresh
        if refresh is None or refresh.done():
            return
        try:
            await asyncio.wait_for(asyncio.shield(refresh), self.cfg.timeout)
        except TimeoutError:
            pass
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not refresh.cancelled() or (task is not None and task.cancelling()):
                raise  # the caller is being cancelled, not just the refresh

    async def read_resource(self, uri: str) -> types.ReadResourceResult:
        timeout = self.cfg.timeout
        try:
            async with asyncio.timeout(timeout), self._using(timeout) as session:
                return await session.read_resource(uri)
        except TimeoutError:
            raise CallTimeout(f"no answer within {timeout:g} s (the server's timeout)") from None
        except MCPError as e:
            raise await self._call_error(e) from None

    async def _call_error(self, e: MCPError) -> Exception:
        if e.code == types.CONNECTION_CLOSED:
            link = self.link
            why = str(e)
            if link is not None:
                # The transport says why in a moment (the exit status): wait for it.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(link.closed.wait(), 1.0)
                if link.closed.is_set():
                    why = link.explain()
                else:  # an HTTP server: the session's own failure says more
                    link.close("the connection was lost during a call")
                    why = self.last_error if self.status != "connected" and self.last_error else link.explain()
            return Unavailable(self.scrub(f"the server stopped during the call ({why})"))
        if e.code == types.REQUEST_TIMEOUT:
            return CallTimeout(self.scrub(str(e)))
        return ServerError(e.code, self.scrub(e.message))

    def unavailable_text(self) -> str:
        if self.status == "disabled":
            return "the server is disabled in its configuration"
        if self.last_error:
            return self.last_error
        return f"the server is {self.status}"


async def _paged(method: Callable[..., Any], attribute: str) -> list[Any]:
    items: list[Any] = []
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
        page = await method(params=params)
        items.extend(getattr(page, attribute))
        cursor = page.next_cursor
        if not cursor:
            break
    return items
