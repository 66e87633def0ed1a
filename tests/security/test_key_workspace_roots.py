"""Per-key workspace roots: ``workspaces.roots`` is shared by every key, so on
a daemon serving several tenants any key could open a session on a directory
another tenant works in under the same root, and read or rewrite it with the
agent's tools. A key's ``workspace_roots`` narrows where its sessions may
live; keys without it keep the daemon-wide roots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from roo_daemon.auth import Authenticator, hash_key
from tests.conftest import make_config
from tests.security.conftest import TOKENS, auth_keys


@pytest.fixture
def config(tmp_path: Path) -> dict[str, Any]:
    roots = tmp_path / "repos"
    for name in ("alice-app", "alice-lib", "bob-app", "shared"):
        (roots / name).mkdir(parents=True)
    keys = auth_keys()
    for key in keys:
        if key["name"] == "alice":
            key["workspace_roots"] = [str(roots / "alice-app"), str(roots / "alice-lib")]
        if key["name"] == "bob":
            key["workspace_roots"] = [str(roots / "bob-app")]
    return make_config(tmp_path, auth={"keys": keys}, workspaces={"roots": [str(roots)]})


async def refused(api: Any, workspace: Path) -> dict[str, Any]:
    r = await api.post("/api/v1/sessions", {"workspace": str(workspace)})
    assert r.status == 422, (workspace, r.status, r.body)
    error = r.json["errors"][0]
    assert error["pointer"] == "/body/workspace"
    return error


@pytest.mark.gen_test(timeout=30)
async def test_a_key_with_roots_opens_sessions_only_under_them(as_: Any, tmp_path: Path) -> None:
    roots = tmp_path / "repos"
    alice, bob, writer = as_("alice"), as_("bob"), as_("writer")
    assert (await alice.session(workspace=str(roots / "alice-app")))["workspace"] == str(roots / "alice-app")
    (roots / "alice-lib" / "src").mkdir()
    assert (await alice.session(workspace=str(roots / "alice-lib" / "src")))["workspace"].endswith("alice-lib/src")
    assert (await bob.session(workspace=str(roots / "bob-app")))["workspace"] == str(roots / "bob-app")

    error = await refused(bob, roots / "alice-app")
    assert "outside the workspace roots of key 'bob'" in error["message"], error
    assert "alice" not in error["message"]  # nothing said about whose roots hold it
    await refused(bob, roots / "bob-app" / ".." / "alice-lib")  # resolved before the check
    await refused(alice, roots / "shared")
    # A key without workspace_roots keeps the daemon-wide roots.
    assert (await writer.session(workspace=str(roots / "shared")))["workspace"] == str(roots / "shared")


@pytest.mark.gen_test(timeout=30)
async def test_a_symlink_into_another_keys_root_is_refused(as_: Any, tmp_path: Path) -> None:
    roots = tmp_path / "repos"
    (roots / "bob-app" / "sneaky").symlink_to(roots / "alice-app")
    await refused(as_("bob"), roots / "bob-app" / "sneaky")


def test_the_key_carries_its_roots_and_reload_keeps_them(tmp_path: Path) -> None:
    keys = [{"name": "ci", "sha256": hash_key(TOKENS["alice"]), "workspace_roots": [str(tmp_path)]}]
    principal = Authenticator(keys).from_token(TOKENS["alice"])
    assert principal is not None and principal.workspace_roots == (str(tmp_path),)
    plain = Authenticator([{"name": "x", "sha256": hash_key(TOKENS["bob"])}]).from_token(TOKENS["bob"])
    assert plain is not None and plain.workspace_roots is None
