"""Roo-Code's MultiSearchReplace diff strategy
(src/core/diff/strategies/multi-search-replace.ts), in Python.

A diff is one or more blocks::

    <<<<<<< SEARCH
    :start_line:12
    -------
    old lines
    =======
    new lines
    >>>>>>> REPLACE

Each SEARCH text is found in the file by comparing *normalised* text (smart
quotes and typographic characters folded, every run of whitespace, newlines
and indentation included, collapsed to one space), so indentation and
whitespace drift still match at 100%. The hint line is tried first; then a
middle-out search within ``BUFFER_LINES`` of it (the whole file without a
hint) picks the most similar window by Levenshtein similarity, accepted at
``threshold`` (Roo's default 1.0: exact after normalisation). The
replacement is re-indented relative to the matched lines.

As in Roo, the blocks that match are applied and the ones that do not are
reported: :func:`apply_blocks` returns the new content with the failed
blocks (each with why, and its best near match), and raises
:class:`DiffFailure` only when no block applied.

Pure CPU work: callers run it in a thread.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

BUFFER_LINES = 40  # Roo's BUFFER_LINES: how far from the hint to look
MAX_FUZZY_WINDOWS = 4000  # bound the middle-out Levenshtein scan on huge files

SEARCH = "<<<<<<< SEARCH"
SEP = "======="
REPLACE = ">>>>>>> REPLACE"

_BLOCK = re.compile(
    r"(?:^|\n)(?<!\\)<<<<<<< SEARCH\s*\n"
    r"((?::start_line:\s*(\d+)\s*\n))?"
    r"((?::end_line:\s*(\d+)\s*\n))?"
    r"((?<!\\)-------\s*\n)?"
    r"([\s\S]*?)(?:\n)?"
    r"(?:(?<=\n)(?<!\\)=======\s*\n)"
    r"([\s\S]*?)(?:\n)?"
    r"(?:(?<=\n)(?<!\\)>>>>>>> REPLACE)(?=\n|$)"
)
_HAS_LINE_NUMBER = re.compile(r"^\s*\d+\s+\|(?!\|)")
_STRIP_LINE_NUMBER = re.compile(r"^\s*\d+\s+\|(?!\|)\s?(.*)$")
_STRIP_LINE_NUMBER_AGGRESSIVE = re.compile(r"^\s*(?:\d+\s)?\|\s(.*)$")
_WHITESPACE = re.compile(r"\s+")
_NORMALISE = str.maketrans(
    {
        "\u201c": '"',
        "\u201d": '"',
        "\u2018": "'",
        "\u2019": "'",
        "\u2026": "...",
        "\u2014": "-",
        "\u2013": "-",
        "\u00a0": " ",
    }
)


class DiffFormatError(Exception):
    """The diff text itself is malformed (markers out of order, no blocks)."""


class DiffFailure(Exception):
    """No block applied; ``failures`` holds ``(block, reason)`` for each."""

    def __init__(self, failures: list[tuple[Block, str]], total: int) -> None:
        super().__init__(f"{len(failures)} of {total} blocks failed")
        self.failures = failures
        self.total = total


@dataclass
class Block:
    number: int  # 1-based, in the order written
    start_line: int  # 0 when no hint
    search: str
    replace: str


# -- text helpers -------------------------------------------------------------


def normalise(text: str) -> str:
    """Roo's normalizeString with its default options."""
    return _WHITESPACE.sub(" ", text.translate(_NORMALISE)).strip()


def levenshtein(a: str, b: str) -> int:
    """Edit distance by Hyyrö's bit-parallel algorithm (Python ints as bit
    vectors): about len(a) big-int steps instead of len(a) * len(b) cells."""
    if a == b:
        return 0
    if len(a) < len(b):
        a, b = b, a
    m = len(b)
    if m == 0:
        return len(a)
    peq: dict[str, int] = {}
    for i, ch in enumerate(b):
        peq[ch] = peq.get(ch, 0) | (1 << i)
    mask = (1 << m) - 1
    high = 1 << (m - 1)
    pv, mv, score = mask, 0, m
    for ch in a:
        eq = peq.get(ch, 0)
        xv = eq | mv
        xh = (((eq & pv) + pv) ^ pv) | eq
        ph = (mv | ~(xh | pv)) & mask
        mh = pv & xh
        if ph & high:
            score += 1
        elif mh & high:
            score -= 1
        ph = ((ph << 1) | 1) & mask
        mh = (mh << 1) & mask
        pv = (mh | ~(xv | ph)) & mask
        mv = ph & xv
    return score


def similarity(original: str, search: str) -> float:
    """Roo's getSimilarity: 1 - distance / longer length, on normalised text."""
    if search == "":
        return 0.0
    a, b = normalise(original), normalise(search)
    if a == b:
        return 1.0
    longest = max(len(a), len(b))
    return 1 - levenshtein(a, b) / longest


def every_line_has_line_numbers(text: str) -> bool:
    lines = re.split(r"\r?\n", text)
    return bool(lines) and all(_HAS_LINE_NUMBER.match(line) for line in lines)


def strip_line_numbers(text: str, aggressive: bool = False) -> str:
    pattern = _STRIP_LINE_NUMBER_AGGRESSIVE if aggressive else _STRIP_LINE_NUMBER
    out = []
    for line in re.split(r"\r?\n", text):
        m = pattern.match(line)
        out.append(m.group(1) if m else line)
    return ("\r\n" if "\r\n" in text else "\n").join(out)


def add_line_numbers(text: str, start: int = 1) -> str:
    """Roo's addLineNumbers (``N | text``), for the failure report."""
    if text == "":
        return "" if start == 1 else f"{start} | \n"
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    width = len(str(start + len(lines) - 1))
    return "\n".join(f"{str(start + i).rjust(width)} | {line}" for i, line in enumerate(lines)) + "\n"


def _unescape_markers(text: str) -> str:
    for marker in ("<<<<<<<", "=======", ">>>>>>>", "-------", ":end_line:", ":start_line:"):
        text = re.sub(r"(?m)^\\" + re.escape(marker), marker, text)
    return text


# -- parsing ------------------------------------------------------------------

_MERGE_HELP = (
    "When removing merge conflict markers like '{found}' from files, you MUST escape them\n"
    "in your SEARCH section by prepending a backslash (\\) at the beginning of the line:\n\n"
    "CORRECT FORMAT:\n\n<<<<<<< SEARCH\ncontent before\n\\{found}    <-- Note the backslash here in this example\n"
    "content after\n=======\nreplacement content\n>>>>>>> REPLACE\n\n"
    "Without escaping, the system confuses your content with diff syntax markers.\n"
    "You may use multiple diff blocks in a single diff request, but ANY of ONLY the following separators that "
    "occur within SEARCH or REPLACE content must be escaped, as follows:\n"
    f"\\{SEARCH}\n\\{SEP}\n\\{REPLACE}\n"
)
_FORMAT_HELP = (
    "CORRECT FORMAT:\n\n<<<<<<< SEARCH\n:start_line: (required) The line number of original content where the "
    "search block starts.\n-------\n[exact content to find including whitespace]\n=======\n"
    "[new content to replace with]\n>>>>>>> REPLACE\n"
)


def _validate_markers(diff: str) -> None:
    """Roo's validateMarkerSequencing: markers in SEARCH, =======, REPLACE order."""
    lines = diff.split("\n")
    searches = sum(1 for line in lines if line.strip() == SEARCH)
    seps = sum(1 for line in lines if line.strip() == SEP)
    replaces = sum(1 for line in lines if line.strip() == REPLACE)
    likely_bad = searches != replaces or seps < searches
    state = "start"

    def merge(found: str, n: int) -> DiffFormatError:
        return DiffFormatError(
            f"ERROR: Special marker '{found}' found in your diff content at line {n}:\n\n"
            + _MERGE_HELP.format(found=found)
        )

    def invalid(found: str, expected: str, n: int) -> DiffFormatError:
        return DiffFormatError(
            f"ERROR: Diff block is malformed: marker '{found}' found in your diff content at line {n}. "
            f"Expected: {expected}\n\n" + _FORMAT_HELP
        )

    for n, line in enumerate(lines, 1):
        marker = line.strip()
        if state == "after_sep" and marker.startswith((":start_line:", ":end_line:")):
            which = ":start_line:" if marker.startswith(":start_line:") else ":end_line:"
            raise DiffFormatError(
                f"ERROR: Invalid line marker '{which}' found in REPLACE section at line {n}\n\n"
                "Line markers (:start_line: and :end_line:) are only allowed in SEARCH sections.\n\n" + _FORMAT_HELP
            )
        if state == "start":
            if marker == SEP:
                raise invalid(SEP, SEARCH, n) if likely_bad else merge(SEP, n)
            if marker == REPLACE:
                raise invalid(REPLACE, SEARCH, n)
            if marker.startswith(">>>>>>>"):
                raise merge(marker, n)
            if marker == SEARCH:
                state = "after_search"
            elif marker.startswith("<<<<<<<"):
                raise merge(marker, n)
        elif state == "after_search":
            if marker == SEARCH:
                raise invalid(SEARCH, SEP, n)
            if marker.startswith("<<<<<<<"):
                raise merge(marker, n)
            if marker == REPLACE:
                raise invalid(REPLACE, SEP, n)
            if marker.startswith(">>>>>>>"):
                raise merge(marker, n)
            if marker == SEP:
                state = "after_sep"
        else:
            if marker == SEARCH:
                raise invalid(SEARCH, REPLACE, n)
            if marker.startswith("<<<<<<<"):
                raise merge(marker, n)
            if marker == SEP:
                raise invalid(SEP, REPLACE, n) if likely_bad else merge(SEP, n)
            if marker == REPLACE:
                state = "start"
            elif marker.startswith(">>>>>>>"):
                raise merge(marker, n)
    if state != "start":
        expected = SEP if state == "after_search" else REPLACE
        raise DiffFormatError(f"ERROR: Unexpected end of sequence: Expected '{expected}' was not found.")


def parse_blocks(diff: str) -> list[Block]:
    _validate_markers(diff)
    blocks = [Block(i, int(m.group(2) or 0), m.group(6), m.group(7)) for i, m in enumerate(_BLOCK.finditer(diff), 1)]
    if not blocks:
        raise DiffFormatError(
            "Invalid diff format - missing required sections\n\nDebug Info:\n"
            "- Expected Format: <<<<<<< SEARCH\\n:start_line: start line\\n-------\\n[search content]\\n"
            "=======\\n[replace content]\\n>>>>>>> REPLACE\n"
            "- Tip: Make sure to include start_line/SEARCH/=======/REPLACE sections with correct markers on new lines"
        )
    return blocks


# -- matching -----------------------------------------------------------------


def _window(lines: list[str], start: int, length: int) -> str:
    return "\n".join(lines[start : start + length])


def _middle_out(lo: int, hi: int, length: int) -> list[int]:
    """Roo's fuzzySearch visiting order: from the midpoint outwards."""
    mid = (lo + hi) // 2
    order = []
    left, right = mid, mid + 1
    while left >= lo or right <= hi - length:
        if left >= lo:
            order.append(left)
            left -= 1
        if right <= hi - length:
            order.append(right)
            right += 1
    return order


def _best_match(lines: list[str], norm_lines: list[str], search: str, lo: int, hi: int) -> tuple[float, int, str]:
    """The most similar window of ``len(search lines)`` lines starting in
    [lo, hi], scanned middle-out; ties keep the earlier-visited window."""
    n = len(search.split("\n"))
    target = normalise(search)
    order = _middle_out(lo, hi, n)
    # An exact (normalised) match is cheap to find over the whole range.
    for start in order:
        if " ".join(x for x in norm_lines[start : start + n] if x) == target:
            return 1.0, start, _window(lines, start, n)
    best_score, best_index, best_content = 0.0, -1, ""
    for start in order[:MAX_FUZZY_WINDOWS]:
        candidate = " ".join(x for x in norm_lines[start : start + n] if x)
        longest = max(len(candidate), len(target)) or 1
        if min(len(candidate), len(target)) / longest <= best_score:
            continue  # even a perfect overlap could not beat the best so far
        score = 1 - levenshtein(candidate, target) / longest
        if score > best_score:
            best_score, best_index, best_content = score, start, _window(lines, start, n)
    return best_score, best_index, best_content


def _reindent(matched: list[str], search_lines: list[str], replace_lines: list[str]) -> list[str]:
    """Roo's re-indentation: keep each replacement line's indentation relative
    to the SEARCH block's first line, on top of the matched first line's.
    A whitespace-only line keeps its exact content (Roo would re-indent it,
    giving an empty line trailing indentation)."""
    matched_indent = re.match(r"^[\t ]*", matched[0]).group(0) if matched else ""
    search_base = re.match(r"^[\t ]*", search_lines[0]).group(0) if search_lines else ""
    out = []
    for line in replace_lines:
        if not line.strip():
            out.append(line)
            continue
        current = re.match(r"^[\t ]*", line).group(0)
        relative = len(current) - len(search_base)
        if relative < 0:
            indent = matched_indent[: max(0, len(matched_indent) + relative)]
        else:
            indent = matched_indent + current[len(search_base) :]
        out.append(indent + line.strip())
    return out


def _pct(x: float) -> int:
    return int(x * 100 + 1e-9)


def apply_blocks(original: str, blocks: list[Block], threshold: float = 1.0) -> tuple[str, list[tuple[Block, str]]]:
    """Apply the blocks that match: the new content and the blocks that did
    not apply, each with Roo's reason. Raises :class:`DiffFailure` when none
    applied (Roo's ``appliedCount === 0``)."""
    line_ending = "\r\n" if "\r\n" in original else "\n"
    lines = re.split(r"\r?\n", original)
    delta = 0
    failures: list[tuple[Block, str]] = []
    for block in sorted(blocks, key=lambda b: b.start_line):
        search = _unescape_markers(block.search)
        replace = _unescape_markers(block.replace)
        start_line = block.start_line + (delta if block.start_line else 0)
        numbered = every_line_has_line_numbers(search) and (
            every_line_has_line_numbers(replace) or replace.strip() == ""
        )
        if numbered and start_line == 0:
            start_line = int(search.split("\n")[0].split("|")[0])
        if numbered:
            search, replace = strip_line_numbers(search), strip_line_numbers(replace)
        if search == replace:
            failures.append(
                (
                    block,
                    "Search and replace content are identical - no changes would be made\n\nDebug Info:\n"
                    "- Search and replace must be different to make changes\n"
                    "- Use read_file to verify the content you want to change",
                )
            )
            continue
        search_lines = [] if search == "" else re.split(r"\r?\n", search)
        replace_lines = [] if replace == "" else re.split(r"\r?\n", replace)
        if not search_lines:
            failures.append(
                (
                    block,
                    "Empty search content is not allowed\n\nDebug Info:\n- Search content cannot be empty\n"
                    "- For insertions, provide a specific line using the start_line parameter and include content "
                    "to search for\n- For example, match a single line to insert before/after it",
                )
            )
            continue
        end_line = block.start_line + len(search_lines) - 1
        chunk = "\n".join(search_lines)
        norm_lines = [normalise(line) for line in lines]
        index, score, content = -1, 0.0, ""
        lo, hi = 0, len(lines)
        if start_line > len(lines):
            start_line = 0  # a hint past the end of the file says nothing: search it all
        if start_line:
            exact = start_line - 1
            window = _window(lines, exact, len(search_lines))
            s = similarity(window, chunk)
            if s >= threshold:
                index, score, content = exact, s, window
            else:
                lo = max(0, start_line - (BUFFER_LINES + 1))
                hi = min(len(lines), start_line + len(search_lines) + BUFFER_LINES)
        if index == -1:
            score, index, content = _best_match(lines, norm_lines, chunk, lo, hi)
        if index == -1 or score < threshold:
            # Roo's fallback: strip line numbers aggressively and try again.
            agg_search = strip_line_numbers(search, aggressive=True)
            if agg_search == search:  # nothing to strip: the same search again would find the same
                agg_score, agg_index, agg_content = score, index, content
            else:
                agg_score, agg_index, agg_content = _best_match(lines, norm_lines, agg_search, lo, hi)
            if agg_index != -1 and agg_score >= threshold:
                index, score, content = agg_index, agg_score, agg_content
                search = agg_search
                replace = strip_line_numbers(replace, aggressive=True)
                search_lines = search.split("\n") if search else []
                replace_lines = re.split(r"\r?\n", replace) if replace else []
            else:
                failures.append(
                    (block, _no_match(lines, chunk, start_line, end_line, score, index, content, threshold))
                )
                continue
        matched = lines[index : index + len(search_lines)]
        lines = lines[:index] + _reindent(matched, search_lines, replace_lines) + lines[index + len(search_lines) :]
        delta += len(replace_lines) - len(matched)
    if len(failures) == len(blocks):
        raise DiffFailure(failures, len(blocks))
    return line_ending.join(lines), failures


def _no_match(
    lines: list[str], chunk: str, start_line: int, end_line: int, score: float, index: int, best: str, threshold: float
) -> str:
    """Roo's failure report: the similarity, the best near match and the
    original content around the hint."""
    if start_line:
        first = max(0, start_line - 1 - BUFFER_LINES)
        last = min(len(lines), end_line + BUFFER_LINES)
        original = add_line_numbers("\n".join(lines[first:last]), max(1, start_line - BUFFER_LINES))
    elif index != -1:
        first = max(0, index - 10)
        original = add_line_numbers("\n".join(lines[first : index + len(chunk.split("\n")) + 10]), first + 1)
    else:
        original = add_line_numbers("\n".join(lines[: 2 * BUFFER_LINES]))
    best_section = add_line_numbers(best, index + 1) if best else "(no match)"
    where = f" at line: {start_line}" if start_line else ""
    search_range = f"starting at line {start_line}" if start_line else "start to end"
    return (
        f"No sufficiently similar match found{where} ({_pct(score)}% similar, needs {_pct(threshold)}%)\n\n"
        f"Debug Info:\n- Similarity Score: {_pct(score)}%\n- Required Threshold: {_pct(threshold)}%\n"
        f"- Search Range: {search_range}\n- Tried both standard and aggressive line number stripping\n"
        "- Tip: Use the read_file tool to get the latest content of the file before attempting to use the "
        "apply_diff tool again, as the file content may have changed\n\n"
        f"Search Content:\n{chunk}\n\nBest Match Found:\n{best_section}\n\nOriginal Content:\n{original}"
    )
