"""``roo-daemon openapi | check-config | serve`` run as real processes:
configuration problems exit 2 with one line naming the key, never a traceback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from roo_daemon.store.database import DB_FILE
from tests.server.daemon_process import REPO_ROOT, TIMEOUT, DaemonProcess

GOOD: dict[str, Any] = {
    "server": {"port": 4000},
    "providers": {"demo": {"kind": "scripted"}, "instant": {"kind": "scripted", "turns": [{"text": "hi"}]}},
}


def run_cli(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m roo_daemon ARGS`` with no ROO_DAEMON_* from our own environment."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ROO_DAEMON_")}
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), full_env.get("PYTHONPATH")]))
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "roo_daemon", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        stdin=subprocess.DEVNULL,
    )


def write_config(tmp_path: Path, doc: Any, name: str = "cfg.yaml") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    return path


def with_data_dir(tmp_path: Path, doc: dict[str, Any]) -> dict[str, Any]:
    return {**doc, "store": {**doc.get("store", {}), "data_dir": str(tmp_path / "data")}}


def assert_config_error(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Exit 2, exactly one line on stderr containing every needle, no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    line = lines[0]
    assert line.startswith("roo-daemon: configuration error: "), line
    for needle in needles:
        assert needle in line, (needle, line)
    return line


# -- openapi ---------------------------------------------------------------


def test_openapi_prints_the_contract(tmp_path: Path) -> None:
    """``roo-daemon openapi`` prints openapi.yaml byte for byte, needing no config."""
    proc = run_cli(tmp_path, "openapi")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (REPO_ROOT / "openapi.yaml").read_text(encoding="utf-8")
    assert yaml.safe_load(proc.stdout)["openapi"].startswith("3.")


# -- check-config: good --------------------------------------------------------


def test_check_config_accepts_a_good_file(tmp_path: Path) -> None:
    """A valid file: exit 0, a summary, and the data dir is created."""
    cfg = write_config(tmp_path, with_data_dir(tmp_path, GOOD))
    proc = run_cli(tmp_path, "check-config", "--config", str(cfg))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == (
        f"configuration OK: listening on 127.0.0.1:4000, data in {tmp_path / 'data'}, providers: demo, instant"
    )
    assert (tmp_path / "data" / "workspaces").is_dir()


def test_check_config_accepts_the_shipped_example(tmp_path: Path) -> None:
    """config/roo-daemon.yaml, which documents every option, is itself valid."""
    proc = run_cli(tmp_path, "check-config", "--config", str(REPO_ROOT / "config" / "roo-daemon.yaml"))
    assert proc.returncode == 0, proc.stderr
    assert "listening on 127.0.0.1:3000" in proc.stdout
    assert (tmp_path / ".roo-daemon").is_dir()  # the relative default is relative to the working directory


def test_check_config_without_a_file_uses_the_defaults(tmp_path: Path) -> None:
    proc = run_cli(tmp_path, "check-config")
    assert proc.returncode == 0, proc.stderr
    assert (
        proc.stdout.strip() == "configuration OK: listening on 127.0.0.1:3000, data in ./.roo-daemon, providers: demo"
    )


# -- check-config: errors --------------------------------------------------------


@pytest.mark.parametrize(
    ("doc", "needles"),
    [
        ({"server": {"prot": 3000}}, ["server.prot", "unknown key"]),
        ({"server": {"port": "abc"}}, ["server.port", "'abc'"]),
        ({"server": {"port": 70000}}, ["server.port"]),
        ({"servre": {"port": 1}}, ["servre", "unknown key"]),
        ({"engine": {"default_provider": "nope"}}, ["engine.default_provider", "'nope'"]),
        ({"server": {"host": "0.0.0.0"}}, ["server.host", "0.0.0.0", "auth.keys"]),
        ({"providers": {"x": {"kind": "gemini"}}}, ["providers.x.kind"]),
        ({"workspaces": {"roots": ["/definitely/not/here"]}}, ["workspaces.roots.0"]),
        ("- just\n- a list\n", ["must hold a mapping"]),
        ("server: {port: 1}\n2001: x\n", ["2001", "keys must be strings"]),
        ({"providers": {"demo": {"kind": "scripted"}, 7: {"kind": "scripted"}}}, ["providers.7", "must be strings"]),
    ],
    ids=[
        "unknown-key",
        "wrong-type",
        "out-of-range",
        "unknown-section",
        "missing-provider",
        "public-bind-no-keys",
        "unknown-provider-kind",
        "missing-root",
        "not-a-mapping",
        "non-string-key",
        "non-string-provider-name",
    ],
)
def test_check_config_rejects_a_bad_file(tmp_path: Path, doc: Any, needles: list[str]) -> None:
    """Each problem: exit 2 and one line naming the key."""
    if isinstance(doc, dict):
        doc = with_data_dir(tmp_path, doc)
    cfg = write_config(tmp_path, doc)
    assert_config_error(run_cli(tmp_path, "check-config", "--config", str(cfg)), *needles)


def test_check_config_rejects_invalid_yaml(tmp_path: Path) -> None:
    """A YAML syntax error names the file and where it is."""
    cfg = write_config(tmp_path, "server:\n  port: [1, 2\n  host: x\n")
    assert_config_error(run_cli(tmp_path, "check-config", "--config", str(cfg)), str(cfg), "not valid YAML", "line")


def test_check_config_rejects_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    cfg = tmp_path / "latin1.yaml"
    cfg.write_bytes(b"server:\n  host: caf\xe9\n")
    assert_config_error(run_cli(tmp_path, "check-config", "--config", str(cfg)), str(cfg), "not valid UTF-8")


def test_check_config_rejects_a_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    assert_config_error(run_cli(tmp_path, "check-config", "--config", str(missing)), str(missing), "does not exist")


def test_check_config_rejects_an_unwritable_data_dir(tmp_path: Path) -> None:
    """A data dir below a regular file cannot be created, even by root."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    cfg = write_config(tmp_path, {"store": {"data_dir": str(blocker / "data")}})
    assert_config_error(run_cli(tmp_path, "check-config", "--config", str(cfg)), "store.data_dir", "not writable")


@pytest.mark.parametrize(
    ("env", "needles"),
    [
        ({"ROO_DAEMON_NOPE_X": "1"}, ["ROO_DAEMON_NOPE_X", "not a known configuration section"]),
        ({"ROO_DAEMON_SERVER_PROT": "3000"}, ["ROO_DAEMON_SERVER_PROT", "'prot'"]),
        ({"ROO_DAEMON_PROVIDERS_DEMO": "x"}, ["ROO_DAEMON_PROVIDERS_DEMO"]),
        ({"ROO_DAEMON_SERVER_PORT": "abc"}, ["server.port", "'abc'"]),
    ],
    ids=["unknown-section", "unknown-key", "providers", "wrong-type"],
)
def test_check_config_rejects_bad_environment_overrides(
    tmp_path: Path, env: dict[str, str], needles: list[str]
) -> None:
    cfg = write_config(tmp_path, with_data_dir(tmp_path, GOOD))
    assert_config_error(run_cli(tmp_path, "check-config", "--config", str(cfg), env=env), *needles)


# -- precedence ----------------------------------------------------------------


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    """ROO_DAEMON_<SECTION>_<KEY> wins over the file, with YAML-typed values."""
    cfg = write_config(tmp_path, with_data_dir(tmp_path, GOOD))
    env_dir = tmp_path / "from-env"
    proc = run_cli(
        tmp_path,
        "check-config",
        "--config",
        str(cfg),
        env={"ROO_DAEMON_SERVER_PORT": "4100", "ROO_DAEMON_STORE_DATA_DIR": str(env_dir)},
    )
    assert proc.returncode == 0, proc.stderr
    assert f"listening on 127.0.0.1:4100, data in {env_dir}," in proc.stdout
    assert env_dir.is_dir() and not (tmp_path / "data").exists()


def test_serve_flags_override_the_environment(tmp_path: Path) -> None:
    """--host and --data-dir win over ROO_DAEMON_SERVER_HOST / _STORE_DATA_DIR:
    a public host from the environment (refused without keys) is replaced
    by the loopback flag, and the data lives where the flag says."""
    env_dir = tmp_path / "env-data"
    flag_dir = tmp_path / "flag-data"
    workdir = tmp_path / "run"
    workdir.mkdir()
    d = DaemonProcess(
        workdir,
        GOOD,
        flag_dir,
        extra_args=["--host", "127.0.0.1"],
        env={"ROO_DAEMON_SERVER_HOST": "0.0.0.0", "ROO_DAEMON_STORE_DATA_DIR": str(env_dir)},
    )
    try:
        d.start()
        listening = d.wait_for_log("listening on")
        assert "http://127.0.0.1:" in listening["msg"]
        assert listening["data_dir"] == str(flag_dir)
        assert (flag_dir / "roo-daemon.sqlite3").is_file() and not env_dir.exists()
        d.send_signal(signal.SIGTERM)
        assert d.wait_exit() == 0
    finally:
        d.kill()


def test_serve_host_flag_is_checked_like_the_file(tmp_path: Path) -> None:
    """The flag wins over a loopback host from the environment, and a public
    host with no keys is refused whichever source it came from."""
    cfg = write_config(tmp_path, with_data_dir(tmp_path, GOOD))
    proc = run_cli(
        tmp_path,
        "serve",
        "--config",
        str(cfg),
        "--host",
        "0.0.0.0",
        "--port",
        "0",
        env={"ROO_DAEMON_SERVER_HOST": "127.0.0.1"},
    )
    assert_config_error(proc, "server.host", "0.0.0.0")


# -- serve -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("doc", "env", "needles"),
    [
        ({"server": {"prot": 1}}, {}, ["server.prot"]),
        ({}, {"ROO_DAEMON_NOPE_X": "1"}, ["ROO_DAEMON_NOPE_X"]),
        ("server: [", {}, ["not valid YAML"]),
    ],
    ids=["unknown-key", "unknown-env-section", "invalid-yaml"],
)
def test_serve_with_a_bad_config_exits_2(tmp_path: Path, doc: Any, env: dict[str, str], needles: list[str]) -> None:
    """serve validates exactly like check-config, before binding anything."""
    cfg = write_config(tmp_path, doc)
    proc = run_cli(tmp_path, "serve", "--config", str(cfg), "--port", "0", env=env)
    assert_config_error(proc, *needles)
    assert proc.stdout == ""  # no log line: it never started


def test_serve_with_an_unwritable_data_dir_exits_2(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    proc = run_cli(tmp_path, "serve", "--port", "0", "--data-dir", str(blocker / "data"))
    assert_config_error(proc, "store.data_dir")


def test_serve_on_a_taken_port_names_the_address_once_and_exits_2(tmp_path: Path) -> None:
    """A port someone else holds fails the start like any start-up error:
    exit 2, one line naming the address (printed once: not also logged),
    before the store is opened."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        proc = run_cli(tmp_path, "serve", "--port", str(port), "--data-dir", str(tmp_path / "data"))
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output
    assert len(proc.stderr.strip().splitlines()) == 1
    assert proc.stderr.startswith(f"roo-daemon: cannot listen on 127.0.0.1:{port}: the address is already in use")
    assert output.count(f"127.0.0.1:{port}") == 1, output
    assert not (tmp_path / "data" / DB_FILE).exists()  # refused before the store was made
