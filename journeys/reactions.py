"""Routing rules, as pure functions: which journeys care about an event, and who may enter.

The router (`relay.router`) applies them to every stored event: an event that matches a live
journey's entry starts the user in it (signal-with-start); an event a journey waits for, exits
on, counts as its goal or watches for inactivity is signalled to the user's running instance,
and so is every engagement event of the channels its `of` paths and `message` conditions ask
about (a run keeps how far its deliveries got); every other journey is left alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from journeys.conditions import Fact, evaluate
from journeys.contracts import EntryContext, JourneyEvent
from journeys.engagement import events_of
from journeys.model import (
    Journey,
    MessageCondition,
    MessageNode,
    WaitForEventNode,
    WaitForInactivityNode,
    to_timedelta,
)
from journeys.validation import conditions_of, leaf_conditions

if TYPE_CHECKING:
    from journeys.store import EventRecord

ANY_EVENT = "*"


@dataclass(frozen=True)
class Interest:
    """What a journey's running instances need to hear about."""

    event_names: frozenset[str]
    """Track events by name; `ANY_EVENT` when an inactivity wait watches every event."""
    trait_changes: bool
    """Identify events, because `when` exit rules depend on traits."""

    def covers(self, event: JourneyEvent) -> bool:
        """Whether a running instance of the journey needs this event."""
        if event.type == "identify":
            return self.trait_changes
        return ANY_EVENT in self.event_names or (event.name or "") in self.event_names

    def __or__(self, other: Interest) -> Interest:
        return Interest(
            self.event_names | other.event_names, self.trait_changes or other.trait_changes
        )


def interest(journey: Journey) -> Interest:
    """The events a running instance of this journey reacts to."""
    names: set[str] = set()
    if journey.entry.event is not None:
        names.add(journey.entry.event)  # a user already inside receives it as an ordinary event
    names.update(rule.event for rule in journey.exit if rule.event is not None)
    if journey.goal is not None:
        names.add(journey.goal.event)
    for node in journey.nodes.values():
        match node:
            case WaitForEventNode(paths=paths):
                names.update(path.event for path in paths)
            case WaitForInactivityNode(events=watched):
                names.update(watched if watched is not None else [ANY_EVENT])
    for asked in _engagement_asked(journey):
        message = journey.nodes.get(asked)
        if isinstance(message, MessageNode):
            names.update(events_of(message.channel))
    return Interest(frozenset(names), any(rule.when is not None for rule in journey.exit))


def _engagement_asked(journey: Journey) -> set[str]:
    """The message nodes whose engagement a run asks about (`of`, `message` conditions)."""
    asked = {
        path.of
        for node in journey.nodes.values()
        if isinstance(node, WaitForEventNode)
        for path in node.paths
        if path.of is not None
    }
    for path, condition in conditions_of(journey):
        asked.update(
            leaf.message
            for _, leaf in leaf_conditions(path, condition)
            if isinstance(leaf, MessageCondition)
        )
    return asked


def enters_on(journey: Journey, event: JourneyEvent) -> bool:
    """Whether the event is this journey's entry event or page view (before `where` and
    audience)."""
    entry = journey.entry
    match event.type:
        case "track":
            named = entry.event
        case "page":
            named = entry.page
        case _:
            return False
    return named is not None and event.name == named


def entry_holds(
    journey: Journey,
    user_id: str,
    traits: dict[str, Any],
    entry: dict[str, Any],
    facts: Callable[[Fact], bool | int],
) -> bool:
    """Whether the entry's `where` (for event entries) and `audience` hold for this user now."""
    context = {"user": {**traits, "id": user_id}, "entry": entry, "event": entry}
    conditions = [c for c in (journey.entry.where, journey.entry.audience) if c is not None]
    return all(evaluate(condition, context, facts) for condition in conditions)


def may_reenter(journey: Journey, previous_entry: datetime | None, now: datetime) -> bool:
    """Whether re-entry allows a new run, given when the user last entered (None: never)."""
    if previous_entry is None:
        return True
    match journey.entry.reentry:
        case "never":
            return False
        case "always":
            return True
        case duration:
            return now - previous_entry >= to_timedelta(duration)


def entry_context(event: JourneyEvent) -> EntryContext:
    """The `entry.*` context of a run started by this event."""
    return EntryContext(
        message_id=event.message_id,
        event=event.name,
        properties=event.properties,
        timestamp=event.timestamp,
    )


def journey_event(record: EventRecord) -> JourneyEvent:
    """The signal payload of a stored event (identify events keep their traits in properties)."""
    identify = record.type == "identify"
    return JourneyEvent(
        message_id=record.message_id,
        type=record.type,
        name=record.name,
        properties={} if identify else record.properties,
        traits=record.properties if identify else {},
        timestamp=record.timestamp,
    )
