"""A real daemon process stopped (SIGTERM) while a delivery is in flight,
and started again while the receiver is down: the delivery in flight
completes and its cursor is stored before the daemon exits, nothing is sent
twice, and after the restart every remaining event arrives, in order, once
the receiver is up."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Api, wait_status
from tests.server.conftest import daemon_config
from tests.server.daemon_process import DaemonProcess, has_msg
from tests.tasks.helpers import all_events
from tests.webhooks.conftest import FAST, hook
from tests.webhooks.receiver import Receiver


def daemon(tmp_path: Path, run: str) -> DaemonProcess:
    workdir = tmp_path / run
    workdir.mkdir()
    return DaemonProcess(workdir, daemon_config(webhooks=FAST), tmp_path / "data")


async def webhook_state(api: Api, session_id: str) -> dict[str, Any]:
    r = await api.get(f"/api/v1/sessions/{session_id}/webhooks")
    assert r.status == 200, r.body
    (item,) = r.json["items"]
    return item


@pytest.mark.gen_test(timeout=90)
async def test_a_restart_mid_delivery_loses_nothing_and_repeats_nothing(tmp_path: Path, receiver: Receiver) -> None:
    first = daemon(tmp_path, "run0")
    await first.astart()
    try:
        api = Api(first.base_url)
        session = await api.session(webhooks=[hook(receiver)])
        await receiver.wait_for(lambda r: len(r.acked) == 1)  # session.created

        receiver.hold = asyncio.Event()  # the next delivery waits for an answer
        receiver.arrived.clear()
        task = await api.task(session["id"], provider="instant")
        await wait_status(api, session["id"], task["id"], {"completed"})
        await asyncio.wait_for(receiver.arrived.wait(), 20)
        held = receiver.received[-1].frame
        assert held["event"] == "task.created" and len(receiver.received) == 2

        first.send_signal(signal.SIGTERM)
        await first.await_log(has_msg("shutting down"))
        receiver.hold.set()  # answered while the daemon stops: it stores the cursor before exiting
        receiver.hold = None
        assert await first.await_exit(30) == 0
    finally:
        first.kill()
    assert receiver.seqs() == [receiver.acked[0].frame["seq"], held["seq"]]

    receiver.down()  # and the second run starts with the receiver down
    second = daemon(tmp_path, "run1")
    await second.astart()
    try:
        api = Api(second.base_url)
        while (await webhook_state(api, session["id"]))["status"] != "retrying":
            await asyncio.sleep(0.05)  # polling the state the daemon reports: there is nothing to await
        item = await webhook_state(api, session["id"])
        assert item["cursor"] == held["seq"] and item["delivered"] == 2  # resumed after the held event

        receiver.up()
        events = await all_events(api, session["id"], task["id"])
        await receiver.wait_for(lambda r: len(r.acked) == 1 + len(events))
        assert [d.frame["seq"] for d in receiver.acked[1:]] == [e["seq"] for e in events]
        assert [d.frame for d in receiver.acked[1:]] == events
        assert len(receiver.received) == len(receiver.acked)  # nothing was sent twice
        assert all(receiver.signed(d) for d in receiver.acked)
        item = await webhook_state(api, session["id"])
        assert item["delivered"] == 1 + len(events) and item["cursor"] == events[-1]["seq"]
        second.send_signal(signal.SIGTERM)
        assert await second.await_exit(30) == 0
    finally:
        second.kill()


@pytest.mark.gen_test(timeout=90)
async def test_a_killed_daemon_resumes_from_the_last_acknowledged_event(tmp_path: Path, receiver: Receiver) -> None:
    """SIGKILL while the receiver fails: nothing is stored past the last 2xx,
    so the next run delivers the rest, in order, none twice."""
    first = daemon(tmp_path, "run0")
    await first.astart()
    try:
        api = Api(first.base_url)
        session = await api.session(webhooks=[hook(receiver)])
        await receiver.wait_for(lambda r: len(r.acked) == 1)
        receiver.status = 503
        task = await api.task(session["id"], provider="instant")
        await wait_status(api, session["id"], task["id"], {"completed"})
        await receiver.wait_for(lambda r: len(r.received) >= 3)  # the next event, refused again and again
        first.proc.kill()  # type: ignore[union-attr]
        await first.await_exit(30)
    finally:
        first.kill()
    refused = {d.frame["seq"] for d in receiver.received[1:]}
    assert len(refused) == 1  # in order: nothing after the refused event was tried

    receiver.status = 200
    second = daemon(tmp_path, "run1")
    await second.astart()
    try:
        api = Api(second.base_url)
        events = await all_events(api, session["id"], task["id"])
        await receiver.wait_for(lambda r: len(r.acked) == 1 + len(events))
        assert [d.frame for d in receiver.acked[1:]] == events
        second.send_signal(signal.SIGTERM)
        assert await second.await_exit(30) == 0
    finally:
        second.kill()
