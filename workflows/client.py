"""How runs are started and signalled: the Temporal client every component uses, the journey
run's id, search attributes and summary at start, and the signals callers send to it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.common import (
    SearchAttributeKey,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDReusePolicy,
)
from temporalio.contrib.pydantic import pydantic_data_converter

from journeys.broadcasts import (
    BROADCAST_WORKFLOW_TYPE,
    CANCEL_SIGNAL,
    Broadcast,
    BroadcastInput,
    BroadcastOutcome,
    broadcast_workflow_id,
)
from journeys.contracts import (
    EVENT_SIGNAL,
    JOURNEY_ID,
    JOURNEY_NODE,
    JOURNEY_VERSION,
    LEAVE_SIGNAL,
    SEARCH_ATTRIBUTES,
    USER_ID,
    WORKFLOW_TYPE,
    EntryContext,
    JourneyEvent,
    JourneyInput,
    JourneyOutcome,
    LeaveRequest,
    static_summary,
    workflow_id,
)
from journeys.model import Journey
from journeys.settings import Settings
from workflows.patches import REVISION

WAITING_NODES = frozenset({"wait_for_event", "wait_for_inactivity", "delay"})
"""Node types where a run stops to wait, as a journey's first node: its run starts there."""


async def connect(settings: Settings) -> Client:
    """A client for the configured server, speaking pydantic models."""
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
    )


async def register_search_attributes(
    client: Client, keys: Sequence[SearchAttributeKey[Any]] = SEARCH_ATTRIBUTES
) -> None:
    """Register search attributes in the client's namespace (the time-skipping test server,
    which cannot list them, knows none until asked)."""
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=client.namespace,
            search_attributes={
                key.name: IndexedValueType.Value(
                    f"INDEXED_VALUE_TYPE_{key.indexed_value_type.name}"
                )
                for key in keys
            },
        )
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
        revision=REVISION,
    )
    identity: list[SearchAttributePair[Any]] = [
        SearchAttributePair(JOURNEY_ID, journey.id),
        SearchAttributePair(JOURNEY_VERSION, version),
        SearchAttributePair(USER_ID, user_id),
    ]
    if journey.nodes[journey.start].type in WAITING_NODES:
        # A run that starts by waiting then has no node to publish; any other publishes the
        # node where it first stops, and a run that never stops (sends and ends) none at all.
        identity.append(SearchAttributePair(JOURNEY_NODE, journey.start))
    return await client.start_workflow(
        WORKFLOW_TYPE,
        run_input,
        id=workflow_id(journey.id, user_id),
        task_queue=task_queue,
        result_type=JourneyOutcome,
        static_summary=static_summary(journey, version, user_id),
        # Known at start, so visibility finds the run before its first task has run.
        search_attributes=TypedSearchAttributes(identity),
        start_signal=EVENT_SIGNAL if event is not None else None,
        start_signal_args=[event] if event is not None else [],
    )


async def signal_event(client: Client, journey_id: str, user_id: str, event: JourneyEvent) -> None:
    """Hand an event to the user's run of the journey (raises `RPCError` NOT_FOUND when the user
    is not in it)."""
    await client.get_workflow_handle(workflow_id(journey_id, user_id)).signal(EVENT_SIGNAL, event)


async def signal_leave(client: Client, run_id: str, request: LeaveRequest) -> None:
    """Make the run with workflow id `run_id` leave its journey at once."""
    await client.get_workflow_handle(run_id).signal(LEAVE_SIGNAL, request)


async def start_broadcast(
    client: Client,
    broadcast: Broadcast,
    *,
    task_queue: str,
    page_size: int | None = None,
    pages_per_run: int | None = None,
    history_limit: int | None = None,
) -> WorkflowHandle[object, BroadcastOutcome]:
    """Start the broadcast's workflow (`broadcast:{id}`). An id whose workflow ever ran (within
    the namespace's retention) raises `WorkflowAlreadyStartedError`: a broadcast is sent once.
    The sizes that make runs continue as new have defaults that suit (tests make them small).
    """
    sizes = {
        "page_size": page_size,
        "pages_per_run": pages_per_run,
        "history_limit": history_limit,
    }
    run_input = BroadcastInput.model_validate(
        {"broadcast": broadcast, **{k: v for k, v in sizes.items() if v is not None}}
    )
    segment = f"segment {broadcast.segment}"
    return await client.start_workflow(
        BROADCAST_WORKFLOW_TYPE,
        run_input,
        id=broadcast_workflow_id(broadcast.id),
        task_queue=task_queue,
        result_type=BroadcastOutcome,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        static_summary=f"Broadcast {broadcast.id} · {broadcast.message.channel} · {segment}",
    )


async def cancel_broadcast(client: Client, broadcast_id: str) -> None:
    """Tell the broadcast's run to stop sending (raises `RPCError` NOT_FOUND when it is not
    running)."""
    await client.get_workflow_handle(broadcast_workflow_id(broadcast_id)).signal(CANCEL_SIGNAL)
