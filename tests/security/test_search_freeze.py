"""``search_files`` cannot freeze the daemon (issue 9, item 6).

A model-chosen regex that backtracks catastrophically, run in Python's ``re``,
held the GIL: ``/healthz`` stopped answering and cancel could not stop the
search. The search now runs in ripgrep (a linear-time regex engine) as a
child process that a cancel kills. Through a real daemon process: while the
search runs, ``/healthz`` answers; a cancel ends the task and the ``rg``
process with it.
"""

from __future__ import annotations

import asyncio
import os
import random
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Api, WsClient, wait_status
from tests.server.conftest import daemon_config
from tests.server.daemon_process import DaemonProcess

# The issue's own regex, and a second branch that keeps ripgrep busy. For a
# backtracking engine ``(a|aa)+$`` is exponential on the first line (a run of
# a's that does not end the line): Python's re never returns from it. For
# ripgrep both branches are linear, but the second one thrashes its lazy DFA
# on lines of random a/b, so 32 MB of them take rg many seconds (about 25 s
# on the 2-core dev VM): long enough to probe the daemon and cancel while it
# runs. No line matches, so no result cuts the search short.
CATASTROPHIC = r"(a|aa)+$|(?:a|b|ab|ba)*a(?:a|b|ab){30}c"
DEADLINE = 30.0


def ab_lines(path: Path, megabytes: int) -> None:
    """A line of 64 a's then a b, and ``megabytes`` MiB of 40-character lines
    of random a/b (seeded), each ending in b."""
    rng = random.Random(9)
    letters = bytes.maketrans(bytes(range(256)), b"ab" * 128)
    raw = rng.randbytes(1 << 20).translate(letters)
    block = b"".join(raw[i : i + 39] + b"b\n" for i in range(0, len(raw) - 39, 40))
    with path.open("wb") as f:
        f.write(b"a" * 64 + b"b\n")
        for _ in range(megabytes):
            f.write(block)


def rg_children(pid: int) -> list[int]:
    """Live ``rg`` processes whose parent is ``pid`` (zombies excluded)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        comm_end = stat.rindex(")")
        comm = stat[stat.index("(") + 1 : comm_end]
        state, ppid = stat[comm_end + 2 :].split()[:2]
        if comm == "rg" and int(ppid) == pid and state != "Z":
            found.append(int(entry))
    return found


async def healthz_answers(api: Api) -> None:
    try:
        r = await asyncio.wait_for(api.get("/healthz"), 15)
    except TimeoutError:
        raise AssertionError("/healthz did not answer within 15 s while search_files ran") from None
    assert r.status == 200, r.body


@pytest.mark.gen_test(timeout=120)
async def test_healthz_answers_during_a_catastrophic_search_and_cancel_kills_rg(tmp_path: Path) -> None:
    provider: dict[str, Any] = {
        "kind": "scripted",
        "turns": [
            {"tool_calls": [{"name": "search_files", "args": {"path": ".", "regex": CATASTROPHIC}}]},
            {"tool_calls": [{"name": "attempt_completion", "args": {"result": "searched"}}]},
        ],
    }
    d = DaemonProcess(tmp_path, daemon_config(providers={"search": provider}), tmp_path / "data")
    await d.astart()
    api = Api(d.base_url)
    session = await api.session(provider="search", auto_approve={"read_only": True})
    ab_lines(Path(session["workspace"]) / "ab.txt", 32)
    ws = await WsClient.connect(d.base_url)
    try:
        task = await api.task(session["id"], "search")
        await ws.send({"op": "subscribe", "id": "s", "task_id": task["id"], "after": 0})
        await ws.recv_until(lambda f: f.get("event") == "tool.call")

        # Until ripgrep is running: the daemon answers all along (the old
        # search in Python's re froze it here).
        deadline = asyncio.get_running_loop().time() + DEADLINE
        while not (running := rg_children(d.pid)):
            await healthz_answers(api)
            assert asyncio.get_running_loop().time() < deadline, "search_files never started rg"
            await asyncio.sleep(0.05)
        await healthz_answers(api)
        assert set(rg_children(d.pid)) & set(running), "rg ended before the probe: the search was too short"

        r = await api.delete(f"/api/v1/sessions/{session['id']}/tasks/{task['id']}")
        assert r.status == 202, r.body
        done = await wait_status(api, session["id"], task["id"], {"cancelled", "completed", "failed"}, ws=ws)
        assert done["status"] == "cancelled", done
        deadline = asyncio.get_running_loop().time() + DEADLINE
        while rg_children(d.pid):
            assert asyncio.get_running_loop().time() < deadline, "rg outlived the cancelled task"
            await asyncio.sleep(0.05)
        for pid in running:
            assert not Path(f"/proc/{pid}").exists(), "the killed rg was not reaped"
    finally:
        ws.close()
        d.kill()  # a frozen daemon does not stop on SIGTERM
