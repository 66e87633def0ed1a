"""``GET /api/v1/providers``: the profiles a client may name, with their
kind, model and context window, and never anything secret."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from roo_daemon.auth import hash_key
from tests.conftest import PROVIDERS, Api, make_config

READ_KEY = "providers-test-read-key"
WRITE_ONLY_KEY = "providers-test-write-only-key"
SECRET_HEADER = "x-secret-header-value-0ac1"
URL_PASSWORD = "url-password-7d2e"


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("PROVIDERS_TEST_KEY", "sk-the-real-key-never-shown")
    keys = [
        {"name": "reader", "sha256": hash_key(READ_KEY), "scopes": ["read"]},
        {"name": "writer", "sha256": hash_key(WRITE_ONLY_KEY), "scopes": ["write"]},
    ]
    cfg = make_config(tmp_path, auth={"keys": keys})
    cfg["providers"]["gateway"] = {
        "kind": "openai",
        "model": "gpt-4.1-mini",
        "base_url": f"http://user:{URL_PASSWORD}@127.0.0.1:9/v1",
        "api_key_env": "PROVIDERS_TEST_KEY",
        "headers": {"X-Secret": SECRET_HEADER},
        "context_window": 128000,
    }
    cfg["providers"]["claude"] = {"kind": "anthropic", "model": "claude-sonnet-4-5"}
    return cfg


@pytest.mark.gen_test(timeout=10)
async def test_lists_every_profile_by_name_with_its_model_and_window(api: Api) -> None:
    r = await Api(api.base_url, READ_KEY).get("/api/v1/providers")
    assert r.status == 200, r.body
    items = {p["name"]: p for p in r.json["items"]}
    assert [p["name"] for p in r.json["items"]] == sorted([*PROVIDERS, "gateway", "claude"])
    assert items["demo"] == {
        "name": "demo",
        "kind": "scripted",
        "model": "script",
        "context_window": None,
        "max_tokens": None,
        "default": True,  # engine.default_provider
    }
    assert items["gateway"] == {
        "name": "gateway",
        "kind": "openai",
        "model": "gpt-4.1-mini",
        "context_window": 128000,
        "max_tokens": None,
        "default": False,
    }
    # Anthropic's defaults as the provider applies them.
    assert (items["claude"]["context_window"], items["claude"]["max_tokens"]) == (200000, 8192)
    assert [p["name"] for p in r.json["items"] if p["default"]] == ["demo"]


@pytest.mark.gen_test(timeout=10)
async def test_nothing_secret_is_listed(api: Api) -> None:
    body = (await Api(api.base_url, READ_KEY).get("/api/v1/providers")).body.decode()
    for secret in ("sk-the-real-key-never-shown", "PROVIDERS_TEST_KEY", SECRET_HEADER, URL_PASSWORD, "127.0.0.1"):
        assert secret not in body


@pytest.mark.gen_test(timeout=10)
async def test_needs_a_key_with_the_read_scope(api: Api) -> None:
    r = await api.get("/api/v1/providers")
    assert r.status == 401 and r.headers["Content-Type"] == "application/problem+json"
    r = await Api(api.base_url, WRITE_ONLY_KEY).get("/api/v1/providers")
    assert r.status == 403 and r.json["type"] == "urn:roo-daemon:problem:forbidden"
    r = await Api(api.base_url, READ_KEY).request("POST", "/api/v1/providers")
    assert r.status == 405
