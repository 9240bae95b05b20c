"""SmsProvider against a real HTTP server shaped like Twilio's Messages API."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import timedelta

import pytest

from activities.channels import (
    Message,
    PermanentDeliveryError,
    SmsProvider,
    TransientDeliveryError,
)
from tests.receivers import HttpReceiver, Reply, free_port

KEY = "journey:otp:u1:sms_1:1"
PATH = "/2010-04-01/Accounts/AC123/Messages.json"
CREATED = Reply.json({"sid": "SM0123456789abcdef", "status": "queued"}, status=201)
INVALID_NUMBER = Reply.json(
    {
        "code": 21211,
        "message": "The 'To' number +1555 is not a valid phone number.",
        "more_info": "https://www.twilio.com/docs/errors/21211",
        "status": 400,
    },
    status=400,
)


def sms(body: str = "Your code is 42 & more", *, address: str | None = "+15551234567") -> Message:
    return Message(
        idempotency_key=KEY, user_id="u1", channel="sms", content={"body": body}, address=address
    )


@pytest.fixture
def twilio() -> Iterator[HttpReceiver]:
    with HttpReceiver(CREATED) as receiver:
        yield receiver


@pytest.fixture
def provider(twilio: HttpReceiver) -> Iterator[SmsProvider]:
    sender = SmsProvider(twilio.url + PATH, "AC123:auth-token", "+15550001111")
    yield sender
    sender.close()


def test_the_request_exactly(twilio: HttpReceiver, provider: SmsProvider) -> None:
    receipt = provider.send(sms())

    [request] = twilio.requests
    body = b"To=%2B15551234567&From=%2B15550001111&Body=Your+code+is+42+%26+more"
    headers = request.header_map()
    headers.pop("accept-encoding")
    assert (request.method, request.path, request.body) == ("POST", PATH, body)
    assert headers == {
        "host": f"127.0.0.1:{twilio.port}",
        "accept": "*/*",
        "connection": "keep-alive",
        "user-agent": "journeys-sms/1",
        "authorization": "Basic " + base64.b64encode(b"AC123:auth-token").decode(),
        "content-type": "application/x-www-form-urlencoded",
        "idempotency-key": KEY,
        "content-length": str(len(body)),
    }
    assert (receipt.provider, receipt.provider_message_id) == ("sms", "SM0123456789abcdef")


def test_a_token_without_a_colon_is_a_bearer_token_and_from_is_optional(
    twilio: HttpReceiver,
) -> None:
    provider = SmsProvider(twilio.url + PATH, "gateway-token")

    provider.send(sms("Zoë, à bientôt"))

    [request] = twilio.requests
    assert request.header("Authorization") == "Bearer gateway-token"
    assert request.body == b"To=%2B15551234567&Body=Zo%C3%AB%2C+%C3%A0+bient%C3%B4t"
    assert request.form() == {"To": "+15551234567", "Body": "Zoë, à bientôt"}
    provider.close()


def test_no_token_no_authorization(twilio: HttpReceiver) -> None:
    provider = SmsProvider(twilio.url + PATH)

    receipt = provider.send(sms())

    assert twilio.requests[0].header("Authorization") is None
    assert receipt.provider_message_id == "SM0123456789abcdef"
    provider.close()


def test_the_key_is_the_same_when_the_message_is_sent_again(
    twilio: HttpReceiver, provider: SmsProvider
) -> None:
    provider.send(sms())
    provider.send(sms())

    assert twilio.unique_idempotency_keys() == [KEY]


def test_an_answer_without_a_sid_has_no_message_id(
    twilio: HttpReceiver, provider: SmsProvider
) -> None:
    twilio.respond = Reply(204)

    assert provider.send(sms()).provider_message_id is None


def test_twilio_s_error_goes_into_the_reason(twilio: HttpReceiver, provider: SmsProvider) -> None:
    twilio.respond = INVALID_NUMBER

    with pytest.raises(PermanentDeliveryError) as caught:
        provider.send(sms())

    assert caught.value.reason == (
        "sms 400: The 'To' number +1555 is not a valid phone number. (code 21211)"
    )


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (Reply(404), "sms 404: Not Found"),
        (Reply(401, body=b"<html>nope</html>"), "sms 401: Unauthorized"),
        (
            Reply(302, {"Location": "/elsewhere"}),
            "sms 302: redirects are not followed (to /elsewhere)",
        ),
    ],
)
def test_permanent_answers(
    twilio: HttpReceiver, provider: SmsProvider, reply: Reply, reason: str
) -> None:
    twilio.respond = reply

    with pytest.raises(PermanentDeliveryError) as caught:
        provider.send(sms())

    assert caught.value.reason == reason
    assert len(twilio.requests) == 1  # the redirect is not followed


@pytest.mark.parametrize(
    ("reply", "retry_after"),
    [
        (Reply(429, {"Retry-After": "7"}), timedelta(seconds=7)),
        (Reply(503, {"Retry-After": "Fri, 31 Dec 1999 23:59:59 GMT"}), timedelta(0)),
        (Reply(500, {"Retry-After": "later"}), None),
        (Reply(408), None),
    ],
)
def test_transient_answers(
    twilio: HttpReceiver, provider: SmsProvider, reply: Reply, retry_after: timedelta | None
) -> None:
    twilio.respond = reply

    with pytest.raises(TransientDeliveryError) as caught:
        provider.send(sms())

    assert caught.value.retry_after == retry_after
    assert caught.value.maybe_sent is False


def test_a_lost_answer_may_have_sent(twilio: HttpReceiver) -> None:
    twilio.respond = Reply(hang=True)
    provider = SmsProvider(twilio.url + PATH, timeout=0.2)

    with pytest.raises(TransientDeliveryError) as caught:
        provider.send(sms())

    assert caught.value.maybe_sent is True
    provider.close()


def test_an_unreachable_api_is_transient() -> None:
    provider = SmsProvider(f"http://127.0.0.1:{free_port()}{PATH}")

    with pytest.raises(TransientDeliveryError, match="sms: cannot reach") as caught:
        provider.send(sms())

    assert caught.value.maybe_sent is False
    provider.close()


def test_no_phone_number_is_permanent(twilio: HttpReceiver, provider: SmsProvider) -> None:
    with pytest.raises(PermanentDeliveryError, match="the user has no phone number"):
        provider.send(sms(address=None))

    assert twilio.requests == []


def test_a_malformed_url_is_refused() -> None:
    with pytest.raises(ValueError, match="must be an http:// or https:// URL"):
        SmsProvider("twilio.example/Messages.json")
