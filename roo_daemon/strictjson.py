"""JSON from clients, held to what the daemon can store and send back.

Python's ``json`` accepts three things the rest of the daemon cannot take:

- lone UTF-16 surrogates (``"\\ud800"``, or their raw CESU-8 bytes): not
  Unicode, so neither SQLite nor any client can encode them as UTF-8. One
  used to reach the store's group commit and fail other tenants' events with
  it;
- ``NaN``, ``Infinity``, ``-Infinity`` and numbers that overflow to them
  (``1e400``): not JSON (RFC 8259), they break strict clients when echoed and
  defeat numeric limits (``NaN`` compares false with everything);
- nesting thousands deep: the parser, the schema validator and error
  messages recurse, and past the interpreter's limit that is a 500.

:func:`loads` refuses each with the JSON Pointer where it sits, so the REST
edge answers 422 and the WebSocket an ``error`` frame, before anything is
validated further, stored or echoed.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_DEPTH = 32  # arrays and objects inside one another; the contract says so (openapi.yaml)
_SURROGATE = re.compile("[\ud800-\udfff]")


class JsonInputError(ValueError):
    """Client JSON the daemon refuses. ``syntax`` errors are malformed JSON
    (400); the others are well-formed but unacceptable (422) at ``pointer``."""

    def __init__(self, pointer: str, message: str, *, syntax: bool = False) -> None:
        super().__init__(f"{pointer or '/'}: {message}")
        self.pointer = pointer
        self.message = message
        self.syntax = syntax


class _NonFinite:
    """What the parser puts where ``NaN`` or an overflowing number was, so
    the walk can say where it was."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _parse_float(text: str) -> Any:
    value = float(text)
    return value if math.isfinite(value) else _NonFinite(text)


def loads(raw: bytes | str, prefix: str = "") -> Any:
    """Parse client JSON; raise :class:`JsonInputError` for malformed JSON
    and for the three things above (pointers start with ``prefix``)."""
    try:
        doc = json.loads(raw, parse_constant=_NonFinite, parse_float=_parse_float)
    except RecursionError:
        raise JsonInputError(prefix, _too_deep()) from None
    except (UnicodeDecodeError, ValueError) as e:
        raise JsonInputError(prefix, f"not valid JSON: {e}", syntax=True) from None
    _check(doc, prefix)
    return doc


def _too_deep() -> str:
    return f"is nested more than {MAX_DEPTH} levels deep (arrays and objects inside one another)"


def _check(doc: Any, prefix: str) -> None:
    """Walk the document once (iteratively: depth is what is being checked)."""
    stack: list[tuple[Any, str, int]] = [(doc, prefix, 0)]
    while stack:
        value, pointer, depth = stack.pop()
        if isinstance(value, str):
            if not value.isascii() and _SURROGATE.search(value):
                raise JsonInputError(pointer, _surrogate_message(value))
        elif isinstance(value, dict | list):
            if depth >= MAX_DEPTH:
                raise JsonInputError(pointer, _too_deep())
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(key, str) and not key.isascii() and _SURROGATE.search(key):
                    raise JsonInputError(f"{pointer}/{_escape(key)}", "the member name " + _surrogate_message(key))
                stack.append((item, f"{pointer}/{_escape(str(key))}", depth + 1))
        elif isinstance(value, _NonFinite):
            raise JsonInputError(pointer, f"{value.text} is not a finite number (JSON has no NaN or Infinity)")


def _surrogate_message(text: str) -> str:
    found = _SURROGATE.search(text)
    assert found is not None
    return (
        f"contains a lone UTF-16 surrogate (\\u{ord(found.group()):04x} at character {found.start()}): "
        "not Unicode text; send a valid UTF-8 string (surrogates only in pairs)"
    )


def _escape(key: str) -> str:
    """A pointer token, with any lone surrogate written as ``\\udXXX`` so the
    pointer itself can be sent back."""
    token = key.replace("~", "~0").replace("/", "~1")
    return token.encode("utf-8", "backslashreplace").decode("utf-8") if _SURROGATE.search(token) else token
