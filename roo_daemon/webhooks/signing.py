"""The ``X-Roo-Signature`` header: Stripe's scheme, ``t=<unix seconds>,v1=<hex>``
with ``v1 = HMAC-SHA256(secret, f"{t}.{body}")``. The timestamp is signed
with the body, so a receiver that refuses old timestamps refuses replays."""

from __future__ import annotations

import hashlib
import hmac
import time

HEADER = "X-Roo-Signature"


def sign(secret: bytes, body: bytes, t: int | None = None) -> str:
    """The header value for ``body`` sent at ``t`` (now by default)."""
    t = int(time.time()) if t is None else t
    mac = hmac.new(secret, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(secret: bytes, header: str, body: bytes, tolerance: float = 300, now: float | None = None) -> bool:
    """For receivers written in Python: True if ``header`` signs ``body``
    with ``secret`` and its timestamp is within ``tolerance`` seconds of
    ``now``. Any ``v1`` entry may match (a sender rotating secrets can send two)."""
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        parts.setdefault(key, []).append(value)
    try:
        t = int(parts["t"][0])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - t) > tolerance:
        return False
    expected = hmac.new(secret, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, given) for given in parts.get("v1", []))
