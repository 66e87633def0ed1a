"""Flow control and frame limits: a client that stops reading is closed
with 1013 while the others keep receiving; a client that reads is never
dropped, even for bursts and replays longer than ``send_queue_max``; an
oversized frame closes with 1009."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.conftest import make_config
from tests.ws.helpers import all_final, is_event, ping, subscribe

SEND_QUEUE_MAX = 8
MAX_MESSAGE_BYTES = 1024
BLOB = "x" * 65536  # one big event: a handful fill any socket buffer
MAX_BURSTS = 2000  # a bound, far above what fills the buffers (~100 bursts)


@pytest.fixture
def config(tmp_path) -> dict[str, Any]:
    return make_config(
        tmp_path,
        websocket={"send_queue_max": SEND_QUEUE_MAX, "max_message_bytes": MAX_MESSAGE_BYTES},
        store={"synchronous": "normal"},
    )


def dropped(ctx) -> float:
    return ctx.metrics.registry.get_sample_value("websocket_clients_dropped_total")


async def metric(api, name: str) -> float:
    r = await api.get("/metrics")
    assert r.status == 200
    for line in r.body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not exposed")


@pytest.mark.gen_test(timeout=60)
async def test_client_that_stops_reading_is_closed_with_1013(api, ctx, ws_connect):
    """A subscriber that never reads is dropped (1013, counted in
    ``websocket_clients_dropped_total``); a reading one gets every event."""
    session = await api.session()
    slow = await ws_connect()
    await subscribe(slow, "slow", session_id=session["id"])
    fast = await ws_connect()
    await subscribe(fast, "fast", session_id=session["id"])
    assert await metric(api, "websocket_clients_dropped_total") == 0

    received: list[int] = []
    published: list[int] = []
    for burst in range(MAX_BURSTS):
        futures = []
        for i in range(4):
            data = {"n": burst * 4 + i, "blob": BLOB}
            futures.append(ctx.bus.publish("test.blob", data, session_id=session["id"], owner="local"))
        await asyncio.gather(*futures)  # committed and fanned out: last_seq is the burst's last
        published += range(ctx.bus.last_seq - 3, ctx.bus.last_seq + 1)
        frames = await fast.recv_until(lambda f, last=published[-1]: is_event(f) and f["seq"] == last)
        received += [f["seq"] for f in frames]
        if dropped(ctx) >= 1:
            break
    else:
        raise AssertionError("the client that does not read was never dropped")
    assert burst >= 1  # it took more than the first burst: the socket buffers absorbed some

    # The reading client got every event, in order, and is still connected.
    assert received == published
    assert await ping(fast, "alive") == [{"event": "pong", "id": "alive", "data": {}}]
    futures = [ctx.bus.publish("test.small", {"after": "drop"}, session_id=session["id"], owner="local")]
    await asyncio.gather(*futures)
    frame = await fast.recv()
    assert frame["event"] == "test.small" and frame["seq"] == ctx.bus.last_seq

    # The slow client finds its backlog, then the 1013 close.
    seqs = []
    while (frame := await slow.recv()) is not None:
        seqs.append(frame["seq"])
    assert slow.conn.close_code == 1013
    assert "after" in (slow.conn.close_reason or "")
    assert seqs == published[: len(seqs)]  # what it got, it got in order, without holes
    assert len(seqs) < len(published)
    assert await metric(api, "websocket_clients_dropped_total") == 1
    assert len(ctx.websockets) == 1  # only the fast client is left


@pytest.mark.gen_test(timeout=20)
async def test_burst_longer_than_the_queue_does_not_drop_a_reading_client(api, ctx, ws_connect):
    """Many small events committed together are handed over at once; a
    client whose socket takes them all is not "slow"."""
    session = await api.session()
    ws = await ws_connect()
    await subscribe(ws, "s", session_id=session["id"])
    count = SEND_QUEUE_MAX * 6
    futures = [ctx.bus.publish("test.small", {"n": i}, session_id=session["id"], owner="local") for i in range(count)]
    await asyncio.gather(*futures)
    frames = await ws.recv_until(lambda f: is_event(f) and f["data"]["n"] == count - 1)
    assert [f["data"]["n"] for f in frames] == list(range(count))
    assert await ping(ws) == [{"event": "pong", "id": "p", "data": {}}]
    assert dropped(ctx) == 0


@pytest.mark.gen_test(timeout=20)
async def test_replay_longer_than_the_queue_does_not_drop_the_client(api, ctx, ws_connect):
    """``after: 0`` over more stored events than ``send_queue_max`` is replayed in full."""
    session = await api.session(provider="instant")
    tasks = [await api.task(session["id"], f"t{i}") for i in range(3)]
    watcher = await ws_connect()
    await subscribe(watcher, "w", session_id=session["id"], after=0)
    await watcher.recv_until(all_final([t["id"] for t in tasks]))  # they run at once: any may end first
    total = ctx.bus.last_seq
    assert total > SEND_QUEUE_MAX * 3

    ws = await ws_connect()
    await subscribe(ws, "r", after=0)
    frames = await ws.recv_until(lambda f: is_event(f) and f["seq"] == total)
    assert [f["seq"] for f in frames] == list(range(1, total + 1))
    assert dropped(ctx) == 0


@pytest.mark.gen_test(timeout=30)
async def test_replay_larger_than_the_socket_buffers_is_paced_not_dropped(api, ctx, ws_connect):
    """A replay of megabytes waits for the client to read instead of
    counting it as slow: every stored event arrives, in order."""
    session = await api.session()
    count = 200
    futures = [
        ctx.bus.publish("test.blob", {"n": i, "blob": BLOB}, session_id=session["id"], owner="local")
        for i in range(count)
    ]
    await asyncio.gather(*futures)  # ~13 MB stored, more than any socket buffer holds
    last = ctx.bus.last_seq

    ws = await ws_connect()
    await subscribe(ws, "big", session_id=session["id"], after=0)
    seqs = []
    while True:
        frame = await ws.recv()
        assert frame is not None, f"dropped after {len(seqs)} replayed events"
        seqs.append(frame["seq"])
        if frame["seq"] == last:
            break
    assert seqs == list(range(1, last + 1))
    assert dropped(ctx) == 0


@pytest.mark.gen_test(timeout=20)
async def test_oversized_frame_closes_with_1009(ws_connect):
    """A client frame over ``websocket.max_message_bytes`` closes the connection with 1009."""
    ws = await ws_connect()
    await ws.send({"op": "ping", "id": "x" * 90})  # well under the limit: fine
    assert (await ws.recv())["event"] == "pong"
    await ws.send({"op": "ping", "id": "y" * (MAX_MESSAGE_BYTES + 10)})
    assert await ws.recv() is None
    assert ws.conn.close_code == 1009
