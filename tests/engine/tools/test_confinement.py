"""Every tool refuses paths that leave the workspace (``..``, absolute,
symlinks out) and files ``.rooignore`` blocks, before any approval is asked
and without touching anything outside."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from roo_daemon.engine.workspace import GitIgnoreChain, PathEscape, RooIgnore, resolve_inside

ROOIGNORED = "Access blocked by .rooignore"


@pytest.fixture
def outside(tmp_path: Path, workspace: Path) -> Path:
    """A directory next to the workspace with a secret, and a symlink to it inside."""
    out = tmp_path / "outside"
    out.mkdir()
    (out / "secret.txt").write_text("s3cret\n")
    os.symlink(out, workspace / "link")
    os.symlink(out / "secret.txt", workspace / "secret_link.txt")
    return out


def calls_on(path: str, directory: str) -> list[tuple[str, dict]]:
    return [
        ("read_file", {"path": path}),
        ("write_to_file", {"path": path, "content": "pwned"}),
        (
            "apply_diff",
            {"path": path, "diff": "<<<<<<< SEARCH\n:start_line:1\n-------\ns3cret\n=======\npwned\n>>>>>>> REPLACE"},
        ),
        ("search_replace", {"file_path": path, "old_string": "s3cret", "new_string": "pwned"}),
        ("list_files", {"path": directory}),
        ("search_files", {"path": directory, "regex": "s3cret"}),
        ("execute_command", {"command": "cat secret.txt", "cwd": directory}),
    ]


@pytest.mark.parametrize(
    "path, directory",
    [("../outside/secret.txt", "../outside"), ("link/secret.txt", "link"), ("secret_link.txt", "link/")],
    ids=["dotdot", "symlinked-dir", "symlinked-file"],
)
@pytest.mark.gen_test(timeout=10)
async def test_escapes_are_refused_by_every_tool(strict_ctx, outside, path, directory):
    for name, args in calls_on(path, directory):
        out = await strict_ctx.call(name, **args)
        assert out.is_error, (name, out.content)
        assert "outside the workspace" in out.content, (name, out.content)
    assert strict_ctx.asks == []  # refused before any approval
    assert (outside / "secret.txt").read_text() == "s3cret\n"
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]


@pytest.mark.gen_test(timeout=10)
async def test_absolute_paths_outside_are_refused_and_inside_accepted(strict_ctx, ctx, outside, workspace):
    for name, args in calls_on(str(outside / "secret.txt"), str(outside)):
        out = await strict_ctx.call(name, **args)
        assert out.is_error and "absolute paths are refused outside it" in out.content, (name, out.content)
    # "/ws/../outside/secret.txt" starts with the workspace but climbs out: refused as before.
    climbing = await strict_ctx.call("read_file", path=f"{workspace}/../{outside.name}/secret.txt")
    assert climbing.is_error and "resolves outside the workspace" in climbing.content
    assert strict_ctx.asks == []
    # As in Roo, an absolute path inside the workspace is the file it names.
    (workspace / "x.txt").write_text("inside\n")
    inside = await ctx.call("read_file", path=str(workspace / "x.txt"))
    assert not inside.is_error and "1 | inside" in inside.content, inside.content


@pytest.mark.gen_test(timeout=10)
async def test_rooignored_files_can_be_neither_read_nor_written(strict_ctx, workspace):
    (workspace / ".rooignore").write_text("secrets/\n*.key\n")
    (workspace / "secrets").mkdir()
    (workspace / "secrets" / "db.txt").write_text("password\n")
    (workspace / "api.key").write_text("k3y\n")
    (workspace / "ok.txt").write_text("fine\n")
    for path in ("secrets/db.txt", "api.key", ".rooignore"):
        for name, args in calls_on(path, "secrets")[:4]:
            out = await strict_ctx.call(name, **args)
            assert out.is_error and ROOIGNORED in out.content, (name, path, out.content)
            assert f'"path":"{path}"' in out.content
    for name, args in calls_on("x", "secrets")[4:]:
        out = await strict_ctx.call(name, **args)
        assert out.is_error and ROOIGNORED in out.content, (name, out.content)
    # a command that reads a rooignored file is refused too (Roo's validateCommand)
    cat = await strict_ctx.call("execute_command", command="cat api.key")
    assert cat.is_error and '"path":"api.key"' in cat.content
    assert strict_ctx.asks == []
    assert (workspace / "api.key").read_text() == "k3y\n"
    assert (workspace / ".rooignore").read_text() == "secrets/\n*.key\n"


@pytest.mark.gen_test(timeout=10)
async def test_a_symlink_to_a_rooignored_file_is_blocked(ctx, workspace):
    (workspace / ".rooignore").write_text("private.txt\n")
    (workspace / "private.txt").write_text("p\n")
    os.symlink(workspace / "private.txt", workspace / "public.txt")
    out = await ctx.call("read_file", path="public.txt")
    assert out.is_error and ROOIGNORED in out.content


def test_resolve_inside(workspace, tmp_path):
    (workspace / "a").mkdir()
    assert resolve_inside(str(workspace), "a/../a/./b.txt") == (workspace / "a" / "b.txt").resolve()
    assert resolve_inside(str(workspace), ".") == workspace.resolve()
    for bad in ("..", "a/../../x", "/etc/passwd", "~/x", "", "a\x00b"):
        with pytest.raises(PathEscape):
            resolve_inside(str(workspace), bad)


def test_ignore_rules(workspace):
    (workspace / ".rooignore").write_text("build/\n*.pem\n!public.pem\n")
    rooignore = RooIgnore.load(workspace)
    assert rooignore.blocks("build", is_dir=True) and rooignore.blocks("build/x/y.o")
    assert rooignore.blocks("keys/server.pem") and not rooignore.blocks("keys/public.pem")
    assert not rooignore.blocks("src/build.py") and rooignore.blocks(".rooignore")
    assert not RooIgnore.load(workspace / "nowhere").blocks("anything")

    (workspace / ".gitignore").write_text("*.log\n")
    (workspace / "sub").mkdir()
    (workspace / "sub" / ".gitignore").write_text("!important.log\n")
    chain = GitIgnoreChain.down_to(workspace, "sub")
    assert chain.ignores("sub/debug.log", False) and not chain.ignores("sub/important.log", False)
    assert GitIgnoreChain.down_to(workspace, ".").ignores("important.log", False)
