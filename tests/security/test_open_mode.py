"""Without API keys (loopback only) everyone is the ``local`` admin: nobody
to share with, so no rate limits, but a web page must not reach the daemon
by DNS rebinding (its own host name re-pointed at 127.0.0.1)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from tests.conftest import Api, WsClient, make_config

SESSIONS = "/api/v1/sessions"


@pytest.fixture
def config(tmp_path: Path) -> dict[str, Any]:
    return make_config(tmp_path, limits={"read": {"rate": 0.001, "burst": 1}, "write": {"rate": 0.001, "burst": 1}})


@pytest.mark.gen_test(timeout=15)
async def test_no_rate_limits_without_keys(api: Api) -> None:
    for _ in range(5):
        assert (await api.get(SESSIONS)).status == 200
        assert (await api.post(SESSIONS, {})).status == 201


@pytest.mark.gen_test(timeout=15)
async def test_no_ratelimit_headers_without_keys(api: Api) -> None:
    """No bucket applies, so no answer claims one: success or error."""
    answers = [
        await api.get(SESSIONS),
        await api.post(SESSIONS, {}),
        await api.get(f"{SESSIONS}/ses_{'0' * 32}"),
        await api.get(f"{SESSIONS}?limit=0"),
    ]
    assert [r.status for r in answers] == [200, 201, 404, 422]
    for r in answers:
        assert not [name for name in r.headers if name.lower().startswith("ratelimit-")], (r.status, r.headers)


@pytest.mark.gen_test(timeout=15)
async def test_a_foreign_host_name_is_refused(api: Api) -> None:
    port = api.base_url.rsplit(":", 1)[1]
    for host in (f"rebind.evil.example:{port}", "evil.example", f"192.0.2.1:{port}"):
        r = await api.get(SESSIONS, headers={"Host": host})
        assert r.status == 403 and "loopback" in r.json["detail"], (host, r.body)
        r = await api.post(SESSIONS, {}, headers={"Host": host})
        assert r.status == 403
    assert (await api.get(SESSIONS)).json["items"] == []
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "127.0.0.2", "app.localhost"):
        assert (await api.get(SESSIONS, headers={"Host": host})).status == 200, host
    with pytest.raises(HTTPClientError) as err:
        await WsClient.connect(api.base_url, {"Host": f"rebind.evil.example:{port}"})
    assert err.value.code == 403
