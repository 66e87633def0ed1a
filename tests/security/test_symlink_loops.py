"""Symlink loops in a workspace are unreadable entries, not engine failures
(issue 9, item 11).

Python (before 3.13) raises ``RuntimeError`` when resolving a loop; that
escaped every tool and failed the whole task with "internal engine error".
Now walks leave loops out, and naming one (or a path through one) gets a
tool error that says what is wrong.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from roo_daemon.engine.tools import ripgrep
from roo_daemon.models import AUTO_APPROVE_DEFAULTS
from tests.engine.tools.conftest import FakeContext

LOOP = "symbolic link loop"


@pytest.fixture
def ctx(tmp_path: Path) -> FakeContext:
    """A workspace with a self-loop, a two-link cycle, a loop inside a
    folder, and ordinary files around them."""
    root = tmp_path / "ws"
    (root / "src").mkdir(parents=True)
    (root / "src" / "main.txt").write_text("needle\n")
    (root / "top.txt").write_text("needle\n")
    os.symlink("self", root / "self")
    os.symlink("pong", root / "ping")
    os.symlink("ping", root / "pong")
    os.symlink("../src/spin", root / "src" / "spin")
    policy = dict(AUTO_APPROVE_DEFAULTS, read_only=True, write=True, execute=True, allowed_commands=["*"])
    return FakeContext(root, auto_approve=policy)


@pytest.mark.gen_test(timeout=10)
async def test_list_files_leaves_loops_out_and_refuses_to_list_one(ctx: FakeContext) -> None:
    out = await ctx.call("list_files", path=".", recursive=True)
    assert not out.is_error, out.content
    assert out.content == "top.txt\nsrc/\nsrc/main.txt"
    for path in ("self", "ping", "src/spin", "self/deeper"):
        one = await ctx.call("list_files", path=path)
        assert one.is_error and LOOP in one.content and f"'{path}'" in one.content, one.content


@pytest.mark.gen_test(timeout=10)
async def test_read_and_write_refuse_a_loop_with_a_tool_error(ctx: FakeContext) -> None:
    for path in ("self", "pong", "src/spin", "ping/x.txt"):
        read = await ctx.call("read_file", path=path)
        assert read.is_error and read.content.startswith(f"File: {path}\nError: ") and LOOP in read.content
        write = await ctx.call("write_to_file", path=path, content="x")
        assert write.is_error and LOOP in write.content, write.content


@pytest.mark.gen_test(timeout=10)
async def test_search_files_skips_loops_and_refuses_to_search_one(ctx: FakeContext) -> None:
    if ripgrep.find_rg() is None:
        pytest.skip("ripgrep is not installed")
    out = await ctx.call("search_files", path=".", regex="needle")
    assert out.content == "Found 2 results.\n\n# src/main.txt\n  1 | needle\n----\n\n# top.txt\n  1 | needle\n----"
    loop = await ctx.call("search_files", path="src/spin", regex="needle")
    assert loop.is_error and LOOP in loop.content


@pytest.mark.gen_test(timeout=10)
async def test_a_command_cwd_through_a_loop_is_refused(ctx: FakeContext) -> None:
    out = await ctx.call("execute_command", command="pwd", cwd="ping")
    assert out.is_error and "Working directory refused" in out.content and LOOP in out.content


@pytest.mark.gen_test(timeout=10)
async def test_a_rooignore_that_is_a_loop_fails_closed(ctx: FakeContext) -> None:
    os.symlink(".rooignore", ctx.workspace / ".rooignore")
    out = await ctx.call("read_file", path="top.txt")
    assert out.is_error and ".rooignore cannot be read" in out.content
