"""Store writes and reads that only tests need, as functions of the store.

Each records what the application records, through the same store methods: events through
`append_events` (as ingest does), traits through `update_traits`, and enrollments and their
steps through `record_steps` (as the journey activities do), one step per call.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlmodel import SQLModel

from journeys.broadcasts import BROADCAST_NODE, broadcast_delivery_key, broadcast_workflow_id
from journeys.contracts import (
    AdmitInput,
    EndStatus,
    EnrollInput,
    EventType,
    FinalDeliveryStatus,
    ProgressInput,
)
from journeys.model import EntryLimit
from journeys.store import DeliveryRecord, EnrollmentRecord, NewEvent, Store, utcnow


def append_event(
    store: Store,
    *,
    message_id: str,
    user_id: str,
    type: EventType,
    name: str | None,
    properties: dict[str, Any],
    timestamp: datetime,
    received_at: datetime | None = None,
) -> bool:
    """Store one event (and create the user's profile if need be); False when `message_id`
    is already stored."""
    event = NewEvent(
        message_id=message_id,
        user_id=user_id,
        type=type,
        name=name,
        properties=properties,
        timestamp=timestamp,
        received_at=received_at,
    )
    [new] = store.append_events([event])
    return new


def aged_event(
    store: Store, user_id: str, name: str | None, at: datetime, *, routed_at: datetime | None
) -> str:
    """Store a track event (an identify when `name` is None) of time `at`, routed at
    `routed_at` (None: left in the outbox); its message id."""
    message_id = uuid.uuid4().hex
    append_event(
        store, message_id=message_id, user_id=user_id, type="track" if name else "identify",
        name=name, properties={}, timestamp=at,
    )  # fmt: skip
    if routed_at is not None:
        [stored] = [e for e in store.unrouted_events(10_000) if e.message_id == message_id]
        assert stored.id is not None
        store.mark_routed([stored.id], at=routed_at)
    return message_id


def merge_traits(store: Store, user_id: str, traits: dict[str, Any]) -> dict[str, Any]:
    """Shallow-merge `traits` into the profile (created if needed); the merged traits."""
    return store.update_traits(user_id, traits, [])


def get_enrollment(store: Store, enrollment_id: str) -> EnrollmentRecord | None:
    """The enrollment, or None."""
    with store._read() as session:
        return session.get(EnrollmentRecord, enrollment_id)


def enroll(
    store: Store,
    *,
    enrollment_id: str,
    user_id: str,
    journey_id: str,
    version: int,
    workflow_id: str,
    entered_at: datetime,
    variant: str | None = None,
) -> EnrollmentRecord:
    """Record that a user entered a journey, unless that enrollment is recorded already, and
    then, when given, the `variant` it is in."""
    entered = EnrollInput(
        enrollment_id=enrollment_id,
        user_id=user_id,
        journey_id=journey_id,
        version=version,
        workflow_id=workflow_id,
        entered_at=entered_at,
    )
    steps: list[ProgressInput] = []
    if variant is not None:
        steps.append(ProgressInput(enrollment_id=enrollment_id, at=entered_at, variant=variant))
    store.record_steps(steps, enrollment=entered)
    return _recorded(store, enrollment_id)


def move(store: Store, enrollment_id: str, node_id: str, at: datetime) -> EnrollmentRecord:
    """Record that the enrollment reached `node_id`. Raises NotFound for an unknown id."""
    store.record_steps([ProgressInput(enrollment_id=enrollment_id, at=at, node_id=node_id)])
    return _recorded(store, enrollment_id)


def finish(store: Store, enrollment_id: str, status: EndStatus, at: datetime) -> EnrollmentRecord:
    """End the enrollment (a finished one stays as it ended). Raises NotFound."""
    store.record_steps([ProgressInput(enrollment_id=enrollment_id, at=at, ended=status)])
    return _recorded(store, enrollment_id)


def set_variant(store: Store, enrollment_id: str, variant: str) -> EnrollmentRecord:
    """Record the experiment variant the enrollment is in. Raises NotFound."""
    store.record_steps([ProgressInput(enrollment_id=enrollment_id, at=utcnow(), variant=variant)])
    return _recorded(store, enrollment_id)


def mark_converted(store: Store, enrollment_id: str, at: datetime) -> EnrollmentRecord:
    """Record the conversion unless one is recorded already. Raises NotFound."""
    store.record_steps([ProgressInput(enrollment_id=enrollment_id, at=at, converted=True)])
    return _recorded(store, enrollment_id)


def _recorded(store: Store, enrollment_id: str) -> EnrollmentRecord:
    # `record_steps` raised NotFound already if there were no such enrollment.
    record = get_enrollment(store, enrollment_id)
    assert record is not None
    return record


def sent_delivery(
    store: Store, key: str, *, sent_at: datetime | None = None, **fields: Any
) -> DeliveryRecord:
    """A delivery recorded and sent as the deliver activity records one (to "ada" by email
    from node "reminder" of journey "cart", unless `fields` say otherwise), sent at `sent_at`
    (default: now)."""
    values: dict[str, Any] = {
        "idempotency_key": key,
        "journey_id": "cart",
        "version": 1,
        "node_id": "reminder",
        "user_id": "ada",
        "channel": "email",
        "variant": None,
        "content": {},
    }
    values.update(fields)
    store.begin_delivery(**values)
    record = store.finish_delivery(key, "sent")
    if sent_at is not None:
        with store._write() as session:
            record.sent_at = sent_at
            session.add(record)
    return record


def broadcast_delivery(
    store: Store, broadcast_id: str, user_id: str, status: FinalDeliveryStatus = "sent"
) -> DeliveryRecord:
    """The broadcast's message to the user, recorded and finished as the broadcast activity
    records one (an email)."""
    key = broadcast_delivery_key(broadcast_id, user_id)
    store.begin_delivery(
        idempotency_key=key,
        journey_id=broadcast_workflow_id(broadcast_id),
        version=0,
        node_id=BROADCAST_NODE,
        user_id=user_id,
        channel="email",
        variant=None,
        content={},
    )
    return store.finish_delivery(key, status)


def admit(store: Store, journey_id: str, run: str, at: datetime, limit: EntryLimit) -> bool:
    """Ask for run `run`'s place under the journey's entry limit, as the activity does (the run
    of user `user-{run}`, workflow id `w-{run}`)."""
    enrollment = EnrollInput(
        enrollment_id=run,
        user_id=f"user-{run}",
        journey_id=journey_id,
        version=1,
        workflow_id=f"w-{run}",
        entered_at=at,
    )
    return store.admit_entry(AdmitInput(enrollment=enrollment, limit=limit, at=at))


def rows_holding(store: Store, *needles: str) -> list[tuple[str, str, str]]:
    """Every (table, column, value) in the store whose text or JSON holds one of `needles`:
    every column of every table is read, so nothing is missed that a new column adds."""
    found = []
    with store._read() as session:
        for table in SQLModel.metadata.sorted_tables:
            for row in session.connection().execute(select(table)).mappings():
                for column, value in row.items():
                    text = value if isinstance(value, str) else json.dumps(value, default=str)
                    found += [(table.name, column, text) for n in needles if n in text]
    return found
