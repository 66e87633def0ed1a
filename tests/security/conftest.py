"""Shared fixtures for the security tests: four principals with their keys,
spec-checking clients per principal, and raw-socket helpers for hostile
clients that no well-behaved HTTP library would imitate."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from roo_daemon.auth import hash_key
from tests.conftest import Api, WsClient, make_config

TOKENS = {
    "alice": "roo_alice-0123456789abcdefghijklmnopqrstuvwxyzABCD",
    "bob": "roo_bob-0123456789abcdefghijklmnopqrstuvwxyzABCDEF",
    "reader": "roo_reader-0123456789abcdefghijklmnopqrstuvwxyzAB",
    "root": "roo_root-0123456789abcdefghijklmnopqrstuvwxyzABCDE",
    "writer": "roo_writer-0123456789abcdefghijklmnopqrstuvwxyzAB",
}
SCOPES = {
    "alice": ["read", "write"],
    "bob": ["read", "write"],
    "reader": ["read"],
    "root": ["admin"],
    "writer": ["write"],
}


def auth_keys() -> list[dict[str, Any]]:
    return [{"name": name, "sha256": hash_key(TOKENS[name]), "scopes": SCOPES[name]} for name in TOKENS]


def secure_config(tmp_path: Path, **sections: dict[str, Any]) -> dict[str, Any]:
    """``make_config`` with the four keys configured."""
    auth = {"keys": auth_keys(), **sections.pop("auth", {})}
    return make_config(tmp_path, auth=auth, **sections)


@pytest.fixture
def config(tmp_path: Path) -> dict[str, Any]:
    return secure_config(tmp_path)


class FakeClock:
    """A clock for ``RateLimiter(clock=...)``: time moves only when a test says so."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def bearer(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[name]}"}


@pytest.fixture
def as_(http_server: Any, base_url: str) -> Any:
    """``as_("alice")``: a spec-checking client authenticated as that key."""
    return lambda name: Api(base_url, TOKENS[name])


@pytest.fixture
def ws_as(ws_connect: Any) -> Any:
    """``await ws_as("alice")``: a WebSocket authenticated by the handshake header."""
    return lambda name, **headers: ws_connect({**bearer(name), **headers})


def port_of(base_url: str) -> int:
    port = urlsplit(base_url).port
    assert port is not None
    return port


async def read_all(reader: asyncio.StreamReader, timeout: float) -> bytes:
    """Everything until the server closes the connection (fails after ``timeout``)."""
    return await asyncio.wait_for(reader.read(), timeout)


async def open_raw(base_url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port_of(base_url))


def parse_head(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-cased names) and body of one raw HTTP/1.1 response."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


async def subscribe_ok(ws: WsClient, sub_id: str, **fields: Any) -> None:
    await ws.send({"op": "subscribe", "id": sub_id, **fields})
    reply = await ws.recv()
    assert reply is not None and reply["event"] == "subscribed" and reply["id"] == sub_id, reply
