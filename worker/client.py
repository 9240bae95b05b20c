"""The Temporal client every component uses, and how a user's journey run is started."""

from __future__ import annotations

from temporalio.client import Client, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.contrib.pydantic import pydantic_data_converter

from journeys.contracts import (
    EVENT_SIGNAL,
    JOURNEY_ID,
    JOURNEY_NODE,
    JOURNEY_VERSION,
    USER_ID,
    WORKFLOW_TYPE,
    EntryContext,
    JourneyEvent,
    JourneyInput,
    JourneyOutcome,
    static_summary,
    workflow_id,
)
from journeys.model import Journey
from journeys.settings import Settings


async def connect(settings: Settings) -> Client:
    """A client for the configured server, speaking pydantic models."""
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
    )


async def start_journey(
    client: Client,
    *,
    journey: Journey,
    version: int,
    user_id: str,
    entry: EntryContext,
    task_queue: str,
    event: JourneyEvent | None = None,
    continue_as_new_after: int | None = None,
) -> WorkflowHandle[object, JourneyOutcome]:
    """Start the user's run of a published journey version.

    With `event`, this is signal-with-start: a user already in the journey receives the event
    as an ordinary one and no second run starts. Without it, starting a running journey raises
    `WorkflowAlreadyStartedError`.
    """
    run_input = JourneyInput(
        journey=journey,
        version=version,
        user_id=user_id,
        entry=entry,
        continue_as_new_after=continue_as_new_after,
    )
    return await client.start_workflow(
        WORKFLOW_TYPE,
        run_input,
        id=workflow_id(journey.id, user_id),
        task_queue=task_queue,
        result_type=JourneyOutcome,
        static_summary=static_summary(journey, version, user_id),
        # Known at start, so visibility finds the run before its first task has run (and a
        # run that starts by waiting has no node to publish).
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(JOURNEY_ID, journey.id),
                SearchAttributePair(JOURNEY_VERSION, version),
                SearchAttributePair(USER_ID, user_id),
                SearchAttributePair(JOURNEY_NODE, journey.start),
            ]
        ),
        start_signal=EVENT_SIGNAL if event is not None else None,
        start_signal_args=[event] if event is not None else [],
    )
