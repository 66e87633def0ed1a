"""``auth.keys_file`` and SIGHUP, on the daemon as a real subprocess: keys
added to the file work after the signal, removed ones stop (their open
WebSockets are closed with 1008), everyone else's WebSockets stay open and
keep streaming, and a broken file changes nothing."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import Api, WsClient
from tests.security.conftest import TOKENS, auth_keys, bearer, subscribe_ok
from tests.server.conftest import daemon_config
from tests.server.daemon_process import DaemonProcess


def keys_named(*names: str) -> list[dict[str, Any]]:
    return [k for k in auth_keys() if k["name"] in names]


@pytest.fixture
def daemon(tmp_path: Path) -> Any:
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / "keys.yaml").write_text(yaml.safe_dump(keys_named("alice", "reader")))
    # root is configured inline; the file holds the others (a relative path is
    # read from the config file's directory).
    cfg = daemon_config(auth={"keys": keys_named("root"), "keys_file": "keys.yaml"})
    d = DaemonProcess(workdir, cfg, tmp_path / "data")
    yield d
    d.kill()


@pytest.mark.gen_test(timeout=40)
async def test_sighup_reloads_the_keys_file_while_websockets_stay_open(daemon: DaemonProcess) -> None:
    await daemon.astart()
    alice, bob, reader, root = (Api(daemon.base_url, TOKENS[n]) for n in ("alice", "bob", "reader", "root"))
    assert (await alice.get("/api/v1/sessions")).status == 200
    assert (await reader.get("/api/v1/sessions")).status == 200
    assert (await bob.get("/api/v1/sessions")).status == 401
    alice_ws = await WsClient.connect(daemon.base_url, bearer("alice"))
    reader_ws = await WsClient.connect(daemon.base_url, bearer("reader"))
    root_ws = await WsClient.connect(daemon.base_url, bearer("root"))
    for ws in (alice_ws, reader_ws, root_ws):
        await subscribe_ok(ws, "all")

    # bob added, reader removed, alice now read-only.
    new_keys = keys_named("alice", "bob")
    new_keys[0]["scopes"] = ["read"]
    (daemon.workdir / "keys.yaml").write_text(yaml.safe_dump(new_keys))
    daemon.send_signal(signal.SIGHUP)
    reloaded = await daemon.await_log("configuration reloaded")
    assert reloaded["keys"] == 3 and reloaded["websockets_revoked"] == 1

    assert (await bob.get("/api/v1/sessions")).status == 200
    r = await reader.get("/api/v1/sessions")
    assert r.status == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
    assert (await alice.post("/api/v1/sessions", {})).status == 403  # her new scopes apply at once
    # The removed key's stream is over.
    assert await reader_ws.recv() is None and reader_ws.conn.close_code == 1008

    # The others never dropped: they answer and keep receiving events.
    await alice_ws.send({"op": "ping", "id": "after"})
    assert await alice_ws.recv() == {"event": "pong", "id": "after", "data": {}}
    made = await root.session(name="after the reload")
    frame = await root_ws.recv()
    assert frame["event"] == "session.created" and frame["session_id"] == made["id"]
    bobs = await bob.session(name="bob's")
    frame = await root_ws.recv()
    assert frame["event"] == "session.created" and frame["session_id"] == bobs["id"]
    # alice saw neither (not hers), and her connection is still live.
    await alice_ws.send({"op": "ping", "id": "again"})
    assert await alice_ws.recv() == {"event": "pong", "id": "again", "data": {}}

    # A broken keys file is refused; the running keys stay.
    (daemon.workdir / "keys.yaml").write_text("- {name: bob, sha256: not-hex}\n")
    daemon.send_signal(signal.SIGHUP)
    failed = await daemon.await_log("reload failed")
    assert "auth.keys_file" in failed["msg"]
    assert "not-hex" not in failed["msg"]
    assert (await bob.get("/api/v1/sessions")).status == 200
    await root_ws.send({"op": "ping", "id": "still"})
    assert (await root_ws.recv())["event"] == "pong"
    for ws in (alice_ws, root_ws):
        ws.close()
    daemon.send_signal(signal.SIGTERM)
    assert await daemon.await_exit() == 0


def test_keys_file_entries_default_to_read_write_and_names_stay_unique(tmp_path: Path) -> None:
    from roo_daemon.config import ConfigError, load_config

    (tmp_path / "keys.yaml").write_text(yaml.safe_dump([{"name": "bob", "sha256": keys_named("bob")[0]["sha256"]}]))
    config = tmp_path / "roo.yaml"
    config.write_text(yaml.safe_dump({"auth": {"keys": keys_named("root"), "keys_file": "keys.yaml"}}))
    cfg = load_config(str(config), env={})
    assert {k["name"]: k["scopes"] for k in cfg["auth"]["keys"]} == {"root": ["admin"], "bob": ["read", "write"]}
    config.write_text(yaml.safe_dump({"auth": {"keys": keys_named("bob"), "keys_file": "keys.yaml"}}))
    with pytest.raises(ConfigError) as err:
        load_config(str(config), env={})
    assert err.value.key == "auth.keys" and "unique" in err.value.problem
