"""What a client may know about the configured providers: names, kinds,
models and context windows, for pickers and for the context meter.

Built from the provider objects (the configuration as the daemon applied
it, defaults filled in), never from the raw profile: nothing that carries
a secret (``api_key_env``'s value, ``headers``, a ``base_url`` that may hold
credentials) is ever read here."""

from __future__ import annotations

from typing import Any

from roo_daemon.engine.providers.base import Provider


def describe(provider: Provider, default: str) -> dict[str, Any]:
    return {
        "name": provider.name,
        "kind": provider.kind,
        "model": provider.model,
        "context_window": getattr(provider, "context_window", None),
        "max_tokens": getattr(provider, "max_tokens", None),
        "default": provider.name == default,
    }


def catalog(providers: dict[str, Provider], default: str) -> list[dict[str, Any]]:
    """Every profile, by name."""
    return [describe(providers[name], default) for name in sorted(providers)]
