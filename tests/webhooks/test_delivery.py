"""Webhooks in a daemon (in-process, with a receiver on 127.0.0.1): every
event signed and delivered once, in order, from the durable log; a receiver
down for a while gets them all once it is up; the delivery state as the spec
describes it; hosts outside ``webhooks.allowed_hosts`` refused at creation
and at connection time."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from roo_daemon.webhooks import sign, verify
from tests.conftest import Api, make_config, wait_status
from tests.webhooks.conftest import FAST, SECRET, hook
from tests.webhooks.receiver import Receiver

SESSIONS = "/api/v1/sessions"


async def session_events(ctx: Any, session_id: str) -> list[dict[str, Any]]:
    rows = await ctx.db.read(
        lambda c: c.execute("SELECT frame FROM events WHERE session_id = ? ORDER BY seq", (session_id,)).fetchall()
    )
    return [json.loads(r[0]) for r in rows]


async def state(api: Api, session_id: str) -> list[dict[str, Any]]:
    r = await api.get(f"{SESSIONS}/{session_id}/webhooks")
    assert r.status == 200, r.body
    return r.json["items"]


async def run_task(api: Api, session_id: str) -> dict[str, Any]:
    task = await api.task(session_id, provider="instant")
    return await wait_status(api, session_id, task["id"], {"completed"})


@pytest.mark.gen_test(timeout=30)
async def test_every_event_is_signed_and_delivered_once_in_order(api: Api, ctx: Any, receiver: Receiver) -> None:
    session = await api.session(webhooks=[hook(receiver)])
    assert session["webhooks"] == [hook(receiver)]
    await run_task(api, session["id"])
    await receiver.wait_for(lambda r: any(d.frame["event"] == "task.completed" for d in r.acked))
    stored = await session_events(ctx, session["id"])
    await receiver.wait_for(lambda r: len(r.acked) == len(stored))

    assert [d.frame for d in receiver.acked] == stored  # the frames as stored, each once, in order
    assert stored[0]["event"] == "session.created"
    assert len(receiver.received) == len(stored)  # no retry was needed
    # The last ack is counted once its cursor is stored: a moment after the
    # receiver answered (longer on the PostgreSQL store).
    deadline = asyncio.get_running_loop().time() + 10
    while (item := (await state(api, session["id"]))[0])["status"] != "idle":
        assert asyncio.get_running_loop().time() < deadline, item
        await asyncio.sleep(0.02)
    for d in receiver.acked:
        assert receiver.signed(d), d.headers
        assert d.headers["Content-Type"] == "application/json"
        assert d.headers["X-Roo-Event"] == d.frame["event"]
        assert d.headers["X-Roo-Delivery"] == f"{item['id']}.{d.frame['seq']}"
    # Signed with the secret, over the timestamp and the body: another secret, another body fail.
    d = receiver.acked[-1]
    assert not verify(b"another", d.headers["X-Roo-Signature"], d.body)
    assert not verify(SECRET.encode(), d.headers["X-Roo-Signature"], d.body + b" ")
    t = int(d.headers["X-Roo-Signature"].split(",")[0][2:])
    assert d.headers["X-Roo-Signature"] == sign(SECRET.encode(), d.body, t)
    assert not verify(SECRET.encode(), d.headers["X-Roo-Signature"], d.body, now=t + 301)  # a replay, later

    assert item["source"] == "session" and item["status"] == "idle"
    assert item["delivered"] == len(stored) and item["cursor"] == stored[-1]["seq"]
    assert item["last_delivered_seq"] == stored[-1]["seq"] and item["failed_attempts"] == 0
    metrics = (await api.get("/metrics")).body.decode()
    assert f"webhook_deliveries_total {float(len(stored))}" in metrics


@pytest.mark.gen_test(timeout=30)
async def test_only_the_events_asked_for(api: Api, ctx: Any, receiver: Receiver) -> None:
    session = await api.session(webhooks=[hook(receiver, ["task.completed", "ask"])])
    await run_task(api, session["id"])
    await run_task(api, session["id"])
    await receiver.wait_for(lambda r: len(r.acked) == 2)
    assert [d.frame["event"] for d in receiver.acked] == ["task.completed", "task.completed"]
    stored = await session_events(ctx, session["id"])
    items = await state(api, session["id"])
    assert items[0]["delivered"] == 2 and items[0]["cursor"] == receiver.seqs()[-1] == stored[-1]["seq"]
    assert receiver.seqs() == [e["seq"] for e in stored if e["event"] == "task.completed"]

    # Events not wanted pass the cursor while it waits, without waking it.
    reads = 0
    real_events = ctx.webhooks.cursors.events

    async def counted(*args: Any) -> Any:
        nonlocal reads
        reads += 1
        return await real_events(*args)

    ctx.webhooks.cursors.events = counted
    (worker,) = ctx.webhooks.workers[session["id"]]
    while not worker.waiting:  # done with the last task's events (its cursor stored)
        await receiver_pause()
    await run_task(api, session["id"])
    await receiver.wait_for(lambda r: len(r.acked) == 3)
    stored = await session_events(ctx, session["id"])
    (item,) = await state(api, session["id"])
    assert item["cursor"] == stored[-1]["seq"] and item["delivered"] == 3
    assert reads <= 3, reads  # woken for task.completed only (not once per event: there were many)


@pytest.mark.gen_test(timeout=60)
async def test_a_receiver_down_for_a_while_gets_every_event_once_in_order(
    api: Api, ctx: Any, receiver: Receiver
) -> None:
    receiver.down()  # connection refused
    session = await api.session(webhooks=[hook(receiver)])
    await run_task(api, session["id"])
    stored = await session_events(ctx, session["id"])

    async def retrying(at_least: int) -> dict[str, Any]:
        while True:
            (item,) = await state(api, session["id"])
            if item["status"] == "retrying" and item["consecutive_failures"] >= at_least:
                return item
            await receiver_pause()

    item = await retrying(3)
    assert item["delivered"] == 0 and item["cursor"] == 0 and item["last_error"]
    assert item["next_attempt_at"] is not None

    receiver.status = 503  # up, but failing
    receiver.up()
    await receiver.wait_for(lambda r: len(r.received) >= 3)
    item = await retrying(4)
    assert item["last_error"] == "HTTP 503" and item["delivered"] == 0

    receiver.status = 200
    await run_task(api, session["id"])  # more events meanwhile
    stored = await session_events(ctx, session["id"])
    await receiver.wait_for(lambda r: len(r.acked) == len(stored))
    assert [d.frame for d in receiver.acked] == stored
    assert len({d.frame["seq"] for d in receiver.acked}) == len(stored)  # each once
    (item,) = await state(api, session["id"])
    assert item["consecutive_failures"] == 0 and item["last_error"] is None
    assert item["failed_attempts"] >= 4 and item["delivered"] == len(stored)
    metrics = (await api.get("/metrics")).body.decode()
    assert 'webhook_delivery_failures_total{reason="network"}' in metrics
    assert 'webhook_delivery_failures_total{reason="http_status"}' in metrics


async def receiver_pause() -> None:
    import asyncio

    await asyncio.sleep(0.05)  # polling the state the daemon reports: there is nothing to await


@pytest.mark.gen_test(timeout=30)
@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://10.1.2.3/hook", "not in webhooks.allowed_hosts"),
        ("http://169.254.169.254/latest/meta-data", "not in webhooks.allowed_hosts"),
        ("http://[::ffff:10.0.0.1]/hook", "not in webhooks.allowed_hosts"),
        ("http://0.0.0.0:9/hook", "not in webhooks.allowed_hosts"),
        ("http://no-such-host.invalid/hook", "cannot resolve"),
        # Names IDNA cannot encode (an empty label, one over 63 characters):
        # getaddrinfo raised UnicodeError, a 500 (found by the fuzz test).
        ("http://a..b/hook", "cannot resolve"),
        ("http://" + "a" * 70 + ".example/hook", "cannot resolve"),
        ("ftp://127.0.0.1/hook", "does not match"),
        ("http://user:pw@127.0.0.1/hook", "must not hold credentials"),
    ],
)
async def test_a_host_outside_allowed_hosts_is_refused(api: Api, url: str, why: str) -> None:
    r = await api.post(SESSIONS, {"webhooks": [{"url": url, "events": ["*"], "secret_env": "ROO_WEBHOOK_TEST"}]})
    assert r.status == 422, r.body
    assert any(why in e["message"] for e in r.json["errors"]), r.json


@pytest.mark.gen_test(timeout=30)
async def test_bad_events_and_secret_variables_are_refused(api: Api, receiver: Receiver) -> None:
    for body, pointer in (
        ({**hook(receiver), "events": ["task.finished"]}, "/body/webhooks/0/events/0"),
        ({**hook(receiver), "secret_env": "OPENAI_API_KEY"}, "/body/webhooks/0/secret_env"),
        ({**hook(receiver), "secret_env": "ROO_WEBHOOK_UNSET"}, "/body/webhooks/0/secret_env"),
    ):
        r = await api.post(SESSIONS, {"webhooks": [body]})
        assert r.status == 422, r.body
        assert pointer in [e["pointer"] for e in r.json["errors"]], r.json
    r = await api.post(SESSIONS, {"webhooks": [hook(receiver), hook(receiver)]})
    assert r.status == 422 and "the same webhook twice" in r.body.decode(), r.body


@pytest.mark.gen_test(timeout=30)
async def test_the_address_is_checked_when_connecting_too(tmp_path: Any, io_loop: Any, receiver: Receiver) -> None:
    """A daemon-wide webhook to loopback, with allowed_hosts not listing it:
    nothing reaches the receiver; the attempts fail as host_refused."""
    from roo_daemon.app import make_app
    from roo_daemon.context import open_context

    cfg = make_config(
        tmp_path,
        webhooks={**FAST, "allowed_hosts": ["hooks.example.com"], "default": [hook(receiver)]},
    )
    ctx = await open_context(cfg)
    try:
        from tornado.httpserver import HTTPServer
        from tornado.testing import bind_unused_port

        sock, port = bind_unused_port()
        server = HTTPServer(make_app(ctx))
        server.add_sockets([sock])
        api = Api(f"http://127.0.0.1:{port}")
        session = await api.session()
        while True:
            (item,) = await state(api, session["id"])
            if item["consecutive_failures"] >= 2:
                break
            await receiver_pause()
        assert item["source"] == "config" and "not in webhooks.allowed_hosts" in item["last_error"]
        assert receiver.received == []
        metrics = (await api.get("/metrics")).body.decode()
        assert 'webhook_delivery_failures_total{reason="host_refused"}' in metrics
        server.stop()
    finally:
        await ctx.close()
