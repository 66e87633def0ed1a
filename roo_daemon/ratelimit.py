"""Token buckets: per principal and route class, and per client IP for
requests that fail authentication (so guessing keys is slow).

A bucket holds up to ``burst`` tokens and refills at ``rate`` per second;
a request takes one. The clock is injected so tests can move time without
sleeping. Buckets live in a bounded LRU: an idle bucket refills to full, so
forgetting it loses nothing.

Limits can change while the daemon runs (SIGHUP): :meth:`RateLimiter.update_limits`
retunes the existing buckets in place, so a reload neither hands every
principal a fresh burst nor empties anyone's bucket.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MAX_BUCKETS = 100_000


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    limit: int  # the burst: requests allowed in a burst
    remaining: int
    reset_seconds: int  # until the bucket is full again
    retry_after: int  # until one more request is allowed (0 when allowed)

    def headers(self) -> dict[str, str]:
        """RFC 9331-style draft headers, and Retry-After when refused."""
        h = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_seconds),
        }
        if not self.allowed:
            h["Retry-After"] = str(self.retry_after)
        return h


class TokenBucket:
    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.stamp = now

    def take(self, now: float) -> Verdict:
        """Take a token if there is one."""
        self._refill(now)
        allowed = self.tokens >= 1
        if allowed:
            self.tokens -= 1
        return self._verdict(allowed)

    def peek(self, now: float) -> Verdict:
        """Would a request be allowed now? Takes nothing."""
        self._refill(now)
        return self._verdict(self.tokens >= 1)

    def retune(self, rate: float, burst: int, now: float) -> None:
        """Adopt a new rate and burst, keeping the fill: tokens earned so far
        (at the old rate) stay, clamped to the new burst. A raised burst is
        reached by refilling, not granted at once."""
        self._refill(now)
        self.rate = rate
        self.burst = burst
        self.tokens = min(self.tokens, float(burst))

    def _refill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def _verdict(self, allowed: bool) -> Verdict:
        retry = 0 if allowed else max(1, math.ceil((1 - self.tokens) / self.rate))
        reset = math.ceil((self.burst - self.tokens) / self.rate) if self.rate > 0 else 0
        return Verdict(allowed, self.burst, int(self.tokens), reset, retry)


def bucket_spec(value: Any) -> tuple[float, int] | None:
    """``(rate, burst)`` of a limited bucket class; None when unlimited or
    not a bucket at all (``classes`` may hold the whole ``limits`` section)."""
    if not isinstance(value, dict) or not value.get("rate"):
        return None
    return value["rate"], int(value["burst"])


class RateLimiter:
    """Buckets by ``(class, key)``; ``classes`` maps a class name to
    ``{rate, burst}``. A class with rate 0 is unlimited."""

    def __init__(self, classes: dict[str, dict[str, float]], clock: Callable[[], float] = time.monotonic) -> None:
        self.classes = classes
        self.clock = clock
        self._buckets: OrderedDict[tuple[str, str], TokenBucket] = OrderedDict()

    def take(self, cls: str, key: str) -> Verdict | None:
        """Take a token; None when the class is unlimited."""
        bucket = self._bucket(cls, key)
        return None if bucket is None else bucket.take(self.clock())

    def peek(self, cls: str, key: str) -> Verdict | None:
        """Whether a token is there, taking none; None when the class is unlimited."""
        bucket = self._bucket(cls, key)
        return None if bucket is None else bucket.peek(self.clock())

    def update_limits(self, classes: dict[str, Any]) -> list[str]:
        """Adopt new ``{rate, burst}`` per class (a SIGHUP reload); return the
        classes whose limits changed. Existing buckets of a changed class are
        retuned in place (their fill kept, clamped to the new burst); those of
        a class now unlimited are dropped, and a class newly limited starts
        with full buckets, as a never-seen principal would. Buckets of an
        unchanged class are not touched."""
        changed = sorted(
            cls
            for cls in self.classes.keys() | classes.keys()
            if bucket_spec(self.classes.get(cls)) != bucket_spec(classes.get(cls))
        )
        self.classes = classes
        if changed:
            self._retune(set(changed))
        return changed

    def _retune(self, changed: set[str]) -> None:
        # One pass over at most MAX_BUCKETS small objects, once per reload.
        now = self.clock()
        for ident, bucket in list(self._buckets.items()):
            if ident[0] not in changed:
                continue
            spec = bucket_spec(self.classes.get(ident[0]))
            if spec is None:
                del self._buckets[ident]
            else:
                bucket.retune(spec[0], spec[1], now)

    def _bucket(self, cls: str, key: str) -> TokenBucket | None:
        spec = self.classes.get(cls)  # the hot path: no helper call here
        if not spec or not spec.get("rate"):
            return None
        ident = (cls, key)
        bucket = self._buckets.get(ident)
        if bucket is None:
            bucket = self._buckets[ident] = TokenBucket(spec["rate"], int(spec["burst"]), self.clock())
            if len(self._buckets) > MAX_BUCKETS:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(ident)
        return bucket
