"""Privacy: erasing one end user, exporting what is stored about them, and the suppressions
that keep an erased user's later events out.

Erasure deletes what is personal and keeps what the statistics count, without the person:

- the profile and every event (routed or still in the outbox) are deleted;
- deliveries stay, for the message and engagement counts, with their content emptied and
  their user id, idempotency key and provider message id replaced by an erased marker (one
  `erased:<random>` per erasure, which cannot lead back to the user);
- enrollments, their node visits and their entry admissions stay, for the journey and node
  counts, under the same marker (a run still active is recorded as exited);
- rate grants keep their place in the rate limit's window under the delivery's new key;
- a suppression holds a SHA-256 hash of the user id, never the id itself: events for a
  suppressed id are dropped when stored, unless an identify carries consent, which lifts it.

Workflow ids, enrollment ids and delivery keys all contain the user id, which is why they are
replaced rather than kept.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlmodel import Session, col, delete, select, update

from journeys.store.base import StoreBase
from journeys.store.records import (
    DeliveryRecord,
    EnrollmentRecord,
    EntryAdmissionRecord,
    EventRecord,
    NewEvent,
    NodeVisitRecord,
    RateGrantRecord,
    SuppressionRecord,
    UserRecord,
    utcnow,
)

ERASED = "erased:"
"""The prefix of the marker that replaces an erased user's id in the rows kept for counts."""


def user_hash(user_id: str) -> str:
    """The hash a suppression keeps of a user id."""
    return hashlib.sha256(user_id.encode()).hexdigest()


@dataclass(frozen=True)
class UserData:
    """Everything the store holds about one user (`PrivacyAggregate.export_user`)."""

    profile: UserRecord | None
    events: list[EventRecord]
    enrollments: list[EnrollmentRecord]
    visits: list[NodeVisitRecord]
    admissions: list[EntryAdmissionRecord]
    deliveries: list[DeliveryRecord]


class PrivacyAggregate(StoreBase):
    """Erasure, export and suppressions of end users."""

    def holds_user(self, user_id: str) -> bool:
        """Whether anything is stored under the user id: a profile, an event, an enrollment,
        an entry admission or a delivery."""
        with self._read() as session:
            return _holds(session, user_id)

    def suppress(self, user_id: str) -> None:
        """Drop the user's later events from now on (idempotent)."""
        with self._write() as session:
            _suppress(session, user_id)

    def suppressed(self, user_ids: Collection[str]) -> set[str]:
        """Which of these user ids are suppressed (erased and not identified again with
        consent)."""
        with self._read() as session:
            return suppressed_in(session, user_ids)

    def erase_user(self, user_id: str) -> bool:
        """Erase the user (see the module docstring) and suppress the id, in one
        transaction; whether anything was stored under the id. Idempotent."""
        with self._write() as session:
            _suppress(session, user_id)
            if not _holds(session, user_id):
                return False
            marker = f"{ERASED}{uuid.uuid4().hex}"
            session.exec(delete(EventRecord).where(col(EventRecord.user_id) == user_id))
            session.exec(delete(UserRecord).where(col(UserRecord.user_id) == user_id))
            _anonymise_deliveries(session, user_id, marker)
            _anonymise_enrollments(session, user_id, marker)
            return True

    def export_user(self, user_id: str) -> UserData | None:
        """Everything stored about the user, in one read; None when nothing is."""
        with self._read() as session:
            enrollments = list(
                session.exec(
                    select(EnrollmentRecord)
                    .where(EnrollmentRecord.user_id == user_id)
                    .order_by(col(EnrollmentRecord.entered_at), col(EnrollmentRecord.id))
                )
            )
            data = UserData(
                profile=session.get(UserRecord, user_id),
                events=list(
                    session.exec(
                        select(EventRecord)
                        .where(EventRecord.user_id == user_id)
                        .order_by(col(EventRecord.timestamp), col(EventRecord.id))
                    )
                ),
                enrollments=enrollments,
                visits=list(
                    session.exec(
                        select(NodeVisitRecord)
                        .where(col(NodeVisitRecord.enrollment_id).in_([e.id for e in enrollments]))
                        .order_by(col(NodeVisitRecord.reached_at), col(NodeVisitRecord.node_id))
                    )
                ),
                admissions=list(
                    session.exec(
                        select(EntryAdmissionRecord)
                        .where(EntryAdmissionRecord.user_id == user_id)
                        .order_by(col(EntryAdmissionRecord.at))
                    )
                ),
                deliveries=list(
                    session.exec(
                        select(DeliveryRecord)
                        .where(DeliveryRecord.user_id == user_id)
                        .order_by(col(DeliveryRecord.created_at), col(DeliveryRecord.id))
                    )
                ),
            )
        held = data.events or data.enrollments or data.admissions or data.deliveries
        return data if data.profile is not None or held else None


def suppressed_in(session: Session, user_ids: Collection[str]) -> set[str]:
    """Which of these user ids are suppressed, read in the caller's transaction."""
    hashes = {user_hash(user_id): user_id for user_id in user_ids}
    found: set[str] = set()
    keys = list(hashes)
    # In chunks, to stay below the database's limit on bound parameters.
    for start in range(0, len(keys), 500):
        statement = select(SuppressionRecord.user_hash).where(
            col(SuppressionRecord.user_hash).in_(keys[start : start + 500])
        )
        found.update(hashes[key] for key in session.exec(statement))
    return found


def admitted_events(session: Session, events: Sequence[NewEvent]) -> list[bool]:
    """For each event, whether it may be stored: its user is not suppressed, or it is an
    identify with consent, which lifts the suppression (in the caller's transaction)."""
    suppressed = suppressed_in(session, {event.user_id for event in events})
    if not suppressed:
        return [True] * len(events)
    consented = {e.user_id for e in events if e.consent and e.type == "identify"} & suppressed
    if consented:
        hashes = [user_hash(user_id) for user_id in consented]
        session.exec(delete(SuppressionRecord).where(col(SuppressionRecord.user_hash).in_(hashes)))
    return [event.user_id not in suppressed - consented for event in events]


def erased_run(session: Session, enrollment_id: str) -> bool:
    """Whether an enrollment id that has no record names a run of a suppressed user: a run
    still ending after its user was erased, whose steps have nothing left to update.

    Run ids are `journey:{journey}:{user}:{first run id}` (`journeys.contracts.workflow_id`;
    journey ids are slugs and run ids UUIDs, neither with a colon)."""
    prefix, _, rest = enrollment_id.partition(":")
    user_id = rest.partition(":")[2].rpartition(":")[0]
    return prefix == "journey" and bool(user_id) and bool(suppressed_in(session, {user_id}))


def _suppress(session: Session, user_id: str) -> None:
    if session.get(SuppressionRecord, user_hash(user_id)) is None:
        session.add(SuppressionRecord(user_hash=user_hash(user_id)))
        session.flush()


def _holds(session: Session, user_id: str) -> bool:
    if session.get(UserRecord, user_id) is not None:
        return True
    for model in (EventRecord, EnrollmentRecord, EntryAdmissionRecord, DeliveryRecord):
        statement = select(model.user_id).where(col(model.user_id) == user_id).limit(1)
        if session.exec(statement).first() is not None:
            return True
    return False


def _anonymise_deliveries(session: Session, user_id: str, marker: str) -> None:
    """Empty the user's deliveries and put them under the marker (their keys too, and the
    keys of their rate grants)."""
    deliveries = session.exec(select(DeliveryRecord).where(DeliveryRecord.user_id == user_id))
    for record in deliveries:
        key = f"{marker}:{record.id}"
        session.exec(
            update(RateGrantRecord)
            .where(col(RateGrantRecord.key) == record.idempotency_key)
            .values(key=key)
        )
        record.user_id = marker
        record.idempotency_key = key
        record.content = {}
        record.provider_message_id = None
        session.add(record)


def _anonymise_enrollments(session: Session, user_id: str, marker: str) -> None:
    """Put the user's enrollments, their visits and admissions under the marker; an active one
    ends as exited (its run is told to leave)."""
    now = utcnow()
    renamed: dict[str, str] = {}
    enrollments = list(
        session.exec(select(EnrollmentRecord).where(EnrollmentRecord.user_id == user_id))
    )
    for number, record in enumerate(enrollments):
        new_id = f"{marker}:{number}"
        renamed[record.id] = new_id
        fields = record.model_dump(exclude={"id", "user_id", "workflow_id"})
        if record.status == "active":
            fields.update(status="exited", ended_at=now, current_node=None)
        session.add(EnrollmentRecord(**fields, id=new_id, user_id=marker, workflow_id=new_id))
    session.flush()  # the new rows first: visits refer to them
    for old, new in renamed.items():
        session.exec(
            update(NodeVisitRecord)
            .where(col(NodeVisitRecord.enrollment_id) == old)
            .values(enrollment_id=new)
        )
    admissions = session.exec(
        select(EntryAdmissionRecord).where(EntryAdmissionRecord.user_id == user_id)
    )
    for number, admission in enumerate(list(admissions)):
        new_id = renamed.get(admission.enrollment_id, f"{marker}:refused:{number}")
        session.add(
            EntryAdmissionRecord(
                **admission.model_dump(exclude={"enrollment_id", "user_id", "workflow_id"}),
                enrollment_id=new_id,
                user_id=marker,
                workflow_id=new_id,
            )
        )
        session.delete(admission)
    for record in enrollments:
        session.delete(record)
