"""Providers behind an HTTP proxy (``HTTPS_PROXY``, ``HTTP_PROXY``,
``NO_PROXY``): https through a ``CONNECT`` tunnel, http sent to the proxy in
absolute form, credentials from the proxy URL, and the hosts that bypass it.
The provider names (``provider.test``) do not resolve: only the test proxy
knows where they are, so a request that skipped the proxy would fail."""

from __future__ import annotations

import asyncio
import base64

import pytest

from roo_daemon.engine.providers import http
from roo_daemon.engine.providers.base import ProviderError
from roo_daemon.engine.providers.http import ConnectionPool, TransportError
from roo_daemon.engine.providers.origin import InvalidRequest, Origin, Proxy, proxy_for
from tests.engine.fakes import Turn
from tests.engine.providers.conftest import assemble, collect, make_provider
from tests.engine.providers.rawhttp import (
    OK_CHUNKED,
    HttpProxy,
    RawServer,
    chunked,
    client_tls,
    fetch,
    reply,
    server_tls,
)

PROXY_ENV = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy")


@pytest.fixture(autouse=True)
def clean_proxy_env(monkeypatch):
    for name in PROXY_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.gen_test(timeout=10)
async def test_https_goes_through_a_connect_tunnel_with_the_proxy_credentials(monkeypatch):
    monkeypatch.setattr(http, "tls_context", client_tls)
    body = chunked(b"data: tunnelled\n\n")
    async with RawServer(reply(OK_CHUNKED, body), tls=server_tls()) as server:
        name = f"provider.test:{server.port}"
        async with HttpProxy({name: server.port}, require="Basic " + base64.b64encode(b"roo:p@ss").decode()) as proxy:
            environ = {"HTTPS_PROXY": f"http://roo:p%40ss@127.0.0.1:{proxy.port}"}
            origin = Origin.from_environment(f"https://{name}/v1/chat/completions", environ)
            pool = ConnectionPool()
            for _ in range(2):
                assert (await fetch(origin, pool))[1:] == (200, b"data: tunnelled\n\n")
            pool.close()
            assert len(proxy.heads) == 1  # one tunnel, kept alive for the second request
            assert proxy.heads[0].startswith(f"CONNECT {name} HTTP/1.1\r\n".encode())
            assert server.requests[0][1].startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
            assert f"Host: {name}\r\n".encode() in server.requests[0][1]
            assert b"Proxy-Authorization" not in server.requests[0][1]  # credentials stop at the proxy


@pytest.mark.gen_test(timeout=10)
async def test_plain_http_goes_to_the_proxy_in_absolute_form(fake_openai, monkeypatch):
    name = f"provider.test:{fake_openai.port}"
    fake_openai.script(Turn(text="via the proxy"))
    async with HttpProxy({name: fake_openai.port}) as proxy:
        monkeypatch.setenv("http_proxy", proxy.url)
        setup = make_provider(fake_openai, base_url=f"http://{name}/v1")
        assert assemble(await collect(setup.provider)).text == "via the proxy"
        setup.provider.close()
    assert proxy.heads[0].startswith(f"POST http://{name}/v1/chat/completions HTTP/1.1\r\n".encode())


@pytest.mark.gen_test(timeout=10)
async def test_a_proxy_that_refuses_the_credentials_fails_the_request_at_once(fake_openai, monkeypatch):
    async with HttpProxy({}, require="Basic c2VjcmV0") as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        setup = make_provider(fake_openai, base_url="https://provider.test/v1", max_retries=3)
        with pytest.raises(ProviderError, match=r"refused CONNECT provider.test:443: 407 Proxy Authentication"):
            await collect(setup.provider)
        assert setup.sleep.delays == []  # not retried: new credentials will not appear by themselves


@pytest.mark.gen_test(timeout=10)
async def test_an_unreachable_proxy_is_a_connection_error_that_names_it():
    async with HttpProxy({}) as proxy:
        port = proxy.port
    origin = Origin.from_environment("https://provider.test/v1/messages", {"HTTPS_PROXY": f"127.0.0.1:{port}"})
    with pytest.raises(TransportError, match=rf"connection failed \(via proxy http://127.0.0.1:{port}\)"):
        await fetch(origin)


def test_which_proxy_the_environment_names():
    proxy = proxy_for("https", "api.openai.com", {"HTTPS_PROXY": "http://u:p@corp:3128", "HTTP_PROXY": "http://x:1"})
    assert proxy == Proxy("corp", 3128, "Basic " + base64.b64encode(b"u:p").decode(), "http://corp:3128")
    assert proxy_for("https", "h", {"https_proxy": "http://low:1", "HTTPS_PROXY": "http://up:2"}).host == "low"
    assert proxy_for("http", "h", {"HTTPS_PROXY": "http://p:1"}) is None  # each scheme has its own
    assert proxy_for("http", "h", {"ALL_PROXY": "http://all:8080"}).port == 8080
    assert proxy_for("https", "h", {}) is None


@pytest.mark.parametrize("host", ["api.openai.com", "openai.com", "ollama.lan", "10.1.2.3"])
def test_no_proxy_names_hosts_and_domains_that_bypass_it(host):
    environ = {"HTTPS_PROXY": "http://corp:3128", "NO_PROXY": ".openai.com, ollama.lan,10.1.2.3"}
    assert proxy_for("https", host, environ) is None
    assert proxy_for("https", "api.anthropic.com", environ) is not None
    assert proxy_for("https", host, {"HTTPS_PROXY": "http://corp:3128", "no_proxy": "*"}) is None


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "localhost", "vllm.localhost"])
def test_loopback_is_never_proxied(host):
    assert proxy_for("http", host, {"HTTP_PROXY": "http://corp:3128"}) is None


def test_only_http_proxies_are_supported():
    with pytest.raises(InvalidRequest, match="only http:// proxies"):
        proxy_for("https", "api.openai.com", {"HTTPS_PROXY": "https://corp:3128"})


@pytest.mark.parametrize("status", [b"403 Forbidden", b"407 Proxy Authentication Required"])
@pytest.mark.gen_test(timeout=10)
async def test_a_refusal_that_comes_with_a_page_fails_the_request_at_once(fake_openai, monkeypatch, status):
    page = b"<html><body>Access denied. Ask your administrator.</body></html>"

    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        # Head and page in one write, as Squid sends them: was "proxy sent data after its CONNECT reply", retried.
        writer.write(
            b"HTTP/1.1 %s\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n%s" % (status, len(page), page)
        )
        await reader.read()
        writer.close()

    server = await asyncio.start_server(refuse, "127.0.0.1", 0)
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}")
    setup = make_provider(fake_openai, base_url="https://provider.test/v1", max_retries=3)
    with pytest.raises(ProviderError, match=f"refused CONNECT provider.test:443: {status.decode()}"):
        await collect(setup.provider)
    assert setup.sleep.delays == []
    server.close()


def test_a_no_proxy_entry_may_name_a_port():
    environ = {
        "HTTP_PROXY": "http://corp:3128",
        "HTTPS_PROXY": "http://corp:3128",
        "NO_PROXY": "ollama.lan:11434,vllm.lan",
    }
    assert Origin.from_environment("http://ollama.lan:11434/v1", environ).proxy is None  # was proxied
    assert Origin.from_environment("http://ollama.lan:8080/v1", environ).proxy is not None  # another port
    assert Origin.from_environment("https://vllm.lan:8443/v1", environ).proxy is None  # no port named: any port
    environ["NO_PROXY"] = "2001:db8::1"
    assert Origin.from_environment("https://[2001:db8::1]:8443/v1", environ).proxy is None
    assert Origin.from_environment("https://[2001:db8::2]/v1", environ).host_port == "[2001:db8::2]:443"


@pytest.mark.parametrize("url", ["http://roo:s3cret@corp:99999", "http://roo:s3cret\uff03@corp:3128"])
def test_a_bad_proxy_url_is_an_invalid_request_that_hides_the_password(url):
    with pytest.raises(InvalidRequest, match="the proxy URL is not valid") as err:  # was a bare ValueError
        proxy_for("https", "api.openai.com", {"HTTPS_PROXY": url})
    assert "s3cret" not in str(err.value)
