"""AddressGuard: which webhook targets may be reached (no connection is made here).

Public names are made to resolve where wanted by replacing `socket.getaddrinfo`: there is no
DNS (and no internet) here, and the guard is what decides, not the network.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any

import httpx
import pytest

from activities.channels import PermanentDeliveryError, TransientDeliveryError
from activities.channels.webhook import AddressGuard, non_public

Resolver = Callable[[dict[str, list[str]]], None]


@pytest.fixture
def resolving(monkeypatch: pytest.MonkeyPatch) -> Resolver:
    """Make the given names resolve to the given addresses; other names resolve as usual."""

    def install(table: dict[str, list[str]]) -> None:
        real = socket.getaddrinfo

        def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            if host not in table:
                return real(host, port, *args, **kwargs)
            return [
                (
                    socket.AF_INET6 if ":" in a else socket.AF_INET,
                    socket.SOCK_STREAM,
                    socket.IPPROTO_TCP,
                    "",
                    (a, port, 0, 0) if ":" in a else (a, port),
                )
                for a in table[host]
            ]

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)

    return install


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1/", "127.0.0.1 is a loopback address"),
        ("http://10.0.0.1/", "10.0.0.1 is a private address"),
        ("https://192.168.1.20:8443/x", "192.168.1.20 is a private address"),
        ("http://172.16.5.4/", "172.16.5.4 is a private address"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
        ("http://[::1]:8080/", "::1 is a loopback address"),
        ("http://[::ffff:127.0.0.1]/", "::ffff:127.0.0.1 is a loopback address"),
        ("http://[::ffff:a9fe:a9fe]/", "::ffff:a9fe:a9fe is a link-local address"),
        ("http://[::10.0.0.1]/", "::10.0.0.1 is a private address"),
        ("http://[2002:a00:1::]/", "2002:a00:1:: is a private address"),
        ("http://[64:ff9b::7f00:1]/", "64:ff9b::7f00:1 is a loopback address"),
        ("http://0.0.0.0/", "0.0.0.0 is an unspecified address"),
        ("http://[::]/", ":: is an unspecified address"),
        ("http://100.64.0.1/", "100.64.0.1 is a shared (carrier-grade NAT) address"),
        ("http://224.0.0.1/", "224.0.0.1 is a multicast address"),
        ("http://[ff02::1]/", "ff02::1 is a multicast address"),
        ("http://[fe80::1]/", "fe80::1 is a link-local address"),
        ("http://[fc00::1]/", "fc00::1 is a private address"),
        ("http://[fec0::1]/", "fec0::1 is a site-local address"),
        ("http://240.0.0.1/", "240.0.0.1 is a private address"),
        ("http://localhost:8000/", "localhost resolves to 127.0.0.1, a loopback address"),
        ("http://2130706433/", "2130706433 resolves to 127.0.0.1, a loopback address"),
        ("http://127.1/", "127.1 resolves to 127.0.0.1, a loopback address"),
    ],
)
def test_non_public_targets_are_refused(url: str, reason: str) -> None:
    with pytest.raises(PermanentDeliveryError) as caught:
        AddressGuard().check(url)

    assert caught.value.reason == (
        f"webhook target {reason} (allow it with JOURNEYS_WEBHOOK_ALLOW)"
    )


def test_a_name_resolving_to_a_private_address_is_refused(resolving: Resolver) -> None:
    resolving({"hooks.example.com": ["10.0.0.1"]})

    with pytest.raises(PermanentDeliveryError) as caught:
        AddressGuard().check("https://hooks.example.com/order")

    assert caught.value.reason == (
        "webhook target hooks.example.com resolves to 10.0.0.1, a private address "
        "(allow it with JOURNEYS_WEBHOOK_ALLOW)"
    )


def test_one_private_address_among_public_ones_is_refused(resolving: Resolver) -> None:
    resolving({"hooks.example.com": ["93.184.216.34", "2606:2800:220:1::1", "169.254.169.254"]})

    with pytest.raises(PermanentDeliveryError, match=r"resolves to 169.254.169.254, a link-local"):
        AddressGuard().check("https://hooks.example.com/order")


def test_a_public_name_passes_with_its_addresses(resolving: Resolver) -> None:
    resolving({"hooks.example.com": ["93.184.216.34", "2606:2800:220:1::1", "93.184.216.34"]})

    target = AddressGuard().check("https://Hooks.Example.com:8443/order?id=1")

    assert target.host == "hooks.example.com"
    assert target.addresses == (IPv4Address("93.184.216.34"), IPv6Address("2606:2800:220:1::1"))
    assert [str(target.url_for(a)) for a in target.addresses] == [
        "https://93.184.216.34:8443/order?id=1",
        "https://[2606:2800:220:1::1]:8443/order?id=1",
    ]


def test_a_public_address_passes() -> None:
    target = AddressGuard().check("http://93.184.216.34/hook")

    assert target.addresses == (IPv4Address("93.184.216.34"),)
    assert target.url == httpx.URL("http://93.184.216.34/hook")


@pytest.mark.parametrize("allow", ["127.0.0.0/8", "127.0.0.1", "10.0.0.0/8 127.0.0.0/8"])
def test_allowed_by_network(allow: str) -> None:
    guard = AddressGuard(allow)

    assert guard.check("http://127.0.0.1:9000/").addresses == (IPv4Address("127.0.0.1"),)
    assert guard.check("http://[::ffff:127.0.0.1]/").addresses == (IPv6Address("::ffff:127.0.0.1"),)
    with pytest.raises(PermanentDeliveryError, match=r"192.168.0.1 is a private address"):
        guard.check("http://192.168.0.1/")


def test_allowed_by_host_name_whatever_it_resolves_to(resolving: Resolver) -> None:
    resolving(
        {
            "internal.example": ["10.1.2.3", "fd00::1"],
            "internal.example.": ["10.1.2.3"],
            "other.example": ["10.1.2.3"],
        }
    )
    guard = AddressGuard("Internal.Example.")

    assert len(guard.check("https://internal.example/hook").addresses) == 2
    assert guard.check("http://INTERNAL.example./").addresses[0] == IPv4Address("10.1.2.3")
    with pytest.raises(PermanentDeliveryError, match=r"other.example resolves to 10.1.2.3"):
        guard.check("https://other.example/hook")  # the same address, but not the named host


def test_localhost_allowed_by_name() -> None:
    target = AddressGuard("localhost").check("http://localhost:8000/hook")

    assert IPv4Address("127.0.0.1") in target.addresses


def test_entries_are_separated_by_commas_or_whitespace() -> None:
    guard = AddressGuard(" 10.0.0.0/8,\tinternal.example \n fd00::/8,192.168.1.5 ")

    assert guard.hosts == {"internal.example"}
    assert [str(n) for n in guard.networks] == ["10.0.0.0/8", "fd00::/8", "192.168.1.5/32"]


@pytest.mark.parametrize(
    "allow", ["10.0.0.0/33", "10.0.0.300", "::gg", "fd00::/129", "http://x.example", "*.example"]
)
def test_malformed_allow_entries(allow: str) -> None:
    with pytest.raises(ValueError, match=f"^'{allow.replace('*', '[*]')}' is not"):
        AddressGuard(f"10.0.0.0/8, {allow}")


@pytest.mark.parametrize(
    "url", ["ftp://93.184.216.34/x", "file:///etc/passwd", "93.184.216.34/x", "http://"]
)
def test_only_http_urls(url: str) -> None:
    with pytest.raises(PermanentDeliveryError, match="webhook url"):
        AddressGuard().check(url)


def test_a_name_that_does_not_resolve_is_transient(monkeypatch: pytest.MonkeyPatch) -> None:
    def unknown(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", unknown)

    with pytest.raises(TransientDeliveryError) as caught:
        AddressGuard().check("https://nowhere.example/hook")

    assert caught.value.reason == (
        "webhook host nowhere.example does not resolve: Name or service not known"
    )


@pytest.mark.parametrize(
    "address", ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8", "2002:808:808::"]
)
def test_public_addresses(address: str) -> None:
    assert non_public(ip_address(address)) is None
