"""A full disk (issue #9, item 3), with a real daemon on a tmpfs of its own.

Before: writes failed as the generic 500 ``internal``; ``/readyz`` said
ready; a failed session create left its workspace directory behind; SIGTERM
hung forever once the final writes failed; a start on a full disk ended in a
traceback. Now: writes fail as ``storage-unavailable`` (503, Retry-After),
``/readyz`` is 503 while writes fail and 200 again once they work, nothing is
left behind, SIGTERM exits, and a start exits 2 with one line."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Api, Response, WsClient, wait_status
from tests.reliability.disk import SmallDisk, small_disk  # noqa: F401 (fixture)
from tests.server.conftest import daemon_config
from tests.server.daemon_process import DaemonProcess
from tests.server.test_lifecycle import start_hang_task, task_events

STORAGE = "urn:roo-daemon:problem:storage-unavailable"


@pytest.fixture
def on_disk(tmp_path: Path, small_disk: SmallDisk) -> Iterator[Any]:  # noqa: F811
    """``on_disk()`` makes a daemon whose data dir is on the small disk."""
    made: list[DaemonProcess] = []

    def make(**sections: dict[str, Any]) -> DaemonProcess:
        workdir = tmp_path / f"run{len(made)}"
        workdir.mkdir()
        d = DaemonProcess(workdir, daemon_config(**sections), small_disk.path / "data")
        made.append(d)
        return d

    yield make
    for d in made:
        d.kill()


def assert_storage_problem(r: Response) -> None:
    assert r.status == 503, r.body
    problem = r.json
    assert problem["type"] == STORAGE, problem
    assert "cannot write" in problem["detail"] and "disk is full" in problem["detail"], problem
    assert int(r.headers["Retry-After"]) > 0


def workspaces(disk: SmallDisk) -> set[str]:
    return {p.name for p in (disk.path / "data" / "workspaces").iterdir()}


@pytest.mark.gen_test(timeout=90)
async def test_writes_fail_as_storage_unavailable_and_readyz_follows_the_disk(
    on_disk: Any,
    small_disk: SmallDisk,  # noqa: F811
) -> None:
    d = on_disk()
    await d.astart()
    api = Api(d.base_url)
    kept = await api.session(name="before the disk filled")
    waiting = await api.task(kept["id"], "Create hello.txt")  # the demo asks to approve a write
    ask = (await wait_status(api, kept["id"], waiting["id"], {"waiting"}))["pending_ask"]
    assert (await api.get("/readyz")).status == 200
    ws = await WsClient.connect(d.base_url)

    small_disk.fill()
    for body in (
        {"name": "managed workspace"},
        {"name": "x" * 100, "metadata": {f"k{i}": "v" * 1000 for i in range(8)}},
    ):
        assert_storage_problem(await api.post("/api/v1/sessions", body))
    assert_storage_problem(await api.post(f"/api/v1/sessions/{kept['id']}/tasks", {"prompt": "hi"}))
    assert workspaces(small_disk) == {kept["id"]}  # the failed creates left no directory behind
    # A WebSocket op that writes gets an error frame of the same type; the connection stays.
    answer = {"session_id": kept["id"], "task_id": waiting["id"], "ask_id": ask["id"], "approve": True}
    await ws.send({"op": "respond", "id": "r1", **answer})
    frame = await ws.recv()
    assert frame is not None and frame["event"] == "error" and frame["id"] == "r1", frame
    assert frame["data"]["code"] == "storage-unavailable" and "disk is full" in frame["data"]["detail"]
    await ws.send({"op": "ping", "id": "p1"})
    assert (await ws.recv() or {}).get("event") == "pong"
    ws.close()
    r = await api.get("/readyz")
    assert_storage_problem(r)
    assert (await api.get(f"/api/v1/sessions/{kept['id']}")).json == kept  # reads still work
    assert not d.find_log(lambda rec: "Traceback" in str(rec.get("exc", ""))), "a write failure logged a traceback"

    small_disk.free()
    assert (await api.get("/readyz")).status == 200  # ready again once a write goes through
    again = await api.session(name="after the disk was freed")
    assert workspaces(small_disk) == {kept["id"], again["id"]}
    d.send_signal(signal.SIGTERM)
    assert await d.await_exit() == 0


@pytest.mark.gen_test(timeout=90)
async def test_sigterm_exits_when_the_final_writes_fail(on_disk: Any, small_disk: SmallDisk) -> None:  # noqa: F811
    d = on_disk(engine={"resume_interrupted": False})  # the task must stay as recovery left it
    await d.astart()
    api = Api(d.base_url)
    session = await api.session()
    ws = await WsClient.connect(d.base_url)
    task = await start_hang_task(api, ws, session["id"])
    before = await task_events(api, session["id"], task["id"])

    small_disk.fill()
    d.send_signal(signal.SIGTERM)
    assert await d.await_exit() == 1  # it stopped, but could not store the task's final status
    assert d.find_log(lambda r: r.get("level") == "error" and "could not be written" in r.get("msg", ""))
    ws.close()

    small_disk.free()
    d2 = on_disk(engine={"resume_interrupted": False})
    await d2.astart()
    api2 = Api(d2.base_url)
    stored = (await api2.get(f"/api/v1/sessions/{session['id']}/tasks/{task['id']}")).json
    assert stored["status"] == "interrupted"  # the next start's recovery did it
    events = await task_events(api2, session["id"], task["id"])
    assert events[: len(before)] == before
    d2.send_signal(signal.SIGTERM)
    assert await d2.await_exit() == 0


@pytest.mark.parametrize("existing", [False, True], ids=["fresh-data-dir", "existing-data-dir"])
def test_start_on_a_full_disk_exits_2_with_one_line(on_disk: Any, small_disk: SmallDisk, existing: bool) -> None:  # noqa: F811
    if existing:
        first = on_disk()
        first.start()
        first.send_signal(signal.SIGTERM)
        assert first.wait_exit() == 0
    small_disk.fill()
    d = on_disk()
    d.launch()
    assert d.wait_exit() == 2
    assert len(d.stderr_lines) == 1, d.stderr_lines
    line = d.stderr_lines[0]
    assert line.startswith("roo-daemon: ") and "disk is full" in line and str(small_disk.path / "data") in line
    assert not any("Traceback" in str(r) for r in d.records), d.records
