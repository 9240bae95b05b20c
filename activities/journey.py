"""The side effects `JourneyWorkflow` needs, as Temporal activities over the store.

Every activity is idempotent under retry: enrolments, node visits and conversions are keyed,
and a delivery is recorded under its idempotency key before anything is sent, so a retried or
repeated delivery finds the record and never sends or counts twice.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn
from zoneinfo import ZoneInfo

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.channels import (
    Message,
    PermanentDeliveryError,
    Provider,
    PushTokensUnregistered,
    TransientDeliveryError,
)
from journeys import experiments, locales, templates
from journeys.conditions import fact_key
from journeys.contracts import (
    ActiveHour,
    ActiveHourInput,
    Activity,
    Admission,
    AdmitInput,
    DeliverInput,
    DeliveryOutcome,
    EnrollInput,
    FailDeliveryInput,
    LoadContextInput,
    ProgressInput,
    StepsInput,
    UpdateUserInput,
    UserContext,
    WinnerAnswer,
    WinnerInput,
)
from journeys.errors import Conflict
from journeys.facts import fact_answerer, user_traits, wall_clock
from journeys.holdouts import GLOBAL_HOLDOUT, in_global_holdout
from journeys.localtime import ACTIVE_HOUR_HISTORY, ACTIVE_HOUR_MIN_EVENTS, user_timezone
from journeys.model import Channel, to_timedelta
from journeys.store import CapWindow, DeliveryRecord, Store
from journeys.store.ratelimits import SHORTEST_WAIT
from journeys.tracking import Tracker
from journeys.unsubscribe import Links
from journeys.workspace import WorkspaceSettings, load_workspace_settings

PERMANENT_FAILURE = "PermanentDeliveryFailure"
TRANSIENT_FAILURE = "TransientDeliveryFailure"

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
_PHONE = re.compile(r"^\+?[0-9]{7,15}$")
_PHONE_PUNCTUATION = re.compile(r"[\s().-]")
_YES = {"true", "yes", "1"}


@dataclass(frozen=True)
class Recipient:
    """Where a user receives a channel: an address (email, sms) or device tokens (push)."""

    address: str | None = None
    push_tokens: tuple[str, ...] = ()


def recipient(channel: Channel, traits: dict[str, Any]) -> Recipient | None:
    """Where the user receives `channel` (in-app and webhooks: always), None when they have no
    address for it. Raises `PermanentDeliveryError` for an address that cannot be one."""
    match channel:
        case "email":
            email = traits.get("email")
            if not isinstance(email, str) or not email.strip():
                return None
            if not _EMAIL.match(email.strip()):
                raise PermanentDeliveryError(f"invalid email address {email!r}")
            return Recipient(address=email.strip())
        case "sms":
            phone = traits.get("phone")
            if not isinstance(phone, (str, int)) or isinstance(phone, bool) or phone == "":
                return None
            number = _PHONE_PUNCTUATION.sub("", str(phone))
            if not _PHONE.match(number):
                raise PermanentDeliveryError(f"invalid phone number {phone!r}")
            return Recipient(address=number)
        case "push":
            tokens = traits.get("push_tokens")
            if not isinstance(tokens, list):
                return None
            found = tuple(t for t in tokens if isinstance(t, str) and t)
            return Recipient(push_tokens=found) if found else None
    return Recipient()


NO_ADDRESS = {"email": "no email address", "sms": "no phone number", "push": "no push token"}


def unsubscribed(channel: Channel, traits: dict[str, Any]) -> str | None:
    """Why the user does not want `channel` (the `unsubscribed` and `unsubscribed_<channel>`
    traits), or None."""
    for trait, reason in (
        ("unsubscribed", "unsubscribed"),
        (f"unsubscribed_{channel}", f"unsubscribed from {channel}"),
    ):
        value = traits.get(trait)
        if value is True or (isinstance(value, str) and value.strip().lower() in _YES):
            return reason
    return None


class JourneyActivities:
    """The activities, bound to one store, the providers of each channel, and the signer of
    links (without one, emails carry no unsubscribe link and no message is tracked). `clock`
    says what time it is for frequency caps, `event_count` windows, experiment looks and
    send-time history: this machine's, or a simulation engine's."""

    def __init__(
        self,
        store: Store,
        channels: Mapping[Channel, Provider],
        links: Links | None = None,
        *,
        clock: Callable[[], datetime] = wall_clock,
    ) -> None:
        self._store = store
        self._channels = channels
        self._links = links
        self._clock = clock

    def all(self) -> list[Callable[..., Any]]:
        """Every activity, for `Worker(activities=...)`."""
        return [
            self.load_context,
            self.record_steps,
            self.enroll,
            self.record_progress,
            self.deliver,
            self.fail_delivery,
            self.update_user,
            self.most_active_hour,
            self.experiment_winner,
            self.admit_entry,
        ]

    # --- reading ----------------------------------------------------------------------------

    @activity.defn(name=Activity.LOAD_CONTEXT)
    def load_context(self, request: LoadContextInput) -> UserContext:
        """The user's traits and the answers to the facts the workflow's conditions need."""
        traits = self._traits(request.user_id)
        answer = fact_answerer(self._store, request.user_id, traits, clock=self._clock)
        return UserContext(traits=traits, facts={fact_key(f): answer(f) for f in request.facts})

    def _traits(self, user_id: str) -> dict[str, Any]:
        return user_traits(self._store, user_id)

    @activity.defn(name=Activity.MOST_ACTIVE_HOUR)
    def most_active_hour(self, request: ActiveHourInput) -> ActiveHour:
        """The local hour of day with most of the user's recent events (send-time
        optimisation); also kept as the `most_active_hour` trait, for people to see."""
        zone = ZoneInfo(request.timezone)
        since = self._clock() - ACTIVE_HOUR_HISTORY
        events = self._store.events_for_user(request.user_id, since=since)
        hours = Counter(e.timestamp.astimezone(zone).hour for e in events)
        if sum(hours.values()) < ACTIVE_HOUR_MIN_EVENTS:
            return ActiveHour(hour=None)
        ranked = hours.most_common(2)
        if len(ranked) == 2 and ranked[0][1] == ranked[1][1]:
            return ActiveHour(hour=None)  # a tie says nothing about the user
        hour = ranked[0][0]
        self._store.update_traits(request.user_id, {"most_active_hour": hour}, [])
        return ActiveHour(hour=hour)

    @activity.defn(name=Activity.EXPERIMENT_WINNER)
    def experiment_winner(self, request: WinnerInput) -> WinnerAnswer:
        """The experiment's winner, if it has one. Once `after` has passed since the version
        was published, each call may be a look (`journeys.experiments.decide`) at conversions
        or, for `metric: click`, at clicks on the `tracked` messages; a look is recorded only
        if no other caller recorded it first, so each happens once."""
        decision = self._store.experiment_decision(request.journey_id, request.node_id)
        if decision.winner is not None:
            return WinnerAnswer(winner=decision.winner)
        published = self._store.get_version(request.journey_id, request.version)
        now = self._clock()
        if published is None or published.published_at + to_timedelta(request.after) > now:
            return WinnerAnswer()
        counts = self._store.variant_counts(request.journey_id, request.node_id)
        clicks = None
        if request.metric == "click":
            window = to_timedelta(request.within)
            clicks = self._store.variant_clicks(
                request.journey_id, request.node_id, request.tracked, window
            )
        variants = experiments.counts_of(request.variants, counts, clicks)
        look = experiments.decide(variants, request.min_users, decision.looks)
        if look.looks == decision.looks:
            return WinnerAnswer()
        recorded = self._store.record_experiment_look(
            request.journey_id,
            request.node_id,
            after_looks=decision.looks,
            looks=look.looks,
            winner=look.winner,
            p_value=experiments.p_value(variants),
        )
        return WinnerAnswer(winner=recorded.winner)

    # --- progress ---------------------------------------------------------------------------

    @activity.defn(name=Activity.ADMIT_ENTRY)
    def admit_entry(self, request: AdmitInput) -> Admission:
        """Whether a new run may enter its journey under the journey's entry limit (asked once
        per run, by its enrollment id: a retry gets the first answer)."""
        return Admission(admitted=self._store.admit_entry(request))

    @activity.defn(name=Activity.RECORD_STEPS)
    def record_steps(self, request: StepsInput) -> None:
        """Record the enrollment (the first time) and the run's steps since its last record:
        nodes reached, a variant chosen, a conversion, the end."""
        self._record_steps(request.steps, request.enrollment)

    @activity.defn(name=Activity.ENROLL)
    def enroll(self, request: EnrollInput) -> None:
        """Record that the user entered the journey (runs started before `lean-steps`)."""
        self._record_steps([], request)

    def _record_steps(self, steps: list[ProgressInput], enrollment: EnrollInput | None) -> None:
        """Record steps, and the enrollment as `_marked`."""
        if enrollment is not None:
            enrollment = self._marked(enrollment, load_workspace_settings(self._store))
        self._store.record_steps(steps, enrollment=enrollment)

    def _marked(self, enrollment: EnrollInput, workspace: WorkspaceSettings) -> EnrollInput:
        """The enrollment, marked when its user is in the global holdout (a mark that replaces
        the journey's own: such users are on neither side of the journey's holdout
        comparison)."""
        if self._globally_held_out(enrollment.user_id, workspace):
            return enrollment.model_copy(update={"holdout": GLOBAL_HOLDOUT})
        return enrollment

    @staticmethod
    def _globally_held_out(user_id: str, workspace: WorkspaceSettings) -> bool:
        holdout = workspace.holdout
        return holdout is not None and in_global_holdout(holdout.percent, user_id)

    @activity.defn(name=Activity.RECORD_PROGRESS)
    def record_progress(self, request: ProgressInput) -> None:
        """Record one step of the run (runs started before `lean-steps`)."""
        self._store.record_steps([request])

    # --- effects ----------------------------------------------------------------------------

    @activity.defn(name=Activity.DELIVER)
    def deliver(self, request: DeliverInput) -> DeliveryOutcome:
        """Render one message and hand it to its channel's provider, at most once per key.

        The record is stored under the idempotency key first, claimed ("sending") just before
        the provider is called and marked "sent" as soon as the provider took the message, so
        an attempt that dies after that finds the outcome and returns it. An attempt that died
        while the provider was being called finds the claim: it sends again with the same key
        where the provider honours keys, and otherwise gives up rather than risk a duplicate.

        A message its channel's rate limit holds back is answered "waiting" with the time its
        turn comes; the run calls again then, with the same key.

        Once the message went or was skipped, the run's steps it carries (its enrollment
        too, the first time) and then the step it carries for `then` are recorded, as
        `record_steps` would, in the transaction that records the delivery's outcome. A
        delivery that fails records none: the run still holds them and records them itself.
        """
        workspace = load_workspace_settings(self._store)
        return self._delivered(request, workspace, self._progress(request, workspace))

    def _progress(self, request: DeliverInput, workspace: WorkspaceSettings) -> StepsInput | None:
        """What the delivery records of its run once it has its outcome: the steps it carries
        (and the enrollment, the first time), then `then`; None when there is nothing."""
        carried = request.steps or StepsInput()
        steps = [*carried.steps, *([request.then] if request.then is not None else [])]
        if carried.enrollment is None and not steps:
            return None
        enrollment = carried.enrollment and self._marked(carried.enrollment, workspace)
        return StepsInput(enrollment=enrollment, steps=steps)

    def deliver_message(self, request: DeliverInput) -> DeliveryOutcome:
        """Deliver one message as `deliver` does, with no run's steps to record (broadcasts):
        raises `ApplicationError` of type `PERMANENT_FAILURE` (recorded as failed) or
        `TRANSIENT_FAILURE` (try again later, same key)."""
        return self._delivered(request, load_workspace_settings(self._store), None)

    def record_pending(self, request: DeliverInput) -> DeliveryRecord:
        """The delivery's record, created "pending" if it is new (a message put off)."""
        return self._begin(request)

    def _delivered(
        self, request: DeliverInput, workspace: WorkspaceSettings, progress: StepsInput | None
    ) -> DeliveryOutcome:
        """The delivery's outcome: sent (or sent again) now, or the one an earlier attempt
        recorded; whatever finishes it records `progress` with its outcome."""
        record = self._begin(request)
        if not record.finished:
            return self._deliver(request, record, workspace, progress)
        # An earlier attempt finished it, and its answer was lost: the steps are recorded
        # again (which changes nothing if that attempt recorded them).
        if progress is not None:
            self._store.record_steps(progress.steps, enrollment=progress.enrollment)
        return _outcome(record)

    def _deliver(
        self,
        request: DeliverInput,
        record: DeliveryRecord,
        workspace: WorkspaceSettings,
        progress: StepsInput | None,
    ) -> DeliveryOutcome:
        provider = self._channels[request.channel]
        try:
            if record.status == "sending":
                return self._resend(request, record, provider, workspace, progress)
            return self._send(request, record, provider, workspace, progress)
        except PermanentDeliveryError as error:
            self._fail(request, error.reason)
        except TransientDeliveryError as error:
            # A request that may have gone keeps its claim (a resend decides), but ends its slot.
            self._store.release_delivery(request.idempotency_key, keep_claim=error.maybe_sent)
            raise ApplicationError(
                error.reason, type=TRANSIENT_FAILURE, next_retry_delay=error.retry_after
            ) from None

    def _send(
        self,
        request: DeliverInput,
        record: DeliveryRecord,
        provider: Provider,
        workspace: WorkspaceSettings,
        progress: StepsInput | None,
    ) -> DeliveryOutcome:
        if request.skip_reason is not None:
            return self._skip(request, request.skip_reason, progress)
        if not request.transactional and self._globally_held_out(request.user_id, workspace):
            return self._skip(request, GLOBAL_HOLDOUT, progress)
        traits = self._traits(request.user_id)
        refusal = None if request.transactional else unsubscribed(request.channel, traits)
        if refusal is not None:
            return self._skip(request, refusal, progress)
        to = recipient(request.channel, traits)
        if to is None:
            return self._skip(request, NO_ADDRESS[request.channel], progress)
        unsubscribe_url = self._unsubscribe_url(request)
        content, locale = self.render(request, traits, unsubscribe_url)
        if request.track and self._links is not None:
            # Before the claim stores the content, so a resend carries the very same links.
            assert record.id is not None  # stored records have ids
            tracker = Tracker(self._links, record.id, unsubscribe_url)
            content = tracker.content(request.channel, content)
        try:
            claimed = self._store.claim_delivery(
                request.idempotency_key,
                content,
                () if request.transactional else _caps(workspace, traits, self._clock()),
                workspace.rate_limit(request.channel),
                progress=progress,
                locale=locale,
                only_pending=True,
            )
        except Conflict:
            # An attempt overlapping this one (a retry of an attempt that is still running)
            # claimed it since this one found it pending: that one sends it. This one tries
            # again later and finds its outcome, or its claim to send again.
            raise ApplicationError(
                "another attempt is sending this message", type=TRANSIENT_FAILURE
            ) from None
        if claimed.waits_until is not None:  # held back by the channel's rate limit
            return _waiting(claimed)
        if claimed.status != "sending":  # capped
            return _outcome(claimed)
        return self._hand_over(request, provider, to, content, unsubscribe_url, progress=progress)

    def _resend(
        self,
        request: DeliverInput,
        record: DeliveryRecord,
        provider: Provider,
        workspace: WorkspaceSettings,
        progress: StepsInput | None,
    ) -> DeliveryOutcome:
        if not provider.honours_idempotency_key:
            raise PermanentDeliveryError(
                f"an earlier attempt stopped while {provider.name} was taking the message; "
                "it may have gone, so it is not sent again"
            )
        to = recipient(request.channel, self._traits(request.user_id))
        if to is None:
            raise PermanentDeliveryError(NO_ADDRESS[request.channel])
        rate = workspace.rate_limit(request.channel)
        if rate is not None:
            # The resend is a request the provider sees: it waits for a slot of its own.
            record = self._store.reclaim_delivery(request.idempotency_key, rate)
            if record.waits_until is not None:
                return _waiting(record)
        # The content the earlier attempt rendered, so the provider sees the same message.
        unsubscribe_url = self._unsubscribe_url(request)
        return self._hand_over(
            request, provider, to, record.content, unsubscribe_url, progress=progress
        )

    def _hand_over(
        self,
        request: DeliverInput,
        provider: Provider,
        to: Recipient,
        content: dict[str, Any],
        unsubscribe_url: str | None,
        *,
        progress: StepsInput | None,
    ) -> DeliveryOutcome:
        message = Message(
            idempotency_key=request.idempotency_key,
            user_id=request.user_id,
            channel=request.channel,
            content=content,
            address=to.address,
            push_tokens=to.push_tokens,
            unsubscribe_url=unsubscribe_url,
        )
        try:
            receipt = provider.send(message)
        except PushTokensUnregistered as error:
            self._store.remove_push_tokens(request.user_id, error.unregistered_tokens)
            raise
        if receipt.unregistered_tokens:
            self._store.remove_push_tokens(request.user_id, receipt.unregistered_tokens)
        record = self._store.finish_delivery(
            request.idempotency_key,
            "sent",
            provider=receipt.provider,
            provider_message_id=receipt.provider_message_id,
            progress=progress,
        )
        return _outcome(record)

    def _unsubscribe_url(self, request: DeliverInput) -> str | None:
        if self._links is None or request.channel != "email" or request.transactional:
            return None
        return self._links.unsubscribe(request.user_id, request.channel)

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
            transactional=request.transactional,
        )
        return record

    def render(
        self, request: DeliverInput, traits: dict[str, Any], unsubscribe_url: str | None
    ) -> tuple[dict[str, Any], str | None]:
        """The message's content (inline or its stored template's) in the locale the user's
        `locale` trait picks, rendered; and that locale (None: the base content). Raises
        `PermanentDeliveryError` for an unknown template or one that does not render.

        A simulation also shows what a skipped message would have said with it."""
        source = request.content
        if request.template is not None:
            template = self._store.get_template(request.template)
            if template is None:
                raise PermanentDeliveryError(f"unknown template '{request.template}'")
            source = template.content
        namespaces = request.context.namespaces(
            {**traits, "id": request.user_id},
            unsubscribe_url=(unsubscribe_url or "") if request.channel == "email" else None,
        )
        localised = locales.for_user(source or {}, traits)
        try:
            rendered: dict[str, Any] = templates.render_value(localised.content, namespaces)
        except templates.TemplateError as error:
            raise PermanentDeliveryError(f"template does not render: {error}") from None
        return rendered, localised.locale

    def _fail(self, request: DeliverInput, reason: str) -> NoReturn:
        self._store.finish_delivery(request.idempotency_key, "failed", reason)
        raise ApplicationError(reason, type=PERMANENT_FAILURE, non_retryable=True)

    def _skip(
        self, request: DeliverInput, reason: str, progress: StepsInput | None
    ) -> DeliveryOutcome:
        skipped = self._store.finish_delivery(
            request.idempotency_key, "skipped", reason, progress=progress
        )
        return _outcome(skipped)

    @activity.defn(name=Activity.FAIL_DELIVERY)
    def fail_delivery(self, request: FailDeliveryInput) -> None:
        """Record a delivery as failed after its activity gave up, or as skipped when the run
        ended while it waited for its turn under a rate limit (idempotent).

        Every attempt may have failed before recording anything, so the record is created if
        need be; one an attempt finished (its result lost to a timeout) keeps its status.
        """
        record = self._begin(request.delivery)
        if not record.finished:
            self._store.finish_delivery(record.idempotency_key, request.status, request.reason)

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


def _caps(workspace: WorkspaceSettings, traits: dict[str, Any], now: datetime) -> list[CapWindow]:
    zone = user_timezone("user", traits, workspace.timezone)
    return [cap.window(now, zone) for cap in workspace.frequency_caps]


def _waiting(record: DeliveryRecord) -> DeliveryOutcome:
    """A delivery its channel's rate limit holds back: when its turn comes, and how long until
    then by this worker's clock (a timer's length, however late this answer arrives)."""
    assert record.waits_until is not None
    return DeliveryOutcome(
        status="waiting",
        reason=record.reason,
        delivery_id=record.id,
        waits_until=record.waits_until,
        retry_after=max(record.waits_until - datetime.now(UTC), SHORTEST_WAIT),
    )


def _outcome(record: DeliveryRecord) -> DeliveryOutcome:
    assert record.finished
    return DeliveryOutcome(status=record.status, reason=record.reason, delivery_id=record.id)
