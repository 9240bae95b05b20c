"""Delivery providers, one per channel, built from the settings.

Provider (base.Provider)   send(Message) -> Receipt, or raise a DeliveryError
├── SmtpProvider           email over SMTP: JOURNEYS_SMTP_URL, JOURNEYS_EMAIL_FROM
├── PushProvider           FCM HTTP v1-shaped gateway: JOURNEYS_PUSH_URL, JOURNEYS_PUSH_TOKEN
├── SmsProvider            Twilio-shaped API: JOURNEYS_SMS_URL, _SMS_TOKEN, _SMS_FROM
├── WebhookProvider        the node's URL: JOURNEYS_WEBHOOK_SECRET, JOURNEYS_WEBHOOK_ALLOW
└── OutboxProvider         "outbox" for a channel with no provider configured; "inbox" for
                           in-app messages (the delivery record is the message)

DeliveryError
├── PermanentDeliveryError    never retry
│   └── PushRefused           no device took it; carries the unregistered tokens
└── TransientDeliveryError    retry, after `retry_after`; `maybe_sent` when it may have gone
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from activities.channels.base import (
    DeliveryError,
    Message,
    PermanentDeliveryError,
    Provider,
    Receipt,
    TransientDeliveryError,
)
from activities.channels.email import SmtpProvider, SmtpServer
from activities.channels.outbox import OutboxProvider
from activities.channels.push import PushProvider, PushTokensUnregistered
from activities.channels.sms import SmsProvider
from activities.channels.webhook import AddressGuard, WebhookProvider
from journeys.errors import ConfigurationError
from journeys.model import Channel
from journeys.settings import Settings

__all__ = [
    "AddressGuard",
    "DeliveryError",
    "Message",
    "OutboxProvider",
    "PermanentDeliveryError",
    "Provider",
    "PushProvider",
    "PushTokensUnregistered",
    "Receipt",
    "SmsProvider",
    "SmtpProvider",
    "SmtpServer",
    "TransientDeliveryError",
    "WebhookProvider",
    "build_channels",
    "closing_channels",
    "embedded_channels",
]


def embedded_channels() -> dict[Channel, Provider]:
    """The providers that need no settings: the outbox for email, push and SMS, the inbox for
    in-app messages, and unsigned webhooks to public addresses."""
    return {
        "email": OutboxProvider(),
        "push": OutboxProvider(),
        "sms": OutboxProvider(),
        "webhook": WebhookProvider(),
        "in_app": OutboxProvider("inbox"),
    }


def build_channels(
    settings: Settings, *, ssl_context: ssl.SSLContext | None = None
) -> dict[Channel, Provider]:
    """The provider of every channel: the configured one, else the outbox (the inbox for
    in-app messages).

    `ssl_context` decides which certificates TLS connections trust (default: the system's).
    Raise `ConfigurationError` naming the setting that is missing or malformed.
    """
    email: Provider = OutboxProvider()
    if settings.smtp_url:
        if not settings.email_from:
            raise ConfigurationError("JOURNEYS_EMAIL_FROM is required with JOURNEYS_SMTP_URL")
        with _setting("JOURNEYS_SMTP_URL"):
            server = SmtpServer.from_url(settings.smtp_url)
        with _setting("JOURNEYS_EMAIL_FROM"):
            email = SmtpProvider(server, settings.email_from, ssl_context=ssl_context)
    push: Provider = OutboxProvider()
    if settings.push_url:
        with _setting("JOURNEYS_PUSH_URL"):
            push = PushProvider(settings.push_url, settings.push_token, ssl_context=ssl_context)
    sms: Provider = OutboxProvider()
    if settings.sms_url:
        with _setting("JOURNEYS_SMS_URL"):
            sms = SmsProvider(
                settings.sms_url, settings.sms_token, settings.sms_from, ssl_context=ssl_context
            )
    with _setting("JOURNEYS_WEBHOOK_ALLOW"):
        webhook = WebhookProvider(
            settings.webhook_secret, settings.webhook_allow, ssl_context=ssl_context
        )
    return {
        "email": email,
        "push": push,
        "sms": sms,
        "webhook": webhook,
        "in_app": OutboxProvider("inbox"),
    }


@contextmanager
def closing_channels(
    channels: Mapping[Channel, Provider],
) -> Iterator[Mapping[Channel, Provider]]:
    """Close every provider once when the block ends (the worker is stopping)."""
    try:
        yield channels
    finally:
        for provider in {id(p): p for p in channels.values()}.values():
            provider.close()


@contextmanager
def _setting(name: str) -> Iterator[None]:
    """Turn a provider's `ValueError` about its configuration into one naming the setting."""
    try:
        yield
    except ValueError as error:
        raise ConfigurationError(f"{name}: {error}") from None
