"""Both providers when things go wrong: retries and their waits, broken
streams, timeouts, cancellation, errors that must not be retried, and keys
that must not leak."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest

from roo_daemon.engine.providers.base import ProviderError, StreamReset, TextDelta
from tests.engine.fakes import Events, HttpError, Turn, call
from tests.engine.providers.conftest import assemble, collect, make_provider, sample, simple_request

LABELS = {"provider": "test", "model": "fake-model"}
TEXT = "The quick brown fox jumps over the lazy dog, twice over."


@pytest.mark.gen_test(timeout=10)
async def test_429_with_retry_after_then_success(fake):
    fake.script(HttpError(429, "slow down", headers={"Retry-After": "7"}), Turn(text=TEXT))
    setup = make_provider(fake, backoff_max_seconds=0.01)
    turn = assemble(await collect(setup.provider))
    assert turn.text == TEXT and turn.resets == []
    assert setup.sleep.delays == [7.0]  # the server's word, not the (tiny) backoff
    assert len(fake.requests) == 2
    assert fake.requests[0].body == fake.requests[1].body
    assert sample(setup.metrics, "llm_retries_total", **LABELS) == 1
    assert sample(setup.metrics, "llm_requests_total", **LABELS, outcome="ok") == 1


@pytest.mark.gen_test(timeout=10)
async def test_retry_after_as_http_date_and_in_milliseconds(fake):
    fake.script(
        HttpError(429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:30 GMT"}),
        HttpError(503, headers={"retry-after-ms": "1500", "Retry-After": "9"}),
        Turn(text="ok"),
    )
    setup = make_provider(fake)
    setup.provider._wall_clock = lambda: 1445412500.0  # 10 s before that date
    assert assemble(await collect(setup.provider)).text == "ok"
    assert setup.sleep.delays == [10.0, 1.5]


@pytest.mark.gen_test(timeout=10)
async def test_500_then_success_waits_a_jittered_backoff(fake):
    fake.script(HttpError(500, "upstream hiccup"), HttpError(502), Turn(text=TEXT))
    setup = make_provider(fake, backoff_base_seconds=0.5, backoff_max_seconds=0.75)
    assert assemble(await collect(setup.provider)).text == TEXT
    first, second = setup.sleep.delays
    assert 0 <= first <= 0.5 and 0 <= second <= 0.75  # full jitter under base * 2**n, capped
    assert len(fake.requests) == 3


@pytest.mark.gen_test(timeout=10)
async def test_500_until_retries_run_out(fake):
    fake.script(*[HttpError(500, "the model is on fire")] * 3)
    setup = make_provider(fake, max_retries=2)
    with pytest.raises(ProviderError) as err:
        await collect(setup.provider)
    message = str(err.value)
    assert "HTTP 500" in message and "the model is on fire" in message and "after 3 attempts" in message
    assert f"{fake.kind} provider 'test'" in message
    assert len(fake.requests) == 3 and len(setup.sleep.delays) == 2
    assert sample(setup.metrics, "llm_requests_total", **LABELS, outcome="error") == 1


@pytest.mark.gen_test(timeout=10)
async def test_client_errors_are_not_retried(fake):
    fake.script(HttpError(400, "messages: field required"), Turn(text="never sent"))
    setup = make_provider(fake)
    with pytest.raises(ProviderError, match=r"HTTP 400: .*messages: field required \(after 1 attempt\)"):
        await collect(setup.provider)
    assert len(fake.requests) == 1 and setup.sleep.delays == []


@pytest.mark.gen_test(timeout=10)
@pytest.mark.parametrize("status", [408, 409, 529])
async def test_408_409_and_529_are_retried(fake_anthropic, status):
    fake_anthropic.script(HttpError(status), Turn(text="ok"))
    assert assemble(await collect(make_provider(fake_anthropic).provider)).text == "ok"
    assert len(fake_anthropic.requests) == 2


@pytest.mark.gen_test(timeout=10)
async def test_connection_dropped_mid_stream_resets_then_streams_the_full_text_once(fake):
    cut = asyncio.Event()
    fake.script(
        Turn(text=TEXT, tool_calls=[call("x", a=1)], drop_after=5, drop_when=cut),
        Turn(text=TEXT, tool_calls=[call("x", a=1)]),
    )
    setup = make_provider(fake)
    chunks = []
    async for chunk in setup.provider.stream(simple_request()):
        chunks.append(chunk)
        if isinstance(chunk, TextDelta):
            cut.set()  # output has reached us: now break the connection
    resets = [i for i, c in enumerate(chunks) if isinstance(c, StreamReset)]
    assert len(resets) == 1
    before = "".join(c.text for c in chunks[: resets[0]] if isinstance(c, TextDelta))
    assert before and TEXT.startswith(before) and before != TEXT
    turn = assemble(chunks)
    assert turn.text == TEXT  # after the reset: the whole text, once
    assert [(c.name, c.args) for c in turn.calls] == [("x", {"a": 1})]
    assert "connection" in turn.resets[0].lower()
    assert len(fake.requests) == 2


@pytest.mark.gen_test(timeout=10)
async def test_tokens_a_broken_attempt_reported_are_counted(fake_anthropic):
    """Anthropic bills the input of a message that broke midway; its
    message_start said how much, so the request's usage includes it."""
    fake_anthropic.script(
        Turn(text=TEXT, usage={"input": 700, "output": 40, "cache_read": 300}, drop_after=3),
        Turn(text=TEXT, usage={"input": 700, "output": 40, "cache_read": 300}),
    )
    setup = make_provider(fake_anthropic, prices={"input": 1.0, "output": 2.0, "cache_read": 0.1})
    turn = assemble(await collect(setup.provider))
    assert turn.text == TEXT and len(turn.usage) == 1
    (usage,) = turn.usage
    # message_start reports the input and 1 output token; the rest only at the end.
    assert (usage.tokens_in, usage.tokens_out, usage.cache_reads) == (1400, 41, 600)
    assert usage.cost_usd == pytest.approx((1400 * 1.0 + 41 * 2.0 + 600 * 0.1) / 1e6)
    assert sample(setup.metrics, "llm_tokens_total", **LABELS, kind="input") == 1400


@pytest.mark.gen_test(timeout=10)
async def test_when_every_attempt_breaks_the_tokens_used_are_still_reported(fake_anthropic):
    broken = Turn(text=TEXT, usage={"input": 500}, drop_after=3)
    fake_anthropic.script(broken, broken)
    setup = make_provider(fake_anthropic, max_retries=1)
    chunks = []
    with pytest.raises(ProviderError, match="retries exhausted"):
        async for chunk in setup.provider.stream(simple_request()):
            chunks.append(chunk)
    usage = assemble(chunks).usage
    assert [(u.tokens_in, u.tokens_out) for u in usage] == [(1000, 2)]  # yielded just before the error
    assert sample(setup.metrics, "llm_tokens_total", **LABELS, kind="input") == 1000
    assert sample(setup.metrics, "llm_requests_total", **LABELS, outcome="error") == 1


@pytest.mark.gen_test(timeout=10)
async def test_a_stream_that_ends_early_without_its_end_marker_is_retried(fake):
    """A body cut at a clean boundary (no [DONE] / message_stop) is incomplete."""
    first = (
        {"choices": [{"index": 0, "delta": {"content": "Hal"}, "finish_reason": None}]}
        if fake.kind == "openai"
        else {"type": "message_start", "message": {"usage": {"input_tokens": 1}}}
    )
    fake.script(Events([first]), Turn(text="Hello"))
    turn = assemble(await collect(make_provider(fake).provider))
    assert turn.text == "Hello"
    assert len(fake.requests) == 2


@pytest.mark.gen_test(timeout=10)
async def test_anthropic_error_event_overloaded_is_retried(fake_anthropic):
    fake_anthropic.script(
        Events(
            [
                {"type": "message_start", "message": {"usage": {"input_tokens": 5}}},
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Par"}},
                {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
            ]
        ),
        Turn(text="Partial no more."),
    )
    turn = assemble(await collect(make_provider(fake_anthropic).provider))
    assert turn.text == "Partial no more."
    assert turn.resets == ["error event: overloaded_error: Overloaded"]


@pytest.mark.gen_test(timeout=10)
async def test_anthropic_error_event_that_a_retry_cannot_cure_fails_at_once(fake_anthropic):
    fake_anthropic.script(
        Events([{"type": "error", "error": {"type": "invalid_request_error", "message": "prompt is too long"}}]),
        Turn(text="never"),
    )
    with pytest.raises(ProviderError, match="invalid_request_error: prompt is too long"):
        await collect(make_provider(fake_anthropic).provider)
    assert len(fake_anthropic.requests) == 1


@pytest.mark.gen_test(timeout=10)
async def test_openai_error_object_mid_stream(fake_openai):
    """OpenRouter reports upstream failures as an error object inside the stream."""
    fake_openai.script(
        Events(
            [{"choices": [{"index": 0, "delta": {"content": "Hi"}}]}, {"error": {"code": 502, "message": "upstream"}}]
        ),
        Turn(text="Hi there"),
        Events([{"error": {"code": "context_length_exceeded", "message": "too long"}}]),
    )
    setup = make_provider(fake_openai)
    assert assemble(await collect(setup.provider)).text == "Hi there"
    with pytest.raises(ProviderError, match="context_length_exceeded: too long"):
        await collect(setup.provider)


@pytest.mark.gen_test(timeout=10)
async def test_idle_stream_is_treated_as_broken(fake):
    fake.script(Turn(text=TEXT, stall_after=4), Turn(text=TEXT))
    setup = make_provider(fake, idle_timeout_seconds=0.2)
    turn = assemble(await collect(setup.provider))
    assert turn.text == TEXT
    assert len(turn.resets) == 1 and "idle timeout" in turn.resets[0]
    await fake.wait_disconnects(1)  # the silent connection was closed


@pytest.mark.gen_test(timeout=10)
async def test_silence_before_the_headers_counts_as_idle_too(fake_openai):
    fake_openai.script(Events([], stall_after=0), Turn(text="late but fine"))
    setup = make_provider(fake_openai, idle_timeout_seconds=0.2)
    assert assemble(await collect(setup.provider)).text == "late but fine"


@pytest.mark.gen_test(timeout=10)
async def test_the_overall_deadline_bounds_the_request(fake):
    fake.script(Turn(text=TEXT, stall_after=3))
    setup = make_provider(fake, request_timeout_seconds=0.3, idle_timeout_seconds=60)
    started = asyncio.get_running_loop().time()
    with pytest.raises(ProviderError, match=r"no complete answer within request_timeout_seconds=0\.3"):
        await collect(setup.provider)
    assert asyncio.get_running_loop().time() - started < 5
    await fake.wait_disconnects(1)


@pytest.mark.gen_test(timeout=10)
async def test_a_retry_after_beyond_the_deadline_fails_now(fake):
    fake.script(HttpError(429, "busy", headers={"Retry-After": "3600"}))
    setup = make_provider(fake, request_timeout_seconds=60)
    with pytest.raises(ProviderError, match=r"HTTP 429.*in 3600 s\) would pass request_timeout_seconds=60"):
        await collect(setup.provider)
    assert setup.sleep.delays == []


@pytest.mark.gen_test(timeout=10)
async def test_cancel_mid_stream_closes_the_connection(fake):
    fake.script(Turn(text=TEXT, stall_after=4))
    setup = make_provider(fake)
    first = asyncio.Event()

    async def consume():
        async for chunk in setup.provider.stream(simple_request()):
            if isinstance(chunk, TextDelta):
                first.set()

    task = asyncio.ensure_future(consume())
    await asyncio.wait_for(first.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await fake.wait_disconnects(1)  # the fake saw the client hang up
    assert sample(setup.metrics, "llm_requests_total", **LABELS, outcome="cancelled") == 1


@pytest.mark.gen_test(timeout=10)
async def test_cancel_while_waiting_for_the_headers(fake_openai):
    fake_openai.script(Events([], stall_after=0))
    setup = make_provider(fake_openai)
    task = asyncio.ensure_future(collect(setup.provider))
    await fake_openai.wait_requests(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await fake_openai.wait_disconnects(1)


@pytest.mark.gen_test(timeout=10)
async def test_connection_refused_is_retried_then_reported(fake_openai):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    setup = make_provider(fake_openai, base_url=f"http://127.0.0.1:{port}/v1", max_retries=2)
    with pytest.raises(ProviderError, match=r"connection failed: .*retries exhausted \(after 3 attempts\)"):
        await collect(setup.provider)
    assert len(setup.sleep.delays) == 2


@pytest.mark.gen_test(timeout=10)
async def test_a_json_body_instead_of_a_stream_is_an_error(fake_openai):
    fake_openai.script(
        Events([b'{"error": {"message": "streaming is not supported"}}'], content_type="application/json")
    )
    with pytest.raises(ProviderError, match="expected an event stream, got a JSON body: streaming is not supported"):
        await collect(make_provider(fake_openai).provider)


@pytest.mark.gen_test(timeout=10)
async def test_missing_key_variable_fails_the_request_with_its_name(fake, monkeypatch):
    monkeypatch.delenv(fake.api_key_env)
    with pytest.raises(ProviderError, match=f"environment variable {fake.api_key_env} .* is not set"):
        await collect(make_provider(fake).provider)
    assert fake.requests == []


@pytest.mark.gen_test(timeout=10)
async def test_the_key_never_appears_in_errors_or_logs(fake, monkeypatch, caplog):
    secret = "sk-live-THIS-MUST-NOT-LEAK-42"
    monkeypatch.setenv(fake.api_key_env, secret)
    # The fake echoes the wrong key in its 401 body, as OpenAI does; and a
    # retried 500 whose message carries the key goes through the log.
    fake.script(HttpError(500, f"bad key {secret}"))
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ProviderError) as err:
        await collect(make_provider(fake).provider)
    assert "HTTP 401" in str(err.value) and "[redacted]" in str(err.value)
    assert secret not in str(err.value)
    fake.require_key = False
    fake.responses.clear()
    fake.script(HttpError(500, f"bad key {secret}"), Turn(text="ok"))
    assert assemble(await collect(make_provider(fake).provider)).text == "ok"
    assert "retrying" in caplog.text
    assert secret not in caplog.text
