"""Erasure, export and suppression of one end user in the store, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from journeys.contracts import AdmitInput, EnrollInput, ProgressInput
from journeys.model import EntryLimit
from journeys.ratelimits import parse_rate
from journeys.store import DeliveryRecord, EventRecord, NewEvent, Store
from journeys.store.privacy import ERASED, user_hash
from tests.factories import append_event, enroll, move, rows_holding, sent_delivery

pytestmark = pytest.mark.store_backends("sqlite", "postgresql")

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
ADA = "user-ada-7781"
ADDRESS = "ada.lovelace.7781@example.org"
BOB = "user-bob-4420"
RUN = f"journey:cart:{ADA}:0b7e5e9c-2f7a-4c55-9a41-1f1e9d0c8a11"


def _address(user_id: str) -> str:
    return ADDRESS if user_id == ADA else f"{user_id}@example.org"


def _identify(user_id: str, message_id: str, *, consent: bool = False) -> NewEvent:
    traits = {"email": _address(user_id), "plan": "pro"}
    return NewEvent(
        message_id=message_id,
        user_id=user_id,
        type="identify",
        name=None,
        properties=traits,
        timestamp=T0,
        traits=traits,
        consent=consent,
    )


def _populate(store: Store, user_id: str, run: str) -> None:
    """A user with a profile, events, a run waiting at a node, a refused entry, an email sent
    (to their address), an in-app message and a send held by a rate limit."""
    store.append_events([_identify(user_id, f"{user_id}-id")])
    append_event(
        store,
        message_id=f"{user_id}-t",
        user_id=user_id,
        type="track",
        name="Cart Updated",
        properties={"sku": "ABC"},
        timestamp=T0,
    )
    enroll(
        store,
        enrollment_id=run,
        user_id=user_id,
        journey_id="cart",
        version=1,
        workflow_id=run.rpartition(":")[0],
        entered_at=T0,
    )
    move(store, run, "wait_checkout", T0)
    if store.get_journey("cart") is None:
        store.save_draft("cart", {})
    for number, enrollment_id in enumerate((run, f"{run}-refused")):
        entry = EnrollInput(
            enrollment_id=enrollment_id,
            user_id=user_id,
            journey_id="cart",
            version=1,
            workflow_id=run.rpartition(":")[0],
            entered_at=T0 + timedelta(seconds=number),
        )
        limit = EntryLimit(count=1, per="1d")
        store.admit_entry(AdmitInput(enrollment=entry, limit=limit, at=entry.entered_at))
    sent_delivery(
        store,
        f"{run}:reminder",
        user_id=user_id,
        content={"to": f"{user_id} <{_address(user_id)}>"},
    )
    store.begin_delivery(
        idempotency_key=f"{run}:inbox",
        journey_id="cart",
        version=1,
        node_id="inbox",
        user_id=user_id,
        channel="in_app",
        variant=None,
        content={"title": f"Hello {user_id}"},
    )
    store.claim_delivery(f"{run}:inbox", {"title": f"Hello {user_id}"}, rate=parse_rate("1/h"))


def _all_deliveries(store: Store) -> list[DeliveryRecord]:
    with store._read() as session:
        return list(session.exec(select(DeliveryRecord)))


def _never(_record: DeliveryRecord, _recent: list[EventRecord]) -> NewEvent:
    raise AssertionError("no engagement event is made for an erased user's message")


def test_erasure_leaves_no_row_with_the_id_or_address(store: Store) -> None:
    _populate(store, ADA, RUN)
    bob_run = RUN.replace(ADA, BOB)
    _populate(store, BOB, bob_run)
    before = (store.journey_counts("cart"), store.message_counts("cart"))
    assert rows_holding(store, ADA, ADDRESS)  # the scan sees them before

    assert store.erase_user(ADA) is True

    assert rows_holding(store, ADA, ADDRESS) == []
    assert not store.holds_user(ADA)
    assert store.export_user(ADA) is None
    # The counts the statistics show keep the erased user's runs and messages, anonymously.
    counts = store.journey_counts("cart")
    assert sum(counts.values()) == sum(before[0].values())
    assert counts.get("exited") == 1  # the erased run, no longer active
    assert store.message_counts("cart") == before[1]
    assert [e.id for e in store.enrollments_for_user(BOB)] == [bob_run]
    assert store.get_user(BOB) is not None
    assert len(store.events_for_user(BOB, limit=10)) == 2
    assert [d.content for d in store.deliveries_for_user(BOB)] != [{}, {}]
    assert store.suppressed({ADA, BOB}) == {ADA}
    assert user_hash(ADA) in {row[2] for row in rows_holding(store, user_hash(ADA))}

    assert store.erase_user(ADA) is False  # twice: nothing left


def test_erased_rows_are_anonymous_but_counted(store: Store) -> None:
    _populate(store, ADA, RUN)
    store.erase_user(ADA)
    assert store.deliveries_for_user(ADA) == []
    deliveries = _all_deliveries(store)
    assert {d.content.get("to") for d in deliveries} == {None}
    assert all(d.user_id.startswith(ERASED) for d in deliveries)
    assert len({d.user_id for d in deliveries}) == 1  # one marker per erased user


def test_a_suppressed_user_comes_back_only_with_consent(store: Store) -> None:
    _populate(store, ADA, RUN)
    store.erase_user(ADA)
    later = NewEvent(
        message_id="late",
        user_id=ADA,
        type="track",
        name="Cart Updated",
        properties={},
        timestamp=T0,
    )
    assert store.append_events([later, _identify(ADA, "no-consent")]) == [False, False]
    assert not store.holds_user(ADA)
    assert store.merge_profiles("anon:x", ADA) is False  # an alias brings nothing back
    assert store.update_traits(ADA, {"plan": "gold"}, []) == {}  # nor a run's update
    [email] = [d for d in _all_deliveries(store) if d.channel == "email"]
    assert email.id is not None
    assert store.record_engagement(email.id, _never) is None  # nor a late click
    assert not store.holds_user(ADA)

    assert store.append_events([_identify(ADA, "agreed", consent=True)]) == [True]
    assert store.suppressed({ADA}) == set()
    assert store.get_user(ADA) is not None
    assert store.append_events([later]) == [True]


def test_a_run_ending_after_its_user_was_erased_records_nothing(store: Store) -> None:
    _populate(store, ADA, RUN)
    store.erase_user(ADA)
    # The run's end, and a run of the user whose enrollment was not recorded yet.
    store.record_steps([ProgressInput(enrollment_id=RUN, at=T0, ended="exited")])
    late = EnrollInput(
        enrollment_id=f"journey:cart:{ADA}:late",
        user_id=ADA,
        journey_id="cart",
        version=1,
        workflow_id=f"journey:cart:{ADA}",
        entered_at=T0,
    )
    store.record_steps(
        [ProgressInput(enrollment_id=late.enrollment_id, at=T0, node_id="a")], enrollment=late
    )
    assert rows_holding(store, ADA) == []


def test_export_holds_everything(store: Store) -> None:
    _populate(store, ADA, RUN)
    data = store.export_user(ADA)
    assert data is not None
    assert data.profile is not None
    assert data.profile.traits["email"] == ADDRESS
    assert [e.message_id for e in data.events] == [f"{ADA}-id", f"{ADA}-t"]
    assert [e.id for e in data.enrollments] == [RUN]
    assert [v.node_id for v in data.visits] == ["wait_checkout"]
    assert [a.admitted for a in data.admissions] == [True, False]
    assert sorted(d.channel for d in data.deliveries) == ["email", "in_app"]
    assert store.export_user("nobody") is None
