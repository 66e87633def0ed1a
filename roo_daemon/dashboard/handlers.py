"""``GET /`` and ``GET /dashboard/{asset}``: the dashboard's page and files.

The page is static: everything it shows comes from the REST API and ``/ws``
with the key the visitor gives it (kept in ``sessionStorage``), so serving
it needs no key, like ``/docs``. Its script and style sheet are files of
their own, so the Content-Security-Policy allows no inline script and no
inline style; ``connect-src 'self'`` lets the page reach this daemon (its
WebSocket included) and nothing else. Every URL in the page is relative, so
it also works behind a reverse proxy that adds a path prefix.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from importlib import resources

from roo_daemon.api.base import ApiHandler
from roo_daemon.problems import Problem

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

ASSETS = {
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}


@dataclass(frozen=True)
class StaticFile:
    content_type: str
    body: bytes


def _read(name: str) -> bytes:
    """Blocking: runs in a thread, once per file."""
    return resources.files("roo_daemon.dashboard").joinpath("static", name).read_bytes()


_cache: dict[str, StaticFile] = {}


async def load(name: str, content_type: str) -> StaticFile:
    """The file, read off the IOLoop on first use and kept in memory after (a few KB)."""
    found = _cache.get(name)
    if found is None:
        found = _cache[name] = StaticFile(content_type, await asyncio.to_thread(_read, name))
    return found


class DashboardHandler(ApiHandler):
    operations = {"GET": "getDashboard"}
    auth_required = False

    async def get(self) -> None:
        page = await load("index.html", "text/html; charset=utf-8")
        self.set_header("Content-Type", page.content_type)
        self.set_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        self.set_header("Referrer-Policy", "no-referrer")
        self.finish(page.body)


class DashboardAssetHandler(ApiHandler):
    operations = {"GET": "getDashboardAsset"}
    auth_required = False

    async def get(self, asset: str) -> None:
        name = self.params["asset"]
        if name not in ASSETS:
            raise Problem(404, f"no dashboard file named {name!r}")
        found = await load(name, ASSETS[name])
        self.set_header("Content-Type", found.content_type)
        # no-store (the default) would do, but a short cache spares reloads;
        # a new release's files are picked up within a minute.
        self.set_header("Cache-Control", "public, max-age=60")
        self.finish(found.body)
