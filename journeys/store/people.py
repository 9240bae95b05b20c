"""People who sign in to the designer, and the counts of failed sign-ins that slow guessing
down (`journeys.people`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, delete, select

from journeys.access import Role
from journeys.errors import Conflict
from journeys.people import SignInLimit
from journeys.store.access import new_token
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
        """Remove a person and revoke, in the same transaction, every token acting as them
        and every token they made (as an admin); None when there is no such person."""
        with self._write() as session:
            record = session.get(PersonRecord, email, with_for_update=True)
            if record is None:
                return None
            session.delete(record)
            theirs = (col(TokenRecord.name) == email) | (col(TokenRecord.created_by) == email)
            acting = select(TokenRecord).where(theirs, col(TokenRecord.revoked_at).is_(None))
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

    def take_sign_in_attempt(self, limits: dict[str, SignInLimit], now: datetime) -> float | None:
        """Count a sign-in attempt under each key before its password is checked, in one
        transaction (rows locked), so parallel attempts cannot all slip under a limit: the
        seconds until attempts may be made again when any key has used up its window (nothing
        counted then), else None. Windows that have passed are forgotten."""
        return once_more_on_conflict(lambda: self._take_attempt(limits, now))

    def _take_attempt(self, limits: dict[str, SignInLimit], now: datetime) -> float | None:
        longest = max(limit.window for limit in limits.values())
        with self._write() as session:
            records = {}
            for key, limit in limits.items():
                record = session.get(SignInFailureRecord, key, with_for_update=True)
                if record is None or record.window_start + limit.window <= now:
                    record = record or SignInFailureRecord(key=key, failures=0, window_start=now)
                    record.failures, record.window_start = 0, now
                records[key] = record
            waits = [
                (record.window_start + limits[key].window - now).total_seconds()
                for key, record in records.items()
                if record.failures >= limits[key].failures
            ]
            if waits:
                return max(waits)
            for record in records.values():
                record.failures += 1
                session.add(record)
            passed = col(SignInFailureRecord.window_start) <= now - longest
            session.exec(delete(SignInFailureRecord).where(passed))
            return None

    def settle_sign_in(self, account: str, address: str) -> None:
        """After a successful sign-in: forget the account's failures, and give the address
        back the attempt it was charged."""
        with self._write() as session:
            record = session.get(SignInFailureRecord, account, with_for_update=True)
            if record is not None:
                session.delete(record)
            charged = session.get(SignInFailureRecord, address, with_for_update=True)
            if charged is not None and charged.failures > 0:
                charged.failures -= 1
                session.add(charged)

    def start_session(
        self, email: str, *, created_by: str, expires_at: datetime
    ) -> tuple[PersonRecord, TokenRecord, str] | None:
        """A session token for the person, named by their email and with their role as it is
        now, made under the lock of their row, so a removal cannot miss it; None when there
        is no such person (any more)."""
        with self._write() as session:
            person = session.get(PersonRecord, email, with_for_update=True)
            if person is None:
                return None
            token, secret = new_token(
                email, Role(person.role), created_by=created_by, expires_at=expires_at
            )
            session.add(token)
            return person, token, secret
