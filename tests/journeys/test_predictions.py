"""Conversion predictions on synthetic histories where conversion depends on recency and cart
adds."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from journeys.predictions import (
    FEATURES,
    NEVER_DAYS,
    Event,
    auc,
    converted,
    features,
    fit,
    held_out,
    preferred_channel,
)

NOW = datetime(2026, 6, 1, tzinfo=UTC)
HORIZON = timedelta(days=7)


def history(rng: random.Random, at: datetime) -> tuple[list[Event], bool]:
    """A user's events before `at`, and whether they convert in the week after: recent
    visitors with cart adds convert far more often."""
    last_seen = rng.uniform(0, 60)
    cart_adds = rng.choice([0, 0, 0, 1, 2, 3])
    events = [Event("Product Viewed", at - timedelta(days=last_seen + i)) for i in range(3)]
    events += [
        Event("Added to Cart", at - timedelta(days=last_seen + 0.1)) for _ in range(cart_adds)
    ]
    chance = 0.02 + 0.5 * (last_seen < 7) * min(cart_adds, 2) / 2 + 0.1 * (last_seen < 14)
    return events, rng.random() < chance


def test_features_of_a_history() -> None:
    events = [
        Event("Product Viewed", NOW - timedelta(days=40)),
        Event("Added to Cart", NOW - timedelta(days=2)),
        Event("Order Completed", NOW - timedelta(days=1)),
        Event("Email Opened", NOW - timedelta(hours=1)),
        Event("Product Viewed", NOW + timedelta(days=1)),  # after: ignored
    ]
    assert dict(zip(FEATURES, features(events, NOW), strict=True)) == {
        "days_since_last_event": pytest.approx(1 / 24),
        "events_30d": 3.0,
        "views_30d": 0.0,
        "cart_adds_30d": 1.0,
        "days_since_last_cart_add": pytest.approx(2.0),
        "purchases": 1.0,
        "messages_engaged": 1.0,
    }
    assert features([], NOW)[0] == NEVER_DAYS
    assert converted(events, NOW - timedelta(days=3), HORIZON)
    assert not converted(events, NOW, HORIZON)


def test_the_model_ranks_converters_above_non_converters_on_held_out_users() -> None:
    rng = random.Random(7)
    users = [(f"u{i}", *history(rng, NOW)) for i in range(3000)]
    train = [(features(e, NOW), y) for uid, e, y in users if not held_out(uid)]
    test = [(features(e, NOW), y) for uid, e, y in users if held_out(uid)]
    assert 0.2 < len(test) / len(users) < 0.3
    model = fit([r for r, _ in train], [y for _, y in train])
    scores = model.predict([r for r, _ in test])
    labels = [y for _, y in test]
    quality = auc(list(scores), labels)
    assert quality is not None
    assert quality > 0.75
    converters = [s for s, y in zip(scores, labels, strict=True) if y]
    others = [s for s, y in zip(scores, labels, strict=True) if not y]
    assert sum(converters) / len(converters) > 2 * sum(others) / len(others)
    weights = model.coefficients()
    assert weights["cart_adds_30d"] > 0
    assert weights["days_since_last_event"] < 0


def test_fit_needs_both_classes() -> None:
    with pytest.raises(ValueError, match="both"):
        fit([[1.0] * len(FEATURES)] * 3, [False] * 3)


def test_auc() -> None:
    assert auc([0.1, 0.4, 0.35, 0.8], [False, False, True, True]) == 0.75
    assert auc([0.5, 0.5], [False, True]) == 0.5
    assert auc([0.1], [True]) is None


def test_preferred_channel() -> None:
    opened = [Event("Email Opened", NOW), Event("Email Link Clicked", NOW)]
    tapped = [Event("Push Notification Opened", NOW)]
    viewed = [Event("In-App Message Viewed", NOW)] * 3
    assert preferred_channel(opened + tapped) == "email"
    assert preferred_channel(tapped + viewed) == "in_app"
    assert preferred_channel(tapped + viewed[:1]) is None  # a tie says nothing
    assert preferred_channel([Event("In-App Message Dismissed", NOW)] * 2 + tapped) == "push"
    assert preferred_channel([Event("Product Viewed", NOW)]) is None
