"""Both providers against their fake servers: what a healthy stream yields."""

from __future__ import annotations

import pytest

from roo_daemon.engine.providers.base import TextDelta, ToolCall, Usage
from tests.engine.fakes import Events, Turn, call
from tests.engine.providers.conftest import assemble, collect, make_provider, sample

LONG_TEXT = "Let me look at the project first. Ünïcödé and emoji 🎉 survive any split. " * 3


@pytest.mark.gen_test(timeout=10)
async def test_text_and_tool_arguments_split_across_many_deltas(fake):
    args = {"path": "src/app.py", "content": 'print("héllo")\n' * 5}
    # 1-character text deltas, 3-character argument deltas, and 7-byte writes
    # that split SSE lines, JSON documents and UTF-8 characters.
    fake.script(
        Turn(
            text=LONG_TEXT,
            tool_calls=[call("write_to_file", **args)],
            piece_chars=1,
            arg_piece_chars=3,
            fragment_bytes=7,
        )
    )
    setup = make_provider(fake)
    chunks = await collect(setup.provider)
    deltas = [c for c in chunks if isinstance(c, TextDelta)]
    assert len(deltas) > 50  # streamed as it came, not buffered into one
    turn = assemble(chunks)
    assert turn.text == LONG_TEXT
    assert [(c.name, c.args) for c in turn.calls] == [("write_to_file", args)]
    assert turn.calls[0].id
    assert turn.resets == []
    assert isinstance(chunks[-1], Usage)  # usage comes last, once
    assert sum(isinstance(c, Usage) for c in chunks) == 1


@pytest.mark.gen_test(timeout=10)
async def test_two_parallel_tool_calls(fake):
    first = call("read_file", "id_one", path="a.py")
    second = call("read_file", "id_two", path="b/c.py")
    fake.script(Turn(text="Reading both.", tool_calls=[first, second], arg_piece_chars=2))
    turn = assemble(await collect(make_provider(fake).provider))
    assert [(c.id, c.name, c.args) for c in turn.calls] == [
        ("id_one", "read_file", {"path": "a.py"}),
        ("id_two", "read_file", {"path": "b/c.py"}),
    ]


@pytest.mark.gen_test(timeout=10)
async def test_openai_interleaved_parallel_tool_call_deltas(fake_openai):
    """Some compatible servers alternate the argument deltas of parallel calls; the index keys them."""
    fake_openai.script(
        Turn(tool_calls=[call("a", x="1" * 20), call("b", y="2" * 20)], arg_piece_chars=3, interleave_calls=True)
    )
    turn = assemble(await collect(make_provider(fake_openai).provider))
    assert [(c.name, c.args) for c in turn.calls] == [("a", {"x": "1" * 20}), ("b", {"y": "2" * 20})]


@pytest.mark.gen_test(timeout=10)
async def test_openai_tool_call_fragments_without_index(fake_openai):
    """Servers that leave out ``index`` (each call whole, or continued) still parse."""
    base = {"object": "chat.completion.chunk", "model": "m"}

    def delta(d, finish=None):
        return {**base, "choices": [{"index": 0, "delta": d, "finish_reason": finish}]}

    fake_openai.script(
        Events(
            [
                delta({"tool_calls": [{"id": "c1", "function": {"name": "a", "arguments": '{"x":'}}]}),
                delta({"tool_calls": [{"function": {"arguments": " 1}"}}]}),
                delta({"tool_calls": [{"id": "c2", "function": {"name": "b", "arguments": "{}"}}]}),
                delta({}, "tool_calls"),
                "[DONE]",
            ]
        )
    )
    turn = assemble(await collect(make_provider(fake_openai).provider))
    assert [(c.id, c.name, c.args) for c in turn.calls] == [("c1", "a", {"x": 1}), ("c2", "b", {})]


@pytest.mark.gen_test(timeout=10)
async def test_usage_and_cost_at_the_end(fake):
    fake.script(
        Turn(
            text="ok",
            tool_calls=[call("x")],
            usage={"input": 1000, "output": 200, "cache_read": 3000, "cache_write": 0},
        )
    )
    if fake.kind == "anthropic":  # Anthropic reports cache writes too
        fake.responses[0].usage["cache_write"] = 500
    prices = {"input": 3.0, "output": 15.0, "cache_read": 0.3, "cache_write": 3.75}
    setup = make_provider(fake, prices=prices)
    chunks = await collect(setup.provider)
    usage = chunks[-1]
    writes = 500 if fake.kind == "anthropic" else 0
    expected = (1000 * 3.0 + 200 * 15.0 + 3000 * 0.3 + writes * 3.75) / 1e6
    assert usage == Usage(tokens_in=1000, tokens_out=200, cache_reads=3000, cache_writes=writes, cost_usd=expected)
    m = setup.metrics
    labels = {"provider": "test", "model": "fake-model"}
    assert sample(m, "llm_requests_total", **labels, outcome="ok") == 1
    assert sample(m, "llm_tokens_total", **labels, kind="input") == 1000
    assert sample(m, "llm_tokens_total", **labels, kind="output") == 200
    assert sample(m, "llm_tokens_total", **labels, kind="cache_read") == 3000
    assert sample(m, "llm_tokens_total", **labels, kind="cache_write") == writes
    assert sample(m, "llm_cost_usd_total", **labels) == pytest.approx(expected)
    assert sample(m, "llm_request_duration_seconds_count", **labels) == 1


@pytest.mark.gen_test(timeout=10)
async def test_no_price_table_means_zero_cost_unless_the_gateway_reports_one(fake_openai):
    fake_openai.script(Turn(text="a"))
    usage = (await collect(make_provider(fake_openai).provider))[-1]
    assert usage.cost_usd == 0.0 and usage.tokens_in == 10
    # OpenRouter puts its own cost in the usage chunk.
    usage_chunk = {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3, "cost": 0.0042}}
    fake_openai.script(
        Events(
            [{"choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": "stop"}]}, usage_chunk, "[DONE]"]
        )
    )
    usage = (await collect(make_provider(fake_openai).provider))[-1]
    assert usage == Usage(tokens_in=7, tokens_out=3, cost_usd=0.0042)


@pytest.mark.gen_test(timeout=10)
async def test_sse_comments_and_pings_are_ignored(fake):
    if fake.kind == "openai":
        events = [
            b": OPENROUTER PROCESSING\n\n",
            {"choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}]},
            b": keepalive\r\n\r\n",
            {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
            "[DONE]",
        ]
    else:
        events = [
            {"type": "message_start", "message": {"usage": {"input_tokens": 3, "output_tokens": 1}}},
            {"type": "ping"},
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
            {"type": "ping"},
            {"type": "content_block_stop", "index": 0},
            {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 2}},
            {"type": "message_stop"},
        ]
    fake.script(Events(events))
    turn = assemble(await collect(make_provider(fake).provider))
    assert turn.text == "Hi" and turn.calls == [] and turn.resets == []


@pytest.mark.gen_test(timeout=10)
async def test_anthropic_thinking_blocks_are_not_text(fake_anthropic):
    fake_anthropic.script(
        Events(
            [
                {"type": "message_start", "message": {"usage": {"input_tokens": 3, "output_tokens": 1}}},
                {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}},
                {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "hmm"}},
                {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "s"}},
                {"type": "content_block_stop", "index": 0},
                {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
                {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Answer"}},
                {"type": "content_block_stop", "index": 1},
                {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 9}},
                {"type": "message_stop"},
            ]
        )
    )
    chunks = await collect(make_provider(fake_anthropic).provider)
    assert assemble(chunks).text == "Answer"
    assert chunks[-1] == Usage(tokens_in=3, tokens_out=9)


@pytest.mark.gen_test(timeout=10)
async def test_invalid_tool_arguments_reach_the_tool_check_instead_of_failing_the_task(fake_openai):
    """Arguments cut at max_tokens are not JSON: the call is passed on marked,
    so the tool's schema check turns it into an error the model sees."""
    fake_openai.script(
        Events(
            [
                {
                    "choices": [
                        {
                            "index": 0,
                            "delta": {
                                "tool_calls": [
                                    {"index": 0, "id": "c", "function": {"name": "w", "arguments": '{"path": "a'}}
                                ]
                            },
                        }
                    ]
                },
                {"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]},
                "[DONE]",
            ]
        )
    )
    chunks = await collect(make_provider(fake_openai).provider)
    calls = [c for c in chunks if isinstance(c, ToolCall)]
    assert calls == [ToolCall("c", "w", {"__invalid_json__": '{"path": "a'})]
