"""Where the daemon is and which key to present: one rule for every client.

The URL is ``--url``, else ``$ROO_DAEMON_URL``, else the local configuration's
``server.host``/``server.port`` (the file from ``--config`` or
``$ROO_DAEMON_CONFIG``; defaults otherwise). The token is ``--token``, else
``$ROO_DAEMON_TOKEN``. A URL may name the HTTP base (``http://host:3000``,
with a path prefix behind a proxy) or the WebSocket (``ws://host:3000/ws``):
both give the same :class:`Endpoint`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

URL_ENV = "ROO_DAEMON_URL"
TOKEN_ENV = "ROO_DAEMON_TOKEN"
_SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}


class EndpointError(ValueError):
    """The URL or the local configuration cannot name a daemon."""


@dataclass(frozen=True)
class Endpoint:
    base: str  # http(s)://host:port[/prefix], no trailing slash
    token: str | None = None

    @classmethod
    def parse(cls, url: str, token: str | None = None) -> Endpoint:
        raw = url.strip()
        if "://" not in raw:
            raw = "http://" + raw  # "127.0.0.1:3000"
        try:
            parts = urlsplit(raw)
            parts.port  # noqa: B018 -- raises on a port that is not a number
        except ValueError as e:
            raise EndpointError(f"bad URL {url!r}: {e}") from None
        scheme = _SCHEMES.get(parts.scheme.lower())
        if scheme is None:
            raise EndpointError(f"bad URL {url!r}: the scheme must be http, https, ws or wss")
        if not parts.hostname:
            raise EndpointError(f"bad URL {url!r}: no host")
        if parts.query or parts.fragment:
            raise EndpointError(f"bad URL {url!r}: give the daemon's address, without a query or fragment")
        path = parts.path.rstrip("/")
        if path.endswith("/ws"):
            path = path[: -len("/ws")]
        return cls(urlunsplit((scheme, parts.netloc, path, "", "")), token or None)

    @property
    def ws_url(self) -> str:
        return "ws" + self.base[len("http") :] + "/ws"

    def url(self, path: str) -> str:
        return self.base + path


def from_config(config_path: str | None, env: Mapping[str, str]) -> str:
    """``http://host:port`` from the local daemon configuration. A wildcard
    bind address is reached on loopback."""
    from roo_daemon.config import load_config

    cfg = load_config(config_path, env=env)  # it skips URL_ENV and TOKEN_ENV (CLIENT_VARIABLES)
    host, port = cfg["server"]["host"], cfg["server"]["port"]
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def resolve(
    url: str | None = None,
    token: str | None = None,
    config_path: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Endpoint:
    """The endpoint from flags, then the environment, then the local config.
    Raises :class:`EndpointError` or ``roo_daemon.config.ConfigError``."""
    env = os.environ if env is None else env
    url = url or env.get(URL_ENV) or from_config(config_path, env)
    return Endpoint.parse(url, token or env.get(TOKEN_ENV))
