"""No secret (API keys, a provider's key, their SHA-256) appears in a log
line, an event, an error body or the spec's examples; ``Authorization`` is
never logged. The daemon runs as a subprocess at debug level with real keys
and a provider key in its environment, and meets good keys, bad keys, a
malformed header that Tornado itself logs, and a provider that echoes the
key it was sent."""

from __future__ import annotations

import hashlib
import json
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from tornado.httpclient import HTTPClientError
from tornado.httpserver import HTTPServer
from tornado.web import Application, RequestHandler

from roo_daemon.auth import hash_key, new_key
from roo_daemon.logs import JsonFormatter, TextFormatter
from tests.conftest import Api, WsClient
from tests.security.conftest import open_raw, read_all
from tests.server.conftest import daemon_config
from tests.server.daemon_process import REPO_ROOT, DaemonProcess

ALICE_KEY = new_key()
ROOT_KEY = new_key()
PROVIDER_SECRET = "sk-live-" + hashlib.sha256(b"provider secret for tests").hexdigest()[:40]
SECRETS = [ALICE_KEY, ROOT_KEY, hash_key(ALICE_KEY), hash_key(ROOT_KEY), PROVIDER_SECRET]


class EchoingProvider(RequestHandler):
    """A misbehaving model API: refuses the key and quotes it back."""

    def post(self) -> None:
        self.set_status(401)
        self.set_header("Content-Type", "application/json")
        got = self.request.headers.get("Authorization", "")
        self.finish(json.dumps({"error": {"message": f"Incorrect API key provided: {got}", "type": "auth"}}))


def find_secrets(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


@pytest.mark.gen_test(timeout=60)
async def test_no_secret_reaches_logs_events_or_error_bodies(tmp_path: Path) -> None:
    provider_sock = socket.socket()
    provider_sock.bind(("127.0.0.1", 0))
    provider_sock.listen(16)
    provider_sock.setblocking(False)
    provider = HTTPServer(Application([(r"/v1/chat/completions", EchoingProvider)]))
    provider.add_sockets([provider_sock])
    provider_port = provider_sock.getsockname()[1]

    workdir = tmp_path / "run"
    workdir.mkdir()
    cfg = daemon_config(
        log={"level": "debug", "format": "json"},
        auth={
            "keys": [
                {"name": "alice", "sha256": hash_key(ALICE_KEY), "scopes": ["read", "write"]},
                {"name": "root", "sha256": hash_key(ROOT_KEY), "scopes": ["admin"]},
            ]
        },
        limits={"auth_failures_per_ip": {"rate": 100, "burst": 1000}},
    )
    cfg["providers"]["net"] = {
        "kind": "openai",
        "model": "gpt-test",
        "base_url": f"http://127.0.0.1:{provider_port}/v1",
        "api_key_env": "ROO_TEST_PROVIDER_KEY",
        "max_retries": 0,
    }
    d = DaemonProcess(workdir, cfg, tmp_path / "data", env={"ROO_TEST_PROVIDER_KEY": PROVIDER_SECRET})
    bodies: list[bytes] = []
    try:
        await d.astart()
        alice, root = Api(d.base_url, ALICE_KEY), Api(d.base_url, ROOT_KEY)

        async def keep(coro: Any) -> Any:
            r = await coro
            bodies.append(r.body)
            return r

        session = (await keep(alice.post("/api/v1/sessions", {"provider": "net"}))).json
        task = (await keep(alice.post(f"/api/v1/sessions/{session['id']}/tasks", {"prompt": "hi"}))).json
        ws = await WsClient.connect(d.base_url, {"Authorization": f"Bearer {ROOT_KEY}"})
        await ws.send({"op": "subscribe", "id": "all", "after": 0})
        frames = await ws.recv_until(lambda f: f.get("event") == "task.failed")
        failed = frames[-1]["data"]
        assert "401" in json.dumps(failed) or "key" in json.dumps(failed).lower(), failed  # the failure is explained
        ws.close()
        page = await keep(alice.get(f"/api/v1/sessions/{session['id']}/tasks/{task['id']}/events?after=0"))
        bodies.append(json.dumps(frames).encode())
        await keep(root.get(f"/api/v1/sessions/{session['id']}/tasks/{task['id']}"))

        # Bad keys every way a client might get them wrong.
        anon = Api(d.base_url)
        for headers in (
            {"Authorization": f"Bearer {ALICE_KEY}x"},
            {"Authorization": f"Bearer {hash_key(ALICE_KEY)}"},
            {"Authorization": ALICE_KEY},
            {"Authorization": f"Basic {ALICE_KEY}"},
            {"X-API-Key": ALICE_KEY},
        ):
            bodies.append((await keep(anon.get("/api/v1/sessions", headers=headers))).body)
        bodies.append((await anon.get(f"/api/v1/sessions?key={ALICE_KEY}", check=False)).body)
        bodies.append((await keep(anon.get(f"/api/v1/sessions/{ALICE_KEY}"))).body)
        with pytest.raises(HTTPClientError) as err:
            await WsClient.connect(d.base_url, {"Authorization": f"Bearer {ALICE_KEY}x"})
        bodies.append(err.value.response.body)
        ws = await WsClient.connect(d.base_url)
        await ws.send({"op": "auth", "token": ALICE_KEY + "x"})
        bodies.append(json.dumps(await ws.recv()).encode())
        ws.close()
        # A header Tornado refuses, and logs with its value.
        reader, writer = await open_raw(d.base_url)
        writer.write(
            f"GET /api/v1/sessions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ALICE_KEY}\x01\r\n\r\n".encode()
        )
        await writer.drain()
        bodies.append(await read_all(reader, 15))
        writer.close()
        await d.await_log(lambda rec: "Malformed HTTP message" in str(rec.get("msg", "")))
        assert page.status == 200
        d.send_signal(signal.SIGTERM)
        assert await d.await_exit() == 0
    finally:
        d.kill()
        provider.stop()

    output = "\n".join([*(json.dumps(r) for r in d.records), *d.stderr_lines])
    assert find_secrets(output) == [], [line for line in output.splitlines() if find_secrets(line)][:3]
    assert "Authorization" not in output, [line for line in output.splitlines() if "Authorization" in line][:3]
    assert not re.search(r"(?i)bearer\s+(?!\[redacted\])", output)
    for body in bodies:
        assert find_secrets(body.decode("utf-8", "replace")) == [], body[:300]


def test_a_key_pasted_where_its_hash_belongs_is_not_echoed(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump({"auth": {"keys": [{"name": "oops", "sha256": ALICE_KEY}]}}))
    keys_file = tmp_path / "keys.yaml"
    keys_file.write_text(yaml.safe_dump([ALICE_KEY]))
    config2 = tmp_path / "bad2.yaml"
    config2.write_text(yaml.safe_dump({"auth": {"keys_file": str(keys_file)}}))
    for path, where in ((config, "auth.keys.0.sha256"), (config2, "auth.keys_file.0")):
        done = subprocess.run(
            [sys.executable, "-m", "roo_daemon", "check-config", "--config", str(path)],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=REPO_ROOT,
        )
        assert done.returncode == 2, done
        assert where in done.stderr
        assert ALICE_KEY not in done.stderr + done.stdout


@pytest.mark.parametrize("formatter", [JsonFormatter(), TextFormatter()])
def test_log_lines_redact_credentials_whatever_logs_them(formatter: Any) -> None:
    import logging

    for text in (
        f"Authorization: Bearer {ALICE_KEY}",
        f"Invalid header value 'Bearer {ALICE_KEY}\\x01'",
        f"headers={{'authorization': '{ALICE_KEY}'}}",
        f"api_key={PROVIDER_SECRET}",
        f"digest {hash_key(ROOT_KEY)}",
        f"token={ROOT_KEY}",
    ):
        record = logging.LogRecord("tornado.general", logging.INFO, __file__, 1, "%s", (text,), None)
        line = formatter.format(record)
        assert find_secrets(line) == [], line
        assert "[redacted" in line
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "session ses_%s created", ("0" * 32,), None)
    assert "ses_" + "0" * 32 in formatter.format(record)  # ids are not secrets


def test_the_spec_examples_hold_no_key_or_hash() -> None:
    text = (REPO_ROOT / "openapi.yaml").read_text()
    assert not re.search(r"\b[0-9a-f]{64}\b", text)
    assert not re.search(r"\broo_[A-Za-z0-9_-]{16,}", text)
    assert not re.search(r"\bsk-[A-Za-z0-9_-]{16,}", text)
