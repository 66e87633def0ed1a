"""The outbox on its own: framing, one write per loop turn, flow control
and the overflow that closes a slow client (no socket, no daemon)."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

from roo_daemon.ws.outbox import Outbox, text_frame


class FakeSocket:
    def __init__(self, takes: int | None = None) -> None:
        self.takes = takes  # bytes it accepts per send (None: everything)
        self.sent: list[bytes] = []

    def send(self, data: bytes) -> int:
        if self.takes == 0:
            raise BlockingIOError
        n = len(data) if self.takes is None else min(self.takes, len(data))
        self.sent.append(data[:n])
        return n


class FakeStream:
    def __init__(self, socket: FakeSocket) -> None:
        self.socket = socket
        self.buffered: list[tuple[bytes, asyncio.Future]] = []

    def writing(self) -> bool:
        return bool(self.buffered)

    def write(self, data: bytes) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()
        self.buffered.append((data, fut))
        return fut


class FakeConnection:
    def __init__(self, takes: int | None = None) -> None:
        self.stream = FakeStream(FakeSocket(takes))

    def is_closing(self) -> bool:
        return False


def make(conn: FakeConnection, queue_max: int = 4) -> tuple[Outbox, dict[str, Any]]:
    seen: dict[str, Any] = {"sent": 0, "overflows": []}

    def on_sent(n: int) -> None:
        seen["sent"] += n

    return Outbox(lambda: conn, lambda: queue_max, on_sent, seen["overflows"].append), seen


def payload_of(frame: bytes) -> bytes:
    n = frame[1]
    if n == 126:
        return frame[4:]
    if n == 127:
        return frame[10:]
    return frame[2:]


def test_text_frame_lengths():
    for size, header in ((5, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)):
        frame = text_frame(b"x" * size)
        assert frame[0] == 0x81  # FIN, text
        assert len(frame) == header + size
        assert payload_of(frame) == b"x" * size
    assert struct.unpack("!Q", text_frame(b"x" * 70000)[2:10])[0] == 70000


def test_frames_of_one_loop_turn_leave_in_one_send():
    async def run() -> None:
        conn = FakeConnection()
        box, seen = make(conn)
        for text in ("a", "b", "c"):
            box.send(text)
        assert conn.stream.socket.sent == []  # nothing until the loop turns
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert conn.stream.socket.sent == [text_frame(b"a") + text_frame(b"b") + text_frame(b"c")]
        assert seen["sent"] == 3 and box.unflushed == 0

    asyncio.run(run())


def test_what_the_socket_does_not_take_is_counted_until_read_and_replays_wait_for_room():
    async def run() -> None:
        conn = FakeConnection(takes=0)  # the client reads nothing
        box, seen = make(conn, queue_max=4)
        box.send("one")
        box.send("two")
        box.flush()
        assert box.unflushed == 2 == box.low_water()
        waiter = asyncio.ensure_future(box.make_room())
        await asyncio.sleep(0)
        assert not waiter.done()  # at the low-water mark: a replay waits
        data, fut = conn.stream.buffered.pop()
        assert data == text_frame(b"one") + text_frame(b"two")
        fut.set_result(None)  # the client read them: the outbox's callback counts them off
        await asyncio.wait_for(waiter, 1)
        assert box.unflushed == 0 and seen["overflows"] == []

    asyncio.run(run())


def test_a_full_queue_drops_the_frame_and_reports_the_overflow():
    async def run() -> None:
        conn = FakeConnection(takes=0)
        box, seen = make(conn, queue_max=2)
        box.send("a")
        box.send("b")
        box.flush()
        assert box.unflushed == 2
        box.send("c")
        assert seen["overflows"] == [2]
        box.flush()
        assert len(conn.stream.buffered) == 1  # "c" was never queued

    asyncio.run(run())


def test_a_closed_outbox_sends_nothing_and_frees_a_waiting_replay():
    async def run() -> None:
        conn = FakeConnection(takes=0)
        box, _ = make(conn, queue_max=2)
        box.send("a")
        box.flush()
        waiter = asyncio.ensure_future(box.make_room())
        await asyncio.sleep(0)
        assert not waiter.done()
        box.close()
        await asyncio.wait_for(waiter, 1)
        box.send("late")
        box.flush()
        assert len(conn.stream.buffered) == 1

    asyncio.run(run())
