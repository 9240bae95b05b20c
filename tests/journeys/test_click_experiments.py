"""Experiments decided on clicks.

The store counts a variant's clickers: users who clicked (a person, never a link scanner) a
delivery of this journey from the given message nodes, sent after they reached the experiment,
within the window. The same sequential rule as for conversions then picks the variant with the
better click-through rate, and link scanners clicking every link of one variant never make it
win. The rows are written as the application writes them: enrollments, node visits and
deliveries, and engagement marked from click events by `Store.mark_engaged`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert
from sqlmodel import col, select

from journeys import experiments
from journeys.contracts import delivery_key
from journeys.engagement import DELIVERY_ID, EMAIL_LINK_CLICKED, MACHINE
from journeys.store import DeliveryRecord, EnrollmentRecord, NewEvent, NodeVisitRecord, Store

T0 = datetime(2026, 1, 5, 9, tzinfo=UTC)
WEEK = timedelta(days=7)


@dataclass
class User:
    """A user who reached the experiment `split` in `variant`, and the messages then sent."""

    user_id: str
    variant: str
    reached_at: datetime
    sent: dict[str, datetime | None] = field(default_factory=dict)
    """Message node → when its delivery was sent (None: skipped)."""
    run: str = "run"
    """Which of the user's runs through the journey this is."""
    visited: bool = True
    """Whether the run reached `split` (False: only its enrollment and deliveries)."""


def populate(store: Store, journey_id: str, users: list[User]) -> dict[tuple[str, str], int]:
    """Record the users' enrollments, visits of `split` and deliveries in one transaction (as
    rows: thousands of them per simulated experiment); the delivery ids by (user, node)."""
    enrollments: list[dict[str, Any]] = []
    visits: list[dict[str, Any]] = []
    deliveries: list[dict[str, Any]] = []
    for user in users:
        enrollment = f"journey:{journey_id}:{user.user_id}:{user.run}"
        enrollments.append(
            {
                "id": enrollment,
                "user_id": user.user_id,
                "journey_id": journey_id,
                "version": 1,
                "workflow_id": f"journey:{journey_id}:{user.user_id}",
                "status": "active",
                "variant": user.variant,
                "entered_at": user.reached_at,
            }
        )
        if user.visited:
            visits.append(
                {
                    "enrollment_id": enrollment,
                    "node_id": "split",
                    "journey_id": journey_id,
                    "reached_at": user.reached_at,
                }
            )
        deliveries += [
            {
                "idempotency_key": delivery_key(enrollment, node_id),
                "journey_id": journey_id,
                "version": 1,
                "node_id": node_id,
                "user_id": user.user_id,
                "channel": "email",
                "status": "sent" if sent_at is not None else "skipped",
                "content": {},
                "variant": user.variant,
                "transactional": False,
                "created_at": user.reached_at,
                "sent_at": sent_at,
            }
            for node_id, sent_at in user.sent.items()
        ]
    keys = [row["idempotency_key"] for row in deliveries]
    with store._write() as session:
        for table, rows in [
            (EnrollmentRecord, enrollments),
            (NodeVisitRecord, visits),
            (DeliveryRecord, deliveries),
        ]:
            if rows:
                session.execute(insert(table.__table__), rows)  # type: ignore[attr-defined]
        written = session.execute(
            select(DeliveryRecord.user_id, DeliveryRecord.node_id, DeliveryRecord.id).where(
                col(DeliveryRecord.idempotency_key).in_(keys)
            )
        )
        return {(user, node): id_ for user, node, id_ in written if id_ is not None}


def click(delivery_id: int, user_id: str, at: datetime, *, machine: bool = False) -> NewEvent:
    """A click on a tracked link of the delivery, as the tracking endpoint records it."""
    return NewEvent(
        message_id=f"click:{delivery_id}:{at.isoformat()}:{machine}",
        user_id=user_id,
        type="track",
        name=EMAIL_LINK_CLICKED,
        properties={DELIVERY_ID: delivery_id, MACHINE: machine, "url": "https://shop.example"},
        timestamp=at,
    )


@pytest.mark.store_backends("sqlite", "postgresql")
def test_variant_clicks_counts_a_persons_clicks_on_later_tracked_messages(store: Store) -> None:
    after = T0 + timedelta(minutes=1)
    users = [
        User("clicked", "a", T0, {"mail": after}),
        User("clicked-twice", "a", T0, {"mail": after, "other": after}),
        User("scanned", "a", T0, {"mail": after}),
        User("late", "a", T0, {"mail": after}),
        # This user's earlier run sent `mail`; this run has not (yet).
        User("earlier-run", "a", T0 - WEEK, {"mail": T0 - WEEK}, run="old", visited=False),
        User("earlier-run", "a", T0),
        User("untracked-node", "a", T0, {"receipt": after}),
        User("clicked-b", "b", T0, {"mail": after}),
        User("quiet-b", "b", T0, {"mail": after}),
        User("skipped-b", "b", T0, {"mail": None}),
    ]
    ids = populate(store, "shop", users)
    populate(store, "elsewhere", [User("clicked-b", "b", T0, {"mail": after})])
    hour = T0 + timedelta(hours=1)
    store.mark_engaged(
        [
            click(ids["clicked", "mail"], "clicked", hour),
            click(ids["clicked-twice", "mail"], "clicked-twice", hour),
            click(ids["clicked-twice", "other"], "clicked-twice", hour),
            click(ids["scanned", "mail"], "scanned", after, machine=True),
            click(ids["late", "mail"], "late", T0 + WEEK + timedelta(minutes=1)),
            click(ids["earlier-run", "mail"], "earlier-run", hour),
            click(ids["untracked-node", "receipt"], "untracked-node", hour),
            click(ids["clicked-b", "mail"], "clicked-b", hour),
        ]
    )

    # Not counted: the scanner's click, the click a week late, the earlier run's message, the
    # node not asked about, the skipped one, the other journey's.
    assert store.variant_clicks("shop", "split", ["mail", "other"], WEEK) == {"a": 2, "b": 1}
    assert store.variant_clicks("shop", "split", ["mail"], timedelta(days=8)) == {"a": 3, "b": 1}
    assert store.variant_clicks("shop", "split", ["mail"], timedelta(minutes=30)) == {}
    assert store.variant_clicks("shop", "split", [], WEEK) == {}
    assert store.variant_clicks("shop", "other-node", ["mail"], WEEK) == {}
    # Users are those of `variant_counts`; clicks replace conversions as the successes.
    counts = store.variant_counts("shop", "split")
    clicks = store.variant_clicks("shop", "split", ["mail", "other"], WEEK)
    assert experiments.counts_of(["a", "b", "c"], counts, clicks) == {
        "a": experiments.Counts(6, 2),
        "b": experiments.Counts(3, 1),
        "c": experiments.Counts(0, 0),
    }


def simulate(
    store: Store,
    seed: int,
    ctr: dict[str, float],
    scanned: dict[str, float],
    *,
    min_users: int,
    looks_at_most: int = 6,
) -> str | None:
    """Users arrive one by one, split evenly, and get one tracked email; each clicks with the
    variant's click-through rate, and link scanners click the emails of `scanned` share of each
    variant. Looks are taken as the experiment asks for them: each time the smallest variant
    has doubled (asking in between changes nothing), until `looks_at_most` were taken."""
    rng = random.Random(seed)
    journey_id = f"sim-{seed}"
    names = list(ctr)
    looks, arrived = 0, 0
    while True:
        due = experiments.look_size(min_users, looks) * len(names)
        batch = [
            User(f"u{i}", names[i % len(names)], T0 + timedelta(minutes=i))
            for i in range(arrived, due)
        ]
        for user in batch:
            user.sent["mail"] = user.reached_at + timedelta(seconds=30)
        ids = populate(store, journey_id, batch)
        events = []
        for user in batch:
            delivery = ids[user.user_id, "mail"]
            sent_at = user.sent["mail"]
            assert sent_at is not None
            if rng.random() < scanned[user.variant]:
                events.append(click(delivery, user.user_id, sent_at, machine=True))
            if rng.random() < ctr[user.variant]:
                events.append(click(delivery, user.user_id, sent_at + timedelta(hours=2)))
        store.mark_engaged(events)
        arrived = due
        counts = store.variant_counts(journey_id, "split")
        clicks = store.variant_clicks(journey_id, "split", ["mail"], WEEK)
        decision = experiments.decide(
            experiments.counts_of(names, counts, clicks), min_users, looks
        )
        if decision.winner is not None or decision.looks >= looks_at_most:
            return decision.winner
        looks = decision.looks


def test_the_better_click_through_rate_wins_and_scanners_never_make_a_winner(
    store: Store,
) -> None:
    # Scanners click most of variant a's emails (its audience sits behind corporate mail
    # gateways): counted, a would look three times better than b.
    ctr = {"a": 0.05, "b": 0.25}
    scanned = {"a": 0.8, "b": 0.0}
    picked = [simulate(store, seed, ctr, scanned, min_users=40) for seed in range(100)]
    assert picked.count("b") >= 95, picked
    assert "a" not in picked


def test_scanners_alone_do_not_make_a_winner(store: Store) -> None:
    # The same click-through rate everywhere; scanners click nearly all of a's emails.
    ctr = {"a": 0.15, "b": 0.15}
    scanned = {"a": 0.9, "b": 0.0}
    picked = [
        simulate(store, seed, ctr, scanned, min_users=20, looks_at_most=4) for seed in range(100)
    ]
    # Only the rule's own error budget (5% over all looks, with binomial noise).
    assert sum(winner is not None for winner in picked) <= 10, picked
