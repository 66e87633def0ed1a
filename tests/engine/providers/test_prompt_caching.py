"""Prompt caching for ``openai``-kind profiles that serve Anthropic or
Gemini models through an OpenRouter-style gateway (issue #11 item 16), as
Roo-Code's ``api/transform/caching``: behind the profile's
``prompt_caching`` option, ``cache_control: ephemeral`` on the system prompt
and on the last text part of the last two user messages (Anthropic), or of
every tenth user message (Gemini)."""

from __future__ import annotations

from typing import Any

import pytest

from roo_daemon.engine.providers.caching import add_cache_breakpoints, strategy_for
from tests.conftest import make_config
from tests.engine.fakes import Turn, call
from tests.tasks.helpers import settle

EPHEMERAL = {"type": "ephemeral"}


@pytest.fixture
def config(tmp_path, fake_openai) -> dict[str, Any]:
    cfg = make_config(tmp_path)
    cfg["providers"]["claude"] = fake_openai.profile(model="anthropic/claude-sonnet-4.5", prompt_caching="auto")
    cfg["providers"]["gemini"] = fake_openai.profile(model="google/gemini-2.5-pro", prompt_caching="auto")
    cfg["providers"]["gpt"] = fake_openai.profile(model="openai/gpt-4.1", prompt_caching="auto")
    cfg["providers"]["plain"] = fake_openai.profile(model="anthropic/claude-sonnet-4.5")
    return cfg


def marked(body: dict[str, Any]) -> list[tuple[int, str]]:
    """(message index, role) of each message with a cache breakpoint."""
    out = []
    for i, m in enumerate(body["messages"]):
        parts = m["content"] if isinstance(m.get("content"), list) else []
        if any(p.get("cache_control") == EPHEMERAL for p in parts):
            out.append((i, m["role"]))
    return out


async def two_turns(api, fake_openai, provider: str) -> list[dict[str, Any]]:
    fake_openai.script(
        Turn(text="Writing.", tool_calls=[call("write_to_file", path="a.txt", content="a")]),
        Turn(tool_calls=[call("attempt_completion", result="ok")]),
    )
    session = await api.session(provider=provider, auto_approve={"write": True})
    task = await api.task(session["id"], "Write a.txt")
    await settle(api, session["id"], task["id"], "completed")
    return [r.body for r in fake_openai.requests]


@pytest.mark.gen_test(timeout=20)
async def test_an_anthropic_model_behind_the_gateway_gets_roos_breakpoints(api, fake_openai):
    first, second = await two_turns(api, fake_openai, "claude")
    system = first["messages"][0]
    assert system["role"] == "system" and system["content"][0]["cache_control"] == EPHEMERAL
    users = [i for i, m in enumerate(second["messages"]) if m["role"] == "user"]
    assert marked(second) == [(0, "system")] + [(i, "user") for i in users[-2:]]
    for i in users:  # every user message is in parts form; the breakpoint is on its last text part
        parts = second["messages"][i]["content"]
        assert isinstance(parts, list)
        texts = [p for p in parts if p["type"] == "text"]
        assert ("cache_control" in texts[-1]) == (i in users[-2:])


@pytest.mark.gen_test(timeout=20)
async def test_gemini_caches_the_system_prompt_and_every_tenth_user_message(api, fake_openai):
    first, second = await two_turns(api, fake_openai, "gemini")
    assert marked(first) == [(0, "system")] and marked(second) == [(0, "system")]


@pytest.mark.parametrize("provider", ["gpt", "plain"])
@pytest.mark.gen_test(timeout=20)
async def test_other_models_and_profiles_without_the_option_are_sent_as_before(api, fake_openai, provider):
    for body in await two_turns(api, fake_openai, provider):
        assert "cache_control" not in str(body)
        assert isinstance(body["messages"][0]["content"], str)


def test_the_strategies_as_roo_applies_them():
    assert strategy_for("auto", "anthropic/claude-3.7-sonnet") == "anthropic"
    assert strategy_for("auto", "claude-sonnet-4-5") == "anthropic"
    assert strategy_for("auto", "google/gemini-2.5-flash") == "gemini"
    assert strategy_for("auto", "openai/gpt-4.1") is None
    assert strategy_for("gemini", "my-proxy-alias") == "gemini"
    assert strategy_for(None, "anthropic/claude-3.7-sonnet") is None

    users = [{"role": "user", "content": f"u{i}"} for i in range(12)]
    messages = [{"role": "system", "content": "sys"}, *users]
    add_cache_breakpoints(messages, "gemini")
    assert [i for i, m in enumerate(messages) if "cache_control" in m["content"][-1]] == [0, 10]
    # A user message of images only gets a "..." text part to carry the breakpoint, as Roo does.
    messages = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}]},
    ]
    add_cache_breakpoints(messages, "anthropic")
    assert messages[1]["content"][-1] == {"type": "text", "text": "...", "cache_control": EPHEMERAL}
