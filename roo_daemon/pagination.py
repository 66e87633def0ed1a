"""Opaque list cursors: the store's row number, base64url-encoded."""

from __future__ import annotations

import base64
import binascii

from roo_daemon.problems import validation_problem

INT64_MAX = 2**63 - 1  # SQLite's largest integer: a row number past it cannot be bound


def encode_cursor(n: int | None) -> str | None:
    if n is None:
        return None
    return base64.urlsafe_b64encode(f"n{n}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    """The row number to continue after; 0 for the first page."""
    if not cursor:
        return 0
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if raw.startswith("n") and raw[1:].isdigit() and int(raw[1:]) <= INT64_MAX:
            return int(raw[1:])
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise validation_problem([{"pointer": "/query/cursor", "message": "is not a cursor this daemon issued"}])
