"""Journeys and their published versions."""

from __future__ import annotations

import copy
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, exists, or_, select

from journeys.errors import Conflict
from journeys.store.base import StoreBase, get_or_raise
from journeys.store.records import (
    EnrollmentRecord,
    JourneyRecord,
    JourneyStatus,
    JourneyVersionRecord,
    utcnow,
)


class JourneysAggregate(StoreBase):
    """Journeys: their drafts and statuses, and their immutable published versions."""

    def save_draft(self, journey_id: str, document: dict[str, Any]) -> JourneyRecord:
        """Create the journey (status "draft") or replace its draft, keeping its status."""
        draft = copy.deepcopy(document)
        try:
            with self._write() as session:
                journey = session.get(JourneyRecord, journey_id, with_for_update=True)
                if journey is None:
                    journey = JourneyRecord(id=journey_id, draft=draft)
                else:
                    journey.draft = draft
                    journey.updated_at = utcnow()
                session.add(journey)
                return journey
        except IntegrityError:
            # Created concurrently (PostgreSQL cannot lock a row that does not exist yet).
            with self._write() as session:
                journey = get_or_raise(session, JourneyRecord, journey_id, lock=True)
                journey.draft = draft
                journey.updated_at = utcnow()
                session.add(journey)
                return journey

    def get_journey(self, journey_id: str) -> JourneyRecord | None:
        """The journey, or None."""
        with self._read() as session:
            return session.get(JourneyRecord, journey_id)

    def list_journeys(self) -> list[JourneyRecord]:
        """Every journey, by id."""
        with self._read() as session:
            return list(session.exec(select(JourneyRecord).order_by(col(JourneyRecord.id))))

    def publish(
        self,
        journey_id: str,
        validated: dict[str, Any] | None = None,
        *,
        published_by: str | None = None,
    ) -> int:
        """Copy the draft into a new immutable version (recording who published it) and
        return its number.

        The journey becomes "live", except that a paused journey stays paused.
        Raises NotFound for an unknown journey and Conflict for an archived one. With
        `validated` (the draft the caller checked), raises Conflict if the draft has changed
        since, so only a checked document is ever published.
        """
        with self._write() as session:
            journey = get_or_raise(session, JourneyRecord, journey_id, lock=True)
            if journey.status == "archived":
                raise Conflict(f"journey {journey_id!r} is archived")
            if validated is not None and journey.draft != validated:
                raise Conflict(f"the draft of {journey_id!r} changed while publishing: try again")
            version = (journey.version or 0) + 1
            now = utcnow()
            session.add(
                JourneyVersionRecord(
                    journey_id=journey_id,
                    version=version,
                    definition=copy.deepcopy(journey.draft),
                    published_at=now,
                    published_by=published_by,
                )
            )
            journey.version = version
            if journey.status != "paused":
                journey.status = "live"
            journey.updated_at = now
            session.add(journey)
            return version

    def set_status(self, journey_id: str, status: JourneyStatus) -> JourneyRecord:
        """Change the journey's status.

        Raises NotFound for an unknown journey, Conflict to leave "archived" (it is final) or
        to make a journey "live" that has never been published.
        """
        with self._write() as session:
            journey = get_or_raise(session, JourneyRecord, journey_id, lock=True)
            if journey.status == "archived" and status != "archived":
                raise Conflict(f"journey {journey_id!r} is archived")
            if status == "live" and journey.version is None:
                raise Conflict(f"journey {journey_id!r} has never been published")
            if journey.status != status:
                journey.status = status
                journey.updated_at = utcnow()
                session.add(journey)
            return journey

    def get_version(self, journey_id: str, version: int) -> JourneyVersionRecord | None:
        """One published version, or None."""
        with self._read() as session:
            return session.get(JourneyVersionRecord, (journey_id, version))

    def list_versions(self, journey_id: str) -> list[JourneyVersionRecord]:
        """Every published version of the journey, oldest first."""
        statement = (
            select(JourneyVersionRecord)
            .where(JourneyVersionRecord.journey_id == journey_id)
            .order_by(col(JourneyVersionRecord.version))
        )
        with self._read() as session:
            return list(session.exec(statement))

    def versions_in_use(self) -> list[JourneyVersionRecord]:
        """The published versions a run may still evaluate: of every journey live or paused,
        the latest version and each older one that an active run is on; by journey id and
        version."""
        version = JourneyVersionRecord
        running = exists().where(
            col(EnrollmentRecord.journey_id) == col(version.journey_id),
            col(EnrollmentRecord.status) == "active",
            col(EnrollmentRecord.version) == col(version.version),
        )
        statement = (
            select(version)
            .join(JourneyRecord, col(JourneyRecord.id) == col(version.journey_id))
            .where(col(JourneyRecord.status).in_(("live", "paused")))
            .where(or_(col(JourneyRecord.version) == col(version.version), running))
            .order_by(col(version.journey_id), col(version.version))
        )
        with self._read() as session:
            return list(session.exec(statement))

    def live_versions(self) -> list[JourneyVersionRecord]:
        """The latest version of every live journey, by journey id."""
        statement = (
            select(JourneyVersionRecord)
            .join(
                JourneyRecord,
                (col(JourneyRecord.id) == col(JourneyVersionRecord.journey_id))
                & (col(JourneyRecord.version) == col(JourneyVersionRecord.version)),
            )
            .where(JourneyRecord.status == "live")
            .order_by(col(JourneyVersionRecord.journey_id))
        )
        with self._read() as session:
            return list(session.exec(statement))
