"""The pieces under the providers: the SSE parser, the retry policy, pricing."""

from __future__ import annotations

import random

import pytest

from roo_daemon.engine.providers.pricing import Prices
from roo_daemon.engine.providers.retry import RetryPolicy, is_retryable_status, parse_retry_after
from roo_daemon.engine.providers.sse import SseEvent, SseParser

STREAM = (
    ": a comment\r\n"
    "event: content_block_delta\r\n"
    'data: {"text": "héllo 🎉"}\r\n'
    "\r\n"
    "data: first line\n"
    "data:second line\n"
    "id: 7\n"
    "\n"
    "data: [DONE]\r"
    "\r"
).encode()
EXPECTED = [
    SseEvent("content_block_delta", '{"text": "héllo 🎉"}'),
    SseEvent("", "first line\nsecond line"),
    SseEvent("", "[DONE]"),
]


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 64, len(STREAM)])
def test_sse_parser_is_indifferent_to_how_the_bytes_are_split(size):
    """Every split point: inside CRLF pairs, field names, and UTF-8 characters."""
    parser = SseParser()
    events = []
    for i in range(0, len(STREAM), size):
        events += parser.feed(STREAM[i : i + size])
    events += parser.close()
    assert events == EXPECTED


def test_sse_parser_flushes_a_last_event_without_a_blank_line():
    parser = SseParser()
    assert parser.feed(b"data: tail") == []
    assert parser.close() == [SseEvent("", "tail")]


def test_sse_field_without_space_and_empty_events():
    parser = SseParser()
    assert parser.feed(b"data:x\n\n\n\nevent: lonely\n\n") == [SseEvent("", "x")]


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        (400, False),
        (401, False),
        (403, False),
        (404, False),
        (408, True),
        (409, True),
        (413, False),
        (422, False),
        (429, True),
        (500, True),
        (502, True),
        (503, True),
        (529, True),
    ],
)
def test_retryable_statuses(status, retryable):
    assert is_retryable_status(status) is retryable


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "12"}, 12.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after": "-3"}, 0.0),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after-ms": "soon", "retry-after": "9"}, 9.0),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:30 GMT"}, 30.0),
        ({"retry-after": "Wed, 21 Oct 2015 07:27:00 GMT"}, 0.0),  # in the past
        ({"retry-after": "whenever"}, None),
        ({}, None),
    ],
)
def test_parse_retry_after(headers, expected):
    now = 1445412480.0  # 2015-10-21 07:28:00 UTC
    assert parse_retry_after(headers, now) == expected


def test_backoff_is_full_jitter_under_a_capped_exponential():
    policy = RetryPolicy(max_retries=10, backoff_base_seconds=1, backoff_max_seconds=8)
    rng = random.Random(1)
    for retry, ceiling in [(0, 1), (1, 2), (2, 4), (3, 8), (4, 8), (9, 8)]:
        draws = [policy.backoff(retry, rng) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in draws)
        assert max(draws) > ceiling * 0.8 and min(draws) < ceiling * 0.2  # spread over the whole range
    assert policy.delay(0, 42.0, rng) == 42.0  # Retry-After wins


def test_retry_policy_from_a_profile():
    assert RetryPolicy.from_profile({}) == RetryPolicy(3, 1.0, 30.0)
    assert RetryPolicy.from_profile({"max_retries": 0, "backoff_base_seconds": 0.5}) == RetryPolicy(0, 0.5, 30.0)


def test_cost_per_million_tokens_with_cache_prices_defaulting_to_input():
    prices = Prices.from_config({"input": 3, "output": 15, "cache_read": 0.3, "cache_write": 3.75})
    assert prices.cost(1_000_000, 0, 0, 0) == 3.0
    assert prices.cost(100, 10, 1000, 2000) == pytest.approx((300 + 150 + 300 + 7500) / 1e6)
    partial = Prices.from_config({"input": 2, "output": 8})
    assert partial.cost(0, 0, 1_000_000, 1_000_000) == 4.0  # unknown cache prices: charged as input
    assert Prices.from_config(None) is None and Prices.from_config({}) is None
