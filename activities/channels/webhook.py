"""Webhooks: an HTTP request to a URL the journey names, signed, and kept off private networks.

A journey author chooses the URL, so a webhook could otherwise probe whatever the worker can
reach: the cloud metadata service, databases, admin consoles. `AddressGuard` resolves the host
and refuses it when any of its addresses is not public, unless JOURNEYS_WEBHOOK_ALLOW names the
host or a network holding the address. The request then goes to the checked address itself,
never through a second DNS lookup that could answer differently (DNS rebinding); TLS still
checks the certificate against the host name (SNI).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import (
    IPv4Address,
    IPv4Network,
    IPv6Address,
    IPv6Network,
    ip_address,
    ip_network,
)
from typing import Any

import httpx

from activities.channels.base import (
    Message,
    PermanentDeliveryError,
    Receipt,
    TransientDeliveryError,
)
from activities.channels.http import TIMEOUT, HttpClient, check_status, compact_json

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

SIGNATURE_HEADER = "X-Journeys-Signature"
ALLOW_HINT = "allow it with JOURNEYS_WEBHOOK_ALLOW"

_SHARED = IPv4Network("100.64.0.0/10")  # carrier-grade NAT; not covered by is_private
_NAT64 = IPv6Network("64:ff9b::/96")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 token: methods, header names
_HOST_NAME = re.compile(r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*")
# Framing and routing are ours to set; the key and signature must be the ones we computed.
_RESERVED_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "idempotency-key"}
    | {SIGNATURE_HEADER.lower()}
)


def embedded_ipv4(address: IPv6Address) -> IPv4Address | None:
    """The IPv4 address an IPv6 address reaches, if it is a form of one: IPv4-mapped
    (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d), 6to4 (2002::/16) or NAT64 (64:ff9b::/96)."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or (int(address) >> 32 == 0 and int(address) > 1):
        return IPv4Address(int(address) & 0xFFFF_FFFF)
    return None


def non_public(address: IPAddress) -> str | None:
    """Why a webhook may not reach `address` ("a private address"); None when it is public."""
    if isinstance(address, IPv6Address):
        embedded = embedded_ipv4(address)
        if embedded is not None:
            return non_public(embedded)
        if address.is_site_local:
            return "a site-local address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_unspecified:
        return "an unspecified address"
    if address in _SHARED:
        return "a shared (carrier-grade NAT) address"
    if address.is_private:
        return "a private address"
    if address.is_reserved:
        return "a reserved address"
    if not address.is_global:
        return "not a public address"
    return None


@dataclass(frozen=True)
class Target:
    """A webhook URL whose addresses passed the guard, in the resolver's order."""

    url: httpx.URL
    host: str
    """The URL's host, ASCII (IDNA) and lower case: what TLS checks the certificate against."""
    addresses: tuple[IPAddress, ...]

    def url_for(self, address: IPAddress) -> httpx.URL:
        """The URL with its host replaced by `address`, to connect there and nowhere else."""
        return self.url.copy_with(host=str(address))


class AddressGuard:
    """Decides which webhook targets may be reached: public addresses, and whatever the allow
    list names. Entries are separated by commas or whitespace; each is a host name (all its
    addresses are allowed; case-insensitive) or an IP address or CIDR network (addresses
    inside it are allowed)."""

    def __init__(self, allow: str = "") -> None:
        """Raise `ValueError` naming the first entry that is neither a host name nor an IP
        address or network."""
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in re.split(r"[\s,]+", allow.strip()):
            if not entry:
                continue
            if "/" in entry or ":" in entry or re.fullmatch(r"[\d.]+", entry):
                try:
                    networks.append(ip_network(entry, strict=False))
                except ValueError:
                    raise ValueError(f"{entry!r} is not an IP address or CIDR network") from None
                continue
            try:
                name = entry.lower().rstrip(".").encode("idna").decode("ascii")
            except UnicodeError:
                name = ""
            if not _HOST_NAME.fullmatch(name):
                raise ValueError(f"{entry!r} is not a host name, IP address or CIDR network")
            hosts.add(name)
        self.hosts = frozenset(hosts)
        self.networks = tuple(networks)

    def check(self, url: str) -> Target:
        """Resolve the URL's host and check every address.

        Raise `PermanentDeliveryError` when the URL is not http(s) or an address is refused,
        `TransientDeliveryError` when the host does not resolve now.
        """
        try:
            parsed = httpx.URL(url.strip())
        except httpx.InvalidURL as error:
            raise PermanentDeliveryError(f"webhook url is not valid: {error}") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise PermanentDeliveryError("webhook url must be an http:// or https:// URL")
        host = parsed.raw_host.decode("ascii")
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        target = Target(parsed, host, _resolve(host, port))
        if host.rstrip(".") in self.hosts:
            return target
        for address in target.addresses:
            why = non_public(address)
            if why is not None and not self._allows(address):
                what = f"is {why}" if _is_address(host) else f"resolves to {address}, {why}"
                raise PermanentDeliveryError(f"webhook target {host} {what} ({ALLOW_HINT})")
        return target

    def _allows(self, address: IPAddress) -> bool:
        forms: list[IPAddress] = [address]
        if isinstance(address, IPv6Address) and (embedded := embedded_ipv4(address)):
            forms.append(embedded)
        return any(
            form.version == network.version and form in network
            for form in forms
            for network in self.networks
        )


def _is_address(host: str) -> bool:
    try:
        ip_address(host)
    except ValueError:
        return False
    return True


def _resolve(host: str, port: int) -> tuple[IPAddress, ...]:
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        detail = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise TransientDeliveryError(f"webhook host {host} does not resolve: {detail}") from None
    addresses: dict[IPAddress, None] = {}  # ordered and without repeats
    for family, _, _, _, sockaddr in found:
        if family in (socket.AF_INET, socket.AF_INET6):
            # A link-local IPv6 address comes with its zone ("fe80::1%eth0").
            addresses[ip_address(str(sockaddr[0]).partition("%")[0])] = None
    if not addresses:
        raise TransientDeliveryError(f"webhook host {host} has no IP address")
    return tuple(addresses)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The `X-Journeys-Signature` value: `t=<unix seconds>,v1=<hex HMAC-SHA256>` of
    `"<t>." + body` under the secret (Stripe's scheme). A receiver recomputes v1 and refuses
    old timestamps, so a captured request cannot be replayed later."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


class WebhookProvider:
    """Sends the node's request: content `url`, `method` (default POST), `headers`, `body`.

    A string body is sent as it is, an object as compact JSON; Content-Type is
    application/json (text/plain for a string that is not JSON) unless the node sets one. GET
    and HEAD carry no body. Every request carries `Idempotency-Key`, and the receiver is
    expected to deduplicate on it: that is what makes a retry after a lost answer safe
    (`honours_idempotency_key`). With a secret, requests are signed (`sign`). Redirects are not
    followed, as they could lead past the guard.
    """

    name = "webhook"
    honours_idempotency_key = True

    def __init__(
        self,
        secret: str | None = None,
        allow: str = "",
        *,
        timeout: float = TIMEOUT,
        ssl_context: ssl.SSLContext | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Raise `ValueError` when `allow` has a malformed entry (see `AddressGuard`)."""
        self.guard = AddressGuard(allow)
        self._secret = secret
        self._clock = clock
        # Connect to exactly the checked addresses: no proxy from the environment, and no
        # pooled connection verified for another host.
        self._http = HttpClient(
            self.name,
            timeout=timeout,
            verify=ssl_context or True,
            keep_alive=False,
            trust_env=False,
        )

    def send(self, message: Message) -> Receipt:
        """Send the request; the receipt carries the answer's `X-Request-Id`, if any."""
        content = message.content
        target = self.guard.check(str(content.get("url") or ""))
        method = str(content.get("method") or "POST").upper()
        if not _TOKEN.fullmatch(method):
            raise PermanentDeliveryError(f"webhook method {method!r} is not valid")
        body, content_type = _encode_body(content.get("body"), method)
        headers = _node_headers(content.get("headers"))
        if content_type and "Content-Type" not in headers:
            headers["Content-Type"] = content_type
        headers["Idempotency-Key"] = message.idempotency_key
        if self._secret:
            headers[SIGNATURE_HEADER] = sign(self._secret, int(self._clock()), body)
        headers["Host"] = target.url.netloc.decode("ascii")
        extensions = {"sni_hostname": target.host} if target.url.scheme == "https" else None
        attempts = [
            self._http.request(
                method, target.url_for(a), headers=headers, content=body, extensions=extensions
            )
            for a in target.addresses
        ]
        response = self._http.send(*attempts)
        check_status(self.name, response)
        return Receipt(self.name, response.headers.get("X-Request-Id"))

    def close(self) -> None:
        """Close the client."""
        self._http.close()


def _encode_body(body: Any, method: str) -> tuple[bytes, str | None]:
    """The bytes to send and the Content-Type they call for."""
    if method in ("GET", "HEAD") or body is None or body == "":
        return b"", None
    if not isinstance(body, str):
        return compact_json(body).encode(), "application/json"
    try:
        json.loads(body)
    except ValueError:
        return body.encode(), "text/plain; charset=utf-8"
    return body.encode(), "application/json"


def _node_headers(headers: Any) -> httpx.Headers:
    """The node's headers, checked, without those the provider sets itself."""
    if headers is None:
        headers = {}
    if not isinstance(headers, dict):
        raise PermanentDeliveryError("webhook headers must be an object of strings")
    checked = httpx.Headers(encoding="utf-8")  # a rendered value may hold any character
    for name, value in headers.items():
        if not (
            isinstance(name, str)
            and isinstance(value, str)
            and _TOKEN.fullmatch(name)
            and not any(c in value for c in "\r\n\0")
        ):
            raise PermanentDeliveryError(f"webhook header {name!r} is not a valid header")
        if name.lower() not in _RESERVED_HEADERS:
            checked[name] = value
    return checked
