"""What the HTTP providers (push, SMS, webhook) share: one client, one error mapping.

- `HttpClient.send` is the one place where httpx failures become `DeliveryError`s: a failure to
  connect is transient and nothing was sent; a timeout or a lost connection after the request
  was written is transient with `maybe_sent=True`.
- `status_error` / `check_status` classify an answer: 2xx is success; 408, 429 and 5xx are
  transient (with `Retry-After`); 3xx is permanent, as redirects are never followed (a
  redirect could lead a webhook past the address guard, and a provider API that redirects is
  misconfigured); any other status is permanent.
"""

from __future__ import annotations

import json
import ssl
import textwrap
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from activities.channels.base import DeliveryError, PermanentDeliveryError, TransientDeliveryError

TIMEOUT = 10.0
"""Seconds an HTTP provider waits to connect, and then for each read or write."""

MAX_RETRY_AFTER = timedelta(minutes=5)
"""The longest `Retry-After` honoured, so one odd answer cannot park a delivery for days."""

REASON_WIDTH = 200
"""How much of a server's own words goes into a delivery record's reason."""


def endpoint(url: str) -> httpx.URL:
    """`url` as the address of a provider's API; `ValueError` unless it is http(s) with a host."""
    try:
        parsed = httpx.URL(url.strip())
    except httpx.InvalidURL as error:
        raise ValueError(f"not a URL ({error})") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError("must be an http:// or https:// URL with a host")
    return parsed


def compact_json(value: Any) -> str:
    """`value` as compact JSON (UTF-8 kept as is), the form the HTTP providers send."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def response_json(response: httpx.Response) -> dict[str, Any]:
    """The JSON object a response carries; empty when its body is not one."""
    try:
        body = response.json()
    except ValueError:  # not JSON, or not UTF-8
        return {}
    return body if isinstance(body, dict) else {}


def shorten(text: str) -> str:
    """A server's text fit for a reason: one line, at most `REASON_WIDTH` characters."""
    return textwrap.shorten(text, width=REASON_WIDTH, placeholder="…")


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> timedelta | None:
    """The wait a `Retry-After` header asks for (delay-seconds or HTTP-date), at most
    `MAX_RETRY_AFTER`; None when absent or unreadable. A date in the past asks for no wait."""
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return timedelta(seconds=min(int(text), MAX_RETRY_AFTER.total_seconds()))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; a zone-less one is taken as such
        when = when.replace(tzinfo=UTC)
    wait = when - (now or datetime.now(UTC))
    return max(timedelta(0), min(wait, MAX_RETRY_AFTER))


def status_error(
    label: str, response: httpx.Response, detail: str | None = None
) -> DeliveryError | None:
    """The error an answer means, or None for success (2xx).

    `label` names the provider in the reason ("sms 400: ..."); `detail` is what the provider's
    error body said, when the caller could read it (the status phrase stands in otherwise).
    """
    status = response.status_code
    if 200 <= status < 300:
        return None
    if 300 <= status < 400:
        location = response.headers.get("Location")
        target = f" (to {location})" if location else ""
        return PermanentDeliveryError(
            shorten(f"{label} {status}: redirects are not followed{target}")
        )
    reason = shorten(f"{label} {status}: {detail or response.reason_phrase or 'no reason given'}")
    if status in (408, 429) or 500 <= status < 600:
        return TransientDeliveryError(
            reason, retry_after=parse_retry_after(response.headers.get("Retry-After"))
        )
    return PermanentDeliveryError(reason)


def check_status(label: str, response: httpx.Response, detail: str | None = None) -> None:
    """Raise the error the answer means (`status_error`); return on success."""
    error = status_error(label, response, detail)
    if error is not None:
        raise error


class HttpClient:
    """An httpx client for one provider, whose failures are `DeliveryError`s.

    Thread-safe (httpx clients are). Redirects are never followed. `keep_alive=False` opens a
    connection per request: webhooks use it, as a pooled TLS connection verified for one host
    must not carry a request for another host that resolves to the same address.
    """

    def __init__(
        self,
        label: str,
        *,
        timeout: float = TIMEOUT,
        verify: ssl.SSLContext | bool = True,
        keep_alive: bool = True,
        trust_env: bool = True,
    ) -> None:
        self.label = label
        limits = httpx.Limits() if keep_alive else httpx.Limits(max_keepalive_connections=0)
        self.client = httpx.Client(
            timeout=timeout,
            verify=verify,
            follow_redirects=False,
            trust_env=trust_env,
            limits=limits,
            headers={"User-Agent": f"journeys-{label}/1"},
        )

    def request(
        self,
        method: str,
        url: httpx.URL | str,
        *,
        headers: httpx.Headers | Mapping[str, str],
        content: bytes = b"",
        extensions: dict[str, Any] | None = None,
    ) -> httpx.Request:
        """A request carrying the client's defaults (User-Agent)."""
        return self.client.build_request(
            method, url, headers=headers, content=content or None, extensions=extensions
        )

    def send(self, request: httpx.Request, *alternatives: httpx.Request) -> httpx.Response:
        """The answer to `request`; raise a `DeliveryError` when there is none.

        `alternatives` are the same request to the host's other addresses, tried in turn while
        connecting fails (a host may list an IPv6 address this machine cannot reach).
        """
        *earlier, last = (request, *alternatives)
        current = request
        try:
            for current in earlier:
                try:
                    return self.client.send(current)
                except (httpx.ConnectError, httpx.ConnectTimeout):
                    continue
            current = last
            return self.client.send(last)
        except httpx.HTTPError as error:
            raise self._failure(current, error) from error

    def _failure(self, request: httpx.Request, error: httpx.HTTPError) -> DeliveryError:
        host = request.headers.get("Host") or request.url.netloc.decode("ascii")
        cause = str(error) or type(error).__name__
        match error:
            case httpx.ConnectTimeout():
                return TransientDeliveryError(f"{self.label}: timed out connecting to {host}")
            case httpx.ConnectError() | httpx.PoolTimeout() | httpx.ProxyError():
                return TransientDeliveryError(
                    shorten(f"{self.label}: cannot reach {host}: {cause}")
                )
            case httpx.WriteError() | httpx.WriteTimeout():
                # The request did not get out whole, so the server cannot have acted on it.
                return TransientDeliveryError(
                    shorten(f"{self.label}: sending to {host} failed: {cause}")
                )
            case httpx.ReadTimeout():
                return TransientDeliveryError(
                    f"{self.label}: no answer from {host} in time (it may have taken the message)",
                    maybe_sent=True,
                )
            case httpx.UnsupportedProtocol() | httpx.LocalProtocolError():
                return PermanentDeliveryError(shorten(f"{self.label}: invalid request: {cause}"))
            case _:
                # Lost connections, garbled answers: the request was written, so it may have
                # been acted on.
                return TransientDeliveryError(
                    shorten(
                        f"{self.label}: the connection to {host} failed before an answer "
                        f"(it may have taken the message): {cause}"
                    ),
                    maybe_sent=True,
                )

    def close(self) -> None:
        """Close the pooled connections."""
        self.client.close()
