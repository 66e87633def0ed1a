"""LLM providers: each turns a conversation into a stream of chunks."""

from __future__ import annotations

from typing import Any

from roo_daemon.engine.providers.anthropic import AnthropicProvider
from roo_daemon.engine.providers.base import Provider
from roo_daemon.engine.providers.network import HttpProvider
from roo_daemon.engine.providers.openai import OpenAIProvider
from roo_daemon.engine.providers.scripted import ScriptedProvider

KINDS: dict[str, type] = {"scripted": ScriptedProvider, "openai": OpenAIProvider, "anthropic": AnthropicProvider}


def build_providers(profiles: dict[str, dict[str, Any]], config_dir: str, metrics: Any = None) -> dict[str, Provider]:
    """One provider per configured profile, built once at start (scripts are
    read here, before the loop serves, so no file read happens per task).
    ``metrics`` (a :class:`roo_daemon.metrics.Metrics`) is for the network providers."""
    built: dict[str, Provider] = {}
    for name, profile in profiles.items():
        cls = KINDS[profile["kind"]]
        if issubclass(cls, HttpProvider):
            built[name] = cls(name, profile, metrics)
        else:
            built[name] = cls(name, profile, config_dir)
    return built
