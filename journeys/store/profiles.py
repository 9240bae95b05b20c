"""User profiles and identity: traits, push tokens, and merging an anonymous profile into
the one its visitor identified as."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator, Sequence
from typing import Any

from sqlmodel import Session, col, select, update

from journeys.store.base import StoreBase, once_more_on_conflict
from journeys.store.privacy import suppressed_in
from journeys.store.records import EventRecord, TraitOperation, UserRecord, utcnow


class ProfilesAggregate(StoreBase):
    """User profiles: traits, push tokens, merges and a paged walk over everyone."""

    def get_user(self, user_id: str) -> UserRecord | None:
        """The profile, or None."""
        with self._read() as session:
            return session.get(UserRecord, user_id)

    def update_traits(self, user_id: str, set: dict[str, Any], unset: list[str]) -> dict[str, Any]:
        """Set then remove traits (creating the profile if needed, unless the user was
        erased: then nothing, and no traits); the resulting traits."""
        return once_more_on_conflict(lambda: self._update_traits(user_id, set, unset))

    def _update_traits(
        self, user_id: str, values: dict[str, Any], unset: list[str]
    ) -> dict[str, Any]:
        with self._write() as session:
            user = session.get(UserRecord, user_id, with_for_update=True)
            if user is None:
                if suppressed_in(session, {user_id}):
                    return {}  # erased: a run still ending must not bring the profile back
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
            if suppressed_in(session, {into_user_id}):
                return False  # an erased user: an alias must not bring a profile back
            return merge_profile(session, {}, from_user_id, into_user_id)

    def iter_users(self, page_size: int = 500, after: str | None = None) -> Iterator[UserRecord]:
        """Every profile by user id (those after `after`, when given), read a page at a time
        (each page one short transaction), so a long walk never holds a transaction open."""
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


_ABSENT: Any = object()
"""A trait the profile does not have (None is a value a trait may hold)."""


def apply_operations(
    traits: dict[str, Any], operations: Sequence[TraitOperation]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The traits after the operations, in order, and what changed (trait: new value, None
    when removed); `traits` is left as it was.

    `set_once` sets a trait the profile lacks; `unset` removes one; `add` adds a number to a
    numeric trait (absent: to 0); `append` adds a value to a list trait, `union` the values of
    a list it lacks, `remove` takes a value out of one (absent lists: empty). A trait of
    another type than the operation needs is left alone, as Mixpanel does.
    """
    result = copy.deepcopy(traits)
    changed: dict[str, Any] = {}
    for operation in operations:
        for name, operand in operation.values.items():
            if operation.kind == "unset":
                if name in result:
                    del result[name]
                    changed[name] = None
                continue
            new = _operated(operation.kind, result.get(name, _ABSENT), copy.deepcopy(operand))
            if new is not _ABSENT:
                result[name] = new
                changed[name] = copy.deepcopy(new)
    return result, changed


def _operated(kind: str, current: Any, operand: Any) -> Any:
    """The trait's new value, or `_ABSENT` when the operation leaves it alone."""
    absent = current is _ABSENT
    if kind == "set_once":
        return operand if absent else _ABSENT
    if kind == "add":
        if absent:
            return operand
        if not isinstance(current, int | float) or isinstance(current, bool):
            return _ABSENT
        try:
            total = current + operand
        except OverflowError:  # a float and an integer beyond any float
            return _ABSENT
        # Two huge floats add up to infinity, which JSON (and so the column) cannot hold.
        return total if not isinstance(total, float) or math.isfinite(total) else _ABSENT
    items = [] if absent else current
    if not isinstance(items, list):
        return _ABSENT
    if kind == "append":
        return [*items, operand]
    if kind == "union":
        added: list[Any] = []
        for value in operand:
            if value not in items and value not in added:
                added.append(value)
        return [*items, *added] if added or absent else _ABSENT
    removed = [value for value in items if value != operand]  # remove
    return removed if len(removed) < len(items) else _ABSENT
