"""Fixtures for the provider tests: the fake servers (both kinds, or one),
providers built against them with a recording sleep, and helpers to
consume a stream the way the agent loop does."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Any

import pytest

from roo_daemon.engine.providers import KINDS
from roo_daemon.engine.providers.base import Chunk, ProviderRequest, StreamReset, TextDelta, ToolCall, Usage
from roo_daemon.engine.providers.network import HttpProvider
from roo_daemon.metrics import Metrics
from tests.engine.fakes import FakeProviderServer, fake_anthropic, fake_openai  # noqa: F401 (fixtures)


@pytest.fixture(params=["openai", "anthropic"])
def fake(request: pytest.FixtureRequest) -> FakeProviderServer:
    """Each test using it runs once per provider kind."""
    return request.getfixturevalue(f"fake_{request.param}")


class RecordingSleep:
    """Stands in for asyncio.sleep in the retry loop: records each wait and
    returns at once, so tests check the computed delays, not the clock."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)


@dataclass
class Setup:
    provider: HttpProvider
    sleep: RecordingSleep
    metrics: Metrics


def make_provider(fake: FakeProviderServer, **overrides: Any) -> Setup:
    sleep = RecordingSleep()
    metrics = Metrics()
    provider = KINDS[fake.kind]("test", fake.profile(**overrides), metrics, sleep=sleep, rng=random.Random(7))
    return Setup(provider, sleep, metrics)


TOOLS = [
    {
        "name": "write_to_file",
        "description": "Write a file.",
        "parameters": {
            "type": "object",
            "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
            "required": ["path", "content"],
        },
    }
]


def simple_request(text: str = "Say hello.") -> ProviderRequest:
    return ProviderRequest("You are Roo.", [{"role": "user", "content": text}], TOOLS)


async def collect(provider: HttpProvider, request: ProviderRequest | None = None) -> list[Chunk]:
    return [chunk async for chunk in provider.stream(request or simple_request())]


@dataclass
class Assembled:
    """What the loop keeps of a turn: text and calls since the last reset."""

    text: str = ""
    calls: list[ToolCall] = field(default_factory=list)
    usage: list[Usage] = field(default_factory=list)
    resets: list[str] = field(default_factory=list)


def assemble(chunks: list[Chunk]) -> Assembled:
    out = Assembled()
    for chunk in chunks:
        if isinstance(chunk, TextDelta):
            out.text += chunk.text
        elif isinstance(chunk, ToolCall):
            out.calls.append(chunk)
        elif isinstance(chunk, Usage):
            out.usage.append(chunk)
        elif isinstance(chunk, StreamReset):
            out.resets.append(chunk.reason)
            out.text, out.calls = "", []
    return out


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value
