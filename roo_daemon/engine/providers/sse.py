"""Server-sent events (the ``text/event-stream`` format both providers stream).

An incremental parser: bytes arrive in whatever pieces TCP and the server's
buffering make of them, so a line, a JSON document or a multi-byte UTF-8
character may be split anywhere. Follows the WHATWG rules that matter here:
lines end in CRLF, LF or CR; ``field: value`` with one optional space;
``data`` lines accumulate (joined with newlines); a blank line dispatches;
lines starting with ``:`` are comments (OpenRouter's keepalives).
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

_LINE_END = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class SseEvent:
    event: str  # the ``event:`` field; "" when the server sent none (OpenAI)
    data: str


class SseParser:
    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._pending = ""
        self._event = ""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[SseEvent]:
        """The events completed by this chunk, in order."""
        text = self._pending + self._decoder.decode(chunk)
        # A CR at the very end may be the first half of a CRLF: keep it for later.
        cut = len(text) - 1 if text.endswith("\r") else len(text)
        events: list[SseEvent] = []
        start = 0
        for match in _LINE_END.finditer(text, 0, cut):
            self._line(text[start : match.start()], events)
            start = match.end()
        self._pending = text[start:]
        return events

    def close(self) -> list[SseEvent]:
        """At the end of the body: a last event the server did not end with a blank line."""
        events: list[SseEvent] = []
        rest = self._pending + self._decoder.decode(b"", final=True)
        self._pending = ""
        for line in _LINE_END.split(rest):
            if line:
                self._line(line, events)
        self._line("", events)
        return events

    def _line(self, line: str, events: list[SseEvent]) -> None:
        if not line:
            if self._data:
                events.append(SseEvent(self._event, "\n".join(self._data)))
            self._event, self._data = "", []
            return
        if line.startswith(":"):
            return
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
