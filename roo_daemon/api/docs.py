"""``GET /docs``: Swagger UI for ``openapi.yaml``, served entirely by the daemon.

The UI's JavaScript and CSS come from the ``swagger-ui-py`` package's bundled
copy of Swagger UI (5.x, which renders OpenAPI 3.1), so the page works offline
and loads nothing from a CDN. The package is only used for its files: it is
located with ``importlib.util.find_spec`` and never imported (its import pulls
in Jinja2, which the daemon does not need).

The page's own start-up script is served as an asset too, so the
Content-Security-Policy can forbid inline scripts; ``frame-ancestors 'none'``
keeps the page out of other sites' frames. Every URL in the page is relative
(``docs/assets/...``, ``openapi.yaml``), so it also works behind a reverse
proxy that mounts the daemon under a path prefix.
"""

from __future__ import annotations

import asyncio
import gzip
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from roo_daemon.api.base import ApiHandler
from roo_daemon.problems import Problem

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

# Swagger UI's own files, from the package, with their media types.
_PACKAGED_ASSETS = {
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "favicon-32x32.png": "image/png",
    "favicon-16x16.png": "image/png",
}
INIT_SCRIPT_NAME = "roo-daemon-docs.js"

# validatorUrl null: Swagger UI would otherwise send the spec to
# validator.swagger.io for a badge; this page talks to this daemon only.
# BaseLayout (no top bar): the standalone layout's "Explore" box would let a
# visitor point the page at any URL; this page shows this daemon's spec only.
# The plugin puts the daemon serving the page first in the spec's `servers`,
# so "Try it out" calls this daemon, not the spec's default 127.0.0.1:3000.
INIT_SCRIPT = b"""\
"use strict";
function ThisDaemonFirst() {
  var here = new URL(".", window.location.href).href.replace(/\\/$/, "");
  return {
    statePlugins: {
      spec: {
        wrapActions: {
          updateJsonSpec: function (original) {
            return function (spec) {
              var others = (spec.servers || []).filter(function (s) { return s.url !== here; });
              var servers = [{ url: here, description: "This daemon" }].concat(others);
              return original(Object.assign({}, spec, { servers: servers }));
            };
          },
        },
      },
    },
  };
}
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "openapi.yaml",
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    displayRequestDuration: true,
    docExpansion: "list",
    validatorUrl: null,
    defaultModelsExpandDepth: 1,
    presets: [SwaggerUIBundle.presets.apis],
    plugins: [SwaggerUIBundle.plugins.DownloadUrl, ThisDaemonFirst],
  });
});
"""

PAGE = f"""\
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>roo-daemon API</title>
<link rel="stylesheet" href="docs/assets/swagger-ui.css">
<link rel="icon" type="image/png" href="docs/assets/favicon-32x32.png" sizes="32x32">
<link rel="icon" type="image/png" href="docs/assets/favicon-16x16.png" sizes="16x16">
</head>
<body>
<div id="swagger-ui"></div>
<script src="docs/assets/swagger-ui-bundle.js"></script>
<script src="docs/assets/{INIT_SCRIPT_NAME}"></script>
</body>
</html>
""".encode()


def swagger_ui_dir() -> Path:
    """The directory of Swagger UI's files inside the installed ``swagger-ui-py``."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or spec.origin is None:
        raise RuntimeError("swagger-ui-py is not installed; it is a dependency of roo-daemon (pip install -e .)")
    return Path(spec.origin).parent / "static"


@dataclass(frozen=True)
class Asset:
    content_type: str
    body: bytes
    gzipped: bytes | None  # None when compressing does not pay (PNG)


def _load_asset(name: str) -> Asset:
    """Read (and gzip) one file: blocking, so it runs in a thread."""
    ctype = _PACKAGED_ASSETS[name]
    body = (swagger_ui_dir() / name).read_bytes()
    gz = gzip.compress(body, 6) if ctype.startswith("text/") else None
    return Asset(ctype, body, gz)


_cache: dict[str, Asset] = {
    INIT_SCRIPT_NAME: Asset("text/javascript; charset=utf-8", INIT_SCRIPT, None),
}


async def load_asset(name: str) -> Asset | None:
    """The asset, read off the IOLoop on first use and kept in memory after
    (about 1.6 MB, shared by every daemon in the process); None if unknown."""
    asset = _cache.get(name)
    if asset is None and name in _PACKAGED_ASSETS:
        asset = _cache[name] = await asyncio.to_thread(_load_asset, name)
    return asset


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an ``Accept-Encoding`` value allows gzip (``gzip;q=0`` refuses it)."""
    for item in accept_encoding.split(","):
        coding, _, params = item.strip().partition(";")
        if coding.strip().lower() in ("gzip", "*"):
            q = params.strip().lower()
            if not q.startswith("q="):
                return True
            try:
                return float(q[2:]) > 0
            except ValueError:
                return False
    return False


class DocsHandler(ApiHandler):
    operations = {"GET": "getDocs"}
    auth_required = False

    def get(self) -> None:
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        self.set_header("Referrer-Policy", "no-referrer")
        self.finish(PAGE)


class DocsAssetHandler(ApiHandler):
    operations = {"GET": "getDocsAsset"}
    auth_required = False

    async def get(self, asset: str) -> None:
        found = await load_asset(self.params["asset"])
        if found is None:
            raise Problem(404, f"no docs asset named {asset!r}")
        self.set_header("Content-Type", found.content_type)
        # The files change only when the package is upgraded: an hour of
        # caching spares the browser 1.5 MB per visit.
        self.set_header("Cache-Control", "public, max-age=3600")
        self.set_header("Vary", "Accept-Encoding")
        if found.gzipped is not None and accepts_gzip(self.request.headers.get("Accept-Encoding", "")):
            self.set_header("Content-Encoding", "gzip")
            self.finish(found.gzipped)
        else:
            self.finish(found.body)


class DocsRedirectHandler(ApiHandler):
    """``/docs/`` → ``/docs``: the page's relative asset URLs would resolve
    under ``/docs/docs/``. The Location is relative too, so a reverse
    proxy's path prefix is kept."""

    operations = {"GET": "redirectDocs"}
    auth_required = False

    def get(self) -> None:
        query = self.request.query
        self.redirect("../docs" + (f"?{query}" if query else ""), permanent=True)
