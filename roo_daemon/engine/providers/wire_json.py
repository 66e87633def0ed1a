"""JSON from a provider's stream, as Unicode text the daemon can store.

JSON can spell a lone UTF-16 surrogate (``"\\ud800"``), and Python's
``json`` decodes it to a str that is not Unicode: UTF-8 cannot encode it, so
one in a model's text or tool arguments used to be refused by the event bus
and fail the task. A model's output is not ours to refuse (unlike client
JSON, which ``strictjson`` answers with a 422), so each lone surrogate is
replaced by U+FFFD, the replacement character, as a JavaScript client such
as Roo-Code ends up writing it (``TextEncoder`` does the same). A pair
escaped in one string (``"\\ud83d\\ude00"``) is decoded whole by ``json``
and stays the character it is.

Only JSON escapes can make one (the stream's bytes are decoded as UTF-8
with replacement), so a document is walked only when its text holds an
escape in the surrogate range: the common stream chunk costs one regex scan.
"""

from __future__ import annotations

import json
import re
from typing import Any

_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89abcdefABCDEF]")
_SURROGATE = re.compile("[\ud800-\udfff]")
REPLACEMENT = "\ufffd"


def loads(text: str) -> Any:
    """``json.loads``, with every lone surrogate in a string (value or
    member name) replaced by U+FFFD. Raises ``ValueError`` as ``json`` does."""
    doc = json.loads(text)
    return as_text(doc) if _ESCAPED_SURROGATE.search(text) else doc


def as_text(value: Any) -> Any:
    """``value`` with each lone surrogate in its strings replaced by U+FFFD."""
    if isinstance(value, str):
        return _SURROGATE.sub(REPLACEMENT, value) if not value.isascii() else value
    if isinstance(value, dict):
        return {as_text(k): as_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_text(v) for v in value]
    return value
