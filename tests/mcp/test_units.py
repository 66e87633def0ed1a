"""Units of the MCP package: Roo's names (sanitised, unique, deterministic,
within 64 characters), server definitions checked with Roo's rules and ours,
results formatted as Roo formats them, and the cap."""

from __future__ import annotations

import pytest

from roo_daemon.config import ConfigError, load_config
from roo_daemon.mcp import naming
from roo_daemon.mcp.config import ServerConfigError, parse_server, read_workspace_servers
from roo_daemon.mcp.errors import ResultTooLarge
from roo_daemon.mcp.results import capped, resource_result, tool_result


def test_names_follow_roo() -> None:
    assert naming.build("weather", "get_forecast") == "mcp--weather--get_forecast"
    assert naming.sanitize("my server!") == "my_server"
    assert naming.sanitize("a--b---c") == "a-b-c"  # the separator stays unique
    assert naming.sanitize("9lives") == "_9lives"
    assert naming.sanitize("") == "_" and naming.sanitize("!!!") == "_unnamed"
    assert naming.parse("mcp--weather--get_forecast") == ("weather", "get_forecast")
    assert naming.parse("mcp__weather__get_forecast") == ("weather", "get_forecast")
    assert naming.parse("read_file") is None


def test_colliding_and_long_names_are_unique_valid_and_deterministic() -> None:
    long_tool = "t" * 80
    pairs = [("a b", "x"), ("a_b", "x"), ("srv", "do-it"), ("srv", "do_it"), ("srv", long_tool), ("ok", "fine")]
    names = naming.assign(pairs)
    assert names[("ok", "fine")] == "mcp--ok--fine"  # untouched when nothing collides
    assert len(set(names.values())) == len(pairs)
    assert len({naming.normalize(n) for n in names.values()}) == len(pairs)  # unique even with - and _ as equal
    assert all(naming.VALID.match(n) for n in names.values())
    assert names[("a b", "x")] != names[("a_b", "x")] and names[("a b", "x")].startswith("mcp--a_b--x_")
    assert len(names[("srv", long_tool)]) == 64
    assert naming.assign(reversed(pairs)) == names  # the order servers come in does not matter


def test_server_definitions() -> None:
    stdio = parse_server("fs", {"command": "npx", "args": ["-y", "x"], "alwaysAllow": ["read"]}, "config")
    assert stdio.transport == "stdio" and stdio.timeout == 60 and stdio.allows_without_asking("read")
    http = parse_server(
        "gh", {"type": "streamable-http", "url": "https://h/mcp", "headers_from": {"A": "TOK"}}, "config"
    )
    assert http.transport == "streamable-http" and http.describe() == {
        "transport": "streamable-http",
        "timeout": 60.0,
        "url": "https://h/mcp",
    }
    assert parse_server("s", {"command": "x", "alwaysAllow": ["*"]}, "config").allows_without_asking("any")
    cases = {
        "cannot mix": {"command": "x", "url": "http://h"},
        "must include either 'command'": {"args": []},
        "must set 'type' to 'sse' or 'streamable-http'": {"url": "http://h"},
        "not a field of a stdio server": {"command": "x", "headers": {}},
        "timeout: must be a number of seconds from 1 to 3600": {"command": "x", "timeout": 0},
        "env_from.K: 'not a name!' is not an environment variable name": {
            "command": "x",
            "env_from": {"K": "not a name!"},
        },
        "mcp.servers.s.bogus: unknown key": {"command": "x", "bogus": 1},
    }
    for text, doc in cases.items():
        with pytest.raises(ServerConfigError, match=text.replace("(", r"\(").replace(")", r"\)")):
            parse_server("s", doc, "config")
    with pytest.raises(ServerConfigError, match="workspace servers must be stdio"):
        parse_server("s", {"type": "sse", "url": "http://h"}, "workspace")
    with pytest.raises(ServerConfigError, match="env_from is for the daemon config only"):
        parse_server("s", {"command": "x", "env_from": {"A": "B"}}, "workspace")
    # A workspace file may carry keys Roo's tolerate (watchPaths, others): ignored.
    assert parse_server("s", {"command": "x", "watchPaths": ["a"], "other": 1}, "workspace").command == "x"


def test_a_bad_server_is_a_config_error_at_start() -> None:
    with pytest.raises(ConfigError, match=r"mcp.servers.gh: a server with 'url' must set 'type'"):
        load_config(None, env={}, overrides={"mcp.servers": {"gh": {"url": "https://h"}}})


def test_workspace_files(tmp_path) -> None:
    assert read_workspace_servers(str(tmp_path), "ses_1", "alice", True).servers == {}
    (tmp_path / ".roo").mkdir()
    (tmp_path / ".roo" / "mcp.json").write_text("{not json")
    assert "not valid JSON" in (read_workspace_servers(str(tmp_path), "ses_1", "alice", True).error or "")
    (tmp_path / ".roo" / "mcp.json").write_text('{"mcpServers": {"w": {"command": "x", "env": {"A": "1"}}}}')
    found = read_workspace_servers(str(tmp_path), "ses_1", "alice", False)
    w = found.servers["w"]
    assert (w.source, w.session_id, w.owner, w.workspace, w.network, w.env) == (
        "workspace",
        "ses_1",
        "alice",
        str(tmp_path),
        False,
        (("A", "1"),),
    )


def test_results_are_formatted_as_roo_does() -> None:
    import mcp_types as types

    result = types.CallToolResult(
        content=[
            types.TextContent(text="first"),
            types.ImageContent(data="QUJD", mime_type="image/png"),
            types.EmbeddedResource(resource=types.BlobResourceContents(uri="x://b", blob="QUJD", mime_type="a/b")),
            types.AudioContent(data="QUJD", mime_type="audio/wav"),
        ]
    )
    out = tool_result(result)
    assert out.text == 'first\n\n{\n  "uri": "x://b",\n  "mimeType": "a/b"\n}'
    assert out.images == ["data:image/png;base64,QUJD"] and not out.is_error
    assert tool_result(types.CallToolResult(content=[], is_error=True)).text == "(No response)"
    only_image = tool_result(types.CallToolResult(content=[types.ImageContent(data="QUJD", mime_type="image/png")]))
    assert only_image.text == "[1 image(s) received]"
    failed = tool_result(types.CallToolResult(content=[types.TextContent(text="bad")], is_error=True))
    assert failed.text == "Error:\nbad" and failed.is_error
    read = resource_result(
        types.ReadResourceResult(
            contents=[
                types.TextResourceContents(uri="x://a", text="one"),
                types.TextResourceContents(uri="x://b", text="two"),
                types.BlobResourceContents(uri="x://c", blob="QUJD", mime_type="image/gif"),
            ]
        )
    )
    assert read.text == "one\n\ntwo" and read.images == ["data:image/gif;base64,QUJD"]
    assert resource_result(types.ReadResourceResult(contents=[])).text == "(Empty response)"
    assert capped(out, 1 << 20, "x") is out
    with pytest.raises(ResultTooLarge, match=r"x returned 2.0 KiB \(2,048 bytes\), more than the daemon accepts"):
        capped(tool_result(types.CallToolResult(content=[types.TextContent(text="y" * 2048)])), 1024, "x")
