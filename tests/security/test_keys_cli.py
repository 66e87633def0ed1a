"""``roo-daemon keys create``: a fresh random key, printed once, with the
``auth.keys`` entry that holds only its hash; pasted into a config, the
entry lets the key in."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import Api
from tests.server.conftest import daemon_config
from tests.server.daemon_process import REPO_ROOT, DaemonProcess


def keys_create(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "roo_daemon", "keys", "create", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        cwd=REPO_ROOT,
    )


def parse(out: str) -> tuple[str, str]:
    """The key and the config entry line."""
    key = re.search(r"^key \(shown once; store it now\): (\S+)$", out, re.M)
    assert key, out
    entry = [line for line in out.splitlines() if line.lstrip().startswith("- ")]
    assert len(entry) == 1, out
    return key.group(1), entry[0]


def test_keys_create_prints_a_key_and_its_hash_entry() -> None:
    done = keys_create("ci-bot", "--scopes", "read, write")
    assert done.returncode == 0 and done.stderr == "", done.stderr
    key, line = parse(done.stdout)
    assert re.fullmatch(r"roo_[A-Za-z0-9_-]{43}", key)  # 32 random bytes
    (entry,) = yaml.safe_load(line)
    assert entry == {"name": "ci-bot", "sha256": hashlib.sha256(key.encode()).hexdigest(), "scopes": ["read", "write"]}
    assert done.stdout.count(key) == 1  # shown once
    other, _ = parse(keys_create("ci-bot").stdout)
    assert other != key


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["bad name!"], "bad name"),
        (["ok", "--scopes", "read,root"], "unknown scope 'root'"),
        (["ok", "--scopes", ","], "no scope"),
    ],
)
def test_keys_create_refuses_bad_input(args: list[str], needle: str) -> None:
    done = keys_create(*args)
    assert done.returncode == 2 and done.stdout == ""
    assert needle in done.stderr


@pytest.mark.gen_test(timeout=30)
async def test_the_printed_entry_pasted_into_a_config_authenticates(tmp_path: Path) -> None:
    done = keys_create("pasted", "--scopes", "read")
    key, line = parse(done.stdout)
    workdir = tmp_path / "run"
    workdir.mkdir()
    d = DaemonProcess(workdir, daemon_config(), tmp_path / "data")
    # The entry line verbatim, under auth.keys, as an operator would paste it.
    d.config_path.write_text(d.config_path.read_text() + "auth:\n  keys:\n" + line + "\n")
    try:
        await d.astart()
        assert (await Api(d.base_url, key).get("/api/v1/sessions")).status == 200
        assert (await Api(d.base_url, key).post("/api/v1/sessions", {})).status == 403  # read only
        assert (await Api(d.base_url, key + "x").get("/api/v1/sessions")).status == 401
        assert (await Api(d.base_url).get("/api/v1/sessions")).status == 401
        d.send_signal(signal.SIGTERM)
        assert await d.await_exit() == 0
    finally:
        d.kill()
