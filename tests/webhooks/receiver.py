"""A webhook receiver for tests: Tornado on 127.0.0.1, in the test's loop.
It records each delivery, answers ``status`` (503 while "failing"), and can
be taken down (its socket closed: connection refused) and brought up again
on the same port."""

from __future__ import annotations

import asyncio
import json
import socket
from dataclasses import dataclass
from typing import Any

from tornado.httpserver import HTTPServer
from tornado.web import Application, RequestHandler

from roo_daemon.webhooks import verify


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes

    @property
    def frame(self) -> dict[str, Any]:
        return json.loads(self.body)


class Receiver:
    def __init__(self, secret: bytes) -> None:
        self.secret = secret
        self.received: list[Delivery] = []  # every request, failed answers included
        self.acked: list[Delivery] = []  # those answered 2xx
        self.status = 200
        self.hold: asyncio.Event | None = None  # set: answer; while unset, requests wait
        self.arrived = asyncio.Event()  # a request arrived (cleared by wait_for)
        self._changed = asyncio.Condition()
        self.server: HTTPServer | None = None
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        self.url = f"http://127.0.0.1:{self.port}/hook"

    def up(self) -> None:
        receiver = self

        class Hook(RequestHandler):
            async def post(self) -> None:
                d = Delivery(dict(self.request.headers), self.request.body)
                receiver.received.append(d)
                receiver.arrived.set()
                if receiver.hold is not None:
                    await receiver.hold.wait()
                self.set_status(receiver.status)
                if receiver.status < 300:
                    receiver.acked.append(d)
                async with receiver._changed:
                    receiver._changed.notify_all()
                self.finish()

        self.server = HTTPServer(Application([(r"/hook", Hook)]))
        self.server.listen(self.port, "127.0.0.1")

    def down(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    async def wait_for(self, predicate: Any, timeout: float = 20) -> None:
        """Until ``predicate(self)`` holds (checked after each request)."""

        async def run() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: predicate(self))

        await asyncio.wait_for(run(), timeout)

    def signed(self, d: Delivery) -> bool:
        return verify(self.secret, d.headers.get("X-Roo-Signature", ""), d.body)

    def seqs(self) -> list[int]:
        return [d.frame["seq"] for d in self.acked]
