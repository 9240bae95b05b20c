"""User profiles and identity: traits, push tokens, and merging an anonymous profile into
the one its visitor identified as."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from typing import Any

from sqlmodel import Session, col, select, update

from journeys.store.base import StoreBase, once_more_on_conflict
from journeys.store.records import EventRecord, UserRecord, utcnow


class ProfilesAggregate(StoreBase):
    """User profiles: traits, push tokens, merges and a paged walk over everyone."""

    def get_user(self, user_id: str) -> UserRecord | None:
        """The profile, or None."""
        with self._read() as session:
            return session.get(UserRecord, user_id)

    def update_traits(self, user_id: str, set: dict[str, Any], unset: list[str]) -> dict[str, Any]:
        """Set then remove traits (creating the profile if needed); the resulting traits."""
        return once_more_on_conflict(lambda: self._update_traits(user_id, set, unset))

    def _update_traits(
        self, user_id: str, values: dict[str, Any], unset: list[str]
    ) -> dict[str, Any]:
        with self._write() as session:
            user = session.get(UserRecord, user_id, with_for_update=True)
            if user is None:
                user = UserRecord(user_id=user_id)
            merged = {**user.traits, **copy.deepcopy(values)}
            for name in unset:
                merged.pop(name, None)
            # A new dict, not an in-place change: plain JSON columns do not track mutation.
            user.traits = merged
            user.updated_at = utcnow()
            session.add(user)
            return dict(merged)

    def remove_push_tokens(self, user_id: str, tokens: Sequence[str]) -> dict[str, Any]:
        """Drop `tokens` from the profile's `push_tokens` (a gateway said they are gone),
        keeping any added meanwhile; the resulting traits."""
        gone = set(tokens)
        with self._write() as session:
            user = session.get(UserRecord, user_id, with_for_update=True)
            if user is None:
                return {}
            current = user.traits.get("push_tokens")
            if isinstance(current, list) and gone.intersection(current):
                user.traits = {**user.traits, "push_tokens": [t for t in current if t not in gone]}
                user.updated_at = utcnow()
                session.add(user)
            return dict(user.traits)

    def merge_profiles(self, from_user_id: str, into_user_id: str) -> bool:
        """Merge one profile into another: an anonymous visitor (`anon:{anonymousId}`) who
        identified as `into_user_id`.

        Moves every event, merges the traits (the target's own win; the target profile is
        created if need be) and deletes the merged profile. Enrollments and deliveries stay
        where they are: they belong to runs under the old id. Idempotent; returns whether
        there was a profile to merge.
        """
        return once_more_on_conflict(lambda: self._merge_profiles(from_user_id, into_user_id))

    def _merge_profiles(self, from_user_id: str, into_user_id: str) -> bool:
        with self._write() as session:
            return merge_profile(session, {}, from_user_id, into_user_id)

    def iter_users(self, page_size: int = 500) -> Iterator[UserRecord]:
        """Every profile by user id, read a page at a time (each page one short transaction),
        so a long walk never holds a transaction open."""
        after: str | None = None
        while True:
            statement = select(UserRecord).order_by(col(UserRecord.user_id)).limit(page_size)
            if after is not None:
                statement = statement.where(col(UserRecord.user_id) > after)
            with self._read() as session:
                page = list(session.exec(statement))
            yield from page
            if len(page) < page_size:
                return
            after = page[-1].user_id


def profiles_of(session: Session, user_ids: list[str]) -> dict[str, UserRecord]:
    """The profiles of these users by user id, locked, and created where missing: one query
    (per 500 users) for a whole batch instead of one per user."""
    unique = list(dict.fromkeys(user_ids))
    profiles: dict[str, UserRecord] = {}
    for start in range(0, len(unique), 500):
        chunk = unique[start : start + 500]
        statement = select(UserRecord).where(col(UserRecord.user_id).in_(chunk)).with_for_update()
        profiles.update((profile.user_id, profile) for profile in session.exec(statement))
    for user_id in unique:
        if user_id not in profiles:
            profiles[user_id] = UserRecord(user_id=user_id)
            session.add(profiles[user_id])
    return profiles


def profile_of(session: Session, profiles: dict[str, UserRecord], user_id: str) -> UserRecord:
    """The profile (created if need be), cached for the rest of the transaction."""
    profile = profiles.get(user_id)
    if profile is None:
        profile = session.get(UserRecord, user_id, with_for_update=True)
        if profile is None:
            profile = UserRecord(user_id=user_id)
            session.add(profile)
        profiles[user_id] = profile
    return profile


def merge_profile(
    session: Session, profiles: dict[str, UserRecord], source: str, target: str
) -> bool:
    """Move `source`'s events to `target`, merge its traits under the target's, delete it."""
    if source == target:
        return False
    # Pending events and profiles must be rows before the bulk UPDATE and the delete.
    session.flush()
    session.exec(
        update(EventRecord).where(col(EventRecord.user_id) == source).values(user_id=target)
    )
    old = profiles.pop(source, None) or session.get(UserRecord, source, with_for_update=True)
    if old is None:
        return False
    into = profile_of(session, profiles, target)
    into.traits = {**old.traits, **into.traits}
    into.updated_at = utcnow()
    session.add(into)
    session.delete(old)
    session.flush()
    return True
