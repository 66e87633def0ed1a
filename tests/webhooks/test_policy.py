"""``webhooks.allowed_hosts``: which addresses a delivery may connect to."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from roo_daemon.webhooks.policy import GuardedResolver, HostPolicy, HostRefused

ip = ipaddress.ip_address


def test_the_default_is_loopback_only() -> None:
    policy = HostPolicy(["127.0.0.0/8", "::1/128"])
    assert policy.allows("localhost", ip("127.0.0.1")) and policy.allows("x", ip("::1"))
    for address in ("10.0.0.1", "192.168.1.1", "169.254.169.254", "0.0.0.0", "8.8.8.8", "fd00::1", "::ffff:10.0.0.1"):
        assert not policy.allows("hooks.example.com", ip(address)), address
    assert policy.allows("x", ip("::ffff:127.0.0.1"))  # IPv4-mapped: checked as the IPv4 address


def test_a_listed_name_reaches_public_addresses_only() -> None:
    policy = HostPolicy(["hooks.example.com", "*.ci.example.org"])
    assert policy.allows("hooks.example.com", ip("93.184.216.34"))
    assert policy.allows("HOOKS.example.com.", ip("93.184.216.34"))
    assert policy.allows("a.ci.example.org", ip("93.184.216.34"))
    assert not policy.allows("ci.example.org", ip("93.184.216.34"))  # the wildcard is for subdomains
    assert not policy.allows("evil.com", ip("93.184.216.34"))
    # A listed name that resolves to an internal address (DNS rebinding, a misconfiguration) is refused.
    for address in ("10.0.0.1", "127.0.0.1", "169.254.169.254", "::1"):
        assert not policy.allows("hooks.example.com", ip(address)), address


def test_a_listed_network_is_reached_by_any_name() -> None:
    policy = HostPolicy(["10.20.0.0/16", "192.0.2.7"])
    assert policy.allows("receiver.internal", ip("10.20.3.4")) and policy.allows("x", ip("192.0.2.7"))
    assert not policy.allows("receiver.internal", ip("10.21.0.1"))


@pytest.mark.parametrize("entry", ["", "http://x", "a b", "ex*ample.com", "10.0.0.0/33/1"])
def test_entries_that_are_neither_are_refused(entry: str) -> None:
    with pytest.raises(ValueError):
        HostPolicy([entry])


@pytest.mark.gen_test(timeout=10)
async def test_the_resolver_keeps_only_allowed_addresses() -> None:
    resolver = GuardedResolver(policy=HostPolicy(["127.0.0.0/8"]))
    try:
        found = await resolver.resolve("localhost", 80, socket.AF_INET)
        assert found and all(addr[0].startswith("127.") for _, addr in found)
        with pytest.raises(HostRefused, match="not in webhooks.allowed_hosts"):
            await resolver.resolve("10.9.8.7", 80)
    finally:
        resolver.close()


def test_the_event_names_a_webhook_may_ask_for_are_the_spec_s() -> None:
    """The Webhook schema's enum, the names the daemon checks, and the event
    names the Event schema documents are one list (an event added to one
    without the others fails here)."""
    import re

    from roo_daemon.spec import Spec
    from roo_daemon.webhooks.hooks import ALL_EVENTS, EVENT_NAMES

    schemas = Spec().doc["components"]["schemas"]
    assert set(schemas["Webhook"]["properties"]["events"]["items"]["enum"]) == EVENT_NAMES | {ALL_EVENTS}
    documented = {n for n in re.findall(r"`([a-z.]+)`", schemas["Event"]["description"])}
    assert documented == EVENT_NAMES
