"""Sessions over REST: creation (defaults, workspace rules, providers),
pagination, deletion (with live tasks) and Idempotency-Key."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from roo_daemon.models import AUTO_APPROVE_DEFAULTS
from tests.conftest import Api, Response, WsClient

SESSIONS = "/api/v1/sessions"


def root_of(ctx: Any) -> Path:
    """The one configured workspace root (make_config's tmp_path/roots)."""
    return Path(ctx.config["workspaces"]["roots"][0])


def assert_422(r: Response, pointer: str) -> dict[str, Any]:
    assert r.status == 422, r.body
    doc = r.json
    assert pointer in [e["pointer"] for e in doc["errors"]], doc
    return doc


async def count_rows(ctx: Any, table: str, session_id: str) -> int:
    column = "id" if table == "sessions" else "session_id"
    return await ctx.db.read(
        lambda c: c.execute(f"SELECT COUNT(*) FROM {table} WHERE {column} = ?", (session_id,)).fetchone()[0]
    )


async def all_sessions(api: Api, limit: int = 200) -> list[dict[str, Any]]:
    r = await api.get(f"{SESSIONS}?limit={limit}")
    assert r.status == 200 and r.json["next_cursor"] is None
    return r.json["items"]


# -- create -------------------------------------------------------------------


@pytest.mark.gen_test(timeout=10)
async def test_create_with_defaults(api: Api, ctx: Any) -> None:
    """An empty body gives a managed workspace under data_dir/workspaces/{id}
    and the daemon defaults; 201 with Location; GET returns the same."""
    r = await api.post(SESSIONS)
    assert r.status == 201, r.body
    s = r.json
    assert r.headers["Location"] == f"{SESSIONS}/{s['id']}"
    assert "Idempotent-Replayed" not in r.headers
    workspace = Path(ctx.data_dir) / "workspaces" / s["id"]
    assert s["workspace"] == str(workspace) and workspace.is_dir()
    assert s["workspace_managed"] is True
    assert (s["name"], s["mode"], s["provider"], s["provider_kind"]) == (None, "code", "demo", "scripted")
    assert s["auto_approve"] == AUTO_APPROVE_DEFAULTS
    assert s["metadata"] == {}
    got = await api.get(r.headers["Location"])
    assert got.status == 200 and got.json == s
    assert await count_rows(ctx, "sessions", s["id"]) == 1


@pytest.mark.gen_test(timeout=10)
async def test_create_with_empty_json_object(api: Api) -> None:
    """``{}`` is the same as no body."""
    s = await api.session()
    assert s["workspace_managed"] is True and s["provider"] == "demo"


@pytest.mark.gen_test(timeout=10)
async def test_create_with_all_fields(api: Api, ctx: Any) -> None:
    """Every field given is kept; auto_approve merges over the defaults."""
    ws = root_of(ctx) / "project"
    ws.mkdir()
    body = {
        "name": "refactor-auth",
        "workspace": str(ws),
        "mode": "architect",
        "provider": "instant",
        "auto_approve": {"read_only": True, "execute": True, "allowed_commands": ["npm test"]},
        "metadata": {"ticket": "ENG-1234", "owner": "alice"},
    }
    s = await api.session(**body)
    assert s["name"] == "refactor-auth"
    assert s["workspace"] == str(ws.resolve()) and s["workspace_managed"] is False
    assert (s["mode"], s["provider"], s["provider_kind"]) == ("architect", "instant", "scripted")
    assert s["auto_approve"] == {
        **AUTO_APPROVE_DEFAULTS,
        "read_only": True,
        "execute": True,
        "allowed_commands": ["npm test"],
    }
    assert s["metadata"] == {"ticket": "ENG-1234", "owner": "alice"}
    assert not (Path(ctx.data_dir) / "workspaces" / s["id"]).exists()
    assert (await api.get(f"{SESSIONS}/{s['id']}")).json == s


@pytest.mark.gen_test(timeout=10)
async def test_workspace_under_root_is_accepted(api: Api, ctx: Any) -> None:
    """A directory under a configured root is accepted unmanaged; a path
    with .. that stays inside is normalised. (The root itself is not: see
    tests/reliability/test_workspace_roots.py.)"""
    root = root_of(ctx)
    (root / "a" / "b").mkdir(parents=True)
    s = await api.session(workspace=str(root / "a" / "b"))
    assert s["workspace"] == str((root / "a" / "b").resolve()) and s["workspace_managed"] is False
    s = await api.session(workspace=f"{root}/a/b/..")
    assert s["workspace"] == str((root / "a").resolve())


@pytest.mark.gen_test(timeout=10)
async def test_workspace_outside_roots_is_422(api: Api, ctx: Any, tmp_path: Path) -> None:
    """Existing directories outside every root are refused, including via ..
    and a sibling whose name only starts like the root."""
    root = root_of(ctx)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    lookalike = Path(f"{root}-evil")
    lookalike.mkdir()
    for path in (outside, lookalike, tmp_path, Path(f"{root}/../elsewhere"), Path("/")):
        doc = assert_422(await api.post(SESSIONS, {"workspace": str(path)}), "/body/workspace")
        assert "workspaces.roots" in doc["errors"][0]["message"], path
    assert await all_sessions(api) == []


@pytest.mark.gen_test(timeout=10)
async def test_workspace_must_be_an_existing_absolute_directory(api: Api, ctx: Any) -> None:
    """Nonexistent paths, relative paths and files are 422 on /body/workspace;
    nothing is created on disk."""
    root = root_of(ctx)
    (root / "file.txt").write_text("not a dir")
    (root / "real").mkdir()
    cases = {
        str(root / "missing"): "is not an existing directory",
        "relative/path": "must be an absolute path",
        "real": "must be an absolute path",
        str(root / "file.txt"): "is not an existing directory",
    }
    for path, message in cases.items():
        doc = assert_422(await api.post(SESSIONS, {"workspace": path}), "/body/workspace")
        assert doc["errors"] == [{"pointer": "/body/workspace", "message": message}], path
    assert not (root / "missing").exists()
    assert await all_sessions(api) == []


@pytest.mark.gen_test(timeout=10)
async def test_symlink_escaping_the_root_is_422(api: Api, ctx: Any, tmp_path: Path) -> None:
    """A symlink under a root that points outside it is judged by its target;
    one pointing inside is accepted as its resolved path."""
    root = root_of(ctx)
    outside = tmp_path / "secret"
    outside.mkdir()
    (root / "escape").symlink_to(outside, target_is_directory=True)
    assert_422(await api.post(SESSIONS, {"workspace": str(root / "escape")}), "/body/workspace")
    (root / "inner").mkdir()
    (root / "alias").symlink_to(root / "inner", target_is_directory=True)
    s = await api.session(workspace=str(root / "alias"))
    assert s["workspace"] == str((root / "inner").resolve())


@pytest.mark.gen_test(timeout=10)
async def test_unknown_provider_is_422(api: Api) -> None:
    """A provider name not configured is 422 on /body/provider, naming the known ones."""
    doc = assert_422(await api.post(SESSIONS, {"provider": "gpt-99"}), "/body/provider")
    assert "demo" in doc["errors"][0]["message"]
    assert_422(await api.post(SESSIONS, {"provider": "has space"}), "/body/provider")
    assert await all_sessions(api) == []


@pytest.mark.gen_test(timeout=10)
async def test_bad_mode_is_422(api: Api) -> None:
    """Modes are an enumeration."""
    for mode in ("wizard", "", 3, None):
        assert_422(await api.post(SESSIONS, {"mode": mode}), "/body/mode")
    assert await all_sessions(api) == []


@pytest.mark.gen_test(timeout=10)
async def test_bad_metadata_is_422(api: Api) -> None:
    """Metadata values must be strings."""
    assert_422(await api.post(SESSIONS, {"metadata": {"n": 1}}), "/body/metadata/n")


# -- list ---------------------------------------------------------------------


@pytest.mark.gen_test(timeout=15)
async def test_list_pagination(api: Api) -> None:
    """5 sessions at limit=2 are 3 pages (2, 2, 1), the last with a null
    cursor; no duplicates, nothing missing, newest first, stable on repeat."""
    created = [(await api.session(name=f"s{i}"))["id"] for i in range(5)]
    pages: list[list[str]] = []
    cursors: list[str | None] = []
    cursor = None
    while True:
        r = await api.get(f"{SESSIONS}?limit=2" + (f"&cursor={cursor}" if cursor else ""))
        assert r.status == 200
        pages.append([s["id"] for s in r.json["items"]])
        cursor = r.json["next_cursor"]
        cursors.append(cursor)
        if cursor is None:
            break
        assert len(pages) < 5, "pagination does not end"
    assert [len(p) for p in pages] == [2, 2, 1]
    assert cursors[-1] is None and all(cursors[:-1])
    seen = [sid for page in pages for sid in page]
    assert len(seen) == len(set(seen)) == 5
    assert seen == list(reversed(created))  # newest first, as the spec says
    # The same cursor gives the same page again.
    again = await api.get(f"{SESSIONS}?limit=2&cursor={cursors[0]}")
    assert [s["id"] for s in again.json["items"]] == pages[1]
    # The default limit returns everything in one page.
    assert [s["id"] for s in await all_sessions(api)] == seen


@pytest.mark.gen_test(timeout=15)
async def test_list_cursor_survives_inserts_and_deletes(api: Api) -> None:
    """A session created or deleted between pages causes no duplicate and no
    skip among the sessions that existed before."""
    ids = [(await api.session(name=f"s{i}"))["id"] for i in range(4)]
    r = await api.get(f"{SESSIONS}?limit=2")
    first = [s["id"] for s in r.json["items"]]
    await api.session(name="late")
    assert (await api.delete(f"{SESSIONS}/{first[0]}")).status == 204
    r = await api.get(f"{SESSIONS}?limit=2&cursor={r.json['next_cursor']}")
    second = [s["id"] for s in r.json["items"]]
    assert r.json["next_cursor"] is None
    assert sorted(first + second) == sorted(ids)


@pytest.mark.gen_test(timeout=10)
async def test_list_bad_cursor_is_422(api: Api) -> None:
    """Cursors the daemon did not issue, or that break the pattern, are 422."""
    await api.session()
    for cursor in ("zzzz", "bm90LWEtbnVtYmVy", "AAAA", "a" * 201, "has%20space", "%2B%2F"):
        r = await api.get(f"{SESSIONS}?cursor={cursor}")
        assert_422(r, "/query/cursor")


@pytest.mark.gen_test(timeout=10)
async def test_list_limit_bounds(api: Api) -> None:
    """limit must be 1..200: 0 and 201 are 422, 1 and 200 are fine."""
    for limit in (0, 201):
        doc = assert_422(await api.get(f"{SESSIONS}?limit={limit}"), "/query/limit")
        assert [e["pointer"] for e in doc["errors"]] == ["/query/limit"]
    for limit in (1, 200):
        assert (await api.get(f"{SESSIONS}?limit={limit}")).status == 200


# -- get / delete -------------------------------------------------------------


@pytest.mark.gen_test(timeout=10)
async def test_get_unknown_session_is_404(api: Api) -> None:
    r = await api.get(f"{SESSIONS}/ses_{'a' * 32}")
    assert r.status == 404 and r.json["type"] == "urn:roo-daemon:problem:not-found"


@pytest.mark.gen_test(timeout=10)
async def test_delete_managed_session_removes_workspace(api: Api, ctx: Any) -> None:
    """DELETE is 204; then GET and a second DELETE are 404, the session is
    gone from the list and the store, and its managed workspace from disk."""
    s = await api.session()
    keep = await api.session()
    (Path(s["workspace"]) / "sub").mkdir()
    (Path(s["workspace"]) / "sub" / "f.txt").write_text("x")
    r = await api.delete(f"{SESSIONS}/{s['id']}")
    assert r.status == 204 and r.body == b""
    assert (await api.get(f"{SESSIONS}/{s['id']}")).status == 404
    assert (await api.delete(f"{SESSIONS}/{s['id']}")).status == 404
    assert [x["id"] for x in await all_sessions(api)] == [keep["id"]]
    assert not Path(s["workspace"]).exists()
    assert Path(keep["workspace"]).is_dir()
    assert await count_rows(ctx, "sessions", s["id"]) == 0


@pytest.mark.gen_test(timeout=10)
async def test_delete_unmanaged_session_keeps_files(api: Api, ctx: Any) -> None:
    """Deleting a session on a user's directory never touches its files."""
    ws = root_of(ctx) / "user-project"
    (ws / "src").mkdir(parents=True)
    (ws / "src" / "main.py").write_text("print('hi')\n")
    s = await api.session(workspace=str(ws))
    assert (await api.delete(f"{SESSIONS}/{s['id']}")).status == 204
    assert (ws / "src" / "main.py").read_text() == "print('hi')\n"
    assert sorted(p.name for p in ws.iterdir()) == ["src"]
    assert (await api.get(f"{SESSIONS}/{s['id']}")).status == 404


@pytest.mark.gen_test(timeout=20)
async def test_delete_cancels_live_tasks_first(api: Api, ctx: Any, base_url: str) -> None:
    """Deleting a session with a running task cancels the task (its final
    status event is `cancelled`, before `session.deleted`), then removes the
    session's tasks and events from the store."""
    s = await api.session(provider="hang")
    sid = s["id"]
    ws = await WsClient.connect(base_url)
    try:
        await ws.send({"op": "subscribe", "id": "sub", "session_id": sid, "after": 0})
        task = await api.task(sid, "never ends")
        tid = task["id"]
        await ws.recv_until(lambda f: f.get("event") == "task.status" and f["data"]["status"] == "running")
        assert ctx.runner.live(tid) is not None
        assert await count_rows(ctx, "tasks", sid) == 1
        r = await api.delete(f"{SESSIONS}/{sid}")
        assert r.status == 204
        frames = await ws.recv_until(lambda f: f.get("event") == "session.deleted")
    finally:
        ws.close()
    names = [f["event"] for f in frames]
    statuses = [f["data"]["status"] for f in frames if f["event"] == "task.status"]
    assert statuses[-1] == "cancelled", frames
    assert names.index("task.cancelled") < names.index("session.deleted")
    assert ctx.runner.live(tid) is None
    assert (await api.get(f"{SESSIONS}/{sid}/tasks/{tid}")).status == 404
    assert await count_rows(ctx, "tasks", sid) == 0
    remaining = await ctx.db.read(
        lambda c: [r[0] for r in c.execute("SELECT event FROM events WHERE session_id = ?", (sid,))]
    )
    assert remaining == ["session.deleted"]  # only the tombstone, for replaying clients
    assert not Path(s["workspace"]).exists()


@pytest.mark.gen_test(timeout=20)
async def test_delete_cancels_queued_tasks(api: Api, ctx: Any, base_url: str) -> None:
    """Queued tasks (behind the concurrency cap) are cancelled too and never start."""
    cap = ctx.config["engine"]["max_concurrent_tasks"]
    blocker = await api.session(provider="hang")
    s = await api.session(provider="hang")
    blockers = [await api.task(blocker["id"]) for _ in range(cap)]
    queued = await api.task(s["id"])
    assert queued["status"] == "queued"
    assert (await api.delete(f"{SESSIONS}/{s['id']}")).status == 204
    assert ctx.runner.live(queued["id"]) is None
    assert await count_rows(ctx, "tasks", s["id"]) == 0
    # The other session's tasks keep running.
    for t in blockers:
        r = await api.get(f"{SESSIONS}/{blocker['id']}/tasks/{t['id']}")
        assert r.json["status"] in ("queued", "running")


# -- Idempotency-Key ------------------------------------------------------------


@pytest.mark.gen_test(timeout=10)
async def test_idempotent_replay_returns_the_same_session(api: Api) -> None:
    """Same key and body: the first is created, the retry replays it."""
    key = {"Idempotency-Key": "create-0001"}
    first = await api.post(SESSIONS, {"name": "once"}, headers=key)
    assert first.status == 201 and "Idempotent-Replayed" not in first.headers
    second = await api.post(SESSIONS, {"name": "once"}, headers=key)
    assert second.status == 201
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.json == first.json
    assert second.headers["Location"] == first.headers["Location"]
    assert [s["id"] for s in await all_sessions(api)] == [first.json["id"]]


@pytest.mark.gen_test(timeout=10)
async def test_idempotency_key_with_different_body_is_422(api: Api) -> None:
    """Reusing a key for a different body is refused and creates nothing."""
    key = {"Idempotency-Key": "create-0002"}
    first = await api.post(SESSIONS, {"name": "one"}, headers=key)
    assert first.status == 201
    r = await api.post(SESSIONS, {"name": "two"}, headers=key)
    assert_422(r, "/headers/Idempotency-Key")
    assert [s["id"] for s in await all_sessions(api)] == [first.json["id"]]


@pytest.mark.gen_test(timeout=10)
async def test_different_idempotency_keys_create_different_sessions(api: Api) -> None:
    a = await api.post(SESSIONS, {"name": "same"}, headers={"Idempotency-Key": "k-a"})
    b = await api.post(SESSIONS, {"name": "same"}, headers={"Idempotency-Key": "k-b"})
    c = await api.post(SESSIONS, {"name": "same"})
    assert {a.status, b.status, c.status} == {201}
    assert len({a.json["id"], b.json["id"], c.json["id"]}) == 3
    assert "Idempotent-Replayed" not in b.headers
    assert len(await all_sessions(api)) == 3


@pytest.mark.gen_test(timeout=10)
async def test_concurrent_requests_with_one_key_create_once(api: Api, ctx: Any) -> None:
    """Concurrent POSTs with one key: one creation, the rest replays of it."""
    key = {"Idempotency-Key": "race-0001"}
    results = await asyncio.gather(*(api.post(SESSIONS, {"name": "race"}, headers=key) for _ in range(4)))
    assert [r.status for r in results] == [201] * 4
    assert len({r.json["id"] for r in results}) == 1
    replayed = [r.headers.get("Idempotent-Replayed") for r in results]
    assert replayed.count("true") == 3 and replayed.count(None) == 1
    listed = await all_sessions(api)
    assert [s["id"] for s in listed] == [results[0].json["id"]]
    workspaces = os.listdir(Path(ctx.data_dir) / "workspaces")
    assert workspaces == [results[0].json["id"]]  # no orphaned managed workspace
