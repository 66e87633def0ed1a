"""The task's conversation as the engine sees it: the messages the next
request sends (the *view*), backed by the store.

Every message the loop adds gets the task's next row number and is handed to
the context to persist (with the event that reports it); nothing is ever
rewritten. Condensing and truncation add a marker that replaces the older
part of the view (see ``roo_daemon/store/conversation.py``). A running
token estimate of the view is kept as messages come and go, so deciding
whether the next request fits costs the same at turn 1,000 as at turn 10.

Messages are provider-neutral dicts: ``role`` (user, assistant, tool),
``content``, and ``images`` (user), ``tool_calls`` and ``thinking``
(assistant; Anthropic's signed thinking blocks),
``tool_call_id``/``name``/``is_error`` (tool); ``source`` says who wrote it
(user, engine, model, tool). Providers read only the keys they know.
"""

from __future__ import annotations

import json
import time
from typing import Any

from roo_daemon.store.conversation import MESSAGE, Row

CHARS_PER_TOKEN = 4  # the usual rule of thumb; the provider's usage corrects it each turn
IMAGE_TOKENS = 1600  # about what one full-size image costs Anthropic and OpenAI
MESSAGE_OVERHEAD_TOKENS = 4


def estimate_tokens(message: dict[str, Any]) -> int:
    chars = len(message.get("content") or "")
    for call in message.get("tool_calls") or []:
        chars += len(call.get("name", "")) + len(json.dumps(call.get("args") or {}))
    images = len(message.get("images") or [])
    return chars // CHARS_PER_TOKEN + images * IMAGE_TOKENS + MESSAGE_OVERHEAD_TOKENS


def estimate_text(text: str) -> int:
    return len(text) // CHARS_PER_TOKEN


class Conversation:
    def __init__(self, rows: list[Row], next_n: int) -> None:
        self.rows = rows  # the view: row 1, the latest marker (if any), the messages kept after it
        self.messages = [r.doc for r in rows]  # the same, as the provider request takes them
        self.next_n = next_n
        self.tokens = sum(estimate_tokens(m) for m in self.messages)

    @property
    def empty(self) -> bool:
        return not self.rows

    @property
    def last_ts(self) -> float | None:
        return self.rows[-1].ts if self.rows else None

    def add(self, message: dict[str, Any], kind: str = MESSAGE) -> Row:
        """Append to the view; returns the row for the store."""
        row = Row(self.next_n, kind, time.time(), message)
        self.next_n += 1
        self.rows.append(row)
        self.messages.append(message)
        self.tokens += estimate_tokens(message)
        return row

    def replace_older(self, keep_index: int, marker: dict[str, Any], kind: str) -> Row:
        """Replace the view's rows ``1 .. keep_index - 1`` (everything between
        the first message and the ones kept) by ``marker``; returns its row."""
        kept = self.rows[keep_index:]
        marker["keep_from"] = kept[0].n if kept else self.next_n + 1
        row = Row(self.next_n, kind, time.time(), marker)
        self.next_n += 1
        self.rows = [self.rows[0], row, *kept]
        self.messages = [r.doc for r in self.rows]
        self.tokens = sum(estimate_tokens(m) for m in self.messages)
        return row

    def open_calls(self) -> list[dict[str, Any]]:
        """The last assistant message's tool calls that have no result yet
        (the task stopped between a call and its result)."""
        answered: set[str] = set()
        for message in reversed(self.messages):
            if message["role"] == "tool":
                answered.add(message.get("tool_call_id", ""))
            elif message["role"] == "assistant":
                return [c for c in message.get("tool_calls") or [] if c["id"] not in answered]
            else:
                return []
        return []
