"""A fake OpenAI-compatible Chat Completions server for benchmarks: it
answers at once (or paces its deltas), streaming Server-Sent Events in the
real wire format.

Each request gets ``--deltas`` text deltas (``--delta-ms`` apart) and one
tool call: ``update_todo_list`` until the conversation holds ``--turns``
assistant messages, then ``attempt_completion``. Prints ``{"port": N}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

import tornado.web


def _chunk(delta: dict, finish: str | None = None, usage: dict | None = None) -> bytes:
    doc = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "bench",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if usage is None else [],
    }
    if usage is not None:
        doc["usage"] = usage
    return b"data: " + json.dumps(doc).encode() + b"\n\n"


DELTAS = [_chunk({"content": f"word{i} "}) for i in range(100)]  # encoded once


class Ticker:
    """Wakes every waiting stream together every ``interval`` seconds, so
    pacing 200 streams costs one timer per tick, not 200: the fake should
    cost the machine as little as possible, the daemon is what is measured."""

    def __init__(self) -> None:
        self.interval = 0.0
        self._next: asyncio.Future | None = None

    async def tick(self) -> None:
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().call_later(self.interval, self._fire)
        await self._next

    def _fire(self) -> None:
        fut, self._next = self._next, None
        if fut is not None:
            fut.set_result(None)


TICKER = Ticker()


class Completions(tornado.web.RequestHandler):
    def initialize(self, opts: argparse.Namespace) -> None:
        self.opts = opts

    async def post(self) -> None:
        body = json.loads(self.request.body)
        turns = sum(1 for m in body["messages"] if m["role"] == "assistant")
        self.set_header("Content-Type", "text/event-stream")
        self.write(_chunk({"role": "assistant", "content": ""}))
        for i in range(self.opts.deltas):
            self.write(DELTAS[i % len(DELTAS)])
            self.flush()
            if self.opts.delta_ms:
                await TICKER.tick()  # one timer for every stream, not one each
        if turns + 1 >= self.opts.turns:
            name, args = "attempt_completion", {"result": "benchmark done"}
        else:
            name, args = "update_todo_list", {"todos": f"[x] step {turns + 1}"}
        call = {"index": 0, "id": f"call_{turns}", "type": "function", "function": {"name": name, "arguments": ""}}
        self.write(_chunk({"tool_calls": [call]}))
        self.write(_chunk({"tool_calls": [{"index": 0, "function": {"arguments": json.dumps(args)}}]}))
        self.write(_chunk({}, finish="tool_calls"))
        self.write(_chunk({}, usage={"prompt_tokens": 1000, "completion_tokens": 50, "total_tokens": 1050}))
        self.write(b"data: [DONE]\n\n")
        self.finish()


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--deltas", type=int, default=20)
    p.add_argument("--delta-ms", type=float, default=0)
    p.add_argument("--turns", type=int, default=3)
    opts = p.parse_args()
    TICKER.interval = opts.delta_ms / 1000
    app = tornado.web.Application([(r"/v1/chat/completions", Completions, {"opts": opts})], log_function=lambda h: None)
    server = app.listen(0, "127.0.0.1")
    port = next(iter(server._sockets.values())).getsockname()[1]
    print(json.dumps({"port": port}), flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
