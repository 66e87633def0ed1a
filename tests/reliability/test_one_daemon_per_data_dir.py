"""One daemon per data dir (issue #9, item 4).

A second ``roo-daemon serve`` on a data dir a live daemon uses used to run
crash recovery on the live daemon's database before failing to bind: it
marked the live daemon's waiting tasks ``interrupted`` and appended events
at seqs the live daemon then reused (``UNIQUE constraint failed``, 500s, a
lost approval). Now the data dir is locked (``flock``) before the store is
touched, and the second start exits 2 with one line naming the live pid."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from roo_daemon.store.lock import LOCK_FILE, DataDirLock, DataDirLocked
from tests.conftest import Api, WsClient, wait_status
from tests.server.conftest import DaemonFactory, daemon_factory  # noqa: F401 (fixture)
from tests.server.daemon_process import REPO_ROOT


async def _events(api: Api, session_id: str, task_id: str) -> list[dict[str, Any]]:
    r = await api.get(f"/api/v1/sessions/{session_id}/tasks/{task_id}/events?after=0&limit=1000")
    assert r.status == 200, r.body
    return r.json["items"]


@pytest.mark.parametrize("same_port", [False, True], ids=["other-port", "same-port"])
@pytest.mark.gen_test(timeout=90)
async def test_second_daemon_on_a_live_data_dir_exits_2_and_touches_nothing(
    daemon_factory: DaemonFactory,  # noqa: F811
    same_port: bool,
) -> None:
    first = daemon_factory()
    await first.astart()
    api = Api(first.base_url)
    session = await api.session(name="live")
    task = await api.task(session["id"], "Create hello.txt")  # the demo waits for approval
    waiting = await wait_status(api, session["id"], task["id"], {"waiting"})
    assert waiting["pending_ask"] is not None
    before = await _events(api, session["id"], task["id"])

    second = daemon_factory()
    if same_port:
        second.extra_args = ["--port", str(first.port)]  # the later --port wins
    second.launch()
    assert await second.await_exit() == 2
    assert second.stderr_lines == [f"roo-daemon: {second.data_dir} is in use: already running (pid {first.pid})"]
    assert not second.find_log(lambda r: "recover" in str(r.get("msg", "")))

    # The live daemon's task still waits, with the same ask, and no event was added.
    now = (await api.get(f"/api/v1/sessions/{session['id']}/tasks/{task['id']}")).json
    assert now["status"] == "waiting"
    assert now["pending_ask"] == waiting["pending_ask"]
    assert await _events(api, session["id"], task["id"]) == before

    # Its next writes take fresh seqs: the approval goes through and the task completes.
    ws = await WsClient.connect(first.base_url)
    r = await api.post(
        f"/api/v1/sessions/{session['id']}/tasks/{task['id']}/responses",
        {"ask_id": waiting["pending_ask"]["id"], "approve": True},
    )
    assert r.status == 200, r.body
    done = await wait_status(api, session["id"], task["id"], {"completed"}, ws)
    assert done["status"] == "completed"
    seqs = [e["seq"] for e in await _events(api, session["id"], task["id"])]
    assert seqs == sorted(set(seqs)) and seqs[: len(before)] == [e["seq"] for e in before]
    ws.close()
    assert not first.find_log(lambda r: r.get("level") in ("error", "critical")), first.records[-5:]

    first.send_signal(signal.SIGTERM)
    assert await first.await_exit() == 0
    # Once the first has stopped, the data dir is free again.
    third = daemon_factory()
    await third.astart()
    third.send_signal(signal.SIGTERM)
    assert await third.await_exit() == 0


def test_the_lock_names_its_holder_and_a_dead_holder_never_blocks(tmp_path: Path) -> None:
    """The loser names the holder's pid and leaves the file alone; a file left
    by a process that died (``kill -9``: no cleanup ran) does not block."""
    (tmp_path / LOCK_FILE).write_text("999999\n")  # a previous run's pid; nobody holds the flock
    first = DataDirLock(tmp_path)
    first.acquire()
    assert (tmp_path / LOCK_FILE).read_text() == f"{os.getpid()}\n"
    with pytest.raises(DataDirLocked, match=rf"already running \(pid {os.getpid()}\)"):
        DataDirLock(tmp_path).acquire()
    assert (tmp_path / LOCK_FILE).read_text() == f"{os.getpid()}\n"

    # A child that takes the lock and is killed: the kernel drops it.
    first.release()
    child = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "locked"
        with pytest.raises(DataDirLocked, match=rf"pid {child.pid}\)"):
            DataDirLock(tmp_path).acquire()
    finally:
        child.kill()
        child.wait()
    again = DataDirLock(tmp_path)
    again.acquire()
    again.release()


_HOLD = """
import sys, time
from pathlib import Path
from roo_daemon.store.lock import DataDirLock
DataDirLock(Path(sys.argv[1])).acquire()
print("locked", flush=True)
time.sleep(600)
"""
