"""build_channels: the provider of every channel from the settings."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from activities.channels import (
    Message,
    OutboxProvider,
    Provider,
    PushProvider,
    Receipt,
    SmsProvider,
    SmtpProvider,
    SmtpServer,
    WebhookProvider,
    build_channels,
    closing_channels,
    embedded_channels,
)
from journeys.errors import ConfigurationError
from journeys.model import CHANNELS, Channel
from journeys.settings import Settings
from tests.receivers import HttpReceiver, Reply, SmtpReceiver


@pytest.fixture(autouse=True)
def no_journeys_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come from each test alone, not from the environment running the tests."""
    for name in os.environ:
        if name.startswith("JOURNEYS_"):
            monkeypatch.delenv(name)


def test_without_providers_the_outbox_takes_everything() -> None:
    channels = build_channels(Settings())

    assert set(channels) == set(CHANNELS)
    for channel in ("email", "push", "sms"):
        assert isinstance(channels[channel], OutboxProvider)
        assert channels[channel].name == "outbox"
    assert isinstance(channels["in_app"], OutboxProvider)
    assert channels["in_app"].name == "inbox"
    assert isinstance(channels["webhook"], WebhookProvider)
    assert channels["webhook"].guard.hosts == frozenset()
    assert all(p.honours_idempotency_key for p in channels.values())
    message = Message("k", "u1", "in_app", {"body": "Hi"})
    assert channels["in_app"].send(message) == Receipt(provider="inbox")


def test_embedded_channels_are_the_defaults() -> None:
    channels = embedded_channels()

    assert {c: p.name for c, p in channels.items()} == {
        c: p.name for c, p in build_channels(Settings()).items()
    }


def test_configured_providers() -> None:
    channels = build_channels(
        Settings(
            smtp_url="smtp://mailer:secret@smtp.example.com?starttls=1",
            email_from="Shop <shop@example.com>",
            push_url="https://fcm.googleapis.com/v1/projects/shop/messages:send",
            push_token="ya29.token",
            sms_url="https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json",
            sms_token="AC1:auth",
            sms_from="+15550001111",
            webhook_secret="whsec",
            webhook_allow="10.0.0.0/8, hooks.internal",
        )
    )

    email = channels["email"]
    assert isinstance(email, SmtpProvider)
    assert email.server == SmtpServer("smtp.example.com", 587, "starttls", "mailer", "secret")
    assert email.sender == "Shop <shop@example.com>"
    assert isinstance(channels["push"], PushProvider)
    assert isinstance(channels["sms"], SmsProvider)
    webhook = channels["webhook"]
    assert isinstance(webhook, WebhookProvider)
    assert webhook.guard.hosts == {"hooks.internal"}
    assert [str(n) for n in webhook.guard.networks] == ["10.0.0.0/8"]


SMTP = {"smtp_url": "smtp://smtp.example.com", "email_from": "shop@example.com"}


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"smtp_url": "smtp://smtp.example.com"}, "JOURNEYS_EMAIL_FROM is required"),
        ({**SMTP, "smtp_url": "http://smtp.example.com"}, "JOURNEYS_SMTP_URL: the scheme must"),
        ({**SMTP, "smtp_url": "smtp://"}, "JOURNEYS_SMTP_URL: a host is required"),
        (
            {**SMTP, "smtp_url": "smtp://u:hunter2@smtp.example.com:x"},
            "JOURNEYS_SMTP_URL: the port",
        ),
        ({**SMTP, "email_from": "Shop"}, "JOURNEYS_EMAIL_FROM: the sender 'Shop' is not"),
        ({"push_url": "fcm.googleapis.com"}, "JOURNEYS_PUSH_URL: must be an http"),
        ({"sms_url": "ftp://api.twilio.com"}, "JOURNEYS_SMS_URL: must be an http"),
        ({"webhook_allow": "10.0.0.0/33"}, "JOURNEYS_WEBHOOK_ALLOW: '10.0.0.0/33' is not"),
        ({"webhook_allow": "*.internal"}, "JOURNEYS_WEBHOOK_ALLOW: '*.internal' is not"),
    ],
)
def test_configuration_errors_name_the_setting(values: dict[str, str], problem: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        build_channels(Settings.model_validate(values))

    assert str(caught.value).startswith(problem)
    assert "hunter2" not in str(caught.value)


class Recorder:
    """A provider that only counts how often it was closed."""

    name = "recorder"
    honours_idempotency_key = True

    def __init__(self) -> None:
        self.closed = 0

    def send(self, message: Message) -> Receipt:
        return Receipt(provider=self.name)

    def close(self) -> None:
        self.closed += 1


def test_closing_channels_closes_each_provider_once() -> None:
    shared, own = Recorder(), Recorder()
    channels: dict[Channel, Provider] = {"email": shared, "push": shared, "sms": own}

    with closing_channels(channels) as opened:
        assert opened is channels
        assert shared.closed == own.closed == 0

    assert (shared.closed, own.closed) == (1, 1)


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    with SmtpReceiver("starttls", username="mailer", password="s3cret:/@") as receiver:
        yield receiver


def test_every_channel_delivers_to_real_servers(smtp: SmtpReceiver) -> None:
    with HttpReceiver(Reply.json({"name": "m/1", "sid": "SM1"})) as http:
        channels = build_channels(
            Settings(
                smtp_url=smtp.url,
                email_from="shop@example.com",
                push_url=http.url + "/push",
                sms_url=http.url + "/sms",
                webhook_allow="127.0.0.1",
            ),
            ssl_context=smtp.client_ssl_context(),
        )
        with closing_channels(channels):
            receipts = [
                channels["email"].send(
                    Message("k1", "u1", "email", {"subject": "Hi", "body": "Hello"}, "a@b.example")
                ),
                channels["push"].send(
                    Message("k2", "u1", "push", {"title": "Hi", "body": "Hello"}, None, ("t",))
                ),
                channels["sms"].send(Message("k3", "u1", "sms", {"body": "Hello"}, "+15551234567")),
                channels["webhook"].send(Message("k4", "u1", "webhook", {"url": http.url + "/wh"})),
                channels["in_app"].send(Message("k5", "u1", "in_app", {"body": "Hello"})),
            ]

        assert [r.provider for r in receipts] == ["smtp", "push", "sms", "webhook", "inbox"]
        assert [r.provider_message_id for r in receipts[1:3]] == ["m/1", "SM1"]
        assert [r.path for r in http.requests] == ["/push", "/sms", "/wh"]
        assert [(m.login, m.tls) for m in smtp.messages] == [("mailer", True)]
