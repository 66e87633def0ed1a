"""Write protection (Roo's RooProtectedController): which paths, the ask a
protected edit raises even with ``write`` auto-approved, and list_files'
🛡️ mark."""

from __future__ import annotations

import pytest

from roo_daemon.engine.protect import PROTECTED_PATTERNS, is_write_protected


@pytest.mark.parametrize(
    "rel",
    [
        ".roomodes",
        "./.roomodes",
        "src/../.roomodes",
        ".rooignore",
        ".rooprotected",
        ".roorules",
        ".roorules-code",
        ".clinerules",
        "sub/.clinerules-architect",
        ".roo/rules/01.md",
        ".roo/mcp.json",
        ".vscode/settings.json",
        "team.code-workspace",
        "AGENTS.md",
        "agents.md",
        "docs/AGENTS.md",
        "AGENT.md",
    ],
)
def test_protected(rel):
    assert is_write_protected(rel)


@pytest.mark.parametrize(
    "rel", ["src/app.py", "README.md", "sub/.roo/rules/x.md", "roomodes", "AGENTS.md.bak", "../.roomodes", "."]
)
def test_not_protected(rel):
    assert not is_write_protected(rel)


def test_roos_list():
    assert ".roo/**" in PROTECTED_PATTERNS and "AGENTS.md" in PROTECTED_PATTERNS and len(PROTECTED_PATTERNS) == 10


@pytest.mark.gen_test(timeout=10)
async def test_each_edit_tool_asks_for_a_protected_file(ctx, workspace):
    (workspace / ".roo").mkdir()
    (workspace / ".roo" / "rules.md").write_text("a\nb\n")
    ctx.approve_next(False)
    ctx.approve_next(False)
    ctx.approve_next(False)
    await ctx.call("write_to_file", path=".roo/rules.md", content="x\n")
    await ctx.call("search_replace", file_path=".roo/rules.md", old_string="a", new_string="c")
    await ctx.call("apply_diff", path=".roo/rules.md", diff="<<<<<<< SEARCH\na\n=======\nc\n>>>>>>> REPLACE")
    assert [payload["tool"] for _, payload in ctx.asks] == ["write_to_file", "search_replace", "apply_diff"]
    assert all(payload["protected"] and payload["diff"] for _, payload in ctx.asks)
    assert (workspace / ".roo" / "rules.md").read_text() == "a\nb\n"
    # An ordinary file does not ask (the fixture auto-approves writes).
    assert not (await ctx.call("write_to_file", path="ok.txt", content="x\n")).is_error
    assert len(ctx.asks) == 3


@pytest.mark.gen_test(timeout=10)
async def test_write_protected_auto_approves(ctx, workspace):
    ctx.auto_approve["write_protected"] = True
    assert not (await ctx.call("write_to_file", path=".roomodes", content="{}\n")).is_error
    assert not ctx.asks


@pytest.mark.gen_test(timeout=10)
async def test_list_files_marks_protected_files(ctx, workspace):
    (workspace / ".roo" / "rules").mkdir(parents=True)
    (workspace / ".roo" / "rules" / "a.md").write_text("x")
    (workspace / "AGENTS.md").write_text("x")
    (workspace / "app.py").write_text("x")
    top = (await ctx.call("list_files", path=".")).content.splitlines()
    assert top == ["\U0001f6e1\ufe0f AGENTS.md", "app.py", ".roo/"]
    inside = (await ctx.call("list_files", path=".roo", recursive=True)).content.splitlines()
    assert inside == ["\U0001f6e1\ufe0f rules/", "\U0001f6e1\ufe0f rules/a.md"]
