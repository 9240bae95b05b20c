"""Engagement: what users did with a message (opened it, clicked a link), as user events.

Engagement is recorded as ordinary track events under the Segment spec's names, so segments,
conditions, goals, exit rules and predictions see it like any other event. Each carries the
delivery it is about (`delivery_id`) and where that delivery came from.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from journeys.model import Channel

Engagement = Literal["sent", "opened", "clicked"]
"""How far a delivery got: clicked implies opened, which implies sent."""
ENGAGEMENTS: tuple[Engagement, ...] = ("sent", "opened", "clicked")

EMAIL_OPENED = "Email Opened"
EMAIL_LINK_CLICKED = "Email Link Clicked"
SMS_LINK_CLICKED = "SMS Link Clicked"
PUSH_OPENED = "Push Notification Opened"
IN_APP_VIEWED = "In-App Message Viewed"
IN_APP_CLICKED = "In-App Message Clicked"
IN_APP_DISMISSED = "In-App Message Dismissed"

EVENTS: dict[str, tuple[Channel, Engagement | None]] = {
    EMAIL_OPENED: ("email", "opened"),
    EMAIL_LINK_CLICKED: ("email", "clicked"),
    SMS_LINK_CLICKED: ("sms", "clicked"),
    PUSH_OPENED: ("push", "opened"),
    IN_APP_VIEWED: ("in_app", "opened"),
    IN_APP_CLICKED: ("in_app", "clicked"),
    IN_APP_DISMISSED: ("in_app", None),
}
"""Every engagement event: the channel of the message it is about, and the state it shows
(a dismissal shows the message was seen but is not a click)."""

TRACKED_CHANNELS: tuple[Channel, ...] = ("email", "sms", "push", "in_app")
"""Channels whose messages can be tracked; webhooks never are."""

DELIVERY_ID = "delivery_id"
"""The event property naming the delivery an engagement event is about."""
MACHINE = "machine"
"""The event property that is true for opens and clicks made by scanners and mail proxies."""


def events_of(channel: Channel) -> list[str]:
    """The engagement events a message on `channel` can produce."""
    return [name for name, (of, _) in EVENTS.items() if of == channel]


def state_of(name: str, properties: Mapping[str, Any]) -> Engagement | None:
    """The state an engagement event shows, None for other events. A push opened through its
    tracked link (the event carries the `url`) is a click of that push; a tap reported by the
    app is an open."""
    if name not in EVENTS:
        return None
    _, state = EVENTS[name]
    if name == PUSH_OPENED and properties.get("url"):
        return "clicked"
    return state
