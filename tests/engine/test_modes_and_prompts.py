"""Modes, the system prompt's custom instructions, environment details and
the context-window arithmetic, as units."""

from __future__ import annotations

import functools
import json

import pytest

from roo_daemon.engine import context_window, environment
from roo_daemon.engine.environment import environment_details
from roo_daemon.engine.modes import BUILT_IN, ModeError, available_modes, mode_from_config
from roo_daemon.engine.prompts import custom_instructions, system_prompt


def test_built_in_modes_and_their_tools():
    code, architect, ask, orch = BUILT_IN["code"], BUILT_IN["architect"], BUILT_IN["ask"], BUILT_IN["orchestrator"]
    assert code.allows("execute_command") and code.allows("apply_diff")
    assert architect.allows("write_to_file") and not architect.allows("execute_command")
    assert architect.edit_refusal("src/app.py").startswith("This mode (🏗️ Architect) can only edit files matching")
    assert architect.edit_refusal("docs/PLAN.md") is None
    assert not ask.allows("write_to_file") and ask.allows("read_file")
    assert orch.allows("new_task") and orch.allows("attempt_completion") and not orch.allows("read_file")


def test_custom_modes_from_config_and_roomodes(tmp_path):
    (tmp_path / ".roomodes").write_text(
        json.dumps(
            {
                "customModes": [
                    {"slug": "reviewer", "name": "Reviewer", "roleDefinition": "You review.", "groups": ["read"]},
                    {
                        "slug": "code",
                        "name": "Strict Code",
                        "roleDefinition": "You code carefully.",
                        "groups": ["read", "edit"],
                    },
                ]
            }
        )
    )
    config = [{"slug": "writer", "roleDefinition": "You write.", "groups": [["edit", {"fileRegex": r"\.txt$"}]]}]
    modes = available_modes(config, str(tmp_path))
    assert modes["reviewer"].allows("read_file") and not modes["reviewer"].allows("write_to_file")
    assert modes["code"].name == "Strict Code" and not modes["code"].allows("execute_command")  # workspace wins
    assert modes["writer"].edit_refusal("a.md") and modes["writer"].edit_refusal("a.txt") is None
    assert set(BUILT_IN) <= set(modes)


def test_bad_custom_modes_are_refused(tmp_path):
    with pytest.raises(ModeError):
        mode_from_config({"slug": "x", "roleDefinition": "r", "groups": ["teleport"]}, "config")
    (tmp_path / ".roomodes").write_text("customModes: [ {slug: : }")
    with pytest.raises(ModeError):
        available_modes([], str(tmp_path))


def test_custom_instructions_gather_every_rule_source(tmp_path):
    (tmp_path / ".roo" / "rules").mkdir(parents=True)
    (tmp_path / ".roo" / "rules" / "style.md").write_text("Use tabs.")
    (tmp_path / ".roo" / "rules-code").mkdir(parents=True)
    (tmp_path / ".roo" / "rules-code" / "tests.md").write_text("Write tests first.")
    (tmp_path / ".roo" / "rules-ask").mkdir(parents=True)
    (tmp_path / ".roo" / "rules-ask" / "other.md").write_text("Only for ask.")
    (tmp_path / ".roorules").write_text("Be brief.")
    (tmp_path / "AGENTS.md").write_text("Run make check.")
    text = custom_instructions(BUILT_IN["code"], str(tmp_path), "Answer in English.")
    for piece in ("Answer in English.", "Use tabs.", "Write tests first.", "Run make check."):
        assert piece in text
    assert "Only for ask." not in text
    assert "Be brief." not in text  # .roorules is only a fallback for .roo/rules/, as in Roo
    prompt = system_prompt(BUILT_IN["code"], BUILT_IN, str(tmp_path), "Answer in English.")
    assert prompt.startswith(BUILT_IN["code"].role_definition)
    assert "USER'S CUSTOM INSTRUCTIONS" in prompt and str(tmp_path) in prompt and "orchestrator" in prompt


def test_environment_details_list_the_workspace_once(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "main.py").write_text("x")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("x")
    first = environment_details(BUILT_IN["code"], str(tmp_path), first=True)
    assert "src/" in first and "src/main.py" in first and ".git" not in first
    assert "<slug>code</slug>" in first
    later = environment_details(BUILT_IN["code"], str(tmp_path), first=False)
    assert "src/main.py" not in later and "# Current Time" in later


def test_only_a_later_block_after_the_zone_was_read_is_made_on_the_loop(tmp_path, monkeypatch):
    """The loop makes a later turn's block itself (no thread hop per turn),
    but only once nothing in it touches the file system: never the first
    block (its listing walks the workspace), nor before the zone's name was
    read (off the loop, by an earlier block)."""
    monkeypatch.setattr(environment, "_zone_name", functools.cache(environment._zone_name.__wrapped__))
    assert not environment.makes_no_file_calls(False)  # the zone's name is not known yet
    environment_details(BUILT_IN["code"], str(tmp_path), first=True)
    assert environment.makes_no_file_calls(False)
    assert not environment.makes_no_file_calls(True)


def test_context_window_arithmetic_and_whole_turn_truncation():
    # Roo: reserve max_tokens (else 8192), at most a fifth of the window; keep a 10 % buffer.
    assert context_window.allowed_tokens(100_000, None) == 90_000 - 8_192
    assert context_window.allowed_tokens(100_000, 8_000) == 82_000
    assert context_window.allowed_tokens(10_000, None) == 9_000 - 2_000
    msgs = [{"role": "user", "content": "task"}]
    for i in range(4):
        msgs += [
            {"role": "assistant", "content": f"a{i}", "tool_calls": [{"id": f"c{i}"}]},
            {"role": "tool", "tool_call_id": f"c{i}", "content": "r"},
        ]
    point = context_window.truncation_point(msgs)
    kept = [msgs[0], *msgs[point:]]
    assert point - 1 == 4 and kept[0]["content"] == "task" and kept[1]["content"] == "a2"
    # Condensing keeps at least the last three messages, as whole turns.
    assert context_window.keep_point(msgs, 3) == 5 and msgs[5]["content"] == "a2"
    assert context_window.keep_point(msgs[:3], 3) == 0  # nothing before them to condense
    # No tool result is left without its call.
    calls = {c["id"] for m in kept if m["role"] == "assistant" for c in m["tool_calls"]}
    assert all(m["tool_call_id"] in calls for m in kept if m["role"] == "tool")


@pytest.mark.gen_test(timeout=5)
async def test_deltas_are_coalesced_within_the_window():
    import asyncio

    from roo_daemon.engine.coalesce import DeltaCoalescer

    published: list[str] = []
    out = asyncio.Event()

    def publish(name: str, data: dict) -> None:
        published.append(data["text"])
        out.set()

    c = DeltaCoalescer(publish, window=0.01, max_chars=10)
    for piece in ("a", "b", "c"):
        c.add(piece)
    assert published == []  # held within the window
    c.add("0123456789")  # past max_chars: out at once, in order
    assert published == ["abc0123456789"]
    out.clear()
    c.add("x")
    await asyncio.wait_for(out.wait(), 2)  # the window's timer publishes what is left
    assert published == ["abc0123456789", "x"]
    c.add("y")
    c.discard()
    c.flush()
    assert published == ["abc0123456789", "x"]
