"""A small fake :class:`TaskContext` for calling tools directly, and a real
temporary workspace per test.

The fake records every ``publish`` and ``emit``, and answers each ``ask``
from a queue the test fills (an ask with nothing queued fails the test, so
an unexpected approval prompt cannot go unnoticed).
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from roo_daemon.config import load_config
from roo_daemon.engine.base import Answer
from roo_daemon.engine.providers.base import ToolCall
from roo_daemon.engine.tools import default_registry
from roo_daemon.engine.tools.base import ToolOutcome
from roo_daemon.models import AUTO_APPROVE_DEFAULTS

REGISTRY = default_registry()


def tool_settings(**overrides: Any) -> dict[str, Any]:
    """The config's real ``tools`` defaults, with overrides."""
    settings = load_config(None, env={}, overrides={})["tools"]
    settings.update(overrides)
    return settings


@dataclass
class FakeContext:
    workspace: Path
    auto_approve: dict[str, Any] = field(default_factory=lambda: dict(AUTO_APPROVE_DEFAULTS))
    settings: dict[str, Any] = field(default_factory=tool_settings)
    answers: deque[Answer] = field(default_factory=deque)
    published: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    emitted: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    asks: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    images: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.session = SimpleNamespace(workspace=str(self.workspace), auto_approve=self.auto_approve)
        self.task = SimpleNamespace(id="task_test", mode="code", provider="demo", limits={})
        self._published = asyncio.Event()

    def publish(self, name: str, data: dict[str, Any]) -> None:
        self.published.append((name, data))
        self._published.set()

    async def wait_output(self, text: str, call: asyncio.Future[Any]) -> None:
        """Until the streamed ``tool.output`` contains ``text``; fails if
        ``call`` (the tool call producing it) ends first."""
        while text not in self.output():
            if call.done():
                raise AssertionError(f"the call ended before {text!r} was streamed: {call.result()}")
            self._published.clear()
            waiter = asyncio.ensure_future(self._published.wait())
            await asyncio.wait([waiter, call], return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()

    async def emit(self, name: str, data: dict[str, Any]) -> None:
        self.emitted.append((name, data))

    async def ask(self, kind: str, **payload: Any) -> Answer:
        self.asks.append((kind, payload))
        assert self.answers, f"unexpected ask {kind!r}: {payload}"
        return self.answers.popleft()

    async def add_usage(self, usage: dict[str, Any]) -> None:
        self.emitted.append(("usage", usage))

    async def set_todos(self, todos: list[dict[str, str]]) -> None:
        self.emitted.append(("todos", {"todos": todos}))

    def approve_next(self, approve: bool = True, text: str | None = None) -> None:
        self.answers.append(Answer(approve, text))

    def output(self, stream: str | None = None) -> str:
        return "".join(
            d["text"] for n, d in self.published if n == "tool.output" and (stream is None or d["stream"] == stream)
        )

    async def call(self, name: str, **args: Any) -> ToolOutcome:
        """One call through the real registry: argument check, approval, run."""
        return await REGISTRY.execute(self, ToolCall(f"call_{len(self.emitted)}", name, args))


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    return root


@pytest.fixture
def ctx(workspace: Path) -> FakeContext:
    """Everything auto-approved: most tests exercise the tools, not the asks."""
    policy = dict(AUTO_APPROVE_DEFAULTS, read_only=True, write=True, execute=True, allowed_commands=["*"])
    return FakeContext(workspace, auto_approve=policy)


@pytest.fixture
def strict_ctx(workspace: Path) -> FakeContext:
    """Nothing auto-approved: every tool asks."""
    return FakeContext(workspace)
