"""Rate limits on the live daemon: per principal and class of route, 429
problems with ``Retry-After`` and ``RateLimit-*``, counted in
``rate_limited_total{class}``; wrong keys limited per client address."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Api
from tests.security.conftest import TOKENS, secure_config

SESSIONS = "/api/v1/sessions"
NEVER = 0.001  # tokens per second: nothing refills during a test


@pytest.fixture
def config(tmp_path: Path) -> dict[str, Any]:
    return secure_config(
        tmp_path,
        limits={
            "read": {"rate": NEVER, "burst": 2},
            "write": {"rate": NEVER, "burst": 3},
            "task_create": {"rate": NEVER, "burst": 1},
            "auth_failures_per_ip": {"rate": NEVER, "burst": 3},
        },
    )


def assert_429(r: Any, limit: int) -> None:
    assert r.status == 429, r.body
    assert r.headers["Content-Type"].startswith("application/problem+json")
    assert r.json["type"] == "urn:roo-daemon:problem:too-many-requests" and r.json["status"] == 429
    retry = int(r.headers["Retry-After"])
    assert 1 <= retry <= 1 / NEVER + 1
    assert r.headers["RateLimit-Limit"] == str(limit)
    assert r.headers["RateLimit-Remaining"] == "0"
    assert int(r.headers["RateLimit-Reset"]) >= retry


async def limited_count(api: Api, cls: str) -> float:
    text = (await api.get("/metrics")).body.decode()
    m = re.search(rf'^rate_limited_total\{{class="{cls}"\}} (\S+)$', text, re.M)
    return float(m.group(1)) if m else 0.0


@pytest.mark.gen_test(timeout=15)
async def test_reads_over_the_burst_are_429_per_principal(api: Api, as_: Any) -> None:
    alice, bob = as_("alice"), as_("bob")
    assert (await alice.get(SESSIONS)).status == 200
    assert (await alice.get(SESSIONS)).status == 200
    assert_429(await alice.get(SESSIONS), limit=2)
    assert_429(await alice.get(f"{SESSIONS}/ses_{'0' * 32}"), limit=2)  # every read route shares the class
    assert await limited_count(api, "read") == 2
    # Bob has his own bucket; alice's writes have theirs.
    assert (await bob.get(SESSIONS)).status == 200
    assert (await alice.post(SESSIONS, {})).status == 201


@pytest.mark.gen_test(timeout=15)
async def test_task_creation_has_its_own_bucket(api: Api, as_: Any) -> None:
    alice = as_("alice")
    session = await alice.session(provider="hang")  # write 1 of 3
    await alice.task(session["id"])  # task_create 1 of 1
    r = await alice.post(f"{SESSIONS}/{session['id']}/tasks", {"prompt": "again"})
    assert_429(r, limit=1)
    assert "task_create" in r.json["detail"]
    assert await limited_count(api, "task_create") == 1
    # Other writes are still allowed: the classes are separate.
    assert (await alice.post(SESSIONS, {})).status == 201  # write 2 of 3
    assert (await alice.delete(f"{SESSIONS}/{session['id']}")).status == 204  # write 3 of 3
    r = await alice.post(SESSIONS, {})
    assert_429(r, limit=3)
    assert await limited_count(api, "write") == 1


@pytest.mark.gen_test(timeout=15)
async def test_wrong_keys_are_limited_per_address(api: Api, as_: Any) -> None:
    """Three wrong keys from 127.0.0.1 are 401; then every presented key from
    there is 429 before it is checked, the right one included, so a guesser
    cannot tell a hit from a miss. A request with no key guesses nothing: 401."""
    for i in range(3):
        r = await api.get(SESSIONS, headers={"Authorization": f"Bearer roo_guess{i}"})
        assert r.status == 401, r.body
    for headers in ({"Authorization": "Bearer roo_guess9"}, {"Authorization": f"Bearer {TOKENS['alice']}"}):
        assert_429(await api.get(SESSIONS, headers=headers), limit=3)
    assert (await api.get(SESSIONS)).status == 401
    assert await limited_count(api, "auth_failures_per_ip") == 2


@pytest.mark.gen_test(timeout=15)
async def test_a_blocked_address_is_blocked_on_the_websocket_too(api: Api) -> None:
    from tornado.httpclient import HTTPClientError

    from tests.conftest import WsClient

    for i in range(3):
        assert (await api.get(SESSIONS, headers={"Authorization": f"Bearer roo_guess{i}"})).status == 401
    with pytest.raises(HTTPClientError) as err:
        await WsClient.connect(api.base_url, {"Authorization": f"Bearer {TOKENS['alice']}"})
    assert err.value.code == 429 and err.value.response.headers["Retry-After"]
    # The browser path, a key in the first frame: an error frame, then 1008.
    ws = await WsClient.connect(api.base_url)
    await ws.send({"op": "auth", "token": TOKENS["alice"]})
    err_frame = await ws.recv()
    assert err_frame["event"] == "error" and err_frame["data"]["code"] == "too-many-requests", err_frame
    assert await ws.recv() is None and ws.conn.close_code == 1008
