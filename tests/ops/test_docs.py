"""``GET /docs``: Swagger UI served from the installed package's files, with
only local references, a framing ban, and the assets it needs."""

from __future__ import annotations

import gzip
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from roo_daemon.api.docs import INIT_SCRIPT_NAME, accepts_gzip, swagger_ui_dir
from tests.conftest import Api
from tests.contract import check_response


class References(HTMLParser):
    """Every URL an HTML page makes the browser load or follow."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts = 0
        self._in_script_without_src = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        for key in ("src", "href", "action", "data", "poster"):
            if a.get(key):
                self.urls.append(a[key])  # type: ignore[arg-type]
        self._in_script_without_src = tag == "script" and not a.get("src")

    def handle_data(self, data: str) -> None:
        if self._in_script_without_src and data.strip():
            self.inline_scripts += 1

    def handle_endtag(self, tag: str) -> None:
        self._in_script_without_src = False


@pytest.mark.gen_test(timeout=15)
async def test_docs_page_references_only_local_assets_and_forbids_framing(api: Api) -> None:
    r = await api.get("/docs")
    assert r.status == 200
    assert r.headers["Content-Type"] == "text/html; charset=utf-8"
    csp = [d.strip() for d in r.headers["Content-Security-Policy"].split(";")]
    assert "frame-ancestors 'none'" in csp
    assert "script-src 'self'" in csp  # no inline or foreign script can run
    refs = References()
    refs.feed(r.body.decode())
    assert refs.inline_scripts == 0
    assert refs.urls, "the page loads nothing?"
    for url in refs.urls:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc, f"{url} is not local"
        # Relative, so the page works behind a proxy that adds a path prefix.
        assert not url.startswith("/") and url.startswith("docs/assets/"), url
        resolved = urljoin("/docs", url)
        asset = await api.get(resolved)
        assert asset.status == 200, resolved
        assert asset.body, resolved
    scripts = [u.rsplit("/", 1)[1] for u in refs.urls if u.endswith(".js")]
    assert scripts == ["swagger-ui-bundle.js", INIT_SCRIPT_NAME]
    assert any(u.endswith("swagger-ui.css") for u in refs.urls)


@pytest.mark.gen_test(timeout=15)
async def test_assets_are_the_packaged_swagger_ui_and_the_init_script_loads_openapi_yaml(api: Api) -> None:
    bundle = await api.get("/docs/assets/swagger-ui-bundle.js")
    assert bundle.headers["Content-Type"].startswith("text/javascript")
    assert bundle.body == (swagger_ui_dir() / "swagger-ui-bundle.js").read_bytes()
    assert "max-age=3600" in bundle.headers["Cache-Control"]
    css = await api.get("/docs/assets/swagger-ui.css")
    assert css.headers["Content-Type"].startswith("text/css")
    icon = await api.get("/docs/assets/favicon-32x32.png")
    assert icon.headers["Content-Type"] == "image/png" and icon.body.startswith(b"\x89PNG")
    init = (await api.get(f"/docs/assets/{INIT_SCRIPT_NAME}")).body.decode()
    assert 'url: "openapi.yaml"' in init
    assert "validatorUrl: null" in init  # no badge fetched from validator.swagger.io
    # The spec it loads is served, and it documents the docs themselves.
    spec = await api.get("/openapi.yaml")
    assert spec.status == 200 and b"operationId: getDocs" in spec.body


@pytest.mark.gen_test(timeout=15)
async def test_text_assets_are_gzipped_when_accepted(api: Api) -> None:
    client = AsyncHTTPClient()
    url = api.base_url + "/docs/assets/swagger-ui-bundle.js"
    r = await client.fetch(HTTPRequest(url, headers={"Accept-Encoding": "gzip"}, decompress_response=False))
    check_response("GET", "/docs/assets/swagger-ui-bundle.js", r.code, r.headers, r.body)
    assert r.headers["Content-Encoding"] == "gzip" and r.headers["Vary"] == "Accept-Encoding"
    assert gzip.decompress(r.body) == (swagger_ui_dir() / "swagger-ui-bundle.js").read_bytes()
    assert len(r.body) < len(gzip.decompress(r.body)) / 2
    plain = await client.fetch(HTTPRequest(url, headers={"Accept-Encoding": "identity"}, decompress_response=False))
    assert "Content-Encoding" not in plain.headers


def test_accepts_gzip_reads_q_values() -> None:
    assert accepts_gzip("gzip, deflate, br")
    assert accepts_gzip("br;q=1.0, gzip;q=0.8")
    assert accepts_gzip("*")
    assert not accepts_gzip("gzip;q=0")
    assert not accepts_gzip("identity")
    assert not accepts_gzip("gzip;q=nonsense")
    assert not accepts_gzip("")


@pytest.mark.gen_test(timeout=15)
async def test_unknown_or_malformed_asset_names_are_problems_and_read_no_file(api: Api) -> None:
    for name in ("index.html", "swagger-editor-bundle.js", "..", "LICENSE"):
        r = await api.get(f"/docs/assets/{name}")
        assert r.status == 404, name
        assert r.json["type"] == "urn:roo-daemon:problem:not-found"
    r = await api.get("/docs/assets/%2E%2E%2Fsetup.py")
    assert r.status in (404, 422)  # never a file outside the table
    r = await api.get("/docs/assets/a%20b")
    assert r.status == 422 and r.json["errors"][0]["pointer"] == "/path/asset"


@pytest.mark.gen_test(timeout=15)
async def test_docs_need_no_key_even_when_keys_are_configured(http_server: object, base_url: str, ctx: object) -> None:
    """Like /openapi.yaml, the docs are public: the page is useless if the
    browser must authenticate to load it (the Authorize button sets the key
    for "Try it out")."""
    from roo_daemon.auth import Authenticator

    ctx.auth = Authenticator([{"name": "k", "sha256": "0" * 64, "scopes": ["read"]}])  # type: ignore[attr-defined]
    api = Api(base_url)
    assert (await api.get("/api/v1/sessions")).status == 401
    assert (await api.get("/docs")).status == 200
    assert (await api.get("/docs/assets/swagger-ui.css")).status == 200


@pytest.mark.gen_test(timeout=15)
async def test_docs_with_a_trailing_slash_redirects_to_docs(api: Api) -> None:
    """``/docs/`` is what people type; its relative asset URLs would resolve
    under ``/docs/docs/``, so it redirects (relatively: a proxy's path
    prefix is kept)."""
    for path, location in [("/docs/", "../docs"), ("/docs/?x=1", "../docs?x=1")]:
        r = await api.request("GET", path, headers={}, check=True)
        assert r.status == 301, (path, r.status, r.body)
        assert r.headers["Location"] == location
        assert urljoin(f"http://h/prefix{path}", location).startswith("http://h/prefix/docs")
    page = await api.get(urljoin("/docs/", "../docs"))
    assert page.status == 200 and b"swagger-ui" in page.body
