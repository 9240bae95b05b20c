"""Routing rules: which journeys care about an event, and who may enter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from journeys.conditions import no_facts
from journeys.contracts import JourneyEvent
from journeys.model import Journey
from journeys.reactions import ANY_EVENT, enters_on, entry_holds, interest, may_reenter

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def journey(**changes: Any) -> Journey:
    document: dict[str, Any] = {
        "id": "cart",
        "name": "Cart",
        "entry": {"event": "Added to Cart"},
        "exit": [{"event": "Order Completed"}],
        "goal": {"event": "Coupon Used", "within": "1d"},
        "start": "wait",
        "nodes": {
            "wait": {
                "type": "wait_for_event",
                "timeout": "1h",
                "on_timeout": "idle",
                "paths": [{"event": "Checkout Started", "next": None}],
            },
            "idle": {"type": "wait_for_inactivity", "duration": "1h", "events": ["Page Viewed"]},
        },
        **changes,
    }
    return Journey.model_validate(document)


def event(name: str | None, type: str = "track", **properties: Any) -> JourneyEvent:
    return JourneyEvent.model_validate(
        {"message_id": "m", "type": type, "name": name, "properties": properties, "timestamp": NOW}
    )


def test_interest_collects_every_event_a_run_reacts_to() -> None:
    cares = interest(journey())
    assert cares.event_names == {
        "Added to Cart", "Order Completed", "Coupon Used", "Checkout Started", "Page Viewed",
    }  # fmt: skip
    assert not cares.trait_changes
    assert cares.covers(event("Checkout Started"))
    assert not cares.covers(event("Product Viewed"))
    assert not cares.covers(event(None, type="identify"))


def test_inactivity_over_every_event_and_when_rules_widen_interest() -> None:
    wide = journey(
        exit=[{"when": {"field": "user.plan", "op": "eq", "value": "gone"}}],
        nodes={"wait": {"type": "wait_for_inactivity", "duration": "1h"}},
    )
    cares = interest(wide)
    assert ANY_EVENT in cares.event_names
    assert cares.covers(event("Anything At All"))
    assert cares.covers(event(None, type="identify"))
    combined = interest(journey()) | cares
    assert combined.trait_changes
    assert "Checkout Started" in combined.event_names


def test_of_paths_and_message_conditions_hear_their_channels_engagement() -> None:
    mail = {"type": "message", "channel": "email", "content": {}, "next": "wait"}
    push = {"type": "message", "channel": "push", "content": {}, "next": "route"}
    reacting = journey(
        exit=[{"event": "Order Completed", "match": {"cart": "{{ entry.cart }}"}}],
        start="mail",
        nodes={
            "mail": mail,
            "wait": {
                "type": "wait_for_event",
                "timeout": "1h",
                "on_timeout": "push",
                "paths": [{"event": "Email Link Clicked", "of": "mail", "next": "push"}],
            },
            "push": push,
            "route": {
                "type": "branch",
                "paths": [{"when": {"not": {"message": "push", "engagement": "opened"}}}],
            },
        },
    )
    assert interest(reacting).event_names == {
        "Added to Cart", "Order Completed", "Coupon Used",
        "Email Opened", "Email Link Clicked", "Push Notification Opened",
    }  # fmt: skip
    # A keyed match changes nothing.
    plain = journey(exit=[{"event": "Order Completed", "match": {"cart": "{{ entry.cart }}"}}])
    assert interest(plain).event_names == interest(journey()).event_names


def test_only_the_entry_track_event_enters() -> None:
    assert enters_on(journey(), event("Added to Cart"))
    assert not enters_on(journey(), event("Added to Cart", type="page"))
    assert not enters_on(journey(), event("Checkout Started"))
    assert not enters_on(journey(entry={"api": "go"}), event("Added to Cart"))


def test_a_page_entry_enters_on_that_page_view_only() -> None:
    checkout = journey(entry={"page": "Checkout"})
    assert enters_on(checkout, event("Checkout", type="page"))
    assert not enters_on(checkout, event("Checkout"))  # a track event of that name
    assert not enters_on(checkout, event("Checkout", type="screen"))
    assert not enters_on(checkout, event("Home", type="page"))
    # A page call without a name enters nothing, whatever the journeys' entries.
    assert not enters_on(checkout, event(None, type="page"))
    assert not enters_on(journey(), event(None, type="page"))


@pytest.mark.parametrize(
    ("reentry", "previous", "allowed"),
    [
        ("never", None, True),
        ("never", NOW - timedelta(days=300), False),
        ("always", NOW - timedelta(seconds=1), True),
        ("7d", NOW - timedelta(days=6), False),
        ("7d", NOW - timedelta(days=7), True),
        ("PT1H", NOW - timedelta(minutes=59), False),
    ],
)
def test_reentry(reentry: str, previous: datetime | None, allowed: bool) -> None:
    cart = journey(entry={"event": "Added to Cart", "reentry": reentry})
    assert may_reenter(cart, previous, NOW) is allowed


@pytest.mark.parametrize(
    ("traits", "entry", "holds"),
    [
        ({"country": "FR"}, {"total": 5}, True),
        ({"country": "FR"}, {"total": 0}, False),
        ({"country": "DE"}, {"total": 5}, False),
        ({}, {"total": 5}, False),
    ],
)
def test_entry_where_and_audience(
    traits: dict[str, Any], entry: dict[str, Any], holds: bool
) -> None:
    cart = journey(
        entry={
            "event": "Added to Cart",
            "where": {"field": "event.total", "op": "gt", "value": 0},
            "audience": {"field": "user.country", "op": "eq", "value": "FR"},
        }
    )
    assert entry_holds(cart, "u1", traits, entry, no_facts) is holds
