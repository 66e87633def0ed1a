"""``HEAD`` on every ``GET`` route (RFC 9110 9.3.2): the status and headers
the ``GET`` would get, no body. Link checkers, monitors and ``curl -I`` use
it; it used to be 405."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from roo_daemon.auth import hash_key
from roo_daemon.models import FINAL_STATUSES as FINAL
from tests.conftest import Api, make_config

KEY = "head-test-key-not-secret"


@pytest.fixture
def config(tmp_path) -> dict[str, Any]:
    keys = [{"name": "reader", "sha256": hash_key(KEY), "scopes": ["read"]}]
    return make_config(tmp_path, auth={"keys": keys})


@pytest.fixture
def reader(http_server: Any, base_url: str) -> Api:
    return Api(base_url, token=KEY)


async def same_as_get(api: Api, path: str) -> None:
    got = await api.get(path)
    head = await api.request("HEAD", path)
    assert head.status == got.status, (path, head.status, got.status)
    assert head.body == b"", path
    assert head.headers["Content-Type"] == got.headers["Content-Type"], path
    if path != "/metrics":  # its figures move between the two requests
        assert head.headers["Content-Length"] == got.headers["Content-Length"], path


@pytest.mark.gen_test(timeout=30)
async def test_head_answers_like_get_without_a_body(reader: Api, ctx: Any) -> None:
    # A session and a task made directly (the key is read-only).
    from roo_daemon.auth import Principal

    owner = Principal("reader", frozenset({"read", "write"}))
    session, _ = await ctx.sessions.create(owner, {"provider": "instant"}, None)
    task, _ = await ctx.tasks.create(owner, session.id, {"prompt": "hi"}, None)
    # Compare answers that cannot change between the GET and the HEAD: a
    # running task's document (and its list) grows as it goes.
    while (await reader.get(f"/api/v1/sessions/{session.id}/tasks/{task.id}")).json["status"] not in FINAL:
        await asyncio.sleep(0.02)
    for path in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.yaml",
        "/openapi.json",
        "/docs",
        "/docs/assets/roo-daemon-docs.js",
        "/api/v1/sessions",
        "/",
        "/dashboard/app.js",
        "/api/v1/providers",
        "/api/v1/tasks?status=completed",
        f"/api/v1/sessions/{session.id}",
        f"/api/v1/sessions/{session.id}/tasks",
        f"/api/v1/sessions/{session.id}/tasks/{task.id}",
        f"/api/v1/sessions/{session.id}/tasks/{task.id}/events?after=0",
    ]:
        await same_as_get(reader, path)


@pytest.mark.gen_test(timeout=30)
async def test_head_errors_are_the_get_errors_without_a_body(reader: Api, base_url: str) -> None:
    anonymous = Api(base_url)
    r = await anonymous.request("HEAD", "/api/v1/sessions")
    assert r.status == 401 and r.body == b"" and r.headers["WWW-Authenticate"].startswith("Bearer")
    r = await reader.request("HEAD", "/api/v1/sessions/ses_" + "0" * 32)
    assert r.status == 404 and r.body == b"" and r.headers["Content-Type"] == "application/problem+json"
    r = await reader.request("HEAD", "/api/v1/sessions?limit=0")  # validated like the GET
    assert r.status == 422 and r.body == b""


@pytest.mark.gen_test(timeout=30)
async def test_head_is_listed_in_allow_only_where_get_is(reader: Api) -> None:
    r = await reader.request("PUT", "/api/v1/sessions")
    assert r.status == 405 and "HEAD" in r.json["allow"] and "GET" in r.json["allow"]
    r = await reader.request("HEAD", "/api/v1/sessions/ses_" + "0" * 32 + "/tasks/tsk_" + "0" * 32 + "/responses")
    assert r.status == 405, "a POST-only route does not answer HEAD"
