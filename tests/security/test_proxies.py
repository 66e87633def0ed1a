"""``X-Forwarded-For`` / ``X-Real-IP`` move the per-address limit only when
the peer is a configured trusted proxy; otherwise a client cannot pick the
address its wrong keys are counted against."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Api
from tests.security.conftest import secure_config

SESSIONS = "/api/v1/sessions"


@pytest.fixture
def proxies() -> list[str]:
    return []


@pytest.fixture
def config(tmp_path: Path, proxies: list[str]) -> dict[str, Any]:
    return secure_config(
        tmp_path,
        server={"trusted_proxies": proxies},
        limits={"auth_failures_per_ip": {"rate": 0.001, "burst": 2}},
    )


async def wrong_key(api: Api, **forwarded: str) -> int:
    headers = {"Authorization": "Bearer roo_wrong", **{k.replace("_", "-"): v for k, v in forwarded.items()}}
    return (await api.get(SESSIONS, headers=headers)).status


@pytest.mark.parametrize("proxies", [[], ["10.0.0.0/8"]])
@pytest.mark.gen_test(timeout=15)
async def test_an_untrusted_peer_cannot_pick_its_address(api: Api, proxies: list[str]) -> None:
    """The test client connects from 127.0.0.1, which is not trusted here:
    each new forwarded address still lands in 127.0.0.1's bucket."""
    assert await wrong_key(api, X_Forwarded_For="198.51.100.1") == 401
    assert await wrong_key(api, X_Real_IP="198.51.100.2") == 401
    assert await wrong_key(api, X_Forwarded_For="198.51.100.3") == 429
    assert await wrong_key(api, X_Forwarded_For="198.51.100.4, 198.51.100.5") == 429
    assert await wrong_key(api) == 429


@pytest.mark.parametrize("proxies", [["127.0.0.1/32"]])
@pytest.mark.gen_test(timeout=15)
async def test_a_trusted_proxy_names_the_client(api: Api, proxies: list[str]) -> None:
    """From a trusted proxy the forwarded address is the client: each has its own bucket."""
    assert await wrong_key(api, X_Forwarded_For="198.51.100.1") == 401
    assert await wrong_key(api, X_Forwarded_For="198.51.100.1") == 401
    assert await wrong_key(api, X_Forwarded_For="198.51.100.1") == 429
    # Another client behind the same proxy is not blocked by the first.
    assert await wrong_key(api, X_Forwarded_For="198.51.100.2") == 401
    assert await wrong_key(api, X_Real_IP="198.51.100.3") == 401
    # A client that prepends a fake hop is still counted as itself (the
    # proxy appends the real peer: the rightmost untrusted hop wins).
    assert await wrong_key(api, X_Forwarded_For="203.0.113.9, 198.51.100.1") == 429
    # Without forwarding headers the proxy itself is the client.
    assert await wrong_key(api) == 401
