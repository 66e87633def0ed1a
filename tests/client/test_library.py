"""``roo_daemon.client`` against a real daemon process: the README example's
loop, problems as ``ClientError``, and an event stream that survives a
dropped connection (a TCP relay the test cuts) without losing or repeating
an event."""

from __future__ import annotations

import asyncio

import pytest

from roo_daemon.client import ClientError, DaemonClient
from tests.client.conftest import Daemon
from tests.engine.providers.rawhttp import _LoopbackServer, _pipe

ENDS = ("task.completed", "task.failed", "task.cancelled")


class Relay(_LoopbackServer):
    """A TCP relay on 127.0.0.1 to ``target``; ``cut()`` aborts every
    connection through it, as a network drop would."""

    def __init__(self, target: int) -> None:
        super().__init__()
        self.target = target
        self._pairs: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = []

    def cut(self) -> None:
        for a, b in self._pairs:
            a.transport.abort()
            b.transport.abort()
        self._pairs.clear()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        self._pairs.append((writer, up_writer))
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))


@pytest.mark.gen_test(timeout=30)
async def test_the_readme_loop_creates_answers_and_follows(daemon: Daemon) -> None:
    async with DaemonClient(daemon.url, daemon.token) as client:
        session = await client.create_session(auto_approve={"read_only": True})
        task = await client.create_task(session["id"], "Create hello.txt")
        seen = []
        async with client.events(task_id=task["id"], after=0) as events:
            async for event in events:
                seen.append(event["event"])
                if event["event"] == "ask":
                    await client.respond(session["id"], task["id"], event["data"]["id"], True)
                elif event["event"] in ENDS:
                    break
        assert seen[0] == "task.created" and seen[-1] == "task.completed"
        assert "ask.answered" in seen
        done = await client.get_task(session["id"], task["id"])
        assert done["result"] == "Created hello.txt with a greeting."
        found = await client.find_task(task["id"])  # by id alone
        assert found["session_id"] == session["id"]
        listed = [t["id"] async for t in client.tasks(session["id"], status="completed")]
        assert listed == [task["id"]]


@pytest.mark.gen_test(timeout=30)
async def test_errors_carry_the_problem(daemon: Daemon) -> None:
    async with DaemonClient(daemon.url, daemon.token) as client:
        with pytest.raises(ClientError) as caught:
            await client.get_session("ses_" + "0" * 32)
        e = caught.value
        assert e.status == 404 and e.is_client_side
        assert e.problem["type"] == "urn:roo-daemon:problem:not-found"
        assert str(e).startswith("404 Not Found: ")
        with pytest.raises(ClientError) as caught:
            await client.events(session_id="ses_" + "0" * 32).start()
        assert caught.value.status == 404 and caught.value.problem["code"] == "not-found"
    async with DaemonClient(daemon.url, "wrong") as client:
        with pytest.raises(ClientError) as caught:
            await client.events().start()
        assert caught.value.status == 401 and caught.value.problem["status"] == 401
    async with DaemonClient("http://127.0.0.1:1") as client:
        with pytest.raises(ClientError) as caught:
            await client.create_session()
        assert caught.value.status is None and "cannot connect" in str(caught.value)


@pytest.mark.gen_test(timeout=60)
async def test_the_stream_resumes_after_a_dropped_connection(daemon: Daemon) -> None:
    """Cut the connection twice while the slow model streams: the stream
    reconnects by itself and yields exactly the task's stored events, in
    order, none twice, none missing."""
    async with DaemonClient(daemon.url, daemon.token) as client, Relay(daemon.proc.port) as relay:
        session = await client.create_session(provider="slow")
        sid = session["id"]
        task = await client.create_task(sid, "Stream for a while")
        via_relay = DaemonClient(f"http://127.0.0.1:{relay.port}", daemon.token)
        got: list[int] = []
        deltas = 0
        async with via_relay.events(task_id=task["id"], after=0) as stream:
            async for event in stream:
                got.append(event["seq"])
                if event["event"] == "message.delta":
                    deltas += 1
                    if deltas in (5, 15):
                        relay.cut()
                    elif deltas == 25:
                        await client.cancel_task(sid, task["id"])
                elif event["event"] in ENDS:
                    break
            assert stream.reconnects == 2
        via_relay.close()
        stored: list[int] = []
        after = 0
        while True:
            page = await client.task_events(sid, task["id"], after, 1000)
            stored += [e["seq"] for e in page["items"]]
            after = page["next_after"]
            if not page["has_more"]:
                break
        assert got == [seq for seq in stored if seq <= got[-1]]
