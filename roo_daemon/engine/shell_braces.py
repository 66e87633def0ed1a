"""bash's brace expansion of static words, for :mod:`roo_daemon.engine.shell`
(it can make a command name: ``{rm,-rf,x}`` runs ``rm -rf x``)."""

from __future__ import annotations

import re

_SEQUENCE = re.compile(r"(-?\d+)\.\.(-?\d+)(?:\.\.(-?\d+))?|([A-Za-z])\.\.([A-Za-z])(?:\.\.(-?\d+))?")
_MAX_BRACE_WORDS = 256


def brace_expand(chars: list[tuple[str, bool]]) -> list[str] | None:
    """bash's brace expansion of a static word (``{a,b}c``, ``{1..3}``), or
    None when the word has none. Quoted braces and commas do not count."""
    depth, open_at, commas = 0, -1, []
    for k, (c, quoted) in enumerate(chars):
        if quoted:
            continue
        if c == "{":
            if depth == 0:
                open_at, commas = k, []
            depth += 1
        elif c == "," and depth == 1:
            commas.append(k)
        elif c == "}" and depth > 0:
            depth -= 1
            if depth == 0:
                inner = chars[open_at + 1 : k]
                alternatives = _alternatives(inner, [p - open_at - 1 for p in commas])
                if alternatives is None:
                    continue
                head, tail = chars[:open_at], chars[k + 1 :]
                words: list[str] = []
                tails = brace_expand(tail) or ["".join(c for c, _ in tail)]
                text_head = "".join(c for c, _ in head)
                for alt in alternatives:
                    for expanded in brace_expand(alt) or ["".join(c for c, _ in alt)]:
                        words.extend(text_head + expanded + t for t in tails)
                        if len(words) > _MAX_BRACE_WORDS:
                            return words
                return words
    return None


def _alternatives(inner: list[tuple[str, bool]], commas: list[int]) -> list[list[tuple[str, bool]]] | None:
    if commas:
        bounds = [-1, *commas, len(inner)]
        return [inner[a + 1 : b] for a, b in zip(bounds, bounds[1:], strict=False)]
    if any(q for _, q in inner):
        return None
    m = _SEQUENCE.fullmatch("".join(c for c, _ in inner))
    if not m:
        return None
    step = abs(int(m.group(3) or m.group(6) or 1)) or 1
    if m.group(1) is not None:
        a, b = int(m.group(1)), int(m.group(2))
        values = [str(v) for v in range(a, b + (1 if b >= a else -1), step if b >= a else -step)]
    else:
        a, b = ord(m.group(4)), ord(m.group(5))
        values = [chr(v) for v in range(a, b + (1 if b >= a else -1), step if b >= a else -step)]
    return [[(c, False) for c in v] for v in values[:_MAX_BRACE_WORDS]]
