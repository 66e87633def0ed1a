"""SIGHUP applies ``limits.*`` (and ``websocket.max_subscriptions``) live.

In process, through the reload path the signal calls (``Daemon.reload``) on a
daemon whose config comes from a real file; the limiter's clock is frozen, so
bucket arithmetic is exact. ``tests/ops/test_reload.py`` sends the real signal
to a real process."""

from __future__ import annotations

import copy
import json
import logging
import socket
from pathlib import Path
from typing import Any

import pytest
import yaml
from tornado.httpclient import HTTPClientError

from roo_daemon.config import load_config
from roo_daemon.logs import JsonFormatter
from roo_daemon.server import Daemon
from tests.conftest import PROVIDERS, Api
from tests.security.conftest import FakeClock, auth_keys, subscribe_ok

SESSIONS = "/api/v1/sessions"
SERVER_LOG = "roo_daemon.server"


@pytest.fixture(autouse=True)
def no_env_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    """A reload reads the environment, as the daemon does: keep the test's own out."""
    import os

    for name in [n for n in os.environ if n.startswith("ROO_DAEMON_")]:
        monkeypatch.delenv(name)


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    (tmp_path / "roots").mkdir()
    doc = {
        "store": {"data_dir": str(tmp_path / "data")},
        "workspaces": {"roots": [str(tmp_path / "roots")]},
        "websocket": {"ping_interval_seconds": 0, "max_subscriptions": 1},
        "engine": {"delta_coalesce_ms": 0, "max_concurrent_tasks": 8},
        "providers": PROVIDERS,
        "auth": {"keys": auth_keys()},
        "limits": {
            "read": {"rate": 1, "burst": 10},
            "max_sessions_per_principal": 1,
            "max_live_tasks_per_principal": 1,
            "ws_connections_per_principal": 1,
        },
    }
    path = tmp_path / "roo-daemon.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture
def config(config_file: Path) -> dict[str, Any]:
    return load_config(str(config_file), env={})


@pytest.fixture
def daemon(ctx: Any, config: dict[str, Any], caplog: pytest.LogCaptureFixture) -> Daemon:
    """A daemon around the test's context, not serving: only its reload is used.
    ``caplog`` restores the log level the reload sets."""
    caplog.set_level(logging.INFO)
    ctx.limiter.clock = FakeClock()
    d = Daemon(config)
    d.ctx = ctx
    return d


def edit(path: Path, **changes: dict[str, Any]) -> None:
    """Set ``section: {key: value}`` entries in the config file."""
    doc = yaml.safe_load(path.read_text())
    for section, values in changes.items():
        doc.setdefault(section, {}).update(copy.deepcopy(values))
    path.write_text(yaml.safe_dump(doc))


def reload_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == SERVER_LOG]


def remaining(r: Any) -> int:
    return int(r.headers["RateLimit-Remaining"])


@pytest.mark.gen_test(timeout=15)
async def test_a_lowered_rate_limit_applies_at_once_and_buckets_keep_their_fill(
    as_: Any, daemon: Daemon, config_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    alice, bob = as_("alice"), as_("bob")
    for _ in range(3):
        r = await alice.get(SESSIONS)
    assert remaining(r) == 7

    edit(config_file, limits={"read": {"rate": 1, "burst": 4}})
    daemon.reload()
    # 7 left, clamped to the new burst of 4: the fifth request is refused
    # (without the reload she had seven more).
    statuses = [(await alice.get(SESSIONS)).status for _ in range(5)]
    assert statuses == [200, 200, 200, 200, 429]
    r = await bob.get(SESSIONS)  # a new bucket starts full at the new burst
    assert r.headers["RateLimit-Limit"] == "4" and remaining(r) == 3
    (info,) = [r for r in reload_records(caplog) if r.levelno == logging.INFO]
    assert info.getMessage() == 'configuration reloaded: limits.read {"burst":10,"rate":1} -> {"burst":4,"rate":1}'
    assert info.changed == ["limits.read"] and info.restart_required == []

    # Raised again: the burst grows, but her empty bucket is not refilled by it.
    edit(config_file, limits={"read": {"rate": 1, "burst": 20}})
    daemon.reload()
    r = await alice.get(SESSIONS)
    assert r.status == 429 and r.headers["RateLimit-Limit"] == "20"
    daemon.ctx.limiter.clock.advance(2.0)
    assert remaining(await alice.get(SESSIONS)) == 1


@pytest.mark.gen_test(timeout=20)
async def test_session_and_task_caps_follow_the_file(as_: Any, daemon: Daemon, config_file: Path) -> None:
    alice = as_("alice")
    first = await alice.session(provider="hang")
    assert (await alice.post(SESSIONS, {})).status == 429
    task = await alice.task(first["id"])
    assert (await alice.post(f"{SESSIONS}/{first['id']}/tasks", {"prompt": "2"})).status == 429

    edit(config_file, limits={"max_sessions_per_principal": 2, "max_live_tasks_per_principal": 2})
    daemon.reload()
    second = await alice.session(provider="hang")
    task2 = await alice.task(first["id"], "2")

    # Lowered below what she has: nothing is closed or evicted, new ones are refused.
    edit(config_file, limits={"max_sessions_per_principal": 1, "max_live_tasks_per_principal": 1})
    daemon.reload()
    assert (await alice.post(SESSIONS, {})).status == 429
    assert (await alice.post(f"{SESSIONS}/{second['id']}/tasks", {"prompt": "3"})).status == 429
    assert len((await alice.get(SESSIONS)).json["items"]) == 2
    for t in (task, task2):
        live = (await alice.get(f"{SESSIONS}/{first['id']}/tasks/{t['id']}")).json
        assert live["status"] in ("queued", "running"), live


@pytest.mark.gen_test(timeout=20)
async def test_websocket_caps_apply_to_new_connections_and_subscribes(
    ws_as: Any, daemon: Daemon, config_file: Path
) -> None:
    first = await ws_as("alice")
    await subscribe_ok(first, "a")
    await first.send({"op": "subscribe", "id": "b"})
    assert (await first.recv())["data"]["code"] == "too-many-requests"
    with pytest.raises(HTTPClientError) as err:
        await ws_as("alice")
    assert err.value.code == 429

    edit(config_file, limits={"ws_connections_per_principal": 2}, websocket={"max_subscriptions": 2})
    daemon.reload()
    await subscribe_ok(first, "b")  # the open connection was kept, and may subscribe again
    second = await ws_as("alice")

    # Lowered: both connections stay open; a third is refused.
    edit(config_file, limits={"ws_connections_per_principal": 1})
    daemon.reload()
    with pytest.raises(HTTPClientError) as err:
        await ws_as("alice")
    assert err.value.code == 429
    for ws in (first, second):
        await ws.send({"op": "ping", "id": "still"})
        assert (await ws.recv())["event"] == "pong"


@pytest.mark.gen_test(timeout=15)
async def test_open_websockets_take_a_new_frame_rate(ws_as: Any, daemon: Daemon, config_file: Path) -> None:
    ws = await ws_as("alice")

    async def pings(n: int) -> list[str]:
        out = []
        for i in range(n):
            await ws.send({"op": "ping", "id": f"p{i}"})
            frame = await ws.recv()
            out.append(frame["event"] if frame["event"] == "pong" else frame["data"]["code"])
        return out

    edit(config_file, limits={"ws_frames": {"rate": 0.001, "burst": 2}})
    daemon.reload()
    assert await pings(4) == ["pong", "pong", "rate-limited", "rate-limited"]  # the fill, clamped to 2
    edit(config_file, limits={"ws_frames": {"rate": 0, "burst": 2}})
    daemon.reload()
    assert await pings(3) == ["pong"] * 3  # rate 0: no limit


@pytest.mark.gen_test(timeout=15)
async def test_a_bad_file_changes_no_limit(
    as_: Any, daemon: Daemon, config_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    before = copy.deepcopy(daemon.ctx.config["limits"])
    edit(config_file, limits={"read": {"rate": 1, "burst": 2}, "max_sessions_per_principal": 0})
    daemon.reload()
    (failed,) = reload_records(caplog)
    assert failed.levelno == logging.ERROR and "limits.max_sessions_per_principal" in failed.getMessage()
    assert daemon.ctx.config["limits"] == before
    # The old read burst (10) still holds, not the 2 of the refused file.
    statuses = [(await as_("alice").get(SESSIONS)).status for _ in range(3)]
    assert statuses == [200, 200, 200]


@pytest.mark.gen_test(timeout=15)
async def test_settings_a_reload_cannot_apply_are_named_in_a_warning(
    as_: Any, daemon: Daemon, config_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """server.max_body_bytes sizes the HTTP server's own cap at start; the
    engine's slots are the runner's. Both need a restart: the reload says so,
    keeps their running values, and still applies the limits."""
    edit(
        config_file,
        server={"max_body_bytes": 4 << 20},
        engine={"max_concurrent_tasks": 2},
        limits={"max_sessions_per_principal": 5},
    )
    daemon.reload()
    info, warning = reload_records(caplog)
    assert info.changed == ["limits.max_sessions_per_principal"]
    assert warning.levelno == logging.WARNING
    assert warning.restart_required == ["server.max_body_bytes", "engine.max_concurrent_tasks"]
    assert warning.getMessage().endswith(": server.max_body_bytes, engine.max_concurrent_tasks")
    assert daemon.ctx.config["server"]["max_body_bytes"] == 1 << 20
    r = await as_("alice").post(SESSIONS, body=json.dumps({"name": "x" * (2 << 20)}))
    assert r.status == 413  # still the running 1 MiB
    assert (await as_("alice").post(SESSIONS, {})).status == 201
    assert (await as_("alice").post(SESSIONS, {})).status == 201  # the new cap of 5 applies


@pytest.mark.gen_test(timeout=15)
async def test_an_unchanged_file_reloads_without_a_warning(
    api: Api, daemon: Daemon, caplog: pytest.LogCaptureFixture
) -> None:
    daemon.reload()
    (info,) = reload_records(caplog)
    assert info.getMessage() == "configuration reloaded: no live setting changed"
    assert info.changed == [] and info.restart_required == []


@pytest.mark.gen_test(timeout=15)
async def test_removing_every_key_is_refused_while_the_daemon_listens_beyond_loopback(
    api: Api, as_: Any, daemon: Daemon, config_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The file's own check passes (its server.host is loopback), but the
    running listener is not: the host needs a restart, so applying the keyless
    auth section would make every client reaching that address the admin."""
    exposed = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    exposed.bind(("0.0.0.0", 0))
    exposed.listen()
    daemon._sockets = [exposed]
    try:
        edit(config_file, auth={"keys": []})
        daemon.reload()
    finally:
        exposed.close()
    (failed,) = reload_records(caplog)
    assert failed.levelno == logging.ERROR and "without API keys" in failed.getMessage()
    assert not daemon.ctx.auth.open
    assert (await api.get(SESSIONS)).status == 401
    assert (await as_("alice").get(SESSIONS)).status == 200


@pytest.mark.gen_test(timeout=15)
async def test_a_keys_file_that_is_not_utf8_is_a_failed_reload(
    as_: Any, daemon: Daemon, config_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (config_file.parent / "keys.yaml").write_bytes(b"- {name: mallory, sha256: \xff}\n")
    edit(config_file, auth={"keys_file": "keys.yaml"})
    daemon.reload()  # logged, not raised out of the signal handler
    (failed,) = reload_records(caplog)
    assert failed.levelno == logging.ERROR and "auth.keys_file" in failed.getMessage()
    assert (await as_("alice").get(SESSIONS)).status == 200


@pytest.mark.gen_test(timeout=15)
async def test_the_reload_line_keeps_its_own_severity_in_json(
    api: Api, daemon: Daemon, config_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The new log level is a field of its own: it must not overwrite the
    line's ``level`` (an info line reported as debug hides from a filter)."""
    edit(config_file, log={"level": "debug"})
    daemon.reload()
    (info,) = [r for r in reload_records(caplog) if r.getMessage().startswith("configuration reloaded")]
    doc = json.loads(JsonFormatter().format(info))
    assert doc["level"] == "info" and doc["log_level"] == "debug"
