"""People who sign in to the designer, and the counts of failed sign-ins that slow guessing
down (`journeys.people`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from journeys.access import Role
from journeys.errors import Conflict
from journeys.people import SignInLimit
from journeys.store.base import StoreBase, once_more_on_conflict
from journeys.store.records import PersonRecord, SignInFailureRecord, TokenRecord, utcnow


class PeopleAggregate(StoreBase):
    """People and failed sign-ins."""

    def add_person(
        self, email: str, role: Role, password_hash: str | None, *, created_by: str
    ) -> PersonRecord:
        """Add a person (email already normalised); Conflict when the email is taken."""
        record = PersonRecord(
            email=email, role=role.value, password_hash=password_hash, created_by=created_by
        )
        try:
            with self._write() as session:
                if session.get(PersonRecord, email) is not None:
                    raise Conflict(f"{email} is already a member")
                session.add(record)
        except IntegrityError:  # lost a race to add the same email (PostgreSQL)
            raise Conflict(f"{email} is already a member") from None
        return record

    def person(self, email: str) -> PersonRecord | None:
        """The person with this (normalised) email, if any."""
        with self._read() as session:
            return session.get(PersonRecord, email)

    def people(self) -> list[PersonRecord]:
        """Everyone, by email."""
        with self._read() as session:
            return list(session.exec(select(PersonRecord).order_by(col(PersonRecord.email))))

    def remove_person(self, email: str) -> PersonRecord | None:
        """Remove a person and revoke, in the same transaction, every token acting as them;
        None when there is no such person."""
        with self._write() as session:
            record = session.get(PersonRecord, email, with_for_update=True)
            if record is None:
                return None
            session.delete(record)
            acting = select(TokenRecord).where(
                col(TokenRecord.name) == email, col(TokenRecord.revoked_at).is_(None)
            )
            now = utcnow()
            for token in session.exec(acting):
                token.revoked_at = now
                session.add(token)
            return record

    def replace_password_hash(self, email: str, password_hash: str) -> None:
        """Store a person's password hash made anew (newer hashing parameters)."""
        with self._write() as session:
            record = session.get(PersonRecord, email, with_for_update=True)
            if record is not None:
                record.password_hash = password_hash
                session.add(record)

    def sign_in_refused_for(self, limits: dict[str, SignInLimit], now: datetime) -> float | None:
        """Seconds until sign-ins may be tried again when any key has reached its limit within
        its window, else None."""
        with self._read() as session:
            found = session.exec(
                select(SignInFailureRecord).where(col(SignInFailureRecord.key).in_(limits))
            )
            waits = [
                (record.window_start + limits[record.key].window - now).total_seconds()
                for record in found
                if record.failures >= limits[record.key].failures
            ]
        waits = [wait for wait in waits if wait > 0]
        return max(waits) if waits else None

    def record_sign_in_failure(self, limits: dict[str, SignInLimit], now: datetime) -> None:
        """Count a failed sign-in under each key; a key whose window has passed starts a new
        one."""
        once_more_on_conflict(lambda: self._count_failure(limits, now))

    def _count_failure(self, limits: dict[str, SignInLimit], now: datetime) -> None:
        with self._write() as session:
            for key, limit in limits.items():
                record = session.get(SignInFailureRecord, key, with_for_update=True)
                if record is None or record.window_start + limit.window <= now:
                    record = record or SignInFailureRecord(key=key, failures=0, window_start=now)
                    record.failures, record.window_start = 0, now
                record.failures += 1
                session.add(record)

    def clear_sign_in_failures(self, key: str) -> None:
        """Forget the failed sign-ins under `key` (after a successful sign-in)."""
        with self._write() as session:
            record = session.get(SignInFailureRecord, key, with_for_update=True)
            if record is not None:
                session.delete(record)
