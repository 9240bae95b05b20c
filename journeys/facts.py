"""Answers to the facts conditions ask of the store: segment membership and `event_count`.

Shared by the activities (for the interpreter) and the API (segment counts, entry rules).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import TypeAdapter

from journeys.conditions import Fact, evaluate
from journeys.model import Condition, EventCountCondition, Journey, SegmentCondition, to_timedelta
from journeys.reactions import entry_holds, may_reenter
from journeys.store import Store

CONDITION = TypeAdapter[Condition](Condition)


def user_traits(store: Store, user_id: str) -> dict[str, Any]:
    """The user's traits, empty for a user the store does not know."""
    user = store.get_user(user_id)
    return dict(user.traits) if user is not None else {}


def wall_clock() -> datetime:
    """The time now, by this machine's clock (a simulation goes by its engine's instead)."""
    return datetime.now(UTC)


def fact_answerer(
    store: Store,
    user_id: str,
    traits: dict[str, Any],
    visiting: frozenset[str] = frozenset(),
    *,
    clock: Callable[[], datetime] = wall_clock,
) -> Callable[[Fact], bool | int]:
    """Answers facts about one user from the store, `event_count` windows ending at `clock()`;
    `visiting` holds segments being evaluated."""
    context = {"user": {**traits, "id": user_id}}

    def answer(fact: Fact) -> bool | int:
        match fact:
            case SegmentCondition(segment=segment_id):
                segment = store.get_segment(segment_id)
                # A segment defined through itself has no meaning: the loop counts as "no".
                if segment is None or segment_id in visiting:
                    return False
                inner = fact_answerer(store, user_id, traits, visiting | {segment_id}, clock=clock)
                return evaluate(CONDITION.validate_python(segment.condition), context, inner)
            case EventCountCondition(event_count=count):
                name = None if count.event == "*" else count.event
                since = None
                if count.within is not None:
                    since = clock() - to_timedelta(count.within)
                if count.where is None:
                    return store.count_events(user_id, name=name, since=since)
                where = count.where
                events = store.events_for_user(user_id, name=name, since=since)
                return sum(
                    evaluate(where, {**context, "event": e.properties}, answer) for e in events
                )
        raise AssertionError(f"unhandled fact {fact!r}")

    return answer


def entry_allowed(
    store: Store, journey: Journey, user_id: str, entry: dict[str, Any], at: datetime
) -> bool:
    """Whether the user may enter the journey now: re-entry, the entry's segment (for
    segment entries), `where` and audience all allow it."""
    previous = store.last_enrollment(journey.id, user_id)
    if previous is not None and previous.status == "active":
        return False  # one run at a time: the running one receives the event instead
    if previous is not None and previous.entered_at == at:
        return False  # this very entry already happened (routed again after a crash)
    if not may_reenter(journey, previous.entered_at if previous is not None else None, at):
        return False
    entry_rules = (journey.entry.segment, journey.entry.where, journey.entry.audience)
    if all(rule is None for rule in entry_rules):
        return True  # nothing else to check: the traits need not be read
    traits = user_traits(store, user_id)
    facts = fact_answerer(store, user_id, traits)
    segment = journey.entry.segment
    if segment is not None and not facts(SegmentCondition(segment=segment)):
        return False
    return entry_holds(journey, user_id, traits, entry, facts)
