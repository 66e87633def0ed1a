"""Who may see and restore checkpoints, and when: tenancy, unknown and
foreign ids, tasks that are live, and a restore racing a new task."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.checkpoints.helpers import AUTO, DONE, checkpoints, follow_as, hold_restores, restore, run_to_end, write
from tests.conftest import Api
from tests.security.conftest import secure_config
from tests.tasks.helpers import named, status_is, task_path

OTHER_ID = "ckp_" + "0" * 32


@pytest.fixture
def config(tmp_path: Path) -> dict[str, Any]:
    cfg = secure_config(tmp_path)
    cfg["providers"]["edits"] = {"kind": "scripted", "turns": [write("a.txt", "one\n"), DONE]}
    return cfg


@pytest.mark.gen_test(timeout=90)
async def test_tenancy_unknown_and_foreign_checkpoints(as_: Any) -> None:
    alice: Api = as_("alice")
    session = await alice.session(provider="edits", auto_approve=AUTO)
    sid = session["id"]
    first = await run_to_end(alice, sid)
    second = await run_to_end(alice, sid)
    mine = await checkpoints(alice, sid, first["id"])
    theirs = await checkpoints(alice, sid, second["id"])
    assert len(mine) == 2 and len(theirs) == 1  # the same write again changes nothing

    bob: Api = as_("bob")
    for method, suffix in (
        ("GET", "/checkpoints"),
        ("GET", "/diff"),
        ("POST", f"/checkpoints/{mine[0]['id']}/restore"),
    ):
        r = await bob.request(
            method, task_path(sid, first["id"], suffix), {"scope": "files"} if method == "POST" else None
        )
        assert r.status == 404, (method, suffix, r.status)
        assert r.json["type"] == "urn:roo-daemon:problem:not-found"
    admin: Api = as_("root")
    assert (await admin.get(task_path(sid, first["id"], "/checkpoints"))).json["items"] == mine
    assert (await restore(as_("reader"), sid, first["id"], mine[0]["id"])).status == 403  # read scope only

    # Unknown, and another task's checkpoint: 404 for the diff and the restore.
    for cid in (OTHER_ID, theirs[0]["id"]):
        r = await restore(alice, sid, first["id"], cid)
        assert r.status == 404 and cid in r.json["detail"], r.json
        r = await alice.get(task_path(sid, first["id"], f"/diff?from={cid}"))
        assert r.status == 404, r.json
    r = await alice.get(task_path(sid, "tsk_" + "0" * 32, "/checkpoints"))
    assert r.status == 404
    r = await alice.get(task_path(sid, first["id"], "/diff?from=nonsense"))
    assert r.status == 422 and r.json["errors"][0]["pointer"] == "/query/from"
    r = await alice.post(task_path(sid, first["id"], f"/checkpoints/{mine[0]['id']}/restore"), {"scope": "all"})
    assert r.status == 422 and r.json["errors"][0]["pointer"] == "/body/scope"


@pytest.mark.gen_test(timeout=90)
async def test_restore_waits_for_the_session_s_tasks_to_end(as_: Any) -> None:
    alice: Api = as_("alice")
    session = await alice.session(provider="edits", auto_approve=AUTO)
    sid = session["id"]
    done = await run_to_end(alice, sid)
    cid = (await checkpoints(alice, sid, done["id"]))[0]["id"]

    for provider, status in (("hang", "running"), ("followup", "waiting")):
        live = await alice.task(sid, "stay", provider=provider)
        await follow_as(alice, live["id"], status_is(status))
        r = await restore(alice, sid, done["id"], cid)
        assert r.status == 409, r.body
        assert live["id"] in r.json["detail"] and "restore when it has ended" in r.json["detail"]
        assert (await alice.delete(task_path(sid, live["id"]))).status == 202
        await follow_as(alice, live["id"], named("task.cancelled"))
    assert (await restore(alice, sid, done["id"], cid)).status == 200


@pytest.mark.gen_test(timeout=90)
async def test_a_restore_and_a_new_task_racing_exactly_one_goes_ahead(
    as_: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice: Api = as_("alice")
    session = await alice.session(provider="edits", auto_approve=AUTO)
    sid = session["id"]
    done = await run_to_end(alice, sid)
    cid = (await checkpoints(alice, sid, done["id"]))[0]["id"]

    entered, release = hold_restores(monkeypatch)  # the two requests then overlap for certain

    # The restore first: a task created meanwhile is refused.
    pending = asyncio.ensure_future(restore(alice, sid, done["id"], cid))
    await entered.wait()
    r = await alice.post(f"/api/v1/sessions/{sid}/tasks", {"prompt": "now", "provider": "hang"})
    assert r.status == 409 and "being restored" in r.json["detail"], r.json
    release.set()
    assert (await pending).status == 200

    # Both at once, several times: exactly one of them is accepted each time.
    for _ in range(3):
        entered.clear()
        release.clear()
        restoring = asyncio.ensure_future(restore(alice, sid, done["id"], cid))
        creating = asyncio.ensure_future(
            alice.post(f"/api/v1/sessions/{sid}/tasks", {"prompt": "now", "provider": "hang"})
        )
        created = await creating
        if created.status == 202:
            assert (await restoring).status == 409
            assert not entered.is_set()
            await alice.delete(task_path(sid, created.json["id"]))
            await follow_as(alice, created.json["id"], named("task.cancelled"))
        else:
            assert created.status == 409
            release.set()
            assert (await restoring).status == 200
