"""The side effects `JourneyWorkflow` needs, as Temporal activities over the store.

Every activity is idempotent under retry: enrolments, node visits and conversions are keyed,
and a delivery is recorded under its idempotency key before anything is sent, so a retried or
repeated delivery finds the record and never sends or counts twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn
from zoneinfo import ZoneInfo

from temporalio import activity
from temporalio.exceptions import ApplicationError

from journeys import templates
from journeys.conditions import fact_key
from journeys.contracts import (
    ActiveHour,
    ActiveHourInput,
    Activity,
    DeliverInput,
    DeliveryOutcome,
    EnrollInput,
    FailDeliveryInput,
    FinalDeliveryStatus,
    LoadContextInput,
    ProgressInput,
    UpdateUserInput,
    UserContext,
)
from journeys.facts import fact_answerer, user_traits
from journeys.store import DeliveryRecord, Store

ACTIVE_HOUR_MIN_EVENTS = 5
ACTIVE_HOUR_HISTORY = timedelta(days=90)
PERMANENT_FAILURE = "PermanentDeliveryFailure"


def address_for(channel: str, traits: dict[str, Any]) -> bool:
    """Whether the user has somewhere to receive `channel` (in-app and webhooks always do)."""
    match channel:
        case "email":
            return isinstance(traits.get("email"), str) and "@" in traits["email"]
        case "sms":
            return isinstance(traits.get("phone"), str) and bool(traits["phone"].strip())
        case "push":
            tokens = traits.get("push_tokens")
            return isinstance(tokens, list) and any(isinstance(t, str) and t for t in tokens)
    return True


class JourneyActivities:
    """The activities, bound to one store."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def all(self) -> list[Callable[..., Any]]:
        """Every activity, for `Worker(activities=...)`."""
        return [
            self.load_context,
            self.enroll,
            self.record_progress,
            self.deliver,
            self.fail_delivery,
            self.update_user,
            self.most_active_hour,
        ]

    # --- reading ----------------------------------------------------------------------------

    @activity.defn(name=Activity.LOAD_CONTEXT)
    def load_context(self, request: LoadContextInput) -> UserContext:
        """The user's traits and the answers to the facts the workflow's conditions need."""
        traits = self._traits(request.user_id)
        answer = fact_answerer(self._store, request.user_id, traits)
        return UserContext(traits=traits, facts={fact_key(f): answer(f) for f in request.facts})

    def _traits(self, user_id: str) -> dict[str, Any]:
        return user_traits(self._store, user_id)

    @activity.defn(name=Activity.MOST_ACTIVE_HOUR)
    def most_active_hour(self, request: ActiveHourInput) -> ActiveHour:
        """The local hour of day with most of the user's recent events (send-time optimisation)."""
        zone = ZoneInfo(request.timezone)
        since = datetime.now(UTC) - ACTIVE_HOUR_HISTORY
        events = self._store.events_for_user(request.user_id, since=since)
        hours = Counter(e.timestamp.astimezone(zone).hour for e in events)
        if sum(hours.values()) < ACTIVE_HOUR_MIN_EVENTS:
            return ActiveHour(hour=None)
        ranked = hours.most_common(2)
        if len(ranked) == 2 and ranked[0][1] == ranked[1][1]:
            return ActiveHour(hour=None)  # a tie says nothing about the user
        return ActiveHour(hour=ranked[0][0])

    # --- progress ---------------------------------------------------------------------------

    @activity.defn(name=Activity.ENROLL)
    def enroll(self, request: EnrollInput) -> None:
        """Record that the user entered the journey."""
        self._store.enroll(
            enrollment_id=request.enrollment_id,
            user_id=request.user_id,
            journey_id=request.journey_id,
            version=request.version,
            workflow_id=request.workflow_id,
            entered_at=request.entered_at,
        )

    @activity.defn(name=Activity.RECORD_PROGRESS)
    def record_progress(self, request: ProgressInput) -> None:
        """Record a node reached, a variant chosen, a conversion or the end of the enrolment."""
        if request.node_id is not None:
            self._store.move(request.enrollment_id, request.node_id, request.at)
        if request.variant is not None:
            self._store.set_variant(request.enrollment_id, request.variant)
        if request.converted:
            self._store.mark_converted(request.enrollment_id, request.at)
        if request.ended is not None:
            self._store.finish(request.enrollment_id, request.ended, request.at)

    # --- effects ----------------------------------------------------------------------------

    @activity.defn(name=Activity.DELIVER)
    def deliver(self, request: DeliverInput) -> DeliveryOutcome:
        """Render and deliver one message, at most once per idempotency key."""
        record = self._begin(request)
        if record.status != "pending":  # done by an earlier attempt
            return DeliveryOutcome(
                status=record.status, reason=record.reason, delivery_id=record.id
            )
        if request.skip_reason is not None:
            return self._finish(request, "skipped", request.skip_reason)
        traits = self._traits(request.user_id)
        if not address_for(request.channel, traits):
            return self._finish(request, "skipped", f"no {request.channel} address")
        content = self._render(request, traits)
        # The outbox: with no provider configured, the record itself is the delivery
        # (in-app messages are the user's inbox).
        return self._finish(request, "sent", None, content)

    def _begin(self, request: DeliverInput) -> DeliveryRecord:
        """The delivery's record, created "pending" by the first attempt."""
        record, _ = self._store.begin_delivery(
            idempotency_key=request.idempotency_key,
            journey_id=request.journey_id,
            version=request.version,
            node_id=request.node_id,
            user_id=request.user_id,
            channel=request.channel,
            variant=request.context.variant,
            content=request.content or {},
        )
        return record

    def _render(self, request: DeliverInput, traits: dict[str, Any]) -> dict[str, Any]:
        source = request.content
        if request.template is not None:
            template = self._store.get_template(request.template)
            if template is None:
                self._fail(request, f"unknown template '{request.template}'")
            source = template.content
        try:
            rendered: dict[str, Any] = templates.render_value(
                source or {}, request.context.namespaces({**traits, "id": request.user_id})
            )
        except templates.TemplateError as error:
            self._fail(request, f"template does not render: {error}")
        return rendered

    def _fail(self, request: DeliverInput, reason: str) -> NoReturn:
        self._store.finish_delivery(request.idempotency_key, "failed", reason)
        raise ApplicationError(reason, type=PERMANENT_FAILURE, non_retryable=True)

    def _finish(
        self,
        request: DeliverInput,
        status: FinalDeliveryStatus,
        reason: str | None,
        content: dict[str, Any] | None = None,
    ) -> DeliveryOutcome:
        record = self._store.finish_delivery(request.idempotency_key, status, reason, content)
        return DeliveryOutcome(status=record.status, reason=record.reason, delivery_id=record.id)

    @activity.defn(name=Activity.FAIL_DELIVERY)
    def fail_delivery(self, request: FailDeliveryInput) -> None:
        """Record a delivery as failed after its activity gave up (idempotent).

        Every attempt may have failed before recording anything, so the record is created if
        need be; one an attempt finished (its result lost to a timeout) keeps its status.
        """
        record = self._begin(request.delivery)
        if record.status == "pending":
            self._store.finish_delivery(record.idempotency_key, "failed", request.reason)

    @activity.defn(name=Activity.UPDATE_USER)
    def update_user(self, request: UpdateUserInput) -> UserContext:
        """Set (string values rendered as templates) and unset traits; return the new traits.

        A value whose template cannot render is left unchanged and logged: one bad trait must
        not stop the journey.
        """
        traits = self._traits(request.user_id)
        context = request.context.namespaces({**traits, "id": request.user_id})
        values = {}
        for trait, value in request.set.items():
            try:
                values[trait] = templates.render_value(value, context)
            except templates.TemplateError as error:
                activity.logger.warning("trait %r not set: %s", trait, error)
        return UserContext(traits=self._store.update_traits(request.user_id, values, request.unset))
