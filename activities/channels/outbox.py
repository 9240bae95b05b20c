"""The provider of a channel with nowhere to send: the delivery record is the message."""

from __future__ import annotations

from activities.channels.base import Message, Receipt


class OutboxProvider:
    """Takes every message without I/O. "outbox" stands in for an unconfigured channel (the
    delivery record shows what would have gone out); "inbox" is the in-app channel, whose
    delivery records are the user's inbox."""

    honours_idempotency_key = True

    def __init__(self, name: str = "outbox") -> None:
        self.name = name

    def send(self, message: Message) -> Receipt:
        """Take the message: nothing to do beyond saying so."""
        return Receipt(provider=self.name)

    def close(self) -> None:
        """Nothing to release."""
