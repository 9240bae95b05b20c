"""PushProvider against a real HTTP server shaped like FCM HTTP v1."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from activities.channels import (
    Message,
    PermanentDeliveryError,
    PushProvider,
    PushTokensUnregistered,
    TransientDeliveryError,
)
from tests.receivers import HttpReceiver, Reply

KEY = "journey:back-in-stock:u1:push_1:1"
PATH = "/v1/projects/shop/messages:send"
ACCEPTED = Reply.json({"name": "projects/shop/messages/0:1500415314455276%31bd1c96"})
UNREGISTERED = Reply.json(
    {
        "error": {
            "code": 404,
            "message": "Requested entity was not found.",
            "status": "NOT_FOUND",
            "details": [
                {
                    "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                    "errorCode": "UNREGISTERED",
                }
            ],
        }
    },
    status=404,
)
UNREGISTERED_400 = Reply.json(
    {"error": {"status": "INVALID_ARGUMENT", "details": [{"errorCode": "UNREGISTERED"}]}}, 400
)
INVALID = Reply.json(
    {
        "error": {
            "code": 400,
            "message": "The registration token is not a valid FCM registration token",
            "status": "INVALID_ARGUMENT",
        }
    },
    status=400,
)


def push(*tokens: str, key: str = KEY, **content: Any) -> Message:
    return Message(
        idempotency_key=key,
        user_id="u1",
        channel="push",
        content={"title": "Back in stock", "body": "Your size is back", **content},
        push_tokens=tokens,
    )


def token_key(token: str) -> str:
    return f"{KEY}:{hashlib.sha256(token.encode()).hexdigest()[:16]}"


@pytest.fixture
def gateway() -> Iterator[HttpReceiver]:
    with HttpReceiver(ACCEPTED) as receiver:
        yield receiver


@pytest.fixture
def provider(gateway: HttpReceiver) -> Iterator[PushProvider]:
    sender = PushProvider(gateway.url + PATH, "fcm-access-token")
    yield sender
    sender.close()


def test_one_request_per_token_exactly(gateway: HttpReceiver, provider: PushProvider) -> None:
    data = {"sku": "A-1", "count": 3, "vip": True, "sizes": ["M", "L"]}

    receipt = provider.send(push("tok-a", "tok-b", data=data))

    assert receipt.provider == "push"
    assert receipt.provider_message_id == "projects/shop/messages/0:1500415314455276%31bd1c96"
    assert receipt.unregistered_tokens == ()
    for request, token in zip(gateway.requests, ["tok-a", "tok-b"], strict=True):
        body = (
            b'{"message":{"token":"' + token.encode() + b'",'
            b'"notification":{"title":"Back in stock","body":"Your size is back"},'
            b'"data":{"sku":"A-1","count":"3","vip":"true","sizes":"[\\"M\\",\\"L\\"]"}}}'
        )
        headers = request.header_map()
        headers.pop("accept-encoding")
        assert (request.method, request.path, request.body) == ("POST", PATH, body)
        assert headers == {
            "host": f"127.0.0.1:{gateway.port}",
            "accept": "*/*",
            "connection": "keep-alive",
            "user-agent": "journeys-push/1",
            "authorization": "Bearer fcm-access-token",
            "content-type": "application/json",
            "idempotency-key": token_key(token),
            "content-length": str(len(body)),
        }


def test_no_data_and_no_authorization_when_there_is_none(gateway: HttpReceiver) -> None:
    provider = PushProvider(gateway.url + PATH)

    provider.send(push("tok-a", data={}))

    [request] = gateway.requests
    assert request.json() == {
        "message": {
            "token": "tok-a",
            "notification": {"title": "Back in stock", "body": "Your size is back"},
        }
    }
    assert request.header("Authorization") is None
    provider.close()


def test_keys_are_stable_per_token_across_sends() -> None:
    with HttpReceiver(ACCEPTED, idempotent=True) as gateway:
        provider = PushProvider(gateway.url + PATH)

        provider.send(push("tok-a", "tok-b"))
        provider.send(push("tok-a", "tok-b"))

        assert len(gateway.requests) == 4
        assert gateway.unique_idempotency_keys() == [token_key("tok-a"), token_key("tok-b")]
        assert [r.json()["message"]["token"] for r in gateway.deliveries()] == ["tok-a", "tok-b"]
        provider.close()


@pytest.mark.parametrize("gone", [UNREGISTERED, Reply(404), UNREGISTERED_400])
def test_unregistered_tokens_are_reported_with_the_delivery(
    gateway: HttpReceiver, provider: PushProvider, gone: Reply
) -> None:
    gateway.script(gone, ACCEPTED, gone)

    receipt = provider.send(push("old", "new", "older"))

    assert receipt.unregistered_tokens == ("old", "older")
    assert receipt.provider_message_id == "projects/shop/messages/0:1500415314455276%31bd1c96"


def test_every_token_unregistered_is_permanent_and_names_them(
    gateway: HttpReceiver, provider: PushProvider
) -> None:
    gateway.respond = UNREGISTERED

    with pytest.raises(PushTokensUnregistered) as caught:
        provider.send(push("old", "older"))

    assert isinstance(caught.value, PermanentDeliveryError)
    assert caught.value.reason == "every push token is unregistered"
    assert caught.value.unregistered_tokens == ("old", "older")


def test_an_invalid_token_is_permanent_with_fcm_s_words(
    gateway: HttpReceiver, provider: PushProvider
) -> None:
    gateway.respond = INVALID

    with pytest.raises(PermanentDeliveryError) as caught:
        provider.send(push("bad"))

    assert type(caught.value) is PermanentDeliveryError
    assert caught.value.reason == (
        "push 400: INVALID_ARGUMENT: The registration token is not a valid FCM registration token"
    )


def test_unregistered_and_invalid_tokens_only_still_name_the_unregistered(
    gateway: HttpReceiver, provider: PushProvider
) -> None:
    gateway.script(INVALID, UNREGISTERED)

    with pytest.raises(PushTokensUnregistered) as caught:
        provider.send(push("bad", "old"))

    assert caught.value.reason.startswith("push 400: INVALID_ARGUMENT")
    assert caught.value.unregistered_tokens == ("old",)


def test_a_transient_failure_fails_the_message_after_trying_every_token(
    gateway: HttpReceiver, provider: PushProvider
) -> None:
    gateway.script(Reply(503), ACCEPTED)

    with pytest.raises(TransientDeliveryError) as caught:
        provider.send(push("tok-a", "tok-b"))

    assert caught.value.reason == "push 503: Service Unavailable"
    assert caught.value.maybe_sent is True  # tok-b took it; the retry sends under its key
    assert [r.json()["message"]["token"] for r in gateway.requests] == ["tok-a", "tok-b"]


def test_429_asks_to_wait(gateway: HttpReceiver, provider: PushProvider) -> None:
    gateway.respond = Reply(429, {"Retry-After": "7"})

    with pytest.raises(TransientDeliveryError) as caught:
        provider.send(push("tok-a"))

    assert caught.value.retry_after == timedelta(seconds=7)
    assert caught.value.maybe_sent is False


def test_a_redirect_is_permanent_and_not_followed(
    gateway: HttpReceiver, provider: PushProvider
) -> None:
    with HttpReceiver() as elsewhere:
        gateway.respond = Reply(302, {"Location": elsewhere.url + PATH})

        with pytest.raises(PermanentDeliveryError, match="push 302: redirects are not followed"):
            provider.send(push("tok-a"))

        assert elsewhere.requests == []


def test_no_tokens_is_permanent(gateway: HttpReceiver, provider: PushProvider) -> None:
    with pytest.raises(PermanentDeliveryError, match="the user has no push tokens"):
        provider.send(push())

    assert gateway.requests == []
