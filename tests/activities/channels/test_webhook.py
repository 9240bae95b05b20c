"""WebhookProvider against real HTTP servers on loopback (allowed with JOURNEYS_WEBHOOK_ALLOW)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from activities.channels import (
    Message,
    PermanentDeliveryError,
    TransientDeliveryError,
    WebhookProvider,
)
from tests.receivers import HttpReceiver, ReceivedRequest, Reply

KEY = "journey:order-paid:u1:notify_erp:1"
SECRET = "whsec_test"
NOW = 1_700_000_000


def webhook(key: str = KEY, **content: Any) -> Message:
    return Message(idempotency_key=key, user_id="u1", channel="webhook", content=content)


def sent_headers(request: ReceivedRequest) -> dict[str, str]:
    """The request's headers, less the one that depends on installed decoders."""
    headers = request.header_map()
    headers.pop("accept-encoding")
    return headers


def signature(timestamp: int, body: bytes) -> str:
    digest = hmac.new(SECRET.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    with HttpReceiver(Reply(202, {"X-Request-Id": "req-7"})) as http:
        yield http


@pytest.fixture
def provider() -> Iterator[WebhookProvider]:
    sender = WebhookProvider(SECRET, "127.0.0.1", clock=lambda: NOW + 0.9)
    yield sender
    sender.close()


def test_an_object_body_exactly(receiver: HttpReceiver, provider: WebhookProvider) -> None:
    receipt = provider.send(
        webhook(
            url=f"{receiver.url}/hooks/order?source=journeys",
            method="post",
            headers={
                "X-Shop": "acme",
                "X-Customer": "Zoë",
                "Idempotency-Key": "forged",
                "x-journeys-signature": "forged",
                "Host": "evil.example",
                "Content-Length": "1",
            },
            body={"order": "42", "name": "Zoë"},
        )
    )

    [request] = receiver.requests
    body = '{"order":"42","name":"Zoë"}'.encode()
    assert (request.method, request.path, request.body) == (
        "POST",
        "/hooks/order?source=journeys",
        body,
    )
    assert sent_headers(request) == {
        "host": f"127.0.0.1:{receiver.port}",
        "accept": "*/*",
        "connection": "keep-alive",
        "user-agent": "journeys-webhook/1",
        "x-shop": "acme",
        "x-customer": "Zoë".encode().decode("latin-1"),  # UTF-8 bytes, as http.server reads them
        "content-type": "application/json",
        "idempotency-key": KEY,
        "x-journeys-signature": signature(NOW, body),
        "content-length": str(len(body)),
    }
    assert (receipt.provider, receipt.provider_message_id) == ("webhook", "req-7")


def test_the_signature_verifies_with_the_secret(
    receiver: HttpReceiver, provider: WebhookProvider
) -> None:
    provider.send(webhook(url=receiver.url, body="plain words"))

    [request] = receiver.requests
    header = request.header("X-Journeys-Signature")
    assert header is not None
    fields = dict(part.split("=", 1) for part in header.split(","))
    expected = hmac.new(
        SECRET.encode(), fields["t"].encode() + b"." + request.body, hashlib.sha256
    ).hexdigest()
    assert hmac.compare_digest(fields["v1"], expected)
    assert fields["t"] == str(NOW)


@pytest.mark.parametrize(
    ("content", "sent", "content_type"),
    [
        ({"body": '{"a": 1}'}, b'{"a": 1}', "application/json"),
        ({"body": "plain words"}, b"plain words", "text/plain; charset=utf-8"),
        (
            {"body": "<a>1</a>", "headers": {"content-type": "application/xml"}},
            b"<a>1</a>",
            "application/xml",
        ),
        (
            {"body": {"a": {"b": "c"}}, "headers": {"Content-Type": "application/vnd.x+json"}},
            b'{"a":{"b":"c"}}',
            "application/vnd.x+json",
        ),
    ],
)
def test_body_and_content_type(
    receiver: HttpReceiver,
    provider: WebhookProvider,
    content: dict[str, Any],
    sent: bytes,
    content_type: str,
) -> None:
    provider.send(webhook(url=receiver.url + "/hook", method="PUT", **content))

    [request] = receiver.requests
    assert (request.method, request.body) == ("PUT", sent)
    assert request.header("Content-Type") == content_type
    assert [name.lower() for name, _ in request.headers].count("content-type") == 1


@pytest.mark.parametrize("method", ["GET", "HEAD", "delete"])
def test_requests_without_a_body(
    receiver: HttpReceiver, provider: WebhookProvider, method: str
) -> None:
    provider.send(webhook(url=receiver.url + "/ping?x=1", method=method))

    [request] = receiver.requests
    assert (request.method, request.path, request.body) == (method.upper(), "/ping?x=1", b"")
    assert request.header("Content-Type") is None
    assert request.header("Idempotency-Key") == KEY


def test_get_ignores_a_body(receiver: HttpReceiver, provider: WebhookProvider) -> None:
    provider.send(webhook(url=receiver.url, method="GET", body={"a": "b"}))

    [request] = receiver.requests
    assert request.body == b""
    assert request.header("Content-Length") is None


def test_unsigned_without_a_secret(receiver: HttpReceiver) -> None:
    provider = WebhookProvider(allow="127.0.0.1")

    provider.send(webhook(url=receiver.url, body={"a": "b"}))

    assert receiver.requests[0].header("X-Journeys-Signature") is None
    provider.close()


def test_the_key_is_the_same_when_the_message_is_sent_again(provider: WebhookProvider) -> None:
    with HttpReceiver(idempotent=True) as receiver:
        provider.send(webhook(url=receiver.url, body={"a": "b"}))
        provider.send(webhook(url=receiver.url, body={"a": "b"}))
        provider.send(webhook("another:key", url=receiver.url, body={"a": "b"}))

        assert receiver.unique_idempotency_keys() == [KEY, "another:key"]
        assert len(receiver.deliveries()) == 2


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (Reply(400), "webhook 400: Bad Request"),
        (Reply(404), "webhook 404: Not Found"),
        (Reply(410), "webhook 410: Gone"),
    ],
)
def test_permanent_answers(
    receiver: HttpReceiver, provider: WebhookProvider, reply: Reply, reason: str
) -> None:
    receiver.respond = reply

    with pytest.raises(PermanentDeliveryError) as caught:
        provider.send(webhook(url=receiver.url))

    assert caught.value.reason == reason


@pytest.mark.parametrize(
    ("reply", "retry_after"),
    [
        (Reply(429, {"Retry-After": "7"}), timedelta(seconds=7)),
        (Reply(500), None),
        (Reply(503, {"Retry-After": "86400"}), timedelta(minutes=5)),
    ],
)
def test_transient_answers(
    receiver: HttpReceiver,
    provider: WebhookProvider,
    reply: Reply,
    retry_after: timedelta | None,
) -> None:
    receiver.respond = reply

    with pytest.raises(TransientDeliveryError) as caught:
        provider.send(webhook(url=receiver.url))

    assert caught.value.retry_after == retry_after


def test_a_redirect_is_not_followed(receiver: HttpReceiver, provider: WebhookProvider) -> None:
    with HttpReceiver() as target:
        receiver.respond = Reply(302, {"Location": target.url + "/internal"})

        with pytest.raises(PermanentDeliveryError) as caught:
            provider.send(webhook(url=receiver.url))

        assert caught.value.reason == (
            f"webhook 302: redirects are not followed (to {target.url}/internal)"
        )
        assert target.requests == []


def test_loopback_is_refused_unless_allowed(receiver: HttpReceiver) -> None:
    provider = WebhookProvider()

    with pytest.raises(PermanentDeliveryError) as caught:
        provider.send(webhook(url=receiver.url))

    assert caught.value.reason == (
        "webhook target 127.0.0.1 is a loopback address (allow it with JOURNEYS_WEBHOOK_ALLOW)"
    )
    assert receiver.requests == []
    provider.close()


def test_https_connects_to_the_checked_address_and_verifies_the_host_name() -> None:
    with HttpReceiver(tls=True) as receiver:
        provider = WebhookProvider(allow="localhost", ssl_context=receiver.client_ssl_context())

        provider.send(webhook(url=receiver.url + "/hook", body={"a": "b"}))

        [request] = receiver.requests
        assert request.header("Host") == f"localhost:{receiver.port}"
        provider.close()


def test_https_to_an_address_the_certificate_does_not_name_fails() -> None:
    with HttpReceiver(tls=True) as receiver:
        provider = WebhookProvider(allow="127.0.0.1", ssl_context=receiver.client_ssl_context())

        with pytest.raises(TransientDeliveryError, match="certificate is not valid for"):
            provider.send(webhook(url=f"https://127.0.0.1:{receiver.port}/hook"))

        assert receiver.requests == []
        provider.close()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ({"url": None}, "webhook url must be an http:// or https:// URL"),
        ({"url": "ftp://example.com/x"}, "webhook url must be an http:// or https:// URL"),
        ({"method": "GE T"}, "webhook method 'GE T' is not valid"),
        ({"headers": {"X-A": "1\r\nX-B: 2"}}, "webhook header 'X-A' is not a valid header"),
        ({"headers": {"X A": "1"}}, "webhook header 'X A' is not a valid header"),
        ({"headers": ["X-A: 1"]}, "webhook headers must be an object of strings"),
    ],
)
def test_malformed_content_is_permanent(
    receiver: HttpReceiver, provider: WebhookProvider, content: dict[str, Any], reason: str
) -> None:
    with pytest.raises(PermanentDeliveryError) as caught:
        provider.send(webhook(**{"url": receiver.url, **content}))

    assert caught.value.reason == reason
    assert receiver.requests == []
