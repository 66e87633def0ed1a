"""SIGHUP (``systemctl reload``): the log level changes live, observed in the
daemon's own output, while a WebSocket stays open and keeps streaming; and
``limits.*`` apply live, while settings only a restart applies are named in a
warning."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import yaml

from tests.conftest import Api, WsClient
from tests.ops.conftest import OpsDaemonFactory
from tests.security.conftest import TOKENS, auth_keys


def access_record(request_id: str):
    return lambda rec: rec.get("logger") == "roo_daemon.access" and rec.get("request_id") == request_id


@pytest.mark.gen_test(timeout=30)
async def test_sighup_lowers_the_log_level_threshold_while_a_websocket_stays_open(
    ops_daemon: OpsDaemonFactory, short_tmp: Path
) -> None:
    # At `warning` the daemon writes no "listening on" line: READY=1 on a
    # notify socket says when it serves, and where.
    d = ops_daemon(log={"level": "warning", "format": "json"})
    await d.astart_notified(short_tmp)
    api = Api(d.base_url)
    ws = await WsClient.connect(api.base_url)
    try:
        await ws.send({"op": "subscribe", "id": "all"})
        await ws.recv_until(lambda f: f.get("event") == "subscribed")

        # At `warning`, a 200's access line (info) is not written.
        assert (await api.get("/healthz", headers={"X-Request-ID": "before-reload"})).status == 200
        cfg = yaml.safe_load(d.config_path.read_text())
        cfg["log"]["level"] = "info"
        d.config_path.write_text(yaml.safe_dump(cfg))
        d.send_signal(signal.SIGHUP)
        reloaded = await d.await_log("configuration reloaded")
        assert reloaded["level"] == "info" and reloaded["log_level"] == "info"

        # Now it is; and the earlier request never was (stdout is in order).
        assert (await api.get("/healthz", headers={"X-Request-ID": "after-reload"})).status == 200
        await d.await_log(access_record("after-reload"))
        assert d.find_log(access_record("before-reload")) is None

        # The WebSocket opened before the reload still works and still streams.
        await ws.send({"op": "ping", "id": "p1"})
        await ws.recv_until(lambda f: f.get("event") == "pong" and f.get("id") == "p1")
        session = await api.session(name="after-reload")
        frames = await ws.recv_until(lambda f: f.get("event") == "session.created")
        assert frames[-1]["session_id"] == session["id"]
    finally:
        ws.close()
    d.send_signal(signal.SIGTERM)
    assert await d.await_exit() == 0


@pytest.mark.gen_test(timeout=30)
async def test_sighup_with_a_broken_file_keeps_the_running_configuration(ops_daemon: OpsDaemonFactory) -> None:
    d = ops_daemon(log={"level": "info", "format": "json"})
    await d.astart()
    d.config_path.write_text("log: {level: loud}\n")
    d.send_signal(signal.SIGHUP)
    failed = await d.await_log("reload failed")
    assert failed["level"] == "error" and "log.level" in failed["msg"]
    api = Api(d.base_url)
    assert (await api.get("/healthz", headers={"X-Request-ID": "still-info"})).status == 200
    await d.await_log(access_record("still-info"))  # still at info
    d.send_signal(signal.SIGTERM)
    assert await d.await_exit() == 0


@pytest.mark.gen_test(timeout=30)
async def test_sighup_applies_a_lowered_rate_limit_and_names_what_needs_a_restart(
    ops_daemon: OpsDaemonFactory,
) -> None:
    never = 0.001  # tokens per second: nothing refills during the test
    d = ops_daemon(auth={"keys": auth_keys()}, limits={"read": {"rate": never, "burst": 5}})
    await d.astart()
    alice = Api(d.base_url, TOKENS["alice"])
    for left in ("4", "3"):
        assert (await alice.get("/api/v1/sessions")).headers["RateLimit-Remaining"] == left

    cfg = yaml.safe_load(d.config_path.read_text())
    cfg["limits"]["read"] = {"rate": never, "burst": 2}
    cfg["server"] = {"max_body_bytes": 2 << 20}  # sized into the HTTP server at start
    d.config_path.write_text(yaml.safe_dump(cfg))
    d.send_signal(signal.SIGHUP)
    reloaded = await d.await_log("configuration reloaded")
    assert reloaded["changed"] == ["limits.read"] and "limits.read" in reloaded["msg"]
    warned = await d.await_log("only a restart applies")
    assert warned["level"] == "warning" and warned["restart_required"] == ["server.max_body_bytes"]

    # Her 3 tokens are clamped to the new burst of 2: the third request is refused.
    statuses = [(await alice.get("/api/v1/sessions")).status for _ in range(3)]
    assert statuses == [200, 200, 429]
    d.send_signal(signal.SIGTERM)
    assert await d.await_exit() == 0
