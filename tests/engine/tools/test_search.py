"""search_files: Roo's ripgrep output format, context lines, globs, caps,
and the files it must skip; ripgrep's process (timeout, huge lines, regex
errors) and the paths it must refuse."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from roo_daemon.engine.tools import ripgrep
from tests.needs import missing


@pytest.fixture(autouse=True)
def _needs_rg() -> None:
    if ripgrep.find_rg() is None:
        missing("ripgrep (rg) is not installed (pip install ripgrep==14.1.0, a dependency in setup.py)")


def one_hit(rel: str) -> str:
    """The result of a search that finds ``needle`` on line 1 of ``rel`` only."""
    return f"Found 1 result.\n\n# {rel}\n  1 | needle\n----"


def write(root: Path, rel: str, text: str | bytes) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())


@pytest.mark.gen_test(timeout=10)
async def test_results_with_context_in_roos_format(ctx, workspace):
    write(
        workspace,
        "src/app.py",
        "import os\n\ndef handler():\n    # TODO: validate\n    return 1\n\n\ndef other():\n    pass  # TODO\n",
    )
    write(workspace, "src/util.py", "def util():\n    return 2\n")
    out = await ctx.call("search_files", path=".", regex=r"TODO")
    assert not out.is_error
    assert out.content == (
        "Found 2 results.\n\n"
        "# src/app.py\n"
        "  3 | def handler():\n"
        "  4 |     # TODO: validate\n"
        "  5 |     return 1\n"
        "----\n"
        "  8 | def other():\n"
        "  9 |     pass  # TODO\n"
        "----"
    )


@pytest.mark.gen_test(timeout=10)
async def test_adjacent_matches_form_one_result(ctx, workspace):
    write(workspace, "a.txt", "x\nhit 1\nhit 2\ny\nz\nw\nhit 3\n")
    out = await ctx.call("search_files", path=".", regex="hit")
    assert out.content == (
        "Found 2 results.\n\n# a.txt\n  1 | x\n  2 | hit 1\n  3 | hit 2\n  4 | y\n----\n  6 | w\n  7 | hit 3\n----"
    )


@pytest.mark.gen_test(timeout=10)
async def test_file_pattern_glob(ctx, workspace):
    write(workspace, "a.py", "needle\n")
    write(workspace, "b.ts", "needle\n")
    write(workspace, "deep/c.tsx", "needle\n")
    write(workspace, "deep/d.md", "needle\n")
    ts = await ctx.call("search_files", path=".", regex="needle", file_pattern="*.{ts,tsx}")
    assert "# b.ts" in ts.content and "# deep/c.tsx" in ts.content
    assert "a.py" not in ts.content and "d.md" not in ts.content
    sub = await ctx.call("search_files", path="deep", regex="needle", file_pattern="*.md")
    assert sub.content == one_hit("deep/d.md")
    none = await ctx.call("search_files", path=".", regex="needle", file_pattern="*.rs")
    assert none.content == "Found 0 results."


@pytest.mark.gen_test(timeout=10)
async def test_skips_gitignored_hidden_binary_and_rooignored_files(ctx, workspace):
    write(workspace, ".gitignore", "generated/\n")
    write(workspace, ".rooignore", "secret.txt\n")
    write(workspace, "generated/out.txt", "needle\n")
    write(workspace, ".hidden/x.txt", "needle\n")
    write(workspace, ".dotfile", "needle\n")
    write(workspace, "blob.bin", b"needle\x00\x01\x02")
    write(workspace, "secret.txt", "needle\n")
    write(workspace, "plain.txt", "needle\n")
    out = await ctx.call("search_files", path=".", regex="needle")
    assert out.content == one_hit("plain.txt")


@pytest.mark.gen_test(timeout=10)
async def test_caps_results_and_long_lines(ctx, workspace):
    ctx.settings["search_max_results"] = 10
    for i in range(6):
        write(workspace, f"f{i}.txt", "".join("match\nfiller\nfiller\nfiller\n" for _ in range(5)))
    out = await ctx.call("search_files", path=".", regex="match")
    assert out.content.startswith("Showing first 10 of 10+ results. Use a more specific search if necessary.\n\n")
    assert out.content.count("----") == 10
    write(workspace, "wide/long.txt", "needle " + "y" * 600 + "\n")
    wide = await ctx.call("search_files", path="wide", regex="needle")
    assert wide.content.endswith("y [truncated...]\n----") and len(wide.content) < 600


@pytest.mark.gen_test(timeout=10)
async def test_lines_are_capped_too_as_roo_reads_at_most_five_per_result(ctx, workspace):
    """One result of a file where every line matches would be the whole file."""
    ctx.settings["search_max_results"] = 10
    write(workspace, "all.txt", "".join(f"match {i}\n" for i in range(2000)))
    out = await ctx.call("search_files", path=".", regex="match")
    lines = out.content.split("\n")
    assert lines[0] == "Showing first 1 of 1+ results. Use a more specific search if necessary."
    assert lines[2:4] == ["# all.txt", "  1 | match 0"] and lines[-2:] == [" 50 | match 49", "----"]


@pytest.mark.gen_test(timeout=10)
async def test_errors(ctx, workspace):
    bad = await ctx.call("search_files", path=".", regex="(unclosed")
    assert bad.is_error and "invalid regex '(unclosed'" in bad.content and "unclosed group" in bad.content
    nope = await ctx.call("search_files", path="nope", regex="x")
    assert nope.is_error and "does not exist" in nope.content


@pytest.mark.gen_test(timeout=10)
async def test_rust_regex_syntax_as_roo_documents(ctx, workspace):
    """ripgrep's regex dialect: Unicode classes work, look-around is refused."""
    write(workspace, "a.txt", "caf\u00e9 ok\n")
    out = await ctx.call("search_files", path=".", regex=r"\p{L}+\s+ok")
    assert out.content == "Found 1 result.\n\n# a.txt\n  1 | caf\u00e9 ok\n----"
    look = await ctx.call("search_files", path=".", regex=r"(?<=caf)é")
    assert look.is_error and "look-around" in look.content


@pytest.mark.gen_test(timeout=10)
async def test_a_symlink_to_a_rooignored_file_is_not_searched(ctx, workspace):
    """Issue 9 item 6: the old walk searched a symlink whose target .rooignore blocks."""
    write(workspace, ".rooignore", "private/\nsecret.txt\n")
    write(workspace, "secret.txt", "needle secret\n")
    write(workspace, "private/key.txt", "needle key\n")
    write(workspace, "plain.txt", "needle\n")
    os.symlink("secret.txt", workspace / "alias.txt")
    os.symlink("private", workspace / "door")
    os.symlink("private/key.txt", workspace / "key.txt")
    out = await ctx.call("search_files", path=".", regex="needle")
    assert out.content == one_hit("plain.txt")
    for path in ("alias.txt", "door", "key.txt"):
        direct = await ctx.call("search_files", path=path, regex="needle")
        assert direct.is_error and "Access blocked by .rooignore" in direct.content, path


@pytest.mark.gen_test(timeout=10)
async def test_gitignore_above_the_searched_directory_still_applies(ctx, workspace):
    write(workspace, ".gitignore", "build/\n")
    write(workspace, "src/build/gen.txt", "needle\n")
    write(workspace, "src/main.txt", "needle\n")
    out = await ctx.call("search_files", path="src", regex="needle")
    assert out.content == one_hit("src/main.txt")


@pytest.mark.gen_test(timeout=10)
async def test_a_fifo_is_refused_not_waited_on(ctx, workspace):
    os.mkfifo(workspace / "pipe")
    write(workspace, "a.txt", "needle\n")
    out = await ctx.call("search_files", path="pipe", regex="needle")
    assert out.is_error and "not a regular file or directory" in out.content
    whole = await ctx.call("search_files", path=".", regex="needle")  # rg skips it while walking
    assert whole.content == one_hit("a.txt")


@pytest.mark.gen_test(timeout=20)
async def test_a_huge_line_is_cut_with_its_line_number(ctx, workspace):
    """A minified-file line of 3 MB: ripgrep's JSON record is far past the
    reader's line cap; the result still shows the right line, cut."""
    write(workspace, "app.min.js", "first\n" + "x" * 3_000_000 + " needle " + "y" * 100 + "\nlast\n")
    out = await ctx.call("search_files", path=".", regex="needle")
    assert out.content == (
        "Found 1 result.\n\n# app.min.js\n  1 | first\n  2 | " + "x" * 500 + " [truncated...]\n  3 | last\n----"
    )


@pytest.mark.gen_test(timeout=30)
async def test_a_search_past_the_timeout_is_stopped(ctx, workspace):
    ctx.settings["search_timeout_seconds"] = 0.5
    rng = random.Random(3)
    raw = rng.randbytes(8 << 20).translate(bytes.maketrans(bytes(range(256)), b"ab" * 128))
    # 8 MB of random a/b lines that keep rg's lazy DFA busy (seconds, not 0.5).
    (workspace / "ab.txt").write_bytes(b"".join(raw[i : i + 39] + b"b\n" for i in range(0, len(raw) - 39, 40)))
    out = await ctx.call("search_files", path=".", regex=r"(?:a|b|ab|ba)*a(?:a|b|ab){30}c")
    assert out.is_error and "did not finish within 0.5 s" in out.content


@pytest.mark.gen_test(timeout=10)
async def test_a_single_file_can_be_searched(ctx, workspace):
    write(workspace, "one.txt", "alpha\nbeta\n")
    out = await ctx.call("search_files", path="one.txt", regex="be.a")
    assert out.content == "Found 1 result.\n\n# one.txt\n  1 | alpha\n  2 | beta\n----"


@pytest.mark.gen_test(timeout=10)
async def test_negated_glob(ctx, workspace):
    write(workspace, "x.py", "needle\n")
    write(workspace, "docs/x.md", "needle\n")
    out = await ctx.call("search_files", path=".", regex="needle", file_pattern="!*.md")
    assert out.content == one_hit("x.py")
