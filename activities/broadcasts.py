"""The activities of `BroadcastWorkflow`: record the broadcast, read the segment's members a
page at a time, and deliver the message to a batch of members through the journeys' own
delivery path (`JourneyActivities.deliver_message`), once per member whatever the retries.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.journey import PERMANENT_FAILURE, JourneyActivities
from journeys.broadcasts import (
    BROADCAST_NODE,
    PAGE_SIZE,
    Broadcast,
    BroadcastActivity,
    BroadcastCounts,
    CloseInput,
    MembersInput,
    MembersPage,
    OpenInput,
    SendInput,
    SendResult,
    UnfinishedInput,
    broadcast_delivery_key,
    broadcast_workflow_id,
)
from journeys.conditions import evaluate
from journeys.contracts import DeliverInput, TemplateContext
from journeys.facts import CONDITION, fact_answerer, user_traits
from journeys.localtime import quiet_hours_end, user_timezone
from journeys.store import BroadcastRecord, Store
from journeys.workspace import WorkspaceSettings, load_workspace_settings

SCAN_LIMIT = 5000
"""Profiles one page reads at most, members or not: a sparse segment's page ends early rather
than keeping one activity busy over every profile."""
MAX_ATTEMPTS = 5
"""Tries of a member whose send fails for now, before the message is recorded as failed (a
rate limit's holding it back is no failure)."""
RETRY_DELAY = timedelta(seconds=10)
"""How long a member whose send failed for now waits, per attempt, unless the provider said."""
HEARTBEAT_EVERY = 100
QUIET_HOURS = "quiet hours"
CANCELLED = "broadcast cancelled"


class BroadcastActivities:
    """The broadcast activities, over the store and the journeys' delivery path."""

    def __init__(self, store: Store, messages: JourneyActivities) -> None:
        self._store = store
        self._messages = messages
        self._broadcasts: dict[str, Broadcast] = {}

    def all(self) -> list[Any]:
        """Every broadcast activity, for `Worker(activities=...)`."""
        return [
            self.open_broadcast,
            self.broadcast_members,
            self.broadcast_unfinished,
            self.send_broadcast,
            self.close_broadcast,
        ]

    @activity.defn(name=BroadcastActivity.OPEN)
    def open_broadcast(self, request: OpenInput) -> None:
        """Record the broadcast in its status: the API records it before starting the
        workflow, but a crash in between leaves that to the workflow."""
        broadcast = request.broadcast
        definition = broadcast.model_dump(mode="json", exclude_none=True)
        if not self._store.add_broadcast(broadcast.id, definition, request.status):
            self._store.set_broadcast_status(broadcast.id, request.status)

    @activity.defn(name=BroadcastActivity.MEMBERS)
    def broadcast_members(self, request: MembersInput) -> MembersPage:
        """The segment's members now, by user id after `after`: up to `limit` of them, reading
        at most `SCAN_LIMIT` profiles. A segment deleted meanwhile has no members."""
        segment = self._store.get_segment(request.segment)
        if segment is None:
            return MembersPage(users=[], after=request.after, done=True, targeted=request.targeted)
        condition = CONDITION.validate_python(segment.condition)
        visiting = frozenset({segment.id})  # a reference back to the segment is "no"
        members: list[str] = []
        after, scanned, done = request.after, 0, True
        for user in self._store.iter_users(page_size=min(request.limit, SCAN_LIMIT), after=after):
            after, scanned = user.user_id, scanned + 1
            answer = fact_answerer(self._store, user.user_id, user.traits, visiting)
            if evaluate(condition, {"user": {**user.traits, "id": user.user_id}}, answer):
                members.append(user.user_id)
            if scanned % HEARTBEAT_EVERY == 0:
                activity.heartbeat(scanned)
            if len(members) >= request.limit or scanned >= SCAN_LIMIT:
                done = False
                break
        targeted = request.targeted + len(members)
        self._store.set_broadcast_status(request.broadcast_id, "sending", targeted=targeted)
        return MembersPage(users=members, after=after, done=done, targeted=targeted)

    @activity.defn(name=BroadcastActivity.UNFINISHED)
    def broadcast_unfinished(self, request: UnfinishedInput) -> MembersPage:
        """Members whose message is not finished: put off by their quiet hours, or claimed by
        an attempt that stopped."""
        source = broadcast_workflow_id(request.broadcast_id)
        users = self._store.unfinished_recipients(source, request.after, request.limit)
        after = users[-1] if users else request.after
        return MembersPage(users=users, after=after, done=len(users) < request.limit)

    @activity.defn(name=BroadcastActivity.SEND, no_thread_cancel_exception=True)
    def send_broadcast(self, request: SendInput) -> SendResult:
        """Deliver the message to each member at most once (its key is the broadcast's and
        the member's). Members held back by a rate limit, or whose send failed for now, are
        answered `again`; members in their quiet hours (`delay`) are put off, their delivery
        left pending. Nothing is sent once the broadcast is cancelled.

        A cancelled activity stops between members, never inside one: an exception raised in
        this thread between a provider's answer and its record would leave the delivery
        `sending` for good (hence `no_thread_cancel_exception`)."""
        recorded = self._store.get_broadcast(request.broadcast_id)
        if recorded is not None and recorded.status == "cancelled":
            return SendResult(cancelled=True)
        if recorded is None:
            raise ApplicationError(
                f"no broadcast '{request.broadcast_id}' recorded", non_retryable=True
            )
        broadcast = self._definition(recorded)
        workspace = load_workspace_settings(self._store)
        result = SendResult()
        for done, user_id in enumerate(request.users):
            # Before every member: one slow provider call must not look like a dead worker
            # (the SDK sends heartbeats at a bounded pace however often they are given).
            activity.heartbeat(done)
            if activity.is_cancelled():
                result.cancelled = True
                break
            self._send_one(broadcast, request, user_id, workspace, result)
        return result

    def _definition(self, recorded: BroadcastRecord) -> Broadcast:
        """The broadcast as recorded, parsed once per worker (a broadcast never changes)."""
        broadcast = self._broadcasts.get(recorded.id)
        if broadcast is None:
            broadcast = Broadcast.model_validate(recorded.definition)
            self._broadcasts[recorded.id] = broadcast
        return broadcast

    def _send_one(
        self,
        broadcast: Broadcast,
        send: SendInput,
        user_id: str,
        workspace: WorkspaceSettings,
        result: SendResult,
    ) -> None:
        request = delivery_of(broadcast, user_id)
        quiet_end = self._quiet_hours_end(broadcast, send.now, user_id, workspace)
        if quiet_end is not None:
            assert broadcast.quiet_hours is not None
            if broadcast.quiet_hours.action == "skip":
                request = request.model_copy(update={"skip_reason": QUIET_HOURS})
            else:
                record = self._messages.record_pending(request)
                if not record.finished:  # put off: the unfinished sweep sends it later
                    if result.deferred_until is None or quiet_end < result.deferred_until:
                        result.deferred_until = quiet_end
                    return
        try:
            outcome = self._messages.deliver_message(request)
        except ApplicationError as error:
            if error.type == PERMANENT_FAILURE:  # recorded as failed
                result.counts = result.counts.add(BroadcastCounts(failed=1))
                return
            failures = send.failures.get(user_id, 0) + 1
            if failures >= MAX_ATTEMPTS:
                self._store.finish_delivery(request.idempotency_key, "failed", error.message)
                result.counts = result.counts.add(BroadcastCounts(failed=1))
                return
            _again(result, user_id, error.next_retry_delay or RETRY_DELAY * failures)
            result.failing.append(user_id)
            return
        if outcome.status == "waiting":
            assert outcome.retry_after is not None
            _again(result, user_id, outcome.retry_after)
            return
        result.counts = result.counts.add(BroadcastCounts.model_validate({outcome.status: 1}))

    def _quiet_hours_end(
        self, broadcast: Broadcast, now: datetime, user_id: str, workspace: WorkspaceSettings
    ) -> datetime | None:
        quiet = broadcast.quiet_hours
        if quiet is None or broadcast.message.transactional:
            return None
        traits = user_traits(self._store, user_id)
        zone = user_timezone("user", traits, workspace.timezone)
        return quiet_hours_end(now, quiet, zone)

    @activity.defn(name=BroadcastActivity.CLOSE)
    def close_broadcast(self, request: CloseInput) -> None:
        """Record how the broadcast ended, and how many members it took. Cancelled, its
        messages still waiting (put off by quiet hours, held back by a rate limit) are
        recorded as skipped: none of them will go."""
        if request.status == "cancelled":
            source = broadcast_workflow_id(request.broadcast_id)
            while waiting := self._store.unfinished_recipients(
                source, None, PAGE_SIZE, statuses=("pending",)
            ):
                for user_id in waiting:
                    key = broadcast_delivery_key(request.broadcast_id, user_id)
                    # Only if still pending: one sent since it was listed stays sent.
                    self._store.skip_if_pending(key, CANCELLED)
                activity.heartbeat(len(waiting))
        self._store.set_broadcast_status(
            request.broadcast_id, request.status, targeted=request.targeted
        )


def delivery_of(broadcast: Broadcast, user_id: str) -> DeliverInput:
    """The delivery of the broadcast's message to one member, as the journeys' path takes it:
    recorded under journey id `broadcast:{id}` and node `message`, templates seeing the user
    and `journey.id` (`broadcast:{id}`)."""
    message = broadcast.message
    source = broadcast_workflow_id(broadcast.id)
    return DeliverInput(
        idempotency_key=broadcast_delivery_key(broadcast.id, user_id),
        journey_id=source,
        version=0,
        node_id=BROADCAST_NODE,
        user_id=user_id,
        channel=message.channel,
        content=message.content,
        template=message.template,
        transactional=message.transactional,
        track=message.tracked,
        context=TemplateContext(journey={"id": source, "name": broadcast.id}),
    )


def _again(result: SendResult, user_id: str, delay: timedelta) -> None:
    result.again.append(user_id)
    if result.retry_after is None or delay < result.retry_after:
        result.retry_after = delay
