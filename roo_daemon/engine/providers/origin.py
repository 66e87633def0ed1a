"""Where a provider request goes: the URL's scheme, host, port and target,
the HTTP proxy on the way (from ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY``),
and the request head written for it. Worked out once per provider profile;
``http.py`` sends the requests."""

from __future__ import annotations

import base64
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import SplitResult, unquote, urlsplit
from urllib.request import proxy_bypass_environment

from roo_daemon import __version__


class InvalidRequest(ValueError):
    """The request cannot be sent as given (a bad URL, a header value with a
    line break). Not worth a retry."""


@dataclass(frozen=True, slots=True)
class Proxy:
    """An HTTP proxy: ``https`` requests go through a ``CONNECT`` tunnel (TLS
    to the provider inside it), ``http`` ones are sent to the proxy whole.
    ``shown`` is the proxy's URL without credentials, for messages."""

    host: str
    port: int
    authorization: str | None
    shown: str

    @classmethod
    def parse(cls, url: str) -> Proxy:
        # Errors do not quote this URL: it may hold a password.
        parts, host, port = _split_url(url if "://" in url else f"http://{url}", "the proxy URL")
        if parts.scheme != "http" or not host:
            raise InvalidRequest(f"proxy {parts.scheme}://{host}: only http:// proxies are supported")
        authorization = None
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            authorization = "Basic " + base64.b64encode(pair).decode()
        port = port or 80
        return cls(host, port, authorization, f"http://{host}:{port}")


def _split_url(url: str, what: str) -> tuple[SplitResult, str, int | None]:
    """``url`` split, with its host in ASCII (IDNA, as the Host header needs)
    and its port. A bad port or host name is :class:`InvalidRequest` here, not
    a ``ValueError`` or ``UnicodeError`` out of ``getaddrinfo`` at each attempt."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").encode("idna").decode("ascii")
        return parts, host, parts.port
    except ValueError as e:  # UnicodeError is one
        userinfo = url.partition("://")[2].partition("/")[0].rpartition("@")[0]
        text = str(e).replace(userinfo, "...") if userinfo else str(e)  # urlsplit may quote the netloc
        raise InvalidRequest(f"{what} is not valid: {text}") from None


def proxy_for(
    scheme: str, host: str, environ: Mapping[str, str] | None = None, port: int | None = None
) -> Proxy | None:
    """The proxy the environment names for this scheme and host, as curl and
    most tools read it: ``https_proxy``/``http_proxy`` (lower case first),
    else ``all_proxy``; none for hosts matched by ``no_proxy``, nor ever for
    loopback (a proxy cannot reach our loopback; as Go's net/http does).
    A ``no_proxy`` entry may name a port (``ollama.lan:11434``), as in urllib and Go."""
    env = os.environ if environ is None else environ

    def get(name: str) -> str:
        return env.get(name) or env.get(name.upper()) or ""

    url = get(f"{scheme}_proxy") or get("all_proxy")
    if not url or _is_loopback(host):
        return None
    no_proxy = get("no_proxy")
    # urllib matches an entry against the host alone and against host:port.
    where = f"{host}:{port or (443 if scheme == 'https' else 80)}"
    if no_proxy and proxy_bypass_environment(where, {"no": no_proxy}):
        return None
    return Proxy.parse(url)


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Origin:
    """Where a URL's requests go: scheme, host and port, the request target,
    and the proxy on the way, if any. Made once per provider, not per request."""

    def __init__(self, url: str, proxy: Proxy | None = None) -> None:
        parts, hostname, port = _split_url(url, f"the URL {url!r}")
        if parts.scheme not in ("http", "https") or not hostname:
            raise InvalidRequest(f"not an http(s) URL: {url!r}")
        self.scheme = parts.scheme
        self.host = hostname
        self.port = port or (443 if parts.scheme == "https" else 80)
        default_port = self.port == (443 if parts.scheme == "https" else 80)
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.authority = host if default_port else f"{host}:{self.port}"
        self.host_port = f"{host}:{self.port}"  # for CONNECT, which always names the port
        self.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.proxy = proxy
        self.key = (self.scheme, self.host, self.port, proxy.shown if proxy else "")

    @classmethod
    def from_environment(cls, url: str, environ: Mapping[str, str] | None = None) -> Origin:
        """The origin, with the proxy the environment names for it."""
        parts, host, port = _split_url(url, f"the URL {url!r}")
        return cls(url, proxy_for(parts.scheme, host, environ, port))


def encode_head(origin: Origin, headers: dict[str, str], body_length: int) -> bytes:
    """The request line and headers of a POST, as bytes."""
    proxy = origin.proxy
    via_proxy = proxy is not None and origin.scheme == "http"  # https goes through a tunnel instead
    target = f"http://{origin.authority}{origin.target}" if via_proxy else origin.target
    lines = [
        f"POST {target} HTTP/1.1",
        f"Host: {origin.authority}",
        f"User-Agent: roo-daemon/{__version__}",
        # Compression would let a proxy hold events back to fill its blocks.
        "Accept-Encoding: identity",
    ]
    if via_proxy and proxy.authorization:  # type: ignore[union-attr]
        lines.append(f"Proxy-Authorization: {proxy.authorization}")  # type: ignore[union-attr]
    for name, value in headers.items():
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
            raise InvalidRequest(f"header {name.strip()!r} contains a line break or a colon")
        lines.append(f"{name}: {value}")
    lines.append(f"Content-Length: {body_length}")
    text = "\r\n".join(lines) + "\r\n\r\n"
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError as e:
        # Name the header, never show its value: it may be the API key.
        name = text[text.rfind("\n", 0, e.start) + 1 :].split(":", 1)[0]
        raise InvalidRequest(f"header {name!r} contains {text[e.start]!r}, which HTTP headers cannot carry") from None
