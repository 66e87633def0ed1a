"""Security headers on every kind of response: ``X-Content-Type-Options:
nosniff`` everywhere, ``Cache-Control: no-store`` on API answers (success,
client error, server error), and a framing ban on ``/docs``."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Api
from tests.security.conftest import bearer

SESSIONS = "/api/v1/sessions"


def assert_secure(r: Any, where: str, cacheable: bool = False) -> None:
    assert r.headers.get("X-Content-Type-Options") == "nosniff", where
    if not cacheable:
        assert r.headers.get("Cache-Control") == "no-store", (where, r.headers.get("Cache-Control"))
    assert r.headers.get("X-Request-ID"), where


@pytest.mark.gen_test(timeout=20)
async def test_every_response_kind_carries_the_security_headers(api: Api, as_: Any, ctx: Any) -> None:
    alice = as_("alice")
    seen: dict[int, Any] = {}

    async def hit(coro: Any) -> Any:
        r = await coro
        seen[r.status] = r
        assert_secure(r, f"{r.status} {r.body[:80]!r}")
        return r

    session = (await hit(alice.post(SESSIONS, {}))).json  # 201
    await hit(alice.get(SESSIONS))  # 200
    await hit(api.get(SESSIONS))  # 401
    await hit(as_("reader").post(SESSIONS, {}))  # 403
    await hit(alice.get("/no/such/route"))  # 404
    await hit(alice.request("PUT", SESSIONS, {}))  # 405
    await hit(alice.post(SESSIONS, body=b"{", headers={"Content-Type": "application/json"}))  # 400
    await hit(alice.post(SESSIONS, body=b"x" * (2 << 20), headers={"Content-Type": "application/json"}))  # 413
    await hit(alice.post(SESSIONS, body=b"name=x", headers={"Content-Type": "text/plain"}))  # 415
    await hit(alice.get(f"{SESSIONS}?limit=0"))  # 422
    await hit(alice.get("/ws"))  # 426
    await hit(alice.delete(f"{SESSIONS}/{session['id']}"))  # 204
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.yaml", "/openapi.json"):
        await hit(api.get(path))

    # 500: an unexpected failure inside a manager.
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom /secret/path")

    ctx.sessions.list = broken
    r = await hit(alice.get(SESSIONS))
    assert r.status == 500 and "boom" not in r.body.decode() and "/secret/path" not in r.body.decode()
    # 503: shutting down.
    ctx.shutting_down = True
    await hit(api.get("/readyz"))
    ctx.shutting_down = False
    assert {200, 201, 204, 400, 401, 403, 404, 405, 413, 415, 422, 426, 500, 503} <= set(seen)


@pytest.mark.gen_test(timeout=20)
async def test_rate_limited_and_cors_answers_carry_them_too(api: Api) -> None:
    """429s come from prepare(), before any handler code: still secured."""
    for i in range(25):
        r = await api.get(SESSIONS, headers={"Authorization": f"Bearer roo_wrong{i}"})
        assert_secure(r, f"attempt {i}")
    assert r.status == 429
    r = await api.request("OPTIONS", SESSIONS, headers={"Origin": "https://x.example"})
    assert_secure(r, "OPTIONS")


@pytest.mark.gen_test(timeout=20)
async def test_docs_may_not_be_framed(api: Api) -> None:
    r = await api.get("/docs")
    assert r.status == 200
    assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
    assert_secure(r, "/docs")
    r = await api.get("/docs/assets/swagger-ui.css", headers=bearer("alice"))
    assert r.status == 200
    assert_secure(r, "docs asset", cacheable=True)
