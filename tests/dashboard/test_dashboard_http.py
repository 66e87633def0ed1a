"""``GET /`` and its files: served without a key, from the package, with a
Content-Security-Policy that allows no inline script or style and no other
origin; the page references only its own files, by relative URLs."""

from __future__ import annotations

import re
from typing import Any

import pytest

from roo_daemon.auth import hash_key
from roo_daemon.dashboard.handlers import ASSETS
from tests.conftest import Api, make_config


@pytest.fixture
def config(tmp_path) -> dict[str, Any]:
    keys = [{"name": "viewer", "sha256": hash_key("dashboard-http-key"), "scopes": ["read"]}]
    return make_config(tmp_path, auth={"keys": keys})


@pytest.mark.gen_test(timeout=10)
async def test_the_page_needs_no_key_and_forbids_inline_and_foreign_code(api: Api) -> None:
    r = await api.get("/")
    assert r.status == 200 and r.headers["Content-Type"] == "text/html; charset=utf-8"
    csp = r.headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert directives["connect-src"] == "'self'" and directives["frame-ancestors"] == "'none'"
    page = r.body.decode()
    assert re.findall(r"<script[^>]*>", page) == ['<script src="dashboard/app.js" defer>']
    assert "<style" not in page and " style=" not in page
    assert not re.search(r"<[^>]+\son[a-z]+=", page)  # no inline event handlers
    # Only relative references to its own files: nothing from a CDN, and a path prefix is kept.
    refs = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert all(not re.match(r"[a-z]+://|//|/", ref) for ref in refs), refs
    assert {"dashboard/app.js", "dashboard/app.css"} <= set(refs)


@pytest.mark.gen_test(timeout=10)
async def test_its_files_are_served_and_nothing_else(api: Api) -> None:
    for name, ctype in ASSETS.items():
        r = await api.get(f"/dashboard/{name}")
        assert r.status == 200 and r.headers["Content-Type"] == ctype and r.body, name
        head = await api.request("HEAD", f"/dashboard/{name}")
        assert head.status == 200 and head.body == b"" and head.headers["Content-Length"] == str(len(r.body))
    js = (await api.get("/dashboard/app.js")).body.decode()
    # No way around the CSP from the script either: no eval, no HTML parsing of data.
    for forbidden in ("eval(", "innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "new Function"):
        assert forbidden not in js, forbidden
    r = await api.get("/dashboard/index.html")
    assert r.status == 404 and r.headers["Content-Type"] == "application/problem+json"
    r = await api.get("/dashboard/..%2Fhandlers.py")
    assert r.status in (404, 422) and r.headers["Content-Type"] == "application/problem+json"
    assert (await api.request("POST", "/")).status == 405
