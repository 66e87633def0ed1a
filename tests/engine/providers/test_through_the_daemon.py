"""A whole task through the daemon with a network provider and its fake
server: streamed text, a tool call, a stream broken midway and retried,
usage and cost summed on the task, and a provider error failing the task."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import make_config
from tests.engine.fakes import HttpError, Turn, call
from tests.tasks.helpers import all_events, settle

PRICES = {"input": 2.0, "output": 10.0, "cache_read": 0.5, "cache_write": 4.0}


@pytest.fixture
def config(tmp_path, fake) -> dict[str, Any]:
    cfg = make_config(tmp_path)
    cfg["providers"]["real"] = fake.profile(prices=PRICES)
    return cfg


@pytest.mark.gen_test(timeout=20)
async def test_a_task_runs_to_completion_over_a_broken_stream(api, fake):
    write = call("write_to_file", path="hello.txt", content="Hello from a real wire.\n")
    intro = "I'll create hello.txt with a greeting. " * 2
    fake.script(
        Turn(text=intro, tool_calls=[write], usage={"input": 1200, "output": 80, "cache_write": 1000}),
        # Cut after a few events (whether or not they reached the loop); the retry gets the full turn.
        Turn(text="Done: the file is written.", drop_after=4),
        Turn(
            text="Done: the file is written.",
            tool_calls=[call("attempt_completion", result="hello.txt created")],
            usage={"input": 100, "output": 30, "cache_read": 1000},
        ),
    )
    session = await api.session(provider="real", auto_approve={"write": True})
    task = await api.task(session["id"], "Create hello.txt")
    done = await settle(api, session["id"], task["id"], "completed")
    assert done["result"] == "hello.txt created"
    assert done["provider_kind"] == fake.kind
    with open(f"{session['workspace']}/hello.txt") as f:
        assert f.read() == "Hello from a real wire.\n"
    # Two completed requests are counted, and what the broken attempt reported
    # before it broke: Anthropic's message_start carries the input (10 tokens,
    # the fake's default, and 1 output); OpenAI reports usage only at the end.
    anthropic = fake.kind == "anthropic"
    writes = 1000 if anthropic else 0  # OpenAI reports no cache writes
    broken_in, broken_out = (10, 1) if anthropic else (0, 0)
    cost = (1200 * 2.0 + 80 * 10.0 + writes * 4.0 + 100 * 2.0 + 30 * 10.0 + 1000 * 0.5) / 1e6
    cost += (broken_in * 2.0 + broken_out * 10.0) / 1e6
    usage = done["usage"]
    assert (usage["tokens_in"], usage["tokens_out"]) == (1300 + broken_in, 110 + broken_out)
    assert (usage["cache_reads"], usage["cache_writes"]) == (1000, writes)
    assert usage["cost_usd"] == pytest.approx(cost)
    events = await all_events(api, session["id"], task["id"])
    messages = [e["data"]["text"] for e in events if e["event"] == "message"]
    assert messages == [intro, "Done: the file is written."]  # each once, whatever broke in between
    # The second request carried the first turn and its tool result back to the model.
    assert len(fake.requests) == 3
    assert "hello.txt" in str(fake.requests[1].body["messages"])


@pytest.mark.gen_test(timeout=20)
async def test_a_provider_error_fails_the_task_with_the_reason(api, fake):
    fake.script(HttpError(401, "invalid x-api-key"))
    session = await api.session(provider="real")
    task = await api.task(session["id"])
    failed = await settle(api, session["id"], task["id"], "failed")
    assert failed["error"]["code"] == "provider_error"
    assert "HTTP 401" in failed["error"]["message"] and "invalid x-api-key" in failed["error"]["message"]
    assert fake.api_key not in str(failed)
