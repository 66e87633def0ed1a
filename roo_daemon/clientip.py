"""The client's address, believing ``X-Forwarded-For`` / ``X-Real-IP`` only
from configured trusted proxies (none by default), so nobody can pick the
address the rate limiter sees by sending a header. A unix-socket client has
no address: it is told apart by its user (:func:`unix_peer`)."""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Iterable, Mapping

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(specs: Iterable[str]) -> list[Network]:
    return [ipaddress.ip_network(s, strict=False) for s in specs]


def _trusted(addr: str, networks: list[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(addr.strip())
    except ValueError:
        return False
    return any(ip in n for n in networks)


def client_ip(remote_ip: str, headers: Mapping[str, str], trusted: list[Network]) -> str:
    """Walk ``X-Forwarded-For`` from the right, skipping trusted proxies; the
    first untrusted hop is the client. Without a trusted peer, the peer is the client."""
    if not trusted or not _trusted(remote_ip, trusted):
        return remote_ip
    forwarded = headers.get("X-Forwarded-For")
    if forwarded:
        hops = [h.strip() for h in forwarded.split(",") if h.strip()]
        for hop in reversed(hops):
            if not _trusted(hop, trusted):
                return _valid(hop) or remote_ip
        return _valid(hops[0]) or remote_ip if hops else remote_ip
    real = headers.get("X-Real-IP")
    return _valid(real or "") or remote_ip


def unix_peer(sock: socket.socket | None) -> str:
    """``unix:uid=N`` for the user at the other end of a unix socket (Linux
    ``SO_PEERCRED``), so the per-address limits do not put every local
    client in one bucket; plain ``unix`` where the kernel cannot say."""
    peercred = getattr(socket, "SO_PEERCRED", None)
    if sock is None or peercred is None:
        return "unix"
    try:
        # struct ucred: pid_t (signed), uid_t and gid_t (unsigned).
        _pid, uid, _gid = struct.unpack("iII", sock.getsockopt(socket.SOL_SOCKET, peercred, struct.calcsize("iII")))
    except OSError:
        return "unix"
    return f"unix:uid={uid}"


def _valid(addr: str) -> str | None:
    try:
        return str(ipaddress.ip_address(addr.strip()))
    except ValueError:
        return None
