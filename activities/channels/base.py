"""The interface every delivery provider implements, and its errors.

The deliver activity renders a message, then hands it to the provider configured for its
channel. A provider sends or raises:

- `PermanentDeliveryError`: the message can never go (4xx, invalid address, refused target);
  the journey takes `on_failure` at once.
- `TransientDeliveryError`: it may go later (timeouts, 5xx, 429); the activity retries with
  backoff, waiting at least `retry_after` when the provider said so. `maybe_sent` tells that
  the provider may have taken the message before the error (a timeout after the request was
  written), so a retry is safe only where the provider honours the idempotency key.

Every provider passes the message's idempotency key on, so a provider that honours it never
delivers twice when the same message is sent again after a crash.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

from journeys.errors import JourneysError
from journeys.model import Channel


class DeliveryError(JourneysError):
    """A provider did not take the message; `reason` says why, for the delivery record."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PermanentDeliveryError(DeliveryError):
    """The message can never be delivered as it is: do not retry."""


class TransientDeliveryError(DeliveryError):
    """The message may be delivered later: retry, after `retry_after` if the provider said."""

    def __init__(
        self, reason: str, *, retry_after: timedelta | None = None, maybe_sent: bool = False
    ) -> None:
        super().__init__(reason)
        self.retry_after = retry_after
        self.maybe_sent = maybe_sent


@dataclass(frozen=True)
class Message:
    """One rendered message for one user, as a provider sends it."""

    idempotency_key: str
    user_id: str
    channel: Channel
    content: dict[str, Any]
    """The rendered content fields of the channel (journey-format.md, Templates)."""
    address: str | None = None
    """The email address (email) or phone number (sms); None for the other channels."""
    push_tokens: tuple[str, ...] = ()
    """The device tokens (push)."""
    unsubscribe_url: str | None = None
    """The signed one-click unsubscribe link (email, non-transactional)."""


@dataclass(frozen=True)
class Receipt:
    """What the provider said when it took the message."""

    provider: str
    """Which provider took it: "smtp", "push", "sms", "webhook", "outbox" or "inbox"."""
    provider_message_id: str | None = None
    """The provider's id for the message (Message-ID, FCM name, SMS sid), when it gives one."""
    unregistered_tokens: tuple[str, ...] = field(default=())
    """Push tokens the gateway reported unregistered: to remove from the profile."""


class Provider(Protocol):
    """Sends messages of one channel. Implementations are thread-safe (activities run in a
    thread pool) and raise only `DeliveryError`s for delivery problems."""

    name: str
    honours_idempotency_key: bool
    """Whether sending the same key twice delivers once (then a retry after an interrupted
    send is safe)."""

    def send(self, message: Message) -> Receipt:
        """Deliver `message` or raise a `DeliveryError`."""
        ...

    def close(self) -> None:
        """Release connections (the worker is stopping)."""
        ...
