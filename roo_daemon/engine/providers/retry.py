"""When and how long to wait before trying a provider request again.

Retried: connection failures and broken streams, 408, 409, 429 and every
5xx (Anthropic's 529 "overloaded" included). Not retried: other 4xx, whose
answer would not change. The wait is the server's ``Retry-After`` when it
sends one (``retry-after-ms`` too, as OpenAI does), else exponential backoff
with *full jitter* (a uniform draw between 0 and the capped exponential), so
many tasks hitting one rate limit do not all come back at the same instant.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

RETRYABLE_4XX = frozenset({408, 409, 429})
DEFAULT_MAX_RETRIES = 3
DEFAULT_BACKOFF_BASE_SECONDS = 1.0
DEFAULT_BACKOFF_MAX_SECONDS = 30.0


def is_retryable_status(status: int) -> bool:
    return status in RETRYABLE_4XX or status >= 500


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_retries: int = DEFAULT_MAX_RETRIES
    backoff_base_seconds: float = DEFAULT_BACKOFF_BASE_SECONDS
    backoff_max_seconds: float = DEFAULT_BACKOFF_MAX_SECONDS

    @classmethod
    def from_profile(cls, profile: Mapping[str, Any]) -> RetryPolicy:
        return cls(
            max_retries=int(profile.get("max_retries", DEFAULT_MAX_RETRIES)),
            backoff_base_seconds=float(profile.get("backoff_base_seconds", DEFAULT_BACKOFF_BASE_SECONDS)),
            backoff_max_seconds=float(profile.get("backoff_max_seconds", DEFAULT_BACKOFF_MAX_SECONDS)),
        )

    def backoff(self, retry: int, rng: random.Random) -> float:
        """The wait before retry number ``retry`` (0 for the first retry)."""
        ceiling = min(self.backoff_max_seconds, self.backoff_base_seconds * (2**retry))
        return rng.uniform(0, ceiling)

    def delay(self, retry: int, retry_after: float | None, rng: random.Random) -> float:
        """The server's word when it gave one, else the jittered backoff."""
        return retry_after if retry_after is not None else self.backoff(retry, rng)


def parse_retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds to wait according to the response headers, or None.

    ``retry-after-ms`` (milliseconds) wins over ``Retry-After``, which is
    either seconds or an HTTP date (compared with ``now``, a Unix time).
    Unparseable values are ignored; a date in the past means no wait."""
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)
