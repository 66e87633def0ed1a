"""search_files: Roo's ripgrep output format, context lines, globs, caps,
and the files it must skip."""

from __future__ import annotations

from pathlib import Path

import pytest

from roo_daemon.engine.tools.search import expand_braces, glob_spec


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
    assert sub.content == "Found 1 result.\n\n# deep/d.md\n  1 | needle\n----"
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
    assert out.content == "Found 1 result.\n\n# plain.txt\n  1 | needle\n----"


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
async def test_errors(ctx, workspace):
    bad = await ctx.call("search_files", path=".", regex="(unclosed")
    assert bad.is_error and "invalid regex '(unclosed'" in bad.content
    missing = await ctx.call("search_files", path="nope", regex="x")
    assert missing.is_error and "does not exist" in missing.content


@pytest.mark.gen_test(timeout=10)
async def test_a_single_file_can_be_searched(ctx, workspace):
    write(workspace, "one.txt", "alpha\nbeta\n")
    out = await ctx.call("search_files", path="one.txt", regex="be.a")
    assert out.content == "Found 1 result.\n\n# one.txt\n  1 | alpha\n  2 | beta\n----"


def test_globs():
    assert expand_braces("*.{ts,tsx}") == ["*.ts", "*.tsx"]
    assert expand_braces("{a,b}/{c,d}") == ["a/c", "a/d", "b/c", "b/d"]
    spec = glob_spec("!*.md")
    assert spec.match_file("x.py") and not spec.match_file("docs/x.md")
