"""Condensing a long conversation, as Roo does, through the daemon with the
fake OpenAI and Anthropic servers: the summary request carries Roo's prompts
and no tools; the next request keeps the task's first message and the recent
turns verbatim with the summary between; a provider's context-length error
forces a condense and a retry instead of failing the task."""

from __future__ import annotations

import json
from typing import Any

import pytest

from roo_daemon.engine.condense_prompts import CONDENSE, SUMMARY_PROMPT
from tests.conftest import Api, make_config
from tests.engine.fakes import FakeProviderServer, HttpError, ReceivedRequest, Turn, call, fake_anthropic, fake_openai  # noqa: F401
from tests.tasks.helpers import all_events, settle, task_path


@pytest.fixture(params=["openai", "anthropic"])
def fake(request: pytest.FixtureRequest) -> FakeProviderServer:
    return request.getfixturevalue(f"fake_{request.param}")


@pytest.fixture
def config(tmp_path, fake) -> dict[str, Any]:
    cfg = make_config(tmp_path)
    cfg["providers"]["real"] = fake.profile(
        context_window=10_000, max_tokens=1000, prices={"input": 1.0, "output": 1.0}
    )
    return cfg


def todo(i: int, tokens_in: int) -> Turn:
    return Turn(
        text=f"step {i}",
        tool_calls=[call("update_todo_list", todos=f"[x] step {i}")],
        usage={"input": tokens_in, "output": 10},
    )


def system_of(r: ReceivedRequest) -> str:
    body = r.body
    if "system" in body:
        return "".join(b["text"] for b in body["system"]) if isinstance(body["system"], list) else body["system"]
    return body["messages"][0]["content"] if body["messages"][0]["role"] == "system" else ""


def text_of(r: ReceivedRequest) -> str:
    return json.dumps(r.body["messages"])


@pytest.mark.gen_test(timeout=60)
async def test_condensing_past_the_threshold(api: Api, fake: FakeProviderServer) -> None:
    fake.script(
        todo(1, 1000),
        todo(2, 2000),
        todo(3, 8500),  # 85 % of the window: the next request condenses first
        Turn(text="Summary: steps 1 to 3 are done.", usage={"input": 3000, "output": 40}),
        Turn(tool_calls=[call("attempt_completion", result="all steps")]),
    )
    s = await api.session(provider="real")
    t = await api.task(s["id"], "do the steps FIRST-MESSAGE")
    done = await settle(api, s["id"], t["id"], "completed")
    summary_request, after = fake.requests[3], fake.requests[4]
    # Roo's prompts; no tools; tool calls and results as text.
    assert system_of(summary_request) == SUMMARY_PROMPT
    last = summary_request.body["messages"][-1]
    content = last["content"] if isinstance(last["content"], str) else last["content"][-1]["text"]
    assert last["role"] == "user" and content == CONDENSE
    assert "tools" not in summary_request.body
    assert "[Tool Use: update_todo_list]" in text_of(summary_request)
    assert "[Tool Result]" in text_of(summary_request)
    # The first message and the latest turn stay; the summary sits between.
    text = text_of(after)
    assert "FIRST-MESSAGE" in text and "## Conversation Summary\\nSummary: steps 1 to 3 are done." in text
    assert "step 3" in text and "step 1" not in text
    events = await all_events(api, s["id"], t["id"])
    condensed = [e["data"] for e in events if e["event"] == "context.condensed"]
    assert len(condensed) == 1 and condensed[0]["tokens_after"] < condensed[0]["tokens_before"]
    assert condensed[0]["cost_usd"] == pytest.approx(3040 / 1e6)
    # The summary's cost is the task's.
    assert done["usage"]["tokens_in"] == 1000 + 2000 + 8500 + 3000 + 10
    page = (await api.get(task_path(s["id"], t["id"], "/messages"))).json["items"]
    marker = [m for m in page if m["kind"] == "condensed"][0]
    assert marker["replaces"] == {"from": 2, "to": marker["replaces"]["to"]} and marker["cost_usd"] > 0
    hidden = [m["n"] for m in page if not m["in_context"]]
    assert hidden == list(range(2, marker["replaces"]["to"] + 1))
    assert page[0]["in_context"]  # the task's own words are never replaced


@pytest.mark.gen_test(timeout=60)
async def test_a_context_length_error_forces_a_condense_and_a_retry(api: Api, fake: FakeProviderServer) -> None:
    too_long = (
        "prompt is too long: 210000 tokens > 200000 maximum"
        if fake.kind == "anthropic"
        else "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens."
    )
    fake.script(
        todo(1, 100),
        todo(2, 100),
        todo(3, 100),
        HttpError(400, too_long, error_type="invalid_request_error"),
        Turn(text="Summary of the steps."),
        Turn(tool_calls=[call("attempt_completion", result="fits now")]),
    )
    s = await api.session(provider="real")
    t = await api.task(s["id"], "steps again")
    done = await settle(api, s["id"], t["id"], "completed")
    assert done["result"] == "fits now"
    assert system_of(fake.requests[4]) == SUMMARY_PROMPT
    assert "## Conversation Summary" in text_of(fake.requests[5])
    events = await all_events(api, s["id"], t["id"])
    assert [e["event"] for e in events].count("context.condensed") == 1


@pytest.mark.gen_test(timeout=60)
async def test_when_condensing_fails_the_oldest_turns_are_cut_with_roos_notice(
    api: Api, fake: FakeProviderServer
) -> None:
    fake.script(
        todo(1, 100),
        todo(2, 100),
        todo(3, 9500),  # past the window less its buffer and reserve
        HttpError(500, "summaries are down"),
        HttpError(500, "summaries are down"),
        HttpError(500, "summaries are down"),
        HttpError(500, "summaries are down"),
        Turn(tool_calls=[call("attempt_completion", result="cut and done")]),
    )
    s = await api.session(provider="real")
    t = await api.task(s["id"], "steps, cut")
    assert (await settle(api, s["id"], t["id"], "completed"))["result"] == "cut and done"
    text = text_of(fake.requests[-1])
    assert "[Sliding window truncation: 3 messages hidden to reduce context]" in text  # a call, its result, the details
    cut = [e["data"] for e in await all_events(api, s["id"], t["id"]) if e["event"] == "context.truncated"]
    assert cut and "summaries are down" in cut[0]["condense_error"]
