"""``<think>…</think>`` at the start of a model's text is its reasoning, as
Roo-Code's ``TagMatcher`` (src/utils/tag-matcher.ts) reads an
OpenAI-compatible stream: DeepSeek-R1 style models served by Ollama, LM
Studio or vLLM without a reasoning parser think inside ``content``.

A port of Roo's matcher: a tag opens only at the very first character of the
text (or nested inside a matched region), the tags themselves are dropped,
and pieces split anywhere (``<thi`` + ``nk>``) are held until they decide.
Once the text has started with anything else, every later piece passes
through untouched (:attr:`plain`), so the common stream pays nothing.
"""

from __future__ import annotations


class ThinkTagMatcher:
    def __init__(self, tag: str = "think") -> None:
        self.tag = tag
        self._index = 0
        self._chunks: list[tuple[bool, str]] = []  # (inside the tag, text)
        self._cached: list[str] = []
        self._matched = False
        self._state = "TEXT"  # or TAG_OPEN, TAG_CLOSE
        self._depth = 0
        self._pointer = 0

    @property
    def plain(self) -> bool:
        """No tag can open any more: the rest of the text is text."""
        return self._pointer > 0 and self._state == "TEXT" and not self._matched and not self._cached

    def update(self, piece: str) -> list[tuple[bool, str]]:
        """``(is_reasoning, text)`` runs decided by this piece."""
        self._update(piece)
        return self._pop()

    def final(self) -> list[tuple[bool, str]]:
        """At the end of the text: whatever was held, as it stands."""
        self._collect()
        return self._pop()

    def _collect(self) -> None:
        if not self._cached:
            return
        data = "".join(self._cached)
        self._cached = []
        if self._chunks and self._chunks[-1][0] == self._matched:
            self._chunks[-1] = (self._matched, self._chunks[-1][1] + data)
        else:
            self._chunks.append((self._matched, data))

    def _pop(self) -> list[tuple[bool, str]]:
        chunks, self._chunks = self._chunks, []
        return chunks

    def _update(self, piece: str) -> None:
        tag = self.tag
        for char in piece:
            self._cached.append(char)
            self._pointer += 1
            if self._state == "TEXT":
                if char == "<" and (self._pointer <= 1 or self._matched):
                    self._state = "TAG_OPEN"
                    self._index = 0
                else:
                    self._collect()
            elif self._state == "TAG_OPEN":
                if char == ">" and self._index == len(tag):
                    self._state = "TEXT"
                    if not self._matched:
                        self._cached = []
                    self._depth += 1
                    self._matched = True
                elif self._index == 0 and char == "/":
                    self._state = "TAG_CLOSE"
                elif char == " " and self._index in (0, len(tag)):
                    continue
                elif self._index < len(tag) and tag[self._index] == char:
                    self._index += 1
                else:
                    self._state = "TEXT"
                    self._collect()
            else:  # TAG_CLOSE
                if char == ">" and self._index == len(tag):
                    self._state = "TEXT"
                    self._depth -= 1
                    self._matched = self._depth > 0
                    if not self._matched:
                        self._cached = []
                elif char == " " and self._index in (0, len(tag)):
                    continue
                elif self._index < len(tag) and tag[self._index] == char:
                    self._index += 1
                else:
                    self._state = "TEXT"
                    self._collect()
