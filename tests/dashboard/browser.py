"""Headless Chromium (Debian's package, as the /docs test uses) driven over
the DevTools protocol with Tornado's own WebSocket client: a test can click,
type and read the page as a person would, with no extra dependency."""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import time
from pathlib import Path
from typing import Any

from tornado.httpclient import AsyncHTTPClient
from tornado.websocket import WebSocketClientConnection, websocket_connect

from tests.needs import missing


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    missing("no headless Chromium (.ci/run installs Debian's chromium)")
    raise AssertionError("unreachable")


class Browser:
    """One headless Chromium with one page; every other host unreachable."""

    def __init__(self, proc: asyncio.subprocess.Process, ws: WebSocketClientConnection) -> None:
        self.proc = proc
        self.ws = ws
        self._ids = itertools.count(1)
        self.problems: list[dict[str, Any]] = []  # script errors, CSP violations, console errors

    @classmethod
    async def launch(cls, profile: Path) -> Browser:
        proc = await asyncio.create_subprocess_exec(
            chromium(),
            "--headless",
            "--no-sandbox",  # tests run as root in CI's container
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            f"--user-data-dir={profile}",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost",
            "--remote-debugging-port=0",
            "about:blank",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            assert time.monotonic() < deadline, "Chromium did not open its DevTools port"
            assert proc.returncode is None, f"Chromium exited with {proc.returncode}"
            await asyncio.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        targets = await AsyncHTTPClient().fetch(f"http://127.0.0.1:{port}/json/list")
        page = next(t for t in json.loads(targets.body) if t["type"] == "page")
        ws = await websocket_connect(page["webSocketDebuggerUrl"], max_message_size=64 * 1024 * 1024)
        browser = cls(proc, ws)
        for domain in ("Runtime", "Log", "Page"):
            await browser.send(f"{domain}.enable")
        return browser

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        call_id = next(self._ids)
        await self.ws.write_message(json.dumps({"id": call_id, "method": method, "params": params or {}}))
        while True:
            raw = await self.ws.read_message()
            assert raw is not None, "the DevTools connection closed"
            msg = json.loads(raw)
            if msg.get("id") == call_id:
                assert "error" not in msg, msg["error"]
                return msg.get("result", {})
            self._note(msg)

    def _note(self, msg: dict[str, Any]) -> None:
        method, params = msg.get("method"), msg.get("params", {})
        if method == "Runtime.exceptionThrown" and params["exceptionDetails"].get("url"):
            # (one without a url is an expression of ours, evaluated too early)
            self.problems.append(params["exceptionDetails"])
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            self.problems.append(params["entry"])
        elif method == "Runtime.consoleAPICalled" and params["type"] == "error":
            self.problems.append(params)

    async def goto(self, url: str) -> None:
        await self.send("Page.navigate", {"url": url})

    async def eval(self, expression: str, *, strict: bool = True) -> Any:
        """The value of a JavaScript expression in the page (promises awaited);
        with ``strict`` off, None when it throws."""
        result = await self.send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True}
        )
        if "exceptionDetails" in result:
            assert not strict, result["exceptionDetails"]
            return None
        return result["result"].get("value")

    async def wait(self, expression: str, timeout: float = 30) -> Any:
        """Until the expression is truthy in the page (a throw counts as not
        yet: the page may still be loading); its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = await self.eval(expression, strict=False)
            if value:
                return value
            assert time.monotonic() < deadline, f"never true: {expression}"
            await asyncio.sleep(0.1)

    async def close(self) -> None:
        self.ws.close()
        if self.proc.returncode is None:
            self.proc.kill()
        await self.proc.wait()
