"""The segment sweep activity: start users who entered a segment without any event."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import WorkflowAlreadyStartedError

from journeys.contracts import Activity, EntryContext, SweepInput, SweepResult
from journeys.facts import entry_allowed
from journeys.model import Journey
from journeys.store import Store
from workflows.client import start_journey

HEARTBEAT_EVERY = 200


class SweepActivities:
    """The sweep, bound to the store and the Temporal client that starts runs."""

    def __init__(self, store: Store, client: Client, task_queue: str) -> None:
        self._store = store
        self._client = client
        self._task_queue = task_queue

    @activity.defn(name=Activity.SWEEP_SEGMENT_ENTRIES)
    async def sweep_segment_entries(self, request: SweepInput) -> SweepResult:
        """For each live segment-entry journey, start every user now allowed in."""
        versions = await asyncio.to_thread(self._store.live_versions)
        journeys = [
            (Journey.model_validate(v.definition), v.version)
            for v in versions
            if v.definition["entry"].get("segment") is not None
        ]
        checked = started = 0
        if not journeys:
            return SweepResult(journeys=0, users_checked=0, started=0)
        users = await asyncio.to_thread(lambda: [u.user_id for u in self._store.iter_users()])
        for user_id in users:
            now = datetime.now(UTC)
            for journey, version in journeys:
                if await asyncio.to_thread(entry_allowed, self._store, journey, user_id, {}, now):
                    with contextlib.suppress(WorkflowAlreadyStartedError):  # entered meanwhile
                        await start_journey(
                            self._client,
                            journey=journey,
                            version=version,
                            user_id=user_id,
                            entry=EntryContext(timestamp=now),
                            task_queue=self._task_queue,
                        )
                        started += 1
            checked += 1
            if checked % HEARTBEAT_EVERY == 0:
                activity.heartbeat(checked)
        return SweepResult(journeys=len(journeys), users_checked=checked, started=started)
