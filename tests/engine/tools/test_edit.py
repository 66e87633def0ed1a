"""apply_diff (Roo's SEARCH/REPLACE blocks, tolerant matching, partial apply)
and search_replace."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from roo_daemon.engine.tools.diff_match import Block, DiffFailure, apply_blocks, levenshtein, parse_blocks

CODE = """def calculate_total(items):
    total = 0
    for item in items:
        total += item
    return total


def greet(name):
    return "Hello " + name


class Cart:
    def __init__(self):
        self.items = []

    def add(self, item):
        self.items.append(item)
"""


def block(search: str, replace: str, start: int | None = None) -> str:
    hint = f":start_line:{start}\n-------\n" if start is not None else ""
    return f"<<<<<<< SEARCH\n{hint}{search}\n=======\n{replace}\n>>>>>>> REPLACE"


@pytest.fixture
def code(workspace: Path) -> Path:
    path = workspace / "calc.py"
    path.write_text(CODE)
    return path


# -- apply_diff ---------------------------------------------------------------


@pytest.mark.gen_test(timeout=10)
async def test_exact_block(ctx, code):
    diff = block('    return "Hello " + name', '    return f"Hello {name}!"', 9)
    out = await ctx.call("apply_diff", path="calc.py", diff=diff)
    assert not out.is_error, out.content
    assert json.loads(out.content.split("\n<notice>")[0])["operation"] == "modified"
    assert "Making multiple related changes in a single apply_diff" in out.content  # Roo's single-block notice
    assert code.read_text() == CODE.replace('return "Hello " + name', 'return f"Hello {name}!"')


@pytest.mark.gen_test(timeout=10)
async def test_indentation_drift_is_tolerated_and_reindented(ctx, code):
    # The model lost the method's indentation; the replacement keeps its relative shape.
    search = "def add(self, item):\n    self.items.append(item)"
    replace = "def add(self, item):\n    if item is not None:\n        self.items.append(item)"
    out = await ctx.call("apply_diff", path="calc.py", diff=block(search, replace, 16))
    assert not out.is_error, out.content
    assert code.read_text().endswith(
        "    def add(self, item):\n        if item is not None:\n            self.items.append(item)\n"
    )


@pytest.mark.gen_test(timeout=10)
async def test_whitespace_drift_is_tolerated(ctx, code):
    search = "def calculate_total(items):\n    total  =  0\t\n    for item   in items:"
    replace = "def calculate_total(items):\n    total = 0.0\n    for item in items:"
    out = await ctx.call("apply_diff", path="calc.py", diff=block(search, replace, 1))
    assert not out.is_error, out.content
    assert code.read_text().startswith("def calculate_total(items):\n    total = 0.0\n    for item in items:\n")


@pytest.mark.gen_test(timeout=10)
async def test_a_wrong_start_line_nearby_still_finds_the_block(ctx, code):
    out = await ctx.call("apply_diff", path="calc.py", diff=block("class Cart:", "class ShoppingCart:", 3))
    assert not out.is_error, out.content
    assert "class ShoppingCart:\n" in code.read_text() and "class Cart:" not in code.read_text()


@pytest.mark.gen_test(timeout=10)
async def test_several_blocks_in_one_call(ctx, code):
    diff = "\n".join(
        [
            block("def calculate_total(items):", "def calculate_sum(items):", 1),
            block("def greet(name):", "def greet(name: str) -> str:", 8),
            block("        self.items = []", "        self.items: list = []", 14),
        ]
    )
    out = await ctx.call("apply_diff", path="calc.py", diff=diff)
    assert not out.is_error, out.content
    assert "<notice>" not in out.content
    text = code.read_text()
    assert "def calculate_sum(items):" in text and "def greet(name: str) -> str:" in text
    assert "self.items: list = []" in text
    assert text.count("\n") == CODE.count("\n")


@pytest.mark.gen_test(timeout=10)
async def test_blocks_that_change_line_counts_shift_later_hints(ctx, code):
    diff = "\n".join(
        [
            block("    total = 0", "    # running total\n    # of all items\n    total = 0", 2),
            block("def greet(name):", "def welcome(name):", 8),
        ]
    )
    out = await ctx.call("apply_diff", path="calc.py", diff=diff)
    assert not out.is_error, out.content
    assert "def welcome(name):" in code.read_text()


@pytest.mark.gen_test(timeout=10)
async def test_the_blocks_that_match_apply_and_the_others_are_reported(ctx, code):
    """Roo's partial apply: the good block is written, the failed one is
    named after Roo's "But unable to apply all diff parts" hint."""
    diff = "\n".join(
        [
            block("def greet(name):", "def welcome(name):", 8),
            block("    return total * discount", "    return total", 5),
        ]
    )
    out = await ctx.call("apply_diff", path="calc.py", diff=diff)
    assert not out.is_error, out.content
    assert code.read_text() == CODE.replace("def greet(name):", "def welcome(name):")
    report = out.content
    assert report.startswith(
        "But unable to apply all diff parts to file: calc.py. Use the read_file tool to check the newest file "
        'version and re-apply diffs.\n{"path": "calc.py", "operation": "modified"'
    )
    assert "Block 2 of 2 (:start_line:5):" in report and "Block 1 of 2" not in report
    assert "No sufficiently similar match found at line: 5" in report
    assert "% similar, needs 100%)" in report
    assert "Search Content:\n    return total * discount" in report
    assert "Best Match Found:\n5 |     return total\n" in report
    assert "Original Content:\n 1 | def calculate_total(items):" in report


@pytest.mark.gen_test(timeout=10)
async def test_when_no_block_applies_nothing_changes(ctx, code):
    diff = "\n".join([block("no such line", "x", 2), block("    return total * discount", "    return total", 5)])
    out = await ctx.call("apply_diff", path="calc.py", diff=diff)
    assert out.is_error and out.mistake
    assert code.read_text() == CODE
    assert out.content.startswith("<error_details>\nBlock 1 of 2 (:start_line:2):\nNo sufficiently similar match")
    assert "</error_details>\n\n<error_details>\nBlock 2 of 2 (:start_line:5):" in out.content


@pytest.mark.gen_test(timeout=10)
async def test_whitespace_only_replace_lines_keep_their_exact_content(ctx, workspace):
    path = workspace / "f.py"
    path.write_text("def f():\n    a = 1\n    b = 2\n")
    out = await ctx.call(
        "apply_diff", path="f.py", diff=block("    a = 1\n    b = 2", "    a = 1\n    \n\n    b = 2", 2)
    )
    assert not out.is_error, out.content
    assert path.read_text() == "def f():\n    a = 1\n    \n\n    b = 2\n"


@pytest.mark.gen_test(timeout=10)
async def test_malformed_diffs(ctx, code):
    no_sep = "<<<<<<< SEARCH\n:start_line:1\n-------\nx\n>>>>>>> REPLACE"
    out = await ctx.call("apply_diff", path="calc.py", diff=no_sep)
    assert out.is_error and "Diff block is malformed: marker '>>>>>>> REPLACE' found" in out.content
    unterminated = "<<<<<<< SEARCH\nx\n=======\ny"
    out = await ctx.call("apply_diff", path="calc.py", diff=unterminated)
    assert out.is_error and "Expected '>>>>>>> REPLACE' was not found" in out.content
    same = await ctx.call("apply_diff", path="calc.py", diff=block("class Cart:", "class Cart:", 12))
    assert same.is_error and "Search and replace content are identical" in same.content
    missing = await ctx.call("apply_diff", path="nope.py", diff=block("a", "b", 1))
    assert missing.is_error and "File does not exist at path: nope.py" in missing.content
    assert code.read_text() == CODE


@pytest.mark.gen_test(timeout=10)
async def test_line_numbers_copied_from_read_file_are_stripped(ctx, code):
    diff = block('9 |     return "Hello " + name', '9 |     return "Hi " + name')
    out = await ctx.call("apply_diff", path="calc.py", diff=diff)
    assert not out.is_error, out.content
    assert '    return "Hi " + name\n' in code.read_text()


@pytest.mark.gen_test(timeout=10)
async def test_crlf_files_stay_crlf(ctx, workspace):
    path = workspace / "win.txt"
    path.write_bytes(b"one\r\ntwo\r\nthree\r\n")
    out = await ctx.call("apply_diff", path="win.txt", diff=block("two", "2", 2))
    assert not out.is_error, out.content
    assert path.read_bytes() == b"one\r\n2\r\nthree\r\n"


@pytest.mark.gen_test(timeout=10)
async def test_apply_diff_asks_with_the_unified_diff_and_refuses_a_bad_diff_without_asking(strict_ctx, code):
    failing = await strict_ctx.call("apply_diff", path="calc.py", diff=block("no such line", "x", 1))
    assert failing.is_error and strict_ctx.asks == []
    strict_ctx.approve_next(True)
    out = await strict_ctx.call("apply_diff", path="calc.py", diff=block("class Cart:", "class Basket:", 12))
    assert not out.is_error
    kind, payload = strict_ctx.asks[0]
    assert kind == "tool" and payload["tool"] == "apply_diff"
    assert "-class Cart:\n+class Basket:\n" in payload["diff"] and payload["diff"].startswith("--- a/calc.py\n")


def test_fuzzy_threshold_accepts_a_small_typo_only_when_configured():
    original = "alpha = 1\nbeta = compute(alpha)\ngamma = 3\n"
    typo = [Block(1, 2, "beta = compute(alhpa)", "beta = compute(alpha) + 1")]
    with pytest.raises(DiffFailure):
        apply_blocks(original, typo)
    assert apply_blocks(original, typo, threshold=0.9) == ("alpha = 1\nbeta = compute(alpha) + 1\ngamma = 3\n", [])


def test_parse_blocks_reads_hints_and_escaped_markers():
    diff = (
        "<<<<<<< SEARCH\n:start_line:7\n-------\na\n\\=======\nb\n=======\nc\n>>>>>>> REPLACE\n"
        "<<<<<<< SEARCH\nx\n=======\ny\n>>>>>>> REPLACE"
    )
    blocks = parse_blocks(diff)
    assert [(b.start_line, b.search, b.replace) for b in blocks] == [(7, "a\n\\=======\nb", "c"), (0, "x", "y")]
    assert apply_blocks("a\n=======\nb\nx\n", blocks[:1]) == ("c\nx\n", [])


def test_levenshtein_matches_the_textbook_algorithm():
    def reference(a: str, b: str) -> int:
        row = list(range(len(b) + 1))
        for i, ca in enumerate(a, 1):
            prev, row[0] = row[0], i
            for j, cb in enumerate(b, 1):
                prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
        return row[-1]

    rng = random.Random(7)
    for _ in range(500):
        a = "".join(rng.choice("ab c") for _ in range(rng.randint(0, 90)))
        b = "".join(rng.choice("abcd") for _ in range(rng.randint(0, 90)))
        assert levenshtein(a, b) == reference(a, b), (a, b)


# -- search_replace -----------------------------------------------------------


@pytest.mark.gen_test(timeout=10)
async def test_search_replace_single(ctx, code):
    out = await ctx.call("search_replace", file_path="calc.py", old_string="class Cart:", new_string="class Basket:")
    assert not out.is_error and json.loads(out.content)["path"] == "calc.py"
    assert "class Basket:" in code.read_text()


@pytest.mark.gen_test(timeout=10)
async def test_search_replace_ambiguous_then_replace_all(ctx, code):
    out = await ctx.call("search_replace", file_path="calc.py", old_string="total", new_string="subtotal")
    assert out.is_error and out.content.startswith("Found 4 matches of 'old_string' in the file.")
    assert code.read_text() == CODE
    out = await ctx.call(
        "search_replace", file_path="calc.py", old_string="total", new_string="subtotal", replace_all=True
    )
    assert not out.is_error
    assert code.read_text().count("subtotal") == 4


@pytest.mark.gen_test(timeout=10)
async def test_search_replace_missing_and_identical(ctx, code):
    missing = await ctx.call("search_replace", file_path="calc.py", old_string="nothing like this", new_string="x")
    assert missing.is_error and "No match found for 'old_string' in calc.py" in missing.content
    same = await ctx.call("search_replace", file_path="calc.py", old_string="Cart", new_string="Cart")
    assert same.is_error and "'old_string' and 'new_string' are identical" in same.content
    no_file = await ctx.call("search_replace", file_path="ghost.py", old_string="a", new_string="b")
    assert no_file.is_error and "File not found: ghost.py" in no_file.content
    empty = await ctx.call("search_replace", file_path="calc.py", old_string="", new_string="b")
    assert empty.is_error and "Invalid arguments" in empty.content
    assert code.read_text() == CODE


@pytest.mark.gen_test(timeout=10)
async def test_search_replace_keeps_crlf_and_asks_with_a_diff(strict_ctx, workspace):
    path = workspace / "w.txt"
    path.write_bytes(b"a\r\nb\r\n")
    strict_ctx.approve_next(True)
    out = await strict_ctx.call("search_replace", file_path="w.txt", old_string="a\nb", new_string="a\nB")
    assert not out.is_error, out.content
    assert path.read_bytes() == b"a\r\nB\r\n"
    assert "-b" in strict_ctx.asks[0][1]["diff"]


def test_a_hint_past_the_end_of_the_file_searches_all_of_it():
    assert apply_blocks("a\nb\nc\n", [Block(1, 99, "b", "B")]) == ("a\nB\nc\n", [])
    with pytest.raises(DiffFailure) as failed:
        apply_blocks("a\nb\nc\n", [Block(1, 1, "", "x")])
    assert failed.value.failures[0][1].startswith("Empty search content is not allowed")
