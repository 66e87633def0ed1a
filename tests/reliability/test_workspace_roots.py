"""A ``workspaces.roots`` entry is a parent of workspaces, never one itself
(issue #9, item 15).

Before, any tenant could open a session on a root directory itself, and so
reach, with the file tools, every other session's workspace under it; or on
a directory holding the daemon's data dir (the store, the managed
workspaces). Now a workspace must lie strictly under a root, contain no
root, and not overlap the data dir: each of these is 422 on
``/body/workspace``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Api, make_config


@pytest.fixture
def config(tmp_path: Path) -> dict[str, Any]:
    roots = tmp_path / "roots"
    (roots / "team" / "inner").mkdir(parents=True)
    (roots / "alice").mkdir()
    # A second root nested in the first, and the tmp dir (which holds the data
    # dir and the checkpoints dir) as a third.
    return make_config(
        tmp_path,
        workspaces={"roots": [str(roots), str(roots / "team" / "inner"), str(tmp_path)]},
        checkpoints={"dir": str(tmp_path / "ckpts")},
    )


async def refused(api: Api, workspace: Path, why: str) -> None:
    r = await api.post("/api/v1/sessions", {"workspace": str(workspace)})
    assert r.status == 422, (workspace, r.status, r.body)
    error = r.json["errors"][0]
    assert error["pointer"] == "/body/workspace"
    assert why in error["message"], error


@pytest.mark.gen_test(timeout=30)
async def test_a_root_or_a_parent_of_one_is_no_workspace(api: Api, tmp_path: Path) -> None:
    roots = tmp_path / "roots"
    await refused(api, roots, "is a workspaces.roots entry")
    await refused(api, Path(str(roots) + "/./"), "is a workspaces.roots entry")  # the same directory, spelled otherwise
    await refused(api, roots / "team", "contains a workspaces.roots entry")
    assert (await api.session(workspace=str(roots / "alice")))["workspace"] == str(roots / "alice")
    await refused(api, roots / "team" / "inner" / "..", "contains a workspaces.roots entry")


@pytest.mark.gen_test(timeout=30)
async def test_a_workspace_never_overlaps_the_data_dir(api: Api, tmp_path: Path) -> None:
    data = tmp_path / "data"  # make_config's store.data_dir, under the root tmp_path
    managed = await api.session(name="managed")  # the daemon makes its workspace in the data dir
    await refused(api, data, "the daemon's data dir")
    await refused(api, Path(managed["workspace"]), "the daemon's data dir")
    await refused(api, data / "workspaces", "the daemon's data dir")


@pytest.mark.gen_test(timeout=30)
async def test_a_workspace_never_overlaps_the_checkpoints_dir(api: Api, tmp_path: Path) -> None:
    """checkpoints.dir holds every workspace's recorded files."""
    (tmp_path / "ckpts" / "inside").mkdir(parents=True)
    await refused(api, tmp_path / "ckpts", "checkpoints")
    await refused(api, tmp_path / "ckpts" / "inside", "checkpoints")
