"""Token buckets and the client address, as units: the clock is injected,
so refill is tested by moving time, never by sleeping."""

from __future__ import annotations

from roo_daemon.clientip import client_ip, parse_networks
from roo_daemon.ratelimit import MAX_BUCKETS, RateLimiter, TokenBucket
from tests.security.conftest import FakeClock


def test_a_full_bucket_allows_exactly_its_burst() -> None:
    bucket = TokenBucket(rate=1.0, burst=3, now=0.0)
    verdicts = [bucket.take(0.0) for _ in range(4)]
    assert [v.allowed for v in verdicts] == [True, True, True, False]
    assert [v.remaining for v in verdicts] == [2, 1, 0, 0]
    assert all(v.limit == 3 for v in verdicts)


def test_refill_is_rate_times_elapsed_time_capped_at_the_burst() -> None:
    bucket = TokenBucket(rate=2.0, burst=4, now=0.0)
    for _ in range(4):
        assert bucket.take(0.0).allowed
    assert not bucket.take(0.0).allowed
    # 0.5 s at 2/s is one token: one request, then refused again.
    assert bucket.take(0.5).allowed
    assert not bucket.take(0.5).allowed
    # An hour idle refills to the burst, not beyond.
    after_idle = [bucket.take(3600.0) for _ in range(5)]
    assert [v.allowed for v in after_idle] == [True, True, True, True, False]


def test_retry_after_is_the_wait_for_one_token_rounded_up() -> None:
    bucket = TokenBucket(rate=0.1, burst=1, now=0.0)  # one token per 10 s
    assert bucket.take(0.0).allowed
    refused = bucket.take(0.0)
    assert not refused.allowed and refused.retry_after == 10
    refused = bucket.take(7.5)  # 0.75 token: 2.5 s to go, rounded up
    assert not refused.allowed and refused.retry_after == 3
    assert bucket.take(10.0).allowed  # exactly when promised


def test_retry_after_is_at_least_one_second() -> None:
    bucket = TokenBucket(rate=1000.0, burst=1, now=0.0)
    assert bucket.take(0.0).allowed
    refused = bucket.take(0.0)
    assert not refused.allowed and refused.retry_after == 1


def test_verdict_headers() -> None:
    bucket = TokenBucket(rate=0.5, burst=2, now=0.0)
    first = bucket.take(0.0)
    assert first.headers() == {"RateLimit-Limit": "2", "RateLimit-Remaining": "1", "RateLimit-Reset": "2"}
    bucket.take(0.0)
    refused = bucket.take(0.0)
    # Empty: 2 s per token, 4 s to be full again.
    assert refused.headers() == {
        "RateLimit-Limit": "2",
        "RateLimit-Remaining": "0",
        "RateLimit-Reset": "4",
        "Retry-After": "2",
    }


def test_limiter_keys_buckets_by_class_and_key() -> None:
    clock = FakeClock()
    limiter = RateLimiter({"read": {"rate": 1, "burst": 2}, "write": {"rate": 1, "burst": 1}}, clock)
    assert limiter.take("read", "alice").allowed
    assert limiter.take("read", "alice").allowed
    assert not limiter.take("read", "alice").allowed
    # Another principal, and another class of the same principal, are untouched.
    assert limiter.take("read", "bob").allowed
    assert limiter.take("write", "alice").allowed
    assert not limiter.take("write", "alice").allowed
    clock.advance(1.0)
    assert limiter.take("read", "alice").allowed
    assert limiter.take("write", "alice").allowed


def test_unknown_or_zero_rate_classes_are_unlimited() -> None:
    limiter = RateLimiter({"read": {"rate": 0, "burst": 1}}, FakeClock())
    assert all(limiter.take("read", "alice") is None for _ in range(1000))
    assert limiter.take("no-such-class", "alice") is None


def test_the_bucket_table_is_bounded_and_forgetting_loses_nothing() -> None:
    clock = FakeClock()
    limiter = RateLimiter({"read": {"rate": 1, "burst": 1}}, clock)
    assert limiter.take("read", "first").allowed
    for i in range(MAX_BUCKETS):
        limiter.take("read", f"k{i}")
    assert len(limiter._buckets) == MAX_BUCKETS
    # "first" was evicted; a new bucket starts full, as a refilled one would.
    assert limiter.take("read", "first").allowed


# -- the client address the limiter sees ---------------------------------------

PROXY = parse_networks(["10.0.0.0/8", "127.0.0.1/32"])


def test_forwarding_headers_are_ignored_without_trusted_proxies() -> None:
    headers = {"X-Forwarded-For": "1.2.3.4", "X-Real-IP": "5.6.7.8"}
    assert client_ip("127.0.0.1", headers, []) == "127.0.0.1"


def test_forwarding_headers_are_ignored_from_an_untrusted_peer() -> None:
    headers = {"X-Forwarded-For": "1.2.3.4", "X-Real-IP": "5.6.7.8"}
    assert client_ip("192.0.2.7", headers, PROXY) == "192.0.2.7"


def test_x_forwarded_for_from_a_trusted_proxy_names_the_client() -> None:
    assert client_ip("10.1.1.1", {"X-Forwarded-For": "1.2.3.4"}, PROXY) == "1.2.3.4"


def test_a_spoofed_leftmost_hop_does_not_win() -> None:
    """The client may send its own X-Forwarded-For; the proxy appends the real
    peer. Walking from the right, the first untrusted hop is the real client."""
    headers = {"X-Forwarded-For": "6.6.6.6, 1.2.3.4, 10.0.0.5"}
    assert client_ip("10.1.1.1", headers, PROXY) == "1.2.3.4"


def test_garbage_in_forwarding_headers_falls_back_to_the_peer() -> None:
    assert client_ip("10.1.1.1", {"X-Forwarded-For": "not-an-ip"}, PROXY) == "10.1.1.1"
    assert client_ip("10.1.1.1", {"X-Real-IP": "<script>"}, PROXY) == "10.1.1.1"


def test_x_real_ip_from_a_trusted_proxy() -> None:
    assert client_ip("10.1.1.1", {"X-Real-IP": "2001:db8::1"}, PROXY) == "2001:db8::1"


def test_peek_takes_nothing() -> None:
    clock = FakeClock()
    limiter = RateLimiter({"auth": {"rate": 0.5, "burst": 1}}, clock)
    assert all(limiter.peek("auth", "1.2.3.4").allowed for _ in range(10))
    assert limiter.take("auth", "1.2.3.4").allowed
    refused = limiter.peek("auth", "1.2.3.4")
    assert not refused.allowed and refused.retry_after == 2
    clock.advance(2.0)
    assert limiter.peek("auth", "1.2.3.4").allowed
    assert limiter.peek("unlimited", "1.2.3.4") is None


# -- new limits at run time (SIGHUP) ----------------------------------------------


def test_retune_keeps_the_fill_and_clamps_it_to_a_lower_burst() -> None:
    bucket = TokenBucket(rate=1.0, burst=10, now=0.0)
    for _ in range(3):
        bucket.take(0.0)
    bucket.retune(rate=1.0, burst=20, now=0.0)  # a raised burst is not a gift: still 7
    assert bucket.peek(0.0).remaining == 7 and bucket.peek(0.0).limit == 20
    bucket.retune(rate=1.0, burst=4, now=0.0)  # a lowered one clamps
    assert [bucket.take(0.0).allowed for _ in range(5)] == [True, True, True, True, False]


def test_retune_counts_the_time_before_it_at_the_old_rate() -> None:
    bucket = TokenBucket(rate=1.0, burst=10, now=0.0)
    for _ in range(10):
        bucket.take(0.0)
    # 2 s at the old 1/s earned 2 tokens; from then on, 0.5/s.
    bucket.retune(rate=0.5, burst=10, now=2.0)
    assert bucket.peek(2.0).remaining == 2
    assert bucket.peek(4.0).remaining == 3


def test_update_limits_retunes_changed_classes_and_leaves_the_others() -> None:
    clock = FakeClock()
    limiter = RateLimiter({"read": {"rate": 1, "burst": 10}, "write": {"rate": 1, "burst": 10}}, clock)
    for _ in range(3):
        limiter.take("read", "alice")
        limiter.take("write", "alice")
    changed = limiter.update_limits({"read": {"rate": 1, "burst": 5}, "write": {"rate": 1, "burst": 10}})
    assert changed == ["read"]
    assert limiter.peek("read", "alice").remaining == 5  # 7 clamped to the new burst
    assert limiter.peek("write", "alice").remaining == 7  # untouched
    assert limiter.peek("read", "bob").remaining == 5  # a new bucket starts full at the new burst
    assert limiter.update_limits({"read": {"rate": 1, "burst": 5}, "write": {"rate": 1, "burst": 10}}) == []


def test_update_limits_can_lift_and_impose_a_limit() -> None:
    clock = FakeClock()
    limiter = RateLimiter({"read": {"rate": 1, "burst": 2}, "write": {"rate": 0, "burst": 1}}, clock)
    limiter.take("read", "alice")
    limiter.take("read", "alice")
    assert not limiter.take("read", "alice").allowed
    assert limiter.update_limits({"read": {"rate": 0, "burst": 1}, "write": {"rate": 1, "burst": 2}}) == [
        "read",
        "write",
    ]
    assert limiter.take("read", "alice") is None  # unlimited now: the empty bucket is gone
    assert limiter._buckets.keys() == set()
    assert [limiter.take("write", "alice").allowed for _ in range(3)] == [True, True, False]
    # Limited again later: a fresh, full bucket (nothing was remembered).
    limiter.update_limits({"read": {"rate": 1, "burst": 2}, "write": {"rate": 1, "burst": 2}})
    assert limiter.peek("read", "alice").remaining == 2


def test_update_limits_ignores_what_is_not_a_bucket() -> None:
    """The limiter gets the whole ``limits`` section; caps are not its business."""
    limits = {"read": {"rate": 1, "burst": 2}, "max_live_tasks_per_principal": 100}
    limiter = RateLimiter(limits, FakeClock())
    assert limiter.update_limits({**limits, "max_live_tasks_per_principal": 5}) == []
