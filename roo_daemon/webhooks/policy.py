"""Where deliveries may go (``webhooks.allowed_hosts``), checked on the
addresses a host name resolves to, at the moment of connecting: a tenant
cannot make the daemon call an internal address by naming it, by a name that
resolves to one, or by a name that resolves differently later (the check is
in the resolver the HTTP client connects with, so there is no second lookup
to race). Redirects are not followed."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

from tornado.netutil import DefaultLoopResolver, Resolver

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class HostRefused(OSError):
    """No address of the host is one deliveries may go to."""


def _plain(ip: Address) -> Address:
    """An IPv4-mapped IPv6 address as the IPv4 address it is."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


class HostPolicy:
    """``allowed_hosts``: networks (``10.0.0.0/8``, ``127.0.0.1``) and host
    names (``hooks.example.com``, ``*.example.com``). An address is allowed if
    it is in a listed network, or if it is public and the URL's host is a
    listed name: naming a host never opens a private address."""

    def __init__(self, entries: list[str]) -> None:
        self.networks: list[Network] = []
        self.names: list[str] = []
        for entry in entries:
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                name = entry.lower().rstrip(".")
                if not name or any(c in name for c in "/: ") or "*" in name.removeprefix("*."):
                    raise ValueError(f"{entry!r} is neither a network nor a host name") from None
                self.names.append(name)

    def name_listed(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        for name in self.names:
            if name.startswith("*."):
                if host.endswith(name[1:]) and host != name[2:]:
                    return True
            elif host == name:
                return True
        return False

    def allows(self, host: str, ip: Address) -> bool:
        ip = _plain(ip)
        if any(ip in net for net in self.networks):
            return True
        return ip.is_global and self.name_listed(host)

    def allowed(self, host: str, addresses: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
        """The ``(family, sockaddr)`` pairs of ``addresses`` deliveries may use."""
        return [(family, addr) for family, addr in addresses if self.allows(host, ipaddress.ip_address(addr[0]))]


class GuardedResolver(Resolver):
    """The HTTP client's resolver: the system's (off the loop), with every
    address the policy refuses taken out; none left is :class:`HostRefused`."""

    def initialize(self, policy: HostPolicy) -> None:  # type: ignore[override]
        self.policy = policy
        self.inner = DefaultLoopResolver()

    async def resolve(  # type: ignore[override]
        self, host: str, port: int, family: socket.AddressFamily = socket.AF_UNSPEC
    ) -> list[tuple[int, Any]]:
        try:
            found = await self.inner.resolve(host, port, family)
        except (OSError, UnicodeError) as e:  # UnicodeError: a name IDNA cannot encode (a..b)
            raise OSError(f"cannot resolve {host}: {e}") from None
        allowed = self.policy.allowed(host, found)
        if not allowed:
            addrs = ", ".join(sorted({a[1][0] for a in found}))
            raise HostRefused(f"{host} ({addrs}) is not in webhooks.allowed_hosts")
        return allowed

    def close(self) -> None:
        self.inner.close()
