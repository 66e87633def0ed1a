"""Reasoning (issue #11 item 15): Anthropic extended thinking
(``thinking_budget_tokens``) and OpenAI-compatible ``reasoning_effort`` as
profile options; the model's thinking streams as ``message.reasoning``
events, Anthropic's signed thinking blocks go back with the turn (the API
requires them before a ``tool_use`` when thinking is on), and the thinking
tokens are billed in the task's usage."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import make_config
from tests.engine.fakes import Turn, call
from tests.tasks.helpers import all_events, settle

PRICES = {"input": 3.0, "output": 15.0}
THOUGHT = "The user wants a file. I should write hello.txt first, then finish."


@pytest.fixture
def config(tmp_path, fake) -> dict[str, Any]:
    cfg = make_config(tmp_path)
    options: dict[str, Any] = {"prices": PRICES, "temperature": 0.2}
    if fake.kind == "anthropic":
        options |= {"thinking_budget_tokens": 50000, "max_tokens": 4000}
    else:
        options |= {"reasoning_effort": "high"}
    cfg["providers"]["thinker"] = fake.profile(**options)
    cfg["providers"]["scripted_thinker"] = {
        "kind": "scripted",
        "chunk_chars": 16,
        "turns": [
            {
                "reasoning": THOUGHT,
                "text": "Done.",
                "tool_calls": [{"name": "attempt_completion", "args": {"result": "ok"}}],
            }
        ],
    }
    return cfg


def reasoning_text(events: list[dict[str, Any]]) -> str:
    return "".join(e["data"]["text"] for e in events if e["event"] == "message.reasoning")


@pytest.mark.gen_test(timeout=20)
async def test_thinking_is_requested_streamed_sent_back_and_billed(api, fake):
    write = call("write_to_file", path="hello.txt", content="hi\n")
    fake.script(
        Turn(
            text="Writing it.",
            reasoning=THOUGHT,
            tool_calls=[write],
            usage={"input": 1000, "output": 900, "reasoning": 800},
        ),
        Turn(
            reasoning="Done; complete.",
            tool_calls=[call("attempt_completion", result="written")],
            usage={"input": 1100, "output": 100, "reasoning": 60},
        ),
    )
    session = await api.session(provider="thinker", auto_approve={"write": True})
    task = await api.task(session["id"], "Write hello.txt")
    done = await settle(api, session["id"], task["id"], "completed")

    first = fake.requests[0].body
    if fake.kind == "anthropic":
        # Roo's getModelParams: the budget is at most 80 % of max_tokens
        # (and at least 1024), and thinking runs at temperature 1.
        assert first["thinking"] == {"type": "enabled", "budget_tokens": 3200}
        assert first["temperature"] == 1.0
    else:
        assert first["reasoning_effort"] == "high"
        assert first["temperature"] == 0.2

    events = await all_events(api, session["id"], task["id"])
    assert reasoning_text(events) == THOUGHT + "Done; complete."
    names = [e["event"] for e in events]
    # The thinking streams before the answer's text.
    assert names.index("message.reasoning") < names.index("message.delta")

    second = fake.requests[1].body
    assistant = [m for m in second["messages"] if m["role"] == "assistant"][0]
    if fake.kind == "anthropic":
        # The signed thinking block leads the assistant turn it came with.
        assert assistant["content"][0] == {"type": "thinking", "thinking": THOUGHT, "signature": "sig-1"}
        assert [b["type"] for b in assistant["content"]] == ["thinking", "text", "tool_use"]
    else:
        assert "reasoning_content" not in assistant and THOUGHT not in str(second)

    # Output tokens (thinking included, as both APIs count them) are billed.
    usage = done["usage"]
    assert usage["tokens_out"] == 1000
    assert usage["cost_usd"] == pytest.approx((2100 * 3.0 + 1000 * 15.0) / 1e6)


@pytest.mark.parametrize("fake", ["anthropic"], indirect=True)
@pytest.mark.gen_test(timeout=20)
async def test_a_redacted_thinking_block_goes_back_as_it_came(api, fake):
    fake.script(
        Turn(
            reasoning="Hmm.", redacted="EncryptedBlob==", tool_calls=[call("write_to_file", path="a.txt", content="a")]
        ),
        Turn(tool_calls=[call("attempt_completion", result="ok")]),
    )
    session = await api.session(provider="thinker", auto_approve={"write": True})
    task = await api.task(session["id"], "Write a.txt")
    await settle(api, session["id"], task["id"], "completed")
    assistant = [m for m in fake.requests[1].body["messages"] if m["role"] == "assistant"][0]
    assert assistant["content"][:2] == [
        {"type": "thinking", "thinking": "Hmm.", "signature": "sig-1"},
        {"type": "redacted_thinking", "data": "EncryptedBlob=="},
    ]


@pytest.mark.parametrize("fake", ["openai"], indirect=True)
@pytest.mark.gen_test(timeout=20)
async def test_openrouter_reasoning_field_streams_too(api, fake):
    fake.script(
        Turn(
            reasoning="Thinking aloud.",
            reasoning_field="reasoning",
            tool_calls=[call("attempt_completion", result="ok")],
        )
    )
    session = await api.session(provider="thinker")
    task = await api.task(session["id"], "Go")
    await settle(api, session["id"], task["id"], "completed")
    assert reasoning_text(await all_events(api, session["id"], task["id"])) == "Thinking aloud."


@pytest.mark.parametrize("fake", ["openai"], indirect=True)
@pytest.mark.gen_test(timeout=20)
async def test_think_tags_at_the_start_of_the_text_are_reasoning_as_roo_reads_them(api, fake):
    # DeepSeek-R1 style models behind Ollama or LM Studio think inside the text.
    fake.script(
        Turn(
            text="<think>Plan: finish.</think>Finishing now.", tool_calls=[call("write_to_file", path="a", content="a")]
        ),
        Turn(text="Not <think>a tag</think> here.", tool_calls=[call("attempt_completion", result="ok")]),
    )
    session = await api.session(provider="thinker", auto_approve={"write": True})
    task = await api.task(session["id"], "Go")
    await settle(api, session["id"], task["id"], "completed")
    events = await all_events(api, session["id"], task["id"])
    assert reasoning_text(events) == "Plan: finish."
    assert [e["data"]["text"] for e in events if e["event"] == "message"] == [
        "Finishing now.",
        "Not <think>a tag</think> here.",
    ]
    assistant = [m for m in fake.requests[1].body["messages"] if m["role"] == "assistant"][0]
    assert assistant["content"] == "Finishing now."


@pytest.mark.parametrize("fake", ["openai"], indirect=True)
@pytest.mark.gen_test(timeout=20)
async def test_a_scripted_turn_streams_its_reasoning_before_its_text(api, fake):
    # For demos and the dashboard's tests: a script can think too.
    session = await api.session(provider="scripted_thinker")
    task = await api.task(session["id"], "Go")
    await settle(api, session["id"], task["id"], "completed")
    events = await all_events(api, session["id"], task["id"])
    assert reasoning_text(events) == THOUGHT
    names = [e["event"] for e in events]
    assert names.index("message.delta") > max(i for i, n in enumerate(names) if n == "message.reasoning")
    assert [e["data"]["text"] for e in events if e["event"] == "message"] == ["Done."]
