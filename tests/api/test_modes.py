"""``GET /api/v1/modes``: the modes a session's tasks can use (built-in,
the daemon's config, the workspace's ``.roomodes``) with their groups, and
the built-in modes carrying Roo-Code's ``whenToUse`` and
``customInstructions`` into the system prompt the provider receives."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from roo_daemon.auth import hash_key
from tests.conftest import Api, make_config
from tests.engine.fakes import Turn, call

ALICE = "modes-test-alice-key"
BOB = "modes-test-bob-key"
WRITE_ONLY = "modes-test-write-only-key"
ROO_ORDER = ["architect", "code", "ask", "debug", "orchestrator"]  # packages/types/src/mode.ts DEFAULT_MODES
ORCHESTRATOR_START = "Your role is to coordinate complex workflows by delegating tasks to specialized modes."
ROOMODES = {
    "customModes": [
        {
            "slug": "reviewer",
            "name": "Reviewer",
            "roleDefinition": "You review.",
            "whenToUse": "Reviewing a change.",
            "groups": ["read", ["edit", {"fileRegex": r"\.review$", "description": "Review notes"}]],
        },
        {"slug": "ask", "name": "Strict Ask", "roleDefinition": "You answer tersely.", "groups": ["read"]},
    ]
}


@pytest.fixture
def config(tmp_path: Path, fake_openai) -> dict[str, Any]:
    keys = [
        {"name": "alice", "sha256": hash_key(ALICE), "scopes": ["read", "write"]},
        {"name": "bob", "sha256": hash_key(BOB), "scopes": ["read", "write"]},
        {"name": "w", "sha256": hash_key(WRITE_ONLY), "scopes": ["write"]},
    ]
    writer = {
        "slug": "writer",
        "name": "Writer",
        "roleDefinition": "You write prose.",
        "customInstructions": "Short sentences.",
        "groups": ["read", "edit"],
    }
    cfg = make_config(tmp_path, auth={"keys": keys}, engine={"custom_modes": [writer]})
    cfg["providers"]["real"] = fake_openai.profile()
    return cfg


async def workspace_session(api: Api, tmp_path: Path, roomodes: str | None) -> dict[str, Any]:
    ws = tmp_path / "roots" / "ws"
    ws.mkdir(exist_ok=True)
    if roomodes is not None:
        (ws / ".roomodes").write_text(roomodes)
    return await Api(api.base_url, ALICE).session(workspace=str(ws), provider="real")


@pytest.mark.gen_test(timeout=20)
async def test_lists_built_in_config_and_workspace_modes_with_groups(api: Api, tmp_path: Path) -> None:
    session = await workspace_session(api, tmp_path, json.dumps(ROOMODES))
    r = await Api(api.base_url, ALICE).get(f"/api/v1/modes?session_id={session['id']}")
    assert r.status == 200, r.body
    items = r.json["items"]
    # Built-in in Roo's order, then config, then the workspace's; a slug
    # defined again replaces the earlier one in place.
    assert [m["slug"] for m in items] == [*ROO_ORDER, "writer", "reviewer"]
    modes = {m["slug"]: m for m in items}
    assert modes["architect"]["groups"] == ["read", "edit", "mcp"]
    assert modes["architect"]["file_regex"] == r"\.md$"
    assert modes["architect"]["file_regex_description"] == "Markdown files only"
    assert modes["architect"]["when_to_use"].startswith("Use this mode when you need to plan, design, or strategize")
    assert "update_todo_list" in modes["architect"]["custom_instructions"]
    assert modes["code"]["groups"] == ["read", "edit", "command", "mcp"] and modes["code"]["custom_instructions"] == ""
    assert modes["debug"]["custom_instructions"].startswith("Reflect on 5-7 different possible sources")
    assert modes["orchestrator"]["groups"] == []
    assert modes["orchestrator"]["custom_instructions"].startswith(ORCHESTRATOR_START)
    assert modes["orchestrator"]["source"] == "built-in"
    assert modes["ask"]["name"] == "Strict Ask"
    assert modes["ask"]["source"] == ".roomodes" and modes["ask"]["groups"] == ["read"]
    assert modes["writer"]["source"] == "config" and modes["writer"]["custom_instructions"] == "Short sentences."
    assert modes["reviewer"]["groups"] == ["read", "edit"] and modes["reviewer"]["file_regex"] == r"\.review$"
    assert modes["reviewer"]["when_to_use"] == "Reviewing a change."

    # Without a session: what every session has (built-in and config).
    r = await Api(api.base_url, BOB).get("/api/v1/modes")
    assert r.status == 200, r.body
    assert [m["slug"] for m in r.json["items"]] == [*ROO_ORDER, "writer"]
    assert {m["slug"]: m for m in r.json["items"]}["ask"]["source"] == "built-in"


@pytest.mark.gen_test(timeout=20)
async def test_sessions_are_tenant_scoped_and_the_read_scope_is_needed(api: Api, tmp_path: Path) -> None:
    session = await workspace_session(api, tmp_path, None)
    r = await Api(api.base_url, BOB).get(f"/api/v1/modes?session_id={session['id']}")
    assert r.status == 404 and r.json["type"] == "urn:roo-daemon:problem:not-found"
    r = await Api(api.base_url, WRITE_ONLY).get("/api/v1/modes")
    assert r.status == 403
    r = await api.get("/api/v1/modes")
    assert r.status == 401
    r = await Api(api.base_url, ALICE).get("/api/v1/modes?session_id=nope")
    assert r.status == 422


@pytest.mark.gen_test(timeout=20)
async def test_a_broken_roomodes_is_a_conflict_that_says_why(api: Api, tmp_path: Path) -> None:
    session = await workspace_session(api, tmp_path, None)
    Path(session["workspace"], ".roomodes").write_text("customModes: [ {slug: : }")  # broken after the session began
    r = await Api(api.base_url, ALICE).get(f"/api/v1/modes?session_id={session['id']}")
    assert r.status == 409, r.body
    assert ".roomodes" in r.json["detail"]


@pytest.mark.gen_test(timeout=20)
async def test_the_provider_receives_the_modes_instructions_and_when_to_use(
    api: Api, tmp_path: Path, fake_openai
) -> None:
    fake_openai.script(Turn(tool_calls=[call("attempt_completion", result="planned")]))
    session = await workspace_session(api, tmp_path, None)
    await Api(api.base_url, ALICE).task(session["id"], "Plan it", mode="orchestrator")
    await fake_openai.wait_requests(1)
    system = fake_openai.requests[0].body["messages"][0]["content"]
    assert f"Mode-specific Instructions:\n{ORCHESTRATOR_START}" in system
    assert (
        '  * "🐛 Debug" mode (debug)' not in system
        and '  * "🪲 Debug" mode (debug) - Use this mode when you\'re troubleshooting issues, investigating errors, '
        "or diagnosing problems. Specialized in systematic debugging"
        in system
    )
    # A custom mode without whenToUse: the first sentence of its role, as Roo does.
    assert '  * "Writer" mode (writer) - You write prose\n' in system
