"""Confinement of ``execute_command``, attacked through a real daemon process.

A tenant that gets a command run (auto-approved, or approving its own) must
not reach beyond its workspace: not another session's workspace, the store,
the config or keys file, the daemon's ``/proc`` (provider keys in its
environment), a ``.rooignore``d file, or anything outside the workspace to
write. Each probe is a shell script the test writes into the session's
workspace; the scripted model runs ``sh probe.sh``, so no textual check of
the command line can catch it: only the sandbox can.

The daemon runs as root with (nearly) no capabilities (``setpriv``), close
to the systemd unit (``CapabilityBoundingSet=``): bwrap takes its
unprivileged path, and a process of the same user with the same
capabilities is what reads (or cannot read) the daemon's environment.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from roo_daemon.auth import hash_key
from tests.conftest import PROVIDERS, Api
from tests.needs import missing, which_or_skip
from tests.procs import unique_seconds, wait_gone, wait_running
from tests.server.daemon_process import DaemonProcess
from tests.tasks.helpers import all_events, task_path

TOKEN = "roo_sandbox-0123456789abcdefghijklmnopqrstuvwxyz"
SECRET_ENV = "ROO_SANDBOX_TEST_PROVIDER_KEY"
SECRET_VALUE = "sk-sandbox-daemon-only-7f3a9c"
DEADLINE = 30.0
FINAL = {"completed", "failed", "cancelled", "interrupted"}
# Root keeps only CAP_SETFCAP, which mapping uid 0 into bwrap's user namespace
# needs (Linux >= 5.12); a non-root daemon (the systemd unit) needs none.
CAPLESS = ["--bounding-set=-all,+setfcap", "--inh-caps=-all", "--no-new-privs"]


def probe_provider() -> dict[str, Any]:
    return {
        "kind": "scripted",
        "turns": [
            {"tool_calls": [{"name": "execute_command", "args": {"command": "sh probe.sh"}}]},
            {"tool_calls": [{"name": "attempt_completion", "args": {"result": "probed"}}]},
        ],
    }


class Daemon(DaemonProcess):
    def __init__(self, root: Path, name: str, prefix: list[str], **tools: Any) -> None:
        run = root / name
        run.mkdir()
        (run / "public.txt").write_text("public-readable\n")
        keys = run / "keys.yaml"
        keys.write_text(f"- {{name: tester, sha256: {hash_key(TOKEN)}, scopes: [admin]}}\n")
        config = {
            "providers": {"probe": probe_provider(), "hang": PROVIDERS["hang"]},
            "engine": {"default_provider": "probe"},
            "auth": {"keys_file": str(keys)},
            "workspaces": {"roots": [str(root / "roots")]},
            "websocket": {"ping_interval_seconds": 0},
            "log": {"level": "info", "format": "json"},
            # The config file's own directory, read-only: its public file
            # shows, the config and keys files in it must not.
            "tools": {"sandbox_read_only_paths": [str(run)], **tools},
        }
        super().__init__(run, config, run / "data", env={SECRET_ENV: SECRET_VALUE})  # one daemon per data dir
        self.prefix = prefix
        self.keys_file = keys

    @property
    def api(self) -> Api:
        return Api(self.base_url, TOKEN)


def capless_prefix() -> list[str]:
    return [which_or_skip("setpriv"), *CAPLESS]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sandbox")
    (root / "roots").mkdir()
    return root


@pytest.fixture(scope="module")
def daemon(root: Path) -> Iterator[Daemon]:
    d = Daemon(root, "main", capless_prefix())
    d.start()
    if d.find_log(lambda r: "bubblewrap cannot run" in str(r.get("msg"))):
        d.kill()
        missing(f"bubblewrap cannot run here: {d.records}")
    yield d
    d.kill()


async def run_probe(api: Api, session: dict[str, Any], script: str) -> tuple[dict[str, Any], str]:
    """Run ``script`` as the session's command; the finished task and what
    the model got back from ``execute_command``."""
    Path(session["workspace"], "probe.sh").write_text(script)
    r = await api.post(f"/api/v1/sessions/{session['id']}/tasks", {"prompt": "probe"})
    assert r.status == 202, r.body
    task = await settle(api, r.json)
    events = await all_events(api, session["id"], task["id"])
    results = [e["data"] for e in events if e["event"] == "tool.result" and e["data"]["tool"] == "execute_command"]
    assert len(results) == 1, events[-5:]
    return task, results[0]["content"]


async def settle(api: Api, task: dict[str, Any]) -> dict[str, Any]:
    """Until the task is final, approving any ask (the policy is not under test)."""
    deadline = time.monotonic() + DEADLINE
    while True:
        r = await api.get(task_path(task["session_id"], task["id"]))
        task = r.json
        if task["status"] in FINAL:
            return task
        if task["status"] == "waiting":
            body = {"ask_id": task["pending_ask"]["id"], "approve": True}
            await api.post(task_path(task["session_id"], task["id"], "/responses"), body)
        assert time.monotonic() < deadline, task
        await asyncio.sleep(0.05)


async def new_session(api: Api, **body: Any) -> dict[str, Any]:
    body.setdefault("auto_approve", {"execute": True, "allowed_commands": ["sh probe.sh"]})
    return await api.session(**body)


@pytest.mark.gen_test(timeout=60)
async def test_other_sessions_workspaces_are_invisible(daemon: Daemon, root: Path) -> None:
    api = daemon.api
    managed = await new_session(api)
    Path(managed["workspace"], "secret.txt").write_text("MANAGED-SECRET\n")
    team = root / "roots" / "team"
    nested = team / "sub-project"  # another tenant's workspace, inside the attacker's
    nested.mkdir(parents=True)
    (nested / "secret.txt").write_text("NESTED-SECRET\n")
    await new_session(api, workspace=str(nested))
    attacker = await new_session(api, workspace=str(team))
    (team / "mine.txt").write_text("MINE\n")
    _, out = await run_probe(
        api,
        attacker,
        f"cat {managed['workspace']}/secret.txt; ls {daemon.data_dir}/workspaces; cat sub-project/secret.txt; "
        "ls -A sub-project | wc -l; cat mine.txt\n",
    )
    assert "MANAGED-SECRET" not in out and "NESTED-SECRET" not in out, out
    assert "No such file or directory" in out and "MINE" in out, out


@pytest.mark.gen_test(timeout=60)
async def test_store_config_and_keys_files_are_invisible(daemon: Daemon) -> None:
    api = daemon.api
    session = await new_session(api)
    db = daemon.data_dir / "roo-daemon.sqlite3"
    assert db.read_bytes().startswith(b"SQLite format 3")
    _, out = await run_probe(
        api,
        session,
        f"head -c 15 {db}; echo; ls {daemon.data_dir}; cat {daemon.config_path}; cat {daemon.keys_file}; "
        f"cat {daemon.workdir}/public.txt\n",
    )
    assert "SQLite format 3" not in out and hash_key(TOKEN) not in out and "keys_file" not in out, out
    assert "public-readable" in out, out  # the directory is shown (read-only); only the daemon's files are masked


@pytest.mark.gen_test(timeout=60)
async def test_the_daemons_proc_and_environment_are_out_of_reach(daemon: Daemon) -> None:
    api = daemon.api
    session = await new_session(api)
    _, out = await run_probe(
        api, session, f"cat /proc/{daemon.pid}/environ; cat /proc/1/environ; ls /proc | grep -c '^[0-9]'\n"
    )
    assert SECRET_VALUE not in out and SECRET_ENV not in out, out
    # Outside the sandbox too: a process of the daemon's user (root without
    # capabilities, like the daemon) cannot read its environment.
    reader = subprocess.run(
        [*capless_prefix(), "cat", f"/proc/{daemon.pid}/environ"], capture_output=True, timeout=DEADLINE
    )
    assert SECRET_VALUE.encode() not in reader.stdout and reader.returncode != 0, reader


@pytest.mark.gen_test(timeout=60)
async def test_rooignored_files_cannot_be_read_by_a_command(daemon: Daemon) -> None:
    api = daemon.api
    session = await new_session(api)
    ws = Path(session["workspace"])
    (ws / ".rooignore").write_text("secret.txt\nprivate/\nconf/token\n")
    (ws / "secret.txt").write_text("IGNORED-SECRET-1\n")
    (ws / "private").mkdir()
    (ws / "private" / "key.pem").write_text("IGNORED-SECRET-2\n")
    (ws / "conf").mkdir()
    (ws / "conf" / "token").write_text("IGNORED-SECRET-3\n")
    (ws / "conf" / "settings.ini").write_text("visible=1\n")
    _, out = await run_probe(
        api,
        session,
        "cat secret.txt private/key.pem conf/token; cp secret.txt copy.txt; cat copy.txt; grep -r IGNORED .; "
        "mv conf renamed; mv secret.txt moved.txt; rm -rf private; cat renamed/token; cat conf/settings.ini\n",
    )
    assert "IGNORED-SECRET" not in out, out
    assert "visible=1" in out, out
    # The masks held on disk too: nothing renamed away from its pattern, nothing deleted.
    assert (ws / "conf" / "token").read_text() == "IGNORED-SECRET-3\n"
    assert (ws / "secret.txt").exists() and (ws / "private" / "key.pem").exists()
    assert not (ws / "renamed").exists() and not (ws / "moved.txt").exists()


@pytest.mark.gen_test(timeout=60)
async def test_only_the_workspace_is_writable_and_results_reach_the_model(daemon: Daemon) -> None:
    api = daemon.api
    other = await new_session(api)
    session = await new_session(api)
    name = f"roo-sandbox-probe-{unique_seconds()}"
    outside = [
        Path("/usr", name),
        Path(other["workspace"], name),
        daemon.data_dir / name,
        daemon.workdir / name,
        Path("/tmp", name),
    ]
    writes = "; ".join(f"echo x > {path}" for path in outside)
    try:
        task, out = await run_probe(
            api,
            session,
            f"{writes}; cat /tmp/{name}; mkdir -p built && echo made > built/out.txt; "
            "echo to-stdout; echo to-stderr >&2; exit 7\n",
        )
        assert [path for path in outside if path.exists()] == []
    finally:
        for path in outside:  # a broken sandbox must not leave litter behind
            path.unlink(missing_ok=True)
    assert task["status"] == "completed", task
    assert "Exit code: 7" in out and "to-stdout" in out and "to-stderr" in out, out
    assert "x\n" in out  # /tmp is writable scratch inside the sandbox (and gone after it)
    assert Path(session["workspace"], "built", "out.txt").read_text() == "made\n"


@pytest.mark.gen_test(timeout=60)
async def test_network_can_be_turned_off_per_session(daemon: Daemon) -> None:
    api = daemon.api
    script = (
        "python3 -c \"import socket\ntry:\n socket.create_connection(('127.0.0.1', "
        f"{daemon.port}), 5)\n print('CONNECTED')\nexcept OSError as e:\n print('NO-NETWORK', e)\"\n"
    )
    online = await new_session(api)
    assert online["sandbox"] == {"network": True}
    _, out = await run_probe(api, online, script)
    assert "CONNECTED" in out, out
    offline = await new_session(api, sandbox={"network": False})
    assert offline["sandbox"] == {"network": False}
    _, out = await run_probe(api, offline, script)
    assert "NO-NETWORK" in out and "CONNECTED" not in out, out
    r = await api.get(f"/api/v1/sessions/{offline['id']}")
    assert r.json["sandbox"] == {"network": False}


@pytest.mark.gen_test(timeout=60)
async def test_cancel_kills_everything_in_the_sandbox(daemon: Daemon) -> None:
    """Even a process that left the command's process group (``setsid``)."""
    api = daemon.api
    session = await new_session(api)
    escaped, waited = unique_seconds(), unique_seconds()
    Path(session["workspace"], "probe.sh").write_text(f"setsid sleep {escaped} & sleep {waited}\n")
    r = await api.post(f"/api/v1/sessions/{session['id']}/tasks", {"prompt": "probe"})
    task = r.json
    await wait_running(escaped)
    await wait_running(waited)
    r = await api.delete(task_path(session["id"], task["id"]))
    assert r.status == 202, r.body
    await wait_gone(escaped)
    await wait_gone(waited)


@pytest.mark.gen_test(timeout=90)
async def test_a_killed_daemon_leaves_no_command_running(root: Path) -> None:
    d = Daemon(root, "killed", capless_prefix())
    try:
        await d.astart()
        if d.find_log(lambda r: "bubblewrap cannot run" in str(r.get("msg"))):
            missing(f"bubblewrap cannot run here: {d.records}")
        session = await new_session(d.api)
        marker = unique_seconds()
        Path(session["workspace"], "probe.sh").write_text(f"sleep {marker}\n")
        await d.api.post(f"/api/v1/sessions/{session['id']}/tasks", {"prompt": "probe"})
        await wait_running(marker)
        d.send_signal(signal.SIGKILL)
        assert await d.await_exit() == -signal.SIGKILL
        await wait_gone(marker)
    finally:
        d.kill()


def userns_disabled_prefix() -> list[str]:
    """Runs the daemon where no user namespace can be made (inside a bwrap
    with ``--disable-userns``): its bubblewrap cannot run."""
    bwrap = which_or_skip("bwrap", ".ci/run installs Debian's bubblewrap")
    # --die-with-parent: killing the wrapper (the test's teardown) must end the daemon too.
    return [bwrap, "--die-with-parent", "--dev-bind", "/", "/", "--unshare-user", "--disable-userns", "--"]


@pytest.mark.gen_test(timeout=60)
async def test_without_bubblewrap_commands_are_refused_unless_sandbox_none(root: Path) -> None:
    d = Daemon(root, "nouserns", userns_disabled_prefix())
    try:
        await d.astart()
        line = await d.await_log("bubblewrap cannot run")
        assert line["level"] in ("error", "ERROR") and "tools.sandbox: none" in line["msg"], line
        session = await new_session(d.api)
        marker = root / "nouserns-ran"
        task, out = await run_probe(d.api, session, f"touch {marker}\n")
        assert "commands run only in a bubblewrap sandbox" in out and not marker.exists(), out
        events = await all_events(d.api, session["id"], task["id"])
        assert not [e for e in events if e["event"] == "ask"]  # refused before anyone is asked
    finally:
        d.kill()
    unsafe = Daemon(root, "unsandboxed", userns_disabled_prefix(), sandbox="none")
    try:
        await unsafe.astart()
        await unsafe.await_log("single-user only")
        session = await new_session(unsafe.api)
        _, out = await run_probe(unsafe.api, session, "echo ran-unsandboxed\n")
        assert "ran-unsandboxed" in out, out
    finally:
        unsafe.kill()
