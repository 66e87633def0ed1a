"""Fake LLM provider servers: real Tornado HTTP servers on 127.0.0.1 that
speak the OpenAI Chat Completions and Anthropic Messages streaming formats,
chunked the way the real services chunk them.

Each fake plays a queue of scripted responses, one per request it receives:

* :class:`Turn` - a model turn: text split across many deltas, tool calls
  whose JSON arguments are split across many deltas (two or more calls =
  parallel calls), usage at the end. Options break the stream on purpose:
  ``drop_after`` (the connection is cut after N events), ``stall_after``
  (silence after N events, until the client goes away), ``fragment_bytes``
  (the bytes go out in pieces that split lines and UTF-8 characters).
* :class:`HttpError` - a status with the provider's error body and headers
  (``HttpError(429, headers={"Retry-After": "2"})``, ``HttpError(500)``).
* :class:`Events` - raw wire events, for what a Turn cannot say (an
  Anthropic ``error`` event, an OpenAI mid-stream error object).
* a callable ``(ReceivedRequest) -> response`` - decided per request.

Every request is recorded (``fake.requests``: path, headers, JSON body) and
clients that hang up mid-response are counted (``await fake.wait_disconnects(n)``).
A request with no scripted response left gets a 400 that says so (not
retried, so a test fails fast with a clear message).

Use the fixtures ``fake_openai`` / ``fake_anthropic`` (import them into a
test module or conftest); they set the API key's environment variable, and
``fake.profile(**overrides)`` is a provider profile pointing at the fake
with tiny backoffs, for ``build_providers`` or a config's ``providers``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from tornado.httpserver import HTTPServer
from tornado.iostream import StreamClosedError
from tornado.netutil import bind_sockets
from tornado.web import Application, RequestHandler


def call(name: str, call_id: str | None = None, **args: Any) -> dict[str, Any]:
    """A tool call for :class:`Turn`: ``call("read_file", path="a.py")``."""
    return {"name": name, "args": args, **({"id": call_id} if call_id else {})}


@dataclass
class Turn:
    text: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # [{name, args, id?}]
    # Thinking before the answer: anthropic a signed ``thinking`` block (and a
    # ``redacted_thinking`` one with ``redacted``), openai ``delta.<reasoning_field>``.
    reasoning: str = ""
    redacted: str | None = None
    reasoning_field: str = "reasoning_content"  # OpenRouter: "reasoning"
    # Token counts in the daemon's terms: input (uncached), output, cache_read, cache_write.
    usage: dict[str, int] = field(default_factory=lambda: {"input": 10, "output": 5})
    piece_chars: int = 3  # text deltas of this many characters
    arg_piece_chars: int = 4  # tool-argument deltas of this many characters
    interleave_calls: bool = False  # openai: alternate the argument deltas of parallel calls
    stop_reason: str | None = None  # default: tool_calls/tool_use with calls, else stop/end_turn
    drop_after: int | None = None
    drop_when: asyncio.Event | None = None  # with drop_after: cut only once this is set
    stall_after: int | None = None
    fragment_bytes: int | None = None
    # Extra headers on the response.
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class HttpError:
    status: int
    message: str = "fake provider error"
    error_type: str | None = None  # the provider's error type; default by dialect and status
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None  # a raw body instead of the provider's error format


@dataclass
class Events:
    """Raw events. openai: a dict is sent as ``data: <json>``, a str as
    ``data: <str>``. anthropic: a dict as ``event: <its type>`` + ``data: <json>``.
    bytes go out as they are (comments, malformed lines)."""

    events: list[Any]
    drop_after: int | None = None
    drop_when: asyncio.Event | None = None
    stall_after: int | None = None
    fragment_bytes: int | None = None
    content_type: str = "text/event-stream"


Response = Turn | HttpError | Events


@dataclass
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: Any  # the parsed JSON body (None if it was not JSON)
    client_port: int = 0  # the client's TCP port: one per connection, so it shows keep-alive reuse


def split(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), max(1, size))]


class FakeProviderServer:
    kind = ""
    path = ""

    def __init__(self, *, api_key: str | None = None, require_key: bool = True) -> None:
        self.api_key = api_key or f"sk-fake-{self.kind}-0123456789abcdef"
        self.api_key_env = f"ROO_TEST_{self.kind.upper()}_API_KEY"
        self.require_key = require_key
        self.responses: deque[Response | Callable[[ReceivedRequest], Response]] = deque()
        self.requests: list[ReceivedRequest] = []
        self.disconnects = 0  # clients that hung up before the response ended
        self._changed: asyncio.Condition | None = None
        self._stalled: set[asyncio.Event] = set()
        self._server: HTTPServer | None = None
        self.port = 0

    # Life cycle.

    async def start(self) -> FakeProviderServer:
        self._changed = asyncio.Condition()
        sockets = bind_sockets(0, "127.0.0.1")
        self.port = sockets[0].getsockname()[1]
        app = Application([(self.path, _Handler, {"fake": self})])
        self._server = HTTPServer(app)
        self._server.add_sockets(sockets)
        return self

    async def stop(self) -> None:
        for event in self._stalled:
            event.set()
        if self._server is not None:
            self._server.stop()
            await self._server.close_all_connections()

    async def __aenter__(self) -> FakeProviderServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # For tests.

    @property
    def base_url(self) -> str:
        raise NotImplementedError

    def script(self, *responses: Response | Callable[[ReceivedRequest], Response]) -> None:
        self.responses.extend(responses)

    def profile(self, **overrides: Any) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "base_url": self.base_url,
            "model": "fake-model",
            "api_key_env": self.api_key_env,
            "max_retries": 3,
            "backoff_base_seconds": 0.001,
            "backoff_max_seconds": 0.005,
            "request_timeout_seconds": 30,
            "idle_timeout_seconds": 10,
            **overrides,
        }

    async def wait_requests(self, count: int = 1, timeout: float = 5) -> None:
        """Until ``count`` requests in all have arrived."""
        assert self._changed is not None
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: len(self.requests) >= count), timeout)

    async def wait_disconnects(self, count: int = 1, timeout: float = 5) -> None:
        """Until ``count`` clients in all have hung up mid-response."""
        assert self._changed is not None
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: self.disconnects >= count), timeout)

    # The dialect.

    def authorized(self, headers: dict[str, str]) -> bool:
        raise NotImplementedError

    def error_body(self, error: HttpError) -> str:
        raise NotImplementedError

    def turn_events(self, turn: Turn, request_number: int) -> list[bytes]:
        raise NotImplementedError

    def raw_event(self, event: Any) -> bytes:
        raise NotImplementedError

    # For the handler.

    def _next(self, request: ReceivedRequest) -> Response:
        if not self.authorized(request.headers):
            given = request.headers.get("authorization") or request.headers.get("x-api-key") or ""
            # Like OpenAI's 401, the message echoes (part of) the key it got.
            return HttpError(401, f"Incorrect API key provided: {given.removeprefix('Bearer ')}")
        if not self.responses:
            return HttpError(400, f"fake server: no scripted response left (request {len(self.requests)})")
        response = self.responses.popleft()
        return response(request) if callable(response) else response

    async def _notify(self, disconnect: bool = False) -> None:
        assert self._changed is not None
        async with self._changed:
            self.disconnects += disconnect
            self._changed.notify_all()


class _Handler(RequestHandler):
    def initialize(self, fake: FakeProviderServer) -> None:
        self.fake = fake
        self.gone = asyncio.Event()
        self.dropping = False

    def on_connection_close(self) -> None:
        self.gone.set()
        if not self.dropping:
            asyncio.ensure_future(self.fake._notify(disconnect=True))

    async def post(self) -> None:
        fake = self.fake
        try:
            body = json.loads(self.request.body)
        except ValueError:
            body = None
        received = ReceivedRequest(
            self.request.method or "",
            self.request.path,
            {k.lower(): v for k, v in self.request.headers.get_all()},
            body,
            self.request.connection.stream.socket.getpeername()[1],  # type: ignore[union-attr]
        )
        fake.requests.append(received)
        await fake._notify()
        response = fake._next(received)
        if isinstance(response, HttpError):
            self.set_status(response.status)
            self.set_header("Content-Type", "application/json" if response.body is None else "text/plain")
            for k, v in response.headers.items():
                self.set_header(k, v)
            self.finish(response.body if response.body is not None else fake.error_body(response))
            return
        if isinstance(response, Turn):
            events = fake.turn_events(response, len(fake.requests))
            content_type = "text/event-stream"
            for k, v in response.headers.items():
                self.set_header(k, v)
        else:
            events = [fake.raw_event(e) for e in response.events]
            content_type = response.content_type
        self.set_header("Content-Type", content_type)
        self.set_header("Cache-Control", "no-cache")
        await self._stream(events, response)

    async def _stream(self, events: list[bytes], response: Turn | Events) -> None:
        drop_after, stall_after, size = response.drop_after, response.stall_after, response.fragment_bytes
        try:
            for n in range(len(events) + 1):
                if drop_after is not None and n >= drop_after:
                    if response.drop_when is not None:
                        self.fake._stalled.add(response.drop_when)  # stop() releases it
                        await response.drop_when.wait()
                    self.dropping = True
                    self.request.connection.stream.close()  # no final chunk: the body is cut
                    return
                if stall_after is not None and n >= stall_after:  # 0: not even the headers go out
                    self.fake._stalled.add(self.gone)
                    await self.gone.wait()
                    return
                if n == len(events):
                    break
                event = events[n]
                for piece in [event] if not size else [event[i : i + size] for i in range(0, len(event), size)]:
                    self.write(piece)
                    await self.flush()
            self.finish()
        except StreamClosedError:
            return


class FakeOpenAI(FakeProviderServer):
    kind = "openai"
    path = "/v1/chat/completions"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def authorized(self, headers: dict[str, str]) -> bool:
        return not self.require_key or headers.get("authorization") == f"Bearer {self.api_key}"

    def error_body(self, error: HttpError) -> str:
        default = {401: "invalid_request_error", 429: "rate_limit_exceeded"}.get(error.status, "server_error")
        etype = error.error_type or default
        return json.dumps({"error": {"message": error.message, "type": etype, "param": None, "code": None}})

    def raw_event(self, event: Any) -> bytes:
        if isinstance(event, bytes):
            return event
        data = event if isinstance(event, str) else json.dumps(event)
        return f"data: {data}\n\n".encode()

    def turn_events(self, turn: Turn, request_number: int) -> list[bytes]:
        base = {
            "id": f"chatcmpl-fake{request_number}",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": "fake-model",
            "system_fingerprint": "fp_fake",
        }

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return {**base, "choices": [choice], "usage": None}

        chunks = [chunk({"role": "assistant", "content": "", "refusal": None})]
        chunks += [chunk({turn.reasoning_field: piece}) for piece in split(turn.reasoning, turn.piece_chars)]
        chunks += [chunk({"content": piece}) for piece in split(turn.text, turn.piece_chars)]
        per_call: list[list[dict[str, Any]]] = []
        for i, c in enumerate(turn.tool_calls):
            first = {
                "index": i,
                "id": c.get("id") or f"call_{request_number}_{i + 1}",
                "type": "function",
                "function": {"name": c["name"], "arguments": ""},
            }
            rest = [
                {"index": i, "function": {"arguments": piece}}
                for piece in split(json.dumps(c.get("args") or {}), turn.arg_piece_chars)
            ]
            per_call.append([first, *rest])
        if turn.interleave_calls:
            ordered = [f for group in itertools.zip_longest(*per_call) for f in group if f is not None]
        else:
            ordered = [f for group in per_call for f in group]
        chunks += [chunk({"tool_calls": [f]}) for f in ordered]
        chunks.append(chunk({}, turn.stop_reason or ("tool_calls" if turn.tool_calls else "stop")))
        u = turn.usage
        cached = u.get("cache_read", 0)
        prompt = u.get("input", 0) + cached
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": u.get("output", 0),
            "total_tokens": prompt + u.get("output", 0),
            "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": u.get("reasoning", 0)},  # part of completion_tokens
        }
        chunks.append({**base, "choices": [], "usage": usage})
        return [self.raw_event(c) for c in chunks] + [b"data: [DONE]\n\n"]


class FakeAnthropic(FakeProviderServer):
    kind = "anthropic"
    path = "/v1/messages"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def authorized(self, headers: dict[str, str]) -> bool:
        return not self.require_key or headers.get("x-api-key") == self.api_key

    def error_body(self, error: HttpError) -> str:
        default = {
            400: "invalid_request_error",
            401: "authentication_error",
            429: "rate_limit_error",
            529: "overloaded_error",
        }.get(error.status, "api_error")
        return json.dumps({"type": "error", "error": {"type": error.error_type or default, "message": error.message}})

    def raw_event(self, event: Any) -> bytes:
        if isinstance(event, bytes):
            return event
        return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()

    def turn_events(self, turn: Turn, request_number: int) -> list[bytes]:
        u = turn.usage
        events: list[dict[str, Any]] = [
            {
                "type": "message_start",
                "message": {
                    "id": f"msg_fake{request_number}",
                    "type": "message",
                    "role": "assistant",
                    "model": "fake-model",
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {
                        "input_tokens": u.get("input", 0),
                        "cache_creation_input_tokens": u.get("cache_write", 0),
                        "cache_read_input_tokens": u.get("cache_read", 0),
                        "output_tokens": 1,
                    },
                },
            }
        ]
        index = 0
        if turn.reasoning:
            start = {"type": "thinking", "thinking": "", "signature": ""}
            events.append({"type": "content_block_start", "index": index, "content_block": start})
            events += [
                {"type": "content_block_delta", "index": index, "delta": {"type": "thinking_delta", "thinking": piece}}
                for piece in split(turn.reasoning, turn.piece_chars)
            ]
            signature = {"type": "signature_delta", "signature": f"sig-{request_number}"}
            events.append({"type": "content_block_delta", "index": index, "delta": signature})
            events.append({"type": "content_block_stop", "index": index})
            index += 1
        if turn.redacted is not None:
            block = {"type": "redacted_thinking", "data": turn.redacted}
            events.append({"type": "content_block_start", "index": index, "content_block": block})
            events.append({"type": "content_block_stop", "index": index})
            index += 1
        if turn.text:
            events.append(
                {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}
            )
            events.append({"type": "ping"})
            events += [
                {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": piece}}
                for piece in split(turn.text, turn.piece_chars)
            ]
            events.append({"type": "content_block_stop", "index": index})
            index += 1
        for i, c in enumerate(turn.tool_calls):
            block = {"type": "tool_use", "id": c.get("id") or f"toolu_{request_number}_{i + 1}", "name": c["name"]}
            events.append({"type": "content_block_start", "index": index, "content_block": {**block, "input": {}}})
            pieces = [""] + split(json.dumps(c.get("args") or {}), turn.arg_piece_chars)
            events += [
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "input_json_delta", "partial_json": p},
                }
                for p in pieces
            ]
            events.append({"type": "content_block_stop", "index": index})
            index += 1
        stop = turn.stop_reason or ("tool_use" if turn.tool_calls else "end_turn")
        events.append(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": u.get("output", 0)},
            }
        )
        events.append({"type": "message_stop"})
        return [self.raw_event(e) for e in events]


@pytest.fixture
def fake_openai(io_loop: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    fake = FakeOpenAI()
    io_loop.run_sync(fake.start)
    monkeypatch.setenv(fake.api_key_env, fake.api_key)
    yield fake
    io_loop.run_sync(fake.stop)


@pytest.fixture
def fake_anthropic(io_loop: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    fake = FakeAnthropic()
    io_loop.run_sync(fake.start)
    monkeypatch.setenv(fake.api_key_env, fake.api_key)
    yield fake
    io_loop.run_sync(fake.stop)
