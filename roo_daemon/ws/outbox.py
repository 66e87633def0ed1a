"""A connection's outbox: frames queued for the socket, and flow control.

Back-pressure: each connection counts frames the socket could not take at
once, still waiting in Tornado's buffer for the client to read (a burst the
socket absorbs is no backlog). Past ``websocket.send_queue_max`` the outbox
calls its ``on_overflow`` (the handler closes with 1013, try again later,
and the client resumes with ``after``): a slow client never makes the daemon
buffer without bound or slow anyone else. Replays wait in
:meth:`Outbox.make_room`, so they hand over frames only as fast as the
client reads them.

Kept apart from the subscriptions and the protocol so that how frames leave
a node can change (cross-node delivery) without touching what is sent.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from typing import Any

from tornado.ioloop import IOLoop
from tornado.iostream import StreamClosedError


def text_frame(payload: bytes) -> bytes:
    """An unmasked, uncompressed, final text frame (RFC 6455 5.2): what a
    server sends. Built here so one event is framed once for all clients
    (the daemon offers no permessage-deflate, so frames are never compressed)."""
    n = len(payload)
    if n < 126:
        return struct.pack("!BB", 0x81, n) + payload
    if n <= 0xFFFF:
        return struct.pack("!BBH", 0x81, 126, n) + payload
    return struct.pack("!BBQ", 0x81, 127, n) + payload


class _Flusher:
    """One loop callback per turn flushes every outbox that queued frames in
    it: fanning an event out to a thousand clients schedules one callback,
    not a thousand."""

    def __init__(self) -> None:
        self._dirty: list[Outbox] = []
        self._loop: IOLoop | None = None

    def mark(self, box: Outbox) -> None:
        loop = IOLoop.current()
        if loop is not self._loop:  # a new loop (tests run one per test): start afresh
            self._dirty, self._loop = [], loop
        if not self._dirty:
            loop.add_callback(self._flush)
        self._dirty.append(box)

    def _flush(self) -> None:
        dirty, self._dirty = self._dirty, []
        for box in dirty:
            box.flush()


FLUSHER = _Flusher()


class Outbox:
    """Frames for one WebSocket connection, written once per loop turn.

    ``connection`` returns Tornado's ``WebSocketProtocol`` (or None once
    gone); ``queue_max`` returns ``websocket.send_queue_max`` (read on each
    use: a SIGHUP reload may change it); ``on_sent`` counts frames handed to
    the socket (metrics); ``on_overflow`` is called, once per overflowing
    frame, when the client is too slow (the frame is dropped)."""

    def __init__(
        self,
        connection: Callable[[], Any],
        queue_max: Callable[[], int],
        on_sent: Callable[[int], None],
        on_overflow: Callable[[int], None],
    ) -> None:
        self._connection = connection
        self._queue_max = queue_max
        self._on_sent = on_sent
        self._on_overflow = on_overflow
        self.unflushed = 0  # frames the socket has not taken yet (the client has not read)
        self._queued: list[bytes] = []
        self._room: asyncio.Event | None = None  # set when a replay may send again
        self.closed = False

    def send(self, frame: str | bytes) -> None:
        """Queue one frame (JSON text, or a ready wire frame). Frames queued
        in one loop turn leave in one write: a commit's events to this
        client cost one system call, not one each."""
        if self.closed:
            return
        if self.unflushed >= self._queue_max():
            self._on_overflow(self.unflushed)
            return
        self._queued.append(frame if isinstance(frame, bytes) else text_frame(frame.encode()))
        if len(self._queued) == 1:
            FLUSHER.mark(self)

    def close(self) -> None:
        """No more frames; a replay waiting for room stops waiting."""
        self.closed = True
        if self._room is not None:
            self._room.set()

    def low_water(self) -> int:
        return max(1, self._queue_max() // 2)

    async def make_room(self) -> None:
        """Wait until the client has read enough of what it was handed."""
        while self.unflushed >= self.low_water() and not self.closed:
            if self._room is None or self._room.is_set():
                self._room = asyncio.Event()  # shared: every replay waiting for room must wake, not only the last
            await self._room.wait()

    def flush(self) -> None:
        """Write what is queued: straight to the socket when Tornado has
        nothing queued ahead, the rest through the stream's buffer."""
        out, self._queued = self._queued, []
        conn = self._connection()
        if not out or self.closed or conn is None or conn.stream is None or conn.is_closing():
            return
        data = b"".join(out) if len(out) > 1 else out[0]
        self._on_sent(len(out))
        stream = conn.stream
        if not stream.writing():
            # Fast path: nothing of Tornado's is queued ahead of us, so a
            # direct non-blocking send keeps the order and skips the stream's
            # buffer and future; only what the socket does not take goes on.
            try:
                sent = stream.socket.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                return  # the connection is gone; Tornado closes it on its next read
            if sent == len(data):
                return
            data = data[sent:]
        try:
            fut = stream.write(data)
        except StreamClosedError:
            return
        if fut.done():
            _seen(fut)
        else:
            # The socket did not take all of it: these frames wait for the client to read.
            self.unflushed += len(out)
            fut.add_done_callback(lambda f, n=len(out): self.flushed(f, n))

    def flushed(self, fut: Any, frames: int) -> None:
        """``frames`` left Tornado's buffer: the client read them."""
        self.unflushed -= frames
        if self._room is not None and self.unflushed < self.low_water():
            self._room.set()
        _seen(fut)


def _seen(fut: Any) -> None:
    if not fut.cancelled():
        fut.exception()  # a closed stream is expected here; mark it seen
