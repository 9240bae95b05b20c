"""The store reads behind a user's timeline, and its paging, on SQLite and PostgreSQL: events
a page at a time (ties broken by id), a user's visits and refused entries, and pages that
cover every entry exactly once whichever way they go, however many entries share an instant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from journeys.model import EntryLimit
from journeys.store import NewEvent, Store
from journeys.timeline import Place, TimelineEntry, parse_place, user_timeline
from tests.factories import admit, enroll, finish, move

pytestmark = pytest.mark.store_backends("sqlite", "postgresql")

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def views(store: Store, user_id: str, times: list[datetime]) -> list[int]:
    """Store one event per time; their ids, in order."""
    store.append_events(
        [
            NewEvent(f"{user_id}-{n}", user_id, "track", f"View {n}", {}, at)
            for n, at in enumerate(times)
        ]
    )
    found = store.events_for_user(user_id, newest_first=False)
    return [event.id for event in found if event.id is not None]


def test_events_page_goes_by_time_then_id_either_way(store: Store) -> None:
    ids = views(store, "ada", [T0, T0, T0, T0 + timedelta(seconds=1)])
    views(store, "grace", [T0])

    def page(**bounds: tuple[datetime, int | None] | None) -> list[int | None]:
        return [e.id for e in store.events_page("ada", limit=2, **bounds)]

    assert page() == ids[:2]
    assert page(after=(T0, ids[1])) == ids[2:]
    assert page(after=(T0, -1)) == ids[:2]  # a plain time: from that instant on
    assert page(before=(T0 + timedelta(seconds=1), ids[3])) == ids[1:3]  # the last two before
    assert page(before=(T0, ids[1])) == ids[:1]
    assert page(after=(T0, ids[0]), before=(T0, ids[2])) == ids[1:2]
    assert page(after=(T0 + timedelta(seconds=1), ids[3])) == []
    # No id: past every event of the instant.
    assert page(after=(T0, None)) == ids[3:]
    assert page(before=(T0, None)) == ids[1:3]


def enters(store: Store, user_id: str, run: str, *steps: tuple[str, datetime]) -> None:
    """The user enters journey "cart" (its run `run`) at `T0` and reaches these nodes."""
    enroll(
        store, enrollment_id=run, user_id=user_id, journey_id="cart", version=1,
        workflow_id=f"journey:cart:{user_id}", entered_at=T0,
    )  # fmt: skip
    for node_id, at in steps:
        move(store, run, node_id, at)


def test_a_users_visits_and_refused_entries(store: Store) -> None:
    enters(store, "ada", "e1", ("wait", T0), ("mail", T0 + timedelta(hours=1)))
    enters(store, "grace", "e2", ("wait", T0))
    store.save_draft("cart", {})
    limit = EntryLimit(count=1, per="1d")
    assert admit(store, "cart", "r1", T0, limit)
    assert not admit(store, "cart", "r2", T0 + timedelta(minutes=1), limit)

    visits = store.visits_for_user("ada")
    assert [(v.enrollment_id, v.node_id) for v in visits] == [("e1", "wait"), ("e1", "mail")]
    [refused] = store.refused_entries("user-r2")
    assert (refused.journey_id, refused.workflow_id, refused.admitted) == ("cart", "w-r2", False)
    assert store.refused_entries("user-r1") == []


def test_pages_of_one_cover_every_entry_once_forwards_and_backwards(store: Store) -> None:
    # Events and a run's steps sharing instants: the hardest case for a cursor.
    views(store, "ada", [T0, T0, T0 + timedelta(minutes=1)])
    enters(store, "ada", "e1", ("wait", T0), ("mail", T0 + timedelta(minutes=1)))
    finish(store, "e1", "completed", T0 + timedelta(minutes=1))
    whole = user_timeline(store, "ada", limit=1000)
    assert whole is not None
    assert [e.kind for e in whole.entries] == [
        "event", "event", "entered", "step", "event", "step", "ended",
    ]  # fmt: skip

    forwards: list[TimelineEntry] = []
    after: Place | None = None
    while True:
        page = user_timeline(store, "ada", limit=1, after=after)
        assert page is not None
        forwards += page.entries
        if page.next is None:
            break
        after = parse_place(page.next)
    assert forwards == whole.entries

    backwards: list[TimelineEntry] = []
    before = parse_place("2030-01-01T00:00:00Z")
    while True:
        page = user_timeline(store, "ada", limit=1, before=before)
        assert page is not None
        backwards = page.entries + backwards
        if page.previous is None:
            break
        before = parse_place(page.previous)
    assert backwards == whole.entries


def test_places_parse_from_cursors_and_times_and_nothing_else() -> None:
    place = Place(T0, 1, "e1", 3)
    assert parse_place(place.cursor()) == place
    assert parse_place("2026-03-01T09:00:00Z") == Place(T0, -1)
    assert parse_place("2026-03-01T10:00:00+01:00") == Place(T0, -1)
    bad_places = [
        "2026-03-01T09:00:00", "yesterday", "", "W10", "WyJ4IiwxLCIiLDBd",
        "9999-12-31T23:00:00-05:00", "0001-01-01T00:00:00+01:00",
    ]  # fmt: skip
    for bad in bad_places:
        with pytest.raises(ValueError, match=r"cursor|zone|out of range"):
            parse_place(bad)


def test_a_message_held_by_quiet_hours_says_so(store: Store) -> None:
    email = {"type": "message", "channel": "email", "content": {"subject": "Hi", "body": "b"}}
    document = {
        "id": "cart",
        "name": "Cart",
        "entry": {"event": "Added to Cart"},
        "settings": {"quiet_hours": {"start": "21:00", "end": "08:00"}},
        "start": "mail",
        "nodes": {
            "mail": {**email, "next": "receipt"},
            "receipt": {**email, "transactional": True},
        },
    }
    store.save_draft("cart", document)
    store.publish("cart")
    # Reached long before the messages were recorded (now): the quiet hours held the first.
    enters(store, "ada", "e1", ("mail", T0), ("receipt", T0))
    for node_id in ("mail", "receipt"):
        store.begin_delivery(
            idempotency_key=f"e1:{node_id}", journey_id="cart", version=1, node_id=node_id,
            user_id="ada", channel="email", variant=None, content={},
        )  # fmt: skip
        store.finish_delivery(f"e1:{node_id}", "sent")
    page = user_timeline(store, "ada", limit=100)
    assert page is not None
    assert [(e.kind, e.what, e.why) for e in page.entries] == [
        ("entered", "entered Cart", "entry event Added to Cart"),
        ("step", "reached mail (message)", None),
        (
            "wait ended",
            "quiet hours over at mail",
            "quiet hours 21:00–08:00 (the user's time) held the message",
        ),
        ("message", "email message sent", None),
        ("step", "reached receipt (message)", None),
        ("message", "email message sent", None),  # transactional: never held
    ]
