r"""File names that are not UTF-8 never put a lone surrogate into a tool
result or an event (issue 9, item 1, the tool part).

Python reads such a name as a ``surrogateescape`` string (byte 0xE9 becomes
U+DCE9). Returned as is by ``list_files`` or ``search_files``, it made the
store's group commit fail, losing every event in the batch, other tenants'
included. Every tool now shows an undecodable byte as ``\xNN`` and accepts
that rendering back as a path.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from roo_daemon.engine.environment import environment_details
from roo_daemon.engine.modes import BUILT_IN
from roo_daemon.engine.tools import ripgrep
from roo_daemon.models import AUTO_APPROVE_DEFAULTS
from tests.conftest import Api, make_config, wait_status
from tests.engine.tools.conftest import FakeContext
from tests.tasks.helpers import all_events

CAFE = b"caf\xe9.txt"  # Latin-1, not UTF-8
FOLDER = b"d\xff"


def strict_utf8(value: Any) -> None:
    """Fails if ``value`` (any JSON) holds a string UTF-8 cannot encode."""
    json.dumps(value, ensure_ascii=False).encode("utf-8")


def undecodable_files(root: Path) -> None:
    broot = os.fsencode(root)
    with open(os.path.join(broot, CAFE), "wb") as f:
        f.write(b"needle in cafe\n")
    os.mkdir(os.path.join(broot, FOLDER))
    with open(os.path.join(broot, FOLDER, b"inner.txt"), "wb") as f:
        f.write(b"needle inside\n")


@pytest.fixture
def tool_ctx(tmp_path: Path) -> FakeContext:
    root = tmp_path / "ws"
    root.mkdir()
    undecodable_files(root)
    policy = dict(AUTO_APPROVE_DEFAULTS, read_only=True, write=True)
    return FakeContext(root, auto_approve=policy)


@pytest.mark.gen_test(timeout=10)
async def test_list_files_shows_undecodable_bytes_escaped(tool_ctx: FakeContext) -> None:
    out = await tool_ctx.call("list_files", path=".", recursive=True)
    assert out.content == "caf\\xe9.txt\nd\\xff/\nd\\xff/inner.txt"
    inner = await tool_ctx.call("list_files", path="d\\xff")
    assert inner.content == "inner.txt"
    strict_utf8(tool_ctx.published)


@pytest.mark.gen_test(timeout=10)
async def test_search_files_shows_undecodable_bytes_escaped(tool_ctx: FakeContext) -> None:
    if ripgrep.find_rg() is None:
        pytest.skip("ripgrep is not installed")
    out = await tool_ctx.call("search_files", path=".", regex="needle")
    assert out.content == (
        "Found 2 results.\n\n# caf\\xe9.txt\n  1 | needle in cafe\n----\n\n"
        "# d\\xff/inner.txt\n  1 | needle inside\n----"
    )
    inner = await tool_ctx.call("search_files", path="d\\xff", regex="needle")
    assert "# d\\xff/inner.txt" in inner.content
    strict_utf8(tool_ctx.published)


@pytest.mark.gen_test(timeout=10)
async def test_the_escaped_name_is_a_path_the_tools_accept(tool_ctx: FakeContext) -> None:
    read = await tool_ctx.call("read_file", path="caf\\xe9.txt")
    assert read.content == "File: caf\\xe9.txt\n1 | needle in cafe"
    nested = await tool_ctx.call("read_file", path="d\\xff/inner.txt")
    assert nested.content == "File: d\\xff/inner.txt\n1 | needle inside"
    wrote = await tool_ctx.call("write_to_file", path="d\\xff/new.txt", content="hello\n")
    assert not wrote.is_error, wrote.content
    assert os.path.exists(os.path.join(os.fsencode(tool_ctx.workspace), FOLDER, b"new.txt"))
    strict_utf8(tool_ctx.published)


@pytest.mark.gen_test(timeout=10)
async def test_errors_never_echo_a_lone_surrogate(tool_ctx: FakeContext) -> None:
    for path in ("gone\udce9.txt", "x\ud800", "gone\\xe9.txt"):
        for tool in ("read_file", "list_files"):
            out = await tool_ctx.call(tool, path=path)
            assert out.is_error, (tool, path, out.content)
            strict_utf8(out.content)
    strict_utf8([data for name, data in tool_ctx.published if name == "tool.result"])


def test_environment_details_list_escaped_names(tmp_path: Path) -> None:
    undecodable_files(tmp_path)
    details = environment_details(BUILT_IN["code"], str(tmp_path), first=True)
    assert "caf\\xe9.txt" in details and "d\\xff/inner.txt" in details
    strict_utf8(details)


# -- through the daemon and its store -----------------------------------------


@pytest.fixture
def config(tmp_path: Path) -> dict[str, Any]:
    cfg = make_config(tmp_path)
    cfg["providers"]["lister"] = {
        "kind": "scripted",
        "turns": [
            {"tool_calls": [{"name": "list_files", "args": {"path": ".", "recursive": True}}]},
            {"tool_calls": [{"name": "attempt_completion", "args": {"result": "listed"}}]},
        ],
    }
    return cfg


@pytest.mark.gen_test(timeout=30)
async def test_a_task_listing_undecodable_names_completes_with_its_events_stored(api: Api) -> None:
    session = await api.session(provider="lister", auto_approve={"read_only": True})
    undecodable_files(Path(session["workspace"]))
    task = await api.task(session["id"], "list")
    done = await wait_status(api, session["id"], task["id"], {"completed", "failed", "cancelled"})
    assert done["status"] == "completed", done
    events = await all_events(api, session["id"], task["id"])
    listed = [e["data"]["content"] for e in events if e["event"] == "tool.result" and e["data"]["tool"] == "list_files"]
    assert listed == ["caf\\xe9.txt\nd\\xff/\nd\\xff/inner.txt"], listed
