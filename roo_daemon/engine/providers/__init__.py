"""LLM providers: each turns a conversation into a stream of chunks."""

from __future__ import annotations

from typing import Any

from roo_daemon.engine.providers.base import Provider
from roo_daemon.engine.providers.scripted import ScriptedProvider

KINDS = {"scripted": ScriptedProvider}


def build_providers(profiles: dict[str, dict[str, Any]], config_dir: str, metrics: Any = None) -> dict[str, Provider]:
    """One provider per configured profile, built once at start (scripts are
    read here, before the loop serves, so no file read happens per task).
    ``metrics`` (a :class:`roo_daemon.metrics.Metrics`) is for the network providers."""
    return {name: KINDS[p["kind"]](name, p, config_dir) for name, p in profiles.items()}
