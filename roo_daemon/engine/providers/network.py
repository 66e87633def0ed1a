"""What the HTTP providers share: the profile's settings, the API key from
the environment, the attempt loop (retries, stream resets, the deadline),
cost, and metrics. A subclass supplies only its wire format: the URL, the
headers, the request body, and a parser from SSE events to chunks.

One request = one model turn. Its attempts share one overall deadline
(``request_timeout_seconds``), so a request never takes longer than that,
whatever the server does. An attempt that broke after some of its output was
yielded is announced with :class:`StreamReset` before the next attempt, and
usage is yielded once, at the end of the attempt that completed, so neither
text nor tokens are counted twice.

API keys are read from the environment at each request (an unset variable
fails that request with a clear error; the daemon still starts, and logs a
warning, so one profile's missing key does not take the others down). A key
is sent only in its header, and scrubbed from every error message.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import random
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from roo_daemon.engine.providers import wire_json
from roo_daemon.engine.providers.base import (
    Chunk,
    ProviderError,
    ProviderRequest,
    StreamReset,
    Usage,
)
from roo_daemon.engine.providers.context_errors import is_context_window_error
from roo_daemon.engine.providers.http import (
    ConnectionPool,
    DeadlineExceeded,
    StreamingPost,
    TransportError,
    tls_context,
)
from roo_daemon.engine.providers.origin import InvalidRequest, Origin
from roo_daemon.engine.providers.pricing import Prices
from roo_daemon.engine.providers.retry import RetryPolicy, is_retryable_status, parse_retry_after
from roo_daemon.engine.providers.sse import SseEvent, SseParser

log = logging.getLogger("roo_daemon.providers")

ERROR_BODY_MAX_BYTES = 65536
ERROR_TEXT_MAX_CHARS = 500
DEFAULT_REQUEST_TIMEOUT_SECONDS = 600.0
DEFAULT_IDLE_TIMEOUT_SECONDS = 300.0


class WireError(Exception):
    """The stream itself reported or showed a failure (an ``error`` event,
    malformed data, an early end). ``retryable`` says whether trying again may help."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True, slots=True)
class TokenCounts:
    """A turn's usage as the wire reported it, before pricing. ``tokens_in``
    excludes the cached parts (see :mod:`pricing`)."""

    tokens_in: int = 0
    tokens_out: int = 0
    cache_reads: int = 0
    cache_writes: int = 0
    reported_cost_usd: float | None = None  # some gateways (OpenRouter) report the cost themselves

    def __add__(self, other: TokenCounts) -> TokenCounts:
        costs = [c for c in (self.reported_cost_usd, other.reported_cost_usd) if c is not None]
        return TokenCounts(
            self.tokens_in + other.tokens_in,
            self.tokens_out + other.tokens_out,
            self.cache_reads + other.cache_reads,
            self.cache_writes + other.cache_writes,
            sum(costs) if costs else None,
        )

    def __bool__(self) -> bool:
        return bool(self.tokens_in or self.tokens_out or self.cache_reads or self.cache_writes)


class TurnParser(Protocol):
    done: bool  # the wire format's end marker arrived: stop reading

    def feed(self, event: SseEvent) -> list[Chunk]:
        """Chunks completed by this event; raises :class:`WireError`."""

    def finish(self) -> TokenCounts:
        """At the end of the body: the usage, or :class:`WireError` if the turn is incomplete."""

    def counts(self) -> TokenCounts:
        """The usage reported so far (Anthropic reports the input at the start)."""


@dataclass(slots=True)
class _Failure:
    message: str
    retryable: bool
    retry_after: float | None = None
    context_exceeded: bool = False  # the request is too long for the model's window


class HttpProvider(ABC):
    """Base of the network providers (``kind`` openai and anthropic)."""

    kind: ClassVar[str]
    default_base_url: ClassVar[str]
    default_max_tokens: ClassVar[int | None] = None
    default_context_window: ClassVar[int | None] = None
    default_supports_images: ClassVar[bool] = False

    def __init__(
        self,
        name: str,
        profile: dict[str, Any],
        metrics: Any = None,
        *,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        rng: random.Random | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.model = str(profile["model"])
        self.base_url = str(profile.get("base_url") or self.default_base_url).rstrip("/")
        self.api_key_env: str | None = profile.get("api_key_env")
        self.extra_headers = {str(k): str(v) for k, v in (profile.get("headers") or {}).items()}
        self.max_tokens: int | None = profile.get("max_tokens") or self.default_max_tokens
        self.temperature: float | None = profile.get("temperature")
        self.context_window: int | None = profile.get("context_window") or self.default_context_window
        # Roo's ModelInfo.supportsImages: whether read_file may hand the model an image.
        self.supports_images = bool(profile.get("supports_images", self.default_supports_images))
        self.prices = Prices.from_config(profile.get("prices"))
        self.request_timeout = float(profile.get("request_timeout_seconds") or DEFAULT_REQUEST_TIMEOUT_SECONDS)
        self.idle_timeout = float(profile.get("idle_timeout_seconds") or DEFAULT_IDLE_TIMEOUT_SECONDS)
        self.retry = RetryPolicy.from_profile(profile)
        self.metrics = metrics
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._wall_clock = wall_clock
        self.pool = ConnectionPool()  # kept-alive connections between turns
        self._origin: Origin | None = None
        if self.base_url.startswith("https:"):
            tls_context()  # load the CA store now, before the loop serves
        if self.api_key_env and not os.environ.get(self.api_key_env):
            log.warning(
                "provider %r: environment variable %s (api_key_env) is not set; its requests will fail",
                name,
                self.api_key_env,
            )

    # The wire format, per kind.

    @abstractmethod
    def url(self) -> str:
        """Defined by each wire format (openai.py, anthropic.py)."""

    @abstractmethod
    def headers(self, api_key: str | None) -> dict[str, str]:
        """Defined by each wire format (openai.py, anthropic.py)."""

    @abstractmethod
    def body(self, request: ProviderRequest) -> dict[str, Any]:
        """Defined by each wire format (openai.py, anthropic.py)."""

    @abstractmethod
    def parser(self) -> TurnParser:
        """Defined by each wire format (openai.py, anthropic.py)."""

    def close(self) -> None:
        """Close the kept-alive connections (at shutdown)."""
        self.pool.close()

    # The request.

    async def stream(self, request: ProviderRequest) -> AsyncIterator[Chunk]:
        started = time.monotonic()
        outcome = "error"
        usage: Usage | None = None
        spent: list[TokenCounts] = []  # what broken attempts were billed for, as far as they told
        try:
            try:
                async for chunk in self._attempts(request, spent):
                    if isinstance(chunk, Usage):
                        usage = chunk
                    yield chunk
            except ProviderError:
                if spent:  # the request failed, but those tokens were still used: count them on the task
                    usage = self._priced(sum(spent, TokenCounts()))
                    yield usage
                raise
            outcome = "ok"
        except (asyncio.CancelledError, GeneratorExit):
            outcome = "cancelled"
            raise
        finally:
            self._record(outcome, time.monotonic() - started, usage)

    async def _attempts(self, request: ProviderRequest, spent: list[TokenCounts]) -> AsyncIterator[Chunk]:
        api_key = self._api_key()
        headers = self.headers(api_key)
        payload = json.dumps(self.body(request), ensure_ascii=False).encode()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.request_timeout
        attempt = 0
        while True:
            attempt += 1
            try:
                if self._origin is None:
                    self._origin = Origin.from_environment(self.url())
                post = StreamingPost(
                    self._origin, headers, payload, idle_timeout=self.idle_timeout, deadline=deadline, pool=self.pool
                )
            except InvalidRequest as e:
                raise ProviderError(self._message(str(e), attempt, api_key)) from None
            yielded = False
            parser: TurnParser | None = None
            failure: _Failure
            try:
                status = await post.start()
                if not 200 <= status < 300:
                    text = _error_text(await post.read_body(ERROR_BODY_MAX_BYTES))
                    failure = _Failure(
                        f"HTTP {status}: {text}",
                        is_retryable_status(status),
                        parse_retry_after(post.headers, self._wall_clock()),
                        is_context_window_error(self.kind, status, text),
                    )
                elif post.headers.get("Content-Type", "").startswith("application/json"):
                    text = _error_text(await post.read_body(ERROR_BODY_MAX_BYTES))
                    raise WireError(f"expected an event stream, got a JSON body: {text}", retryable=False)
                else:
                    parser = self.parser()
                    async for chunk in self._read_turn(post, parser):
                        yielded = True
                        yield chunk
                    post.release()  # the end marker came: let the body end, and keep the connection
                    yield self._priced(sum(spent, parser.finish()))
                    parser = None  # complete: its tokens are in that usage
                    return
            except WireError as e:
                failure = _Failure(str(e), e.retryable)
            except TransportError as e:
                failure = _Failure(str(e), e.retryable)
            except DeadlineExceeded:
                raise ProviderError(
                    self._message(
                        f"no complete answer within request_timeout_seconds={self.request_timeout:g}", attempt
                    )
                ) from None
            finally:
                post.abort()
                if parser is not None and (counts := parser.counts()):
                    spent.append(counts)  # a broken attempt; a complete one returned above
            if not failure.retryable:
                message = self._message(failure.message, attempt, api_key)
                raise ProviderError(message, context_exceeded=failure.context_exceeded)
            if attempt > self.retry.max_retries:
                raise ProviderError(self._message(f"{failure.message}; retries exhausted", attempt, api_key))
            delay = self.retry.delay(attempt - 1, failure.retry_after, self._rng)
            if loop.time() + delay >= deadline:
                raise ProviderError(
                    self._message(
                        f"{failure.message}; the next attempt (in {delay:g} s) would pass "
                        f"request_timeout_seconds={self.request_timeout:g}",
                        attempt,
                        api_key,
                    )
                )
            reason = _redact(failure.message, api_key)
            log.warning(
                "provider %r (%s): attempt %d failed (%s); retrying in %.2f s",
                self.name,
                self.model,
                attempt,
                reason,
                delay,
            )
            if self.metrics is not None:
                self.metrics.llm_retries.labels(self.name, self.model).inc()
            if yielded:
                yield StreamReset(reason)
            await self._sleep(delay)

    async def _read_turn(self, post: StreamingPost, parser: TurnParser) -> AsyncIterator[Chunk]:
        sse = SseParser()
        while not parser.done:
            data = await post.next_chunk()
            events = sse.feed(data) if data is not None else sse.close()
            for event in events:
                for chunk in parser.feed(event):
                    yield chunk
                if parser.done:
                    return
            if data is None:
                return

    def _api_key(self) -> str | None:
        if not self.api_key_env:
            return None
        key = os.environ.get(self.api_key_env)
        if not key:
            raise ProviderError(
                f"{self.kind} provider {self.name!r}: environment variable {self.api_key_env} "
                "(its api_key_env) is not set"
            )
        return key

    def _priced(self, counts: TokenCounts) -> Usage:
        if self.prices is not None:
            cost = self.prices.cost(counts.tokens_in, counts.tokens_out, counts.cache_reads, counts.cache_writes)
        else:
            cost = counts.reported_cost_usd or 0.0
        return Usage(counts.tokens_in, counts.tokens_out, counts.cache_reads, counts.cache_writes, cost)

    def _message(self, problem: str, attempts: int, api_key: str | None = None) -> str:
        where = f"{self.kind} provider {self.name!r} (model {self.model})"
        tail = f" (after {attempts} attempt{'' if attempts == 1 else 's'})"
        # Only the provider's part is scrubbed: ours names the provider kind,
        # which a test key may contain ("sk-fake-anthropic-...").
        return f"{where}: {_redact(problem, api_key)}{tail}"

    def _record(self, outcome: str, seconds: float, usage: Usage | None) -> None:
        m = self.metrics
        if m is None:
            return
        m.llm_requests.labels(self.name, self.model, outcome).inc()
        m.llm_request_duration.labels(self.name, self.model).observe(seconds)
        if usage is None:
            return
        for kind, count in (
            ("input", usage.tokens_in),
            ("output", usage.tokens_out),
            ("cache_read", usage.cache_reads),
            ("cache_write", usage.cache_writes),
        ):
            if count:
                m.llm_tokens.labels(self.name, self.model, kind).inc(count)
        if usage.cost_usd:
            m.llm_cost.labels(self.name, self.model).inc(usage.cost_usd)


def parse_arguments(text: str) -> dict[str, Any]:
    """A tool call's arguments. Invalid JSON (a model's slip, or output cut
    at max_tokens) is passed on under ``__invalid_json__``: the tool's schema
    check then rejects the call, and the model sees a tool error, as with any
    bad call, instead of the whole task failing."""
    if not text.strip():
        return {}
    try:
        value = wire_json.loads(text)
    except ValueError:
        return {"__invalid_json__": text[:2000]}
    return value if isinstance(value, dict) else {"__invalid_json__": text[:2000]}


def _error_text(body: bytes) -> str:
    """The provider's own error message from an error body: OpenAI and
    Anthropic ``{"error": {"message"}}``, Ollama ``{"error": "..."}``, vLLM
    ``{"message"}``, FastAPI ``{"detail"}``; else the start of the text."""
    text = body.decode("utf-8", "replace").strip()
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        error = doc.get("error")
        if isinstance(error, dict):
            message = error.get("message")
            kind = error.get("type") or error.get("code")
            if message:
                text = f"{kind}: {message}" if isinstance(kind, str) and kind else str(message)
        elif isinstance(error, str) and error:
            text = error
        elif isinstance(doc.get("message"), str):
            text = doc["message"]
        elif doc.get("detail"):
            text = str(doc["detail"])
    text = " ".join(text.split())
    if len(text) > ERROR_TEXT_MAX_CHARS:
        text = text[:ERROR_TEXT_MAX_CHARS] + "..."
    return text or "(empty body)"


REDACT_MIN_CHARS = 8  # a shorter run of a key's characters is left alone (it would hit ordinary text)


def _redact(text: str, api_key: str | None) -> str:
    """Scrub a provider's key from an error text in any shape a server might
    echo it: whole, truncated (any run of ``REDACT_MIN_CHARS`` or more of its
    characters) or base64-encoded (standard and URL-safe alphabets, at each of
    the three byte alignments it may sit at inside a longer encoded value,
    such as a Basic ``user:key`` credential)."""
    if not api_key:
        return text
    text = text.replace(api_key, "[redacted]")
    grams = _secret_grams(api_key)
    width = REDACT_MIN_CHARS
    hidden = [False] * len(text)
    for i in range(len(text) - width + 1):
        if text[i : i + width] in grams:
            hidden[i : i + width] = [True] * width
    if not any(hidden):
        return text
    out: list[str] = []
    for i, ch in enumerate(text):
        if not hidden[i]:
            out.append(ch)
        elif i == 0 or not hidden[i - 1]:
            out.append("[redacted]")
    return "".join(out)


def _secret_grams(secret: str) -> frozenset[str]:
    """Every ``REDACT_MIN_CHARS``-long run of the secret and of its base64
    forms: any longer run of theirs is a chain of these."""
    forms = [secret]
    raw = secret.encode()
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        for offset in range(3):
            encoded = encode(b"\0" * offset + raw).decode().rstrip("=")
            # Drop the characters that also carry bits of the bytes around the key.
            lead = (4 * offset + 2) // 3
            end = len(encoded) - (1 if (offset + len(raw)) % 3 else 0)
            forms.append(encoded[lead:end])
    width = REDACT_MIN_CHARS
    return frozenset(form[i : i + width] for form in forms for i in range(len(form) - width + 1))
