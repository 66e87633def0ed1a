"""Principals and bearer API keys.

Keys are configured as SHA-256 hex digests; a presented token is hashed and
compared against every configured digest with ``hmac.compare_digest`` so the
time taken does not depend on how much of a digest matched. With no keys
configured the daemon allows everyone as the ``local`` admin principal, and
config.py refuses to bind anything but loopback in that case.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

SCOPES = ("read", "write", "admin")


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    scopes: frozenset[str]
    # Where this key's sessions may have their workspace (None: anywhere
    # under workspaces.roots). Several tenants usually share one root.
    workspace_roots: tuple[str, ...] | None = None

    @property
    def is_admin(self) -> bool:
        return "admin" in self.scopes

    def has(self, scope: str) -> bool:
        return scope in self.scopes or self.is_admin


LOCAL = Principal("local", frozenset(SCOPES))


def hash_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_key() -> str:
    return "roo_" + secrets.token_urlsafe(32)


def _principal(key: dict) -> Principal:
    roots = key.get("workspace_roots")
    return Principal(
        key["name"],
        frozenset(key.get("scopes", ["read", "write"])),
        tuple(roots) if roots is not None else None,
    )


class Authenticator:
    def __init__(self, keys: Iterable[dict]) -> None:
        self._keys = [(bytes.fromhex(k["sha256"]), _principal(k)) for k in keys]
        # True when no key is configured: everyone is the local admin. An
        # attribute (the keys never change; a reload makes a new
        # Authenticator): every request asks, several times.
        self.open: bool = not self._keys

    def from_header(self, value: str | None) -> Principal | None:
        if self.open:
            return LOCAL
        if not value:
            return None
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return self.from_token(token.strip())

    def carry_over(self, principal: Principal, previous: Authenticator) -> Principal | None:
        """After a reload: the principal that ``previous`` authenticated as
        ``principal`` is now, if its key is still configured (with its
        current scopes); None if the key was removed or replaced."""
        if self.open:
            return principal
        digest = next((d for d, p in previous._keys if p is principal), None)
        if digest is None:
            return None  # the keyless local admin, now that keys are required
        return next((p for d, p in self._keys if hmac.compare_digest(d, digest)), None)

    def from_token(self, token: str) -> Principal | None:
        if self.open:
            return LOCAL
        digest = hashlib.sha256(token.encode()).digest()
        found = None
        for key_digest, principal in self._keys:
            if hmac.compare_digest(digest, key_digest):
                found = principal
        return found
