"""Without checkpoints: turned off in the configuration, or for one
session. Tasks run as always; the API says why with a 409 (the helper
``assert_409`` is shared with the test without git)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.checkpoints.helpers import AUTO, DONE, run_to_end, saved_events, task_path, write
from tests.conftest import Api, make_config

EDITS = {"kind": "scripted", "turns": [write("a.txt", "one\n"), DONE]}
CKP = "ckp_" + "0" * 32


def with_edits(cfg: dict[str, Any]) -> dict[str, Any]:
    cfg["providers"]["edits"] = EDITS
    return cfg


async def assert_409(api: Api, session_id: str, task_id: str, why: str) -> None:
    for method, suffix in (("GET", "/checkpoints"), ("GET", "/diff"), ("POST", f"/checkpoints/{CKP}/restore")):
        body = {"scope": "files"} if method == "POST" else None
        r = await api.request(method, task_path(session_id, task_id, suffix), body)
        assert r.status == 409, (suffix, r.status, r.body)
        assert r.json["type"] == "urn:roo-daemon:problem:checkpoints-unavailable"
        assert why in r.json["detail"], r.json["detail"]


@pytest.fixture
def config(tmp_path: Path) -> dict[str, Any]:
    return with_edits(make_config(tmp_path, checkpoints={"enabled": False}))


@pytest.mark.gen_test(timeout=60)
async def test_turned_off_by_configuration(api: Api) -> None:
    session = await api.session(provider="edits", auto_approve=AUTO)
    task = await run_to_end(api, session["id"])
    assert await saved_events(api, session["id"], task["id"]) == []
    await assert_409(api, session["id"], task["id"], "checkpoints.enabled")
