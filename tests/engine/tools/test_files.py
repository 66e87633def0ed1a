"""read_file, list_files and write_to_file against real temporary workspaces."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from roo_daemon.engine.tools.files import prepare_content

NOTICE = "You do not need to re-read the file"


def write(root: Path, rel: str, text: str | bytes) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


# -- read_file ----------------------------------------------------------------


@pytest.mark.gen_test(timeout=10)
async def test_read_file_numbers_lines(ctx, workspace):
    write(workspace, "src/app.py", "import os\n\ndef main():\n    return 1\n")
    out = await ctx.call("read_file", path="src/app.py")
    assert not out.is_error
    assert out.content == "File: src/app.py\n1 | import os\n2 | \n3 | def main():\n4 |     return 1"


@pytest.mark.gen_test(timeout=10)
async def test_read_file_offset_and_limit_with_truncation_note(ctx, workspace):
    write(workspace, "big.txt", "".join(f"line {i}\n" for i in range(1, 13)))
    out = await ctx.call("read_file", path="big.txt", offset=9, limit=2)
    assert out.content == (
        "File: big.txt\n"
        "IMPORTANT: File content truncated.\n"
        "Status: Showing lines 9-10 of 12 total lines.\n"
        "To read more: Use the read_file tool with offset=11 and limit=2.\n\n"
        " 9 | line 9\n"
        "10 | line 10"
    )
    last = await ctx.call("read_file", path="big.txt", offset=11)
    assert last.content == "File: big.txt\n11 | line 11\n12 | line 12"


@pytest.mark.gen_test(timeout=10)
async def test_read_file_caps_output_bytes_with_a_note(ctx, workspace):
    ctx.settings["read_max_bytes"] = 1024
    write(workspace, "wide.txt", "".join(f"{i:04d} " + "x" * 95 + "\n" for i in range(1, 101)))
    out = await ctx.call("read_file", path="wide.txt")
    assert not out.is_error
    assert "IMPORTANT: File content truncated." in out.content
    assert "of 100 total lines. Output capped at 1024 bytes." in out.content
    body = out.content.split("\n\n", 1)[1]
    assert len(body.encode()) <= 1024 + 110  # at most one line over the cap
    shown = body.count("\n") + 1
    assert 5 <= shown < 100 and f"offset={shown + 1}" in out.content


@pytest.mark.gen_test(timeout=10)
async def test_read_file_cuts_very_long_lines(ctx, workspace):
    write(workspace, "min.js", "a" * 5000)
    out = await ctx.call("read_file", path="min.js")
    assert out.content == "File: min.js\n1 | " + "a" * 1997 + "..."


@pytest.mark.gen_test(timeout=10)
async def test_read_file_errors(ctx, workspace):
    (workspace / "dir").mkdir()
    write(workspace, "empty.txt", "")
    write(workspace, "short.txt", "one\n")
    write(workspace, "logo.bmp", b"BM\x00\x00\x00\x00" + bytes(range(256)))  # images the APIs take: test_images.py

    directory = await ctx.call("read_file", path="dir")
    assert directory.is_error and "Cannot read 'dir' because it is a directory. Use list_files tool instead." in (
        directory.content
    )
    missing = await ctx.call("read_file", path="nope.txt")
    assert missing.is_error and missing.content == "File: nope.txt\nError: File not found: nope.txt"
    binary = await ctx.call("read_file", path="logo.bmp")
    assert not binary.is_error and binary.content == "File: logo.bmp\nBinary file (bmp) - content not displayed"
    empty = await ctx.call("read_file", path="empty.txt")
    assert not empty.is_error and empty.content == "File: empty.txt\nNote: File is empty"
    beyond = await ctx.call("read_file", path="short.txt", offset=5)
    assert beyond.is_error and "offset 5 is beyond file end (1 lines)" in beyond.content
    zero = await ctx.call("read_file", path="short.txt", offset=0)
    assert zero.is_error and "offset must be a 1-indexed line number (got 0)" in zero.content


@pytest.mark.gen_test(timeout=10)
async def test_read_file_utf8_and_crlf(ctx, workspace):
    write(workspace, "win.txt", "héllo\r\nwörld\r\n".encode())
    out = await ctx.call("read_file", path="win.txt")
    assert out.content == "File: win.txt\n1 | héllo\n2 | wörld"


PY = """import os

class Service:
    def start(self):
        x = 1
        return x

    def stop(self):
        return None


def helper():
    pass
"""


@pytest.mark.gen_test(timeout=10)
async def test_read_file_indentation_mode_returns_the_enclosing_block(ctx, workspace):
    write(workspace, "svc.py", PY)
    out = await ctx.call(
        "read_file", path="svc.py", mode="indentation", indentation={"anchor_line": 5, "max_levels": 1}
    )
    assert not out.is_error
    # The anchor's method and the block boundaries one level up (Roo's
    # indentation reader keeps the first line at the minimum level each way).
    assert out.content == (
        "File: svc.py\n"
        "4 |     def start(self):\n"
        "5 |         x = 1\n"
        "6 |         return x\n"
        "7 | \n"
        "8 |     def stop(self):\n"
        "9 |         return None\n\n"
        "Included ranges: 4-9 (total: 13 lines)"
    )

    whole = await ctx.call("read_file", path="svc.py", mode="indentation", indentation={"anchor_line": 5})
    # Unlimited levels: out to the top-level block (and, like Codex's reader,
    # the first top-level line past it, which closes a brace-delimited block).
    assert "3 | class Service:" in whole.content and "def stop" in whole.content
    assert "import os" not in whole.content
    out_of_range = await ctx.call("read_file", path="svc.py", mode="indentation", indentation={"anchor_line": 99})
    assert out_of_range.is_error and "anchor_line 99 is out of range (1-13)" in out_of_range.content


@pytest.mark.gen_test(timeout=10)
async def test_read_file_asks_unless_read_only_is_auto_approved(strict_ctx, workspace):
    write(workspace, "a.txt", "hello\n")
    strict_ctx.approve_next(False, "not that one")
    denied = await strict_ctx.call("read_file", path="a.txt")
    assert denied.is_error and "not that one" in denied.content
    kind, payload = strict_ctx.asks[0]
    assert kind == "tool" and payload["tool"] == "read_file" and payload["args"] == {"path": "a.txt"}
    strict_ctx.approve_next(True)
    assert (await strict_ctx.call("read_file", path="a.txt")).content == "File: a.txt\n1 | hello"


# -- list_files ---------------------------------------------------------------


def tree(root: Path) -> None:
    for rel in [
        "README.md",
        "setup.py",
        "src/app.py",
        "src/util/helpers.py",
        "src/util/data10.txt",
        "src/util/data9.txt",
        ".env",
        ".github/workflows/ci.yml",
        "node_modules/pkg/index.js",
        "dist/bundle.js",
        "build/out.o",
        "logs/today.log",
        "logs/keep.log",
        "docs/guide.md",
        "docs/private/notes.md",
    ]:
        write(root, rel, f"{rel}\n")
    write(root, ".gitignore", "build/\n*.log\n!keep.log\n")
    write(root, "docs/.gitignore", "private/\n")


@pytest.mark.gen_test(timeout=10)
async def test_list_files_top_level(ctx, workspace):
    tree(workspace)
    out = await ctx.call("list_files", path=".", recursive=False)
    assert out.content.splitlines() == [
        ".env",
        ".gitignore",
        "README.md",
        "setup.py",
        ".github/",
        "docs/",
        "logs/",
        "src/",
    ]


@pytest.mark.gen_test(timeout=10)
async def test_list_files_recursive_honours_gitignore(ctx, workspace):
    tree(workspace)
    out = await ctx.call("list_files", path=".", recursive=True)
    names = out.content.splitlines()
    assert names == [
        ".env",
        ".gitignore",
        "README.md",
        "setup.py",
        ".github/",
        "docs/",
        "docs/.gitignore",
        "docs/guide.md",
        "logs/",
        "logs/keep.log",
        "src/",
        "src/app.py",
        "src/util/",
        "src/util/data9.txt",
        "src/util/data10.txt",
        "src/util/helpers.py",
    ]
    # hidden directories are shown but not entered; node_modules and dist are skipped;
    # build/ and *.log are .gitignored (keep.log is re-included); docs/private by the nested .gitignore
    assert all(not n.startswith((".github/workflows", "node_modules", "dist", "build")) for n in names)


@pytest.mark.gen_test(timeout=10)
async def test_list_files_of_a_subdirectory_is_relative_to_it(ctx, workspace):
    tree(workspace)
    out = await ctx.call("list_files", path="src", recursive=True)
    assert out.content.splitlines() == ["app.py", "util/", "util/data9.txt", "util/data10.txt", "util/helpers.py"]
    hidden = await ctx.call("list_files", path=".github", recursive=True)
    assert hidden.content.splitlines() == ["workflows/", "workflows/ci.yml"]


@pytest.mark.gen_test(timeout=10)
async def test_list_files_honours_rooignore(ctx, workspace):
    tree(workspace)
    write(workspace, ".rooignore", "src/util/\nsetup.py\n")
    names = (await ctx.call("list_files", path=".", recursive=True)).content.splitlines()
    assert "setup.py" not in names and "src/util/" not in names and "src/util/helpers.py" not in names
    assert ".rooignore" not in names  # it protects itself, as in Roo
    assert "src/app.py" in names
    blocked = await ctx.call("list_files", path="src/util")
    assert blocked.is_error and "Access blocked by .rooignore" in blocked.content


@pytest.mark.gen_test(timeout=10)
async def test_list_files_cap_and_empty(ctx, workspace):
    for i in range(30):
        write(workspace, f"many/f{i:02d}.txt", "x")
    ctx.settings["list_max_entries"] = 10
    out = await ctx.call("list_files", path="many")
    lines = out.content.split("\n")
    assert len(lines) == 12 and lines[:10] == [f"f{i:02d}.txt" for i in range(10)]
    assert lines[-1] == (
        "(File list truncated. Use list_files on specific subdirectories if you need to explore further.)"
    )
    (workspace / "void").mkdir()
    assert (await ctx.call("list_files", path="void")).content == "No files found."
    not_dir = await ctx.call("list_files", path="many/f00.txt")
    assert not_dir.is_error and "not a directory" in not_dir.content


@pytest.mark.gen_test(timeout=10)
async def test_list_files_leaves_out_symlinks_that_lead_outside(ctx, workspace, tmp_path):
    outside = tmp_path / "outside"
    write(outside, "secret.txt", "s3cret")
    write(workspace, "inside.txt", "ok")
    os.symlink(outside, workspace / "out_dir")
    os.symlink(outside / "secret.txt", workspace / "out_file")
    os.symlink(workspace / "inside.txt", workspace / "alias.txt")
    names = (await ctx.call("list_files", path=".", recursive=True)).content.splitlines()
    assert names == ["alias.txt", "inside.txt"]


# -- write_to_file ------------------------------------------------------------


@pytest.mark.gen_test(timeout=10)
async def test_write_to_file_creates_parents_then_modifies(ctx, workspace):
    out = await ctx.call("write_to_file", path="a/b/c.txt", content="one\n")
    assert not out.is_error
    assert json.loads(out.content) == {
        "path": "a/b/c.txt",
        "operation": "created",
        "notice": json.loads(out.content)["notice"],
    }
    assert NOTICE in out.content
    assert (workspace / "a/b/c.txt").read_text() == "one\n"
    again = await ctx.call("write_to_file", path="a/b/c.txt", content="two\n")
    assert json.loads(again.content)["operation"] == "modified"
    assert (workspace / "a/b/c.txt").read_text() == "two\n"
    assert not [p for p in (workspace / "a/b").iterdir() if p.name.endswith(".roo-tmp")]


@pytest.mark.gen_test(timeout=10)
async def test_write_to_file_permissions(ctx, workspace):
    script = write(workspace, "run.sh", "#!/bin/sh\n")
    script.chmod(0o755)
    await ctx.call("write_to_file", path="run.sh", content="#!/bin/sh\necho hi\n")
    assert script.stat().st_mode & 0o777 == 0o755  # kept
    await ctx.call("write_to_file", path="fresh.txt", content="x")
    plain = write(workspace, "plain.txt", "x")  # what an ordinary open() gives
    assert (workspace / "fresh.txt").stat().st_mode & 0o777 == plain.stat().st_mode & 0o777


@pytest.mark.gen_test(timeout=10)
async def test_write_to_file_asks_with_a_unified_diff(strict_ctx, workspace):
    write(workspace, "greet.py", "print('hi')\n")
    strict_ctx.approve_next(True)
    out = await strict_ctx.call("write_to_file", path="greet.py", content="print('hello')\n")
    assert not out.is_error
    kind, payload = strict_ctx.asks[0]
    assert kind == "tool" and payload["tool"] == "write_to_file"
    assert payload["diff"] == "--- a/greet.py\n+++ b/greet.py\n@@ -1 +1 @@\n-print('hi')\n+print('hello')\n"
    assert (workspace / "greet.py").read_text() == "print('hello')\n"


@pytest.mark.gen_test(timeout=10)
async def test_write_to_file_rejected_leaves_the_file_alone(strict_ctx, workspace):
    strict_ctx.approve_next(False, "use a different name")
    out = await strict_ctx.call("write_to_file", path="new.txt", content="x")
    assert out.is_error and "use a different name" in out.content
    assert not (workspace / "new.txt").exists()


@pytest.mark.gen_test(timeout=10)
async def test_write_to_file_refuses_a_directory(ctx, workspace):
    (workspace / "d").mkdir()
    out = await ctx.call("write_to_file", path="d", content="x")
    assert out.is_error and "it is a directory" in out.content


@pytest.mark.gen_test(timeout=10)
async def test_file_system_errors_become_tool_errors(ctx, workspace):
    write(workspace, "plain.txt", "x")
    out = await ctx.call("write_to_file", path="plain.txt/inner.txt", content="y")
    assert out.is_error and out.content.startswith("Error writing file plain.txt/inner.txt: ")
    assert str(workspace) not in out.content  # no host paths in what the model sees


def test_prepare_content_strips_fences_and_line_numbers():
    assert prepare_content("```python\nx = 1\n```") == "x = 1"
    assert prepare_content("1 | a\n2 |   b\n3 | c") == "a\n  b\nc"
    assert prepare_content("a | b\nplain") == "a | b\nplain"
    assert prepare_content("") == ""
