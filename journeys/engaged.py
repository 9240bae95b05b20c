"""What a run knows of its own deliveries: which message nodes it sent, and how far the user
engaged with each, learnt from the engagement events the run hears. Pure functions over the
run's state, so the interpreter stays deterministic and small."""

from __future__ import annotations

from collections.abc import Mapping

from journeys.conditions import compare
from journeys.contracts import Delivered, JourneyEvent
from journeys.engagement import DELIVERY_ID, ENGAGEMENTS, MACHINE, Engagement, state_of
from journeys.model import Journey, MessageCondition
from journeys.validation import leaf_conditions


def is_machine(event: JourneyEvent) -> bool:
    """Whether an event is an open or click made by a machine (a link scanner, a mail proxy)."""
    return event.properties.get(MACHINE) is True


def delivery_of(delivered: Mapping[str, Delivered], event: JourneyEvent) -> str | None:
    """The message node whose delivery in this run the event is about, if any (an app may
    report the delivery id as a string)."""
    about = event.properties.get(DELIVERY_ID)
    for node_id, delivery in delivered.items():
        if compare(about, "eq", delivery.delivery_id):
            return node_id
    return None


def engage(delivered: Mapping[str, Delivered], event: JourneyEvent) -> bool:
    """Move a delivery of this run on to the state an engagement event shows (never back: a
    click implies an open); True if it moved. Machine events say nothing about the user."""
    state = state_of(event.name or "", event.properties) if event.type == "track" else None
    about = None if state is None or is_machine(event) else delivery_of(delivered, event)
    if state is None or about is None:
        return False
    delivery = delivered[about]
    if ENGAGEMENTS.index(state) <= ENGAGEMENTS.index(delivery.engagement):
        return False
    delivery.engagement = state
    return True


def exits_on_engagement(journey: Journey) -> bool:
    """Whether a `when` exit rule asks how far a message got (checked again when that moves)."""
    return any(
        isinstance(leaf, MessageCondition)
        for rule in journey.exit
        if rule.when is not None
        for _, leaf in leaf_conditions("when", rule.when)
    )


def engagement_of(delivered: Mapping[str, Delivered]) -> dict[str, Engagement]:
    """Each sent message node's state, as `journeys.conditions.evaluate` reads it."""
    return {node_id: delivery.engagement for node_id, delivery in delivered.items()}
