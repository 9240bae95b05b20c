"""What crosses the Temporal boundary: workflow input, signal, query and activity models.

Pure data, importable from deterministic workflow code. Every workflow, signal, query and
activity takes one model, so fields can be added without breaking running journeys.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, Field, model_validator
from temporalio.common import SearchAttributeKey

from journeys.engagement import Engagement
from journeys.model import (
    CLICK_WINDOW,
    Channel,
    Duration,
    EntryLimit,
    EventCountCondition,
    Journey,
    SegmentCondition,
)

WORKFLOW_TYPE = "JourneyWorkflow"
SWEEP_WORKFLOW_TYPE = "SegmentSweepWorkflow"
SWEEP_SCHEDULE_ID = "journeys-segment-sweep"
PREDICTION_WORKFLOW_TYPE = "PredictionWorkflow"
PREDICTION_SCHEDULE_ID = "journeys-predictions"
PREDICTION_HOUR_UTC = 3
"""The hour (UTC) of the nightly prediction run."""
RETENTION_WORKFLOW_TYPE = "EventRetentionWorkflow"
RETENTION_SCHEDULE_ID = "journeys-event-retention"
RETENTION_HOUR_UTC = 4
"""The hour (UTC) of the nightly deletion of expired events, after the predictions."""


class Activity(StrEnum):
    """Names of the activities the interpreter calls (implemented in `activities/`)."""

    LOAD_CONTEXT = "load_context"
    RECORD_STEPS = "record_steps"
    ENROLL = "enroll"
    """Runs started before `lean-steps` record their enrollment and each step on their own."""
    RECORD_PROGRESS = "record_progress"
    DELIVER = "deliver"
    FAIL_DELIVERY = "fail_delivery"
    UPDATE_USER = "update_user"
    MOST_ACTIVE_HOUR = "most_active_hour"
    SWEEP_SEGMENT_ENTRIES = "sweep_segment_entries"
    PREDICT_CONVERSIONS = "predict_conversions"
    EXPERIMENT_WINNER = "experiment_winner"
    ADMIT_ENTRY = "admit_entry"
    DELETE_EXPIRED_EVENTS = "delete_expired_events"


ENTRY_LIMIT = "entry limit"
"""Why a run ended before entering: its journey's entry limit was reached."""

EVENT_SIGNAL = "event"
LEAVE_SIGNAL = "leave"
STATE_QUERY = "state"

JOURNEY_ID = SearchAttributeKey.for_keyword("JourneyId")
JOURNEY_VERSION = SearchAttributeKey.for_int("JourneyVersion")
USER_ID = SearchAttributeKey.for_keyword("UserId")
JOURNEY_NODE = SearchAttributeKey.for_keyword("JourneyNode")
SEARCH_ATTRIBUTES = (JOURNEY_ID, JOURNEY_VERSION, USER_ID, JOURNEY_NODE)

EventType = Literal["track", "identify", "page", "screen"]
EnrollmentStatus = Literal["active", "completed", "exited"]
EndStatus = Literal["completed", "exited"]
FinalDeliveryStatus = Literal["sent", "skipped", "failed"]


def workflow_id(journey_id: str, user_id: str) -> str:
    """The id of a user's run through a journey: one at a time per user per journey."""
    return f"journey:{journey_id}:{user_id}"


def delivery_key(enrollment_id: str, node_id: str) -> str:
    """The idempotency key of an enrollment's delivery of a message node (journeys are acyclic:
    one per node). `Store.variant_clicks` finds an enrollment's deliveries by it."""
    return f"{enrollment_id}:{node_id}"


def static_summary(journey: Journey, version: int, user_id: str) -> str:
    """What the Temporal UI shows for a run."""
    return f"{journey.name} v{version} · {user_id}"


class JourneyEvent(BaseModel):
    """A user's event as it reaches a running journey (the `event` signal)."""

    message_id: str = Field(min_length=1, max_length=200)
    type: EventType = "track"
    name: str | None = Field(default=None, max_length=200)
    properties: dict[str, Any] = Field(default_factory=dict)
    traits: dict[str, Any] = Field(default_factory=dict)
    timestamp: AwareDatetime

    @model_validator(mode="after")
    def _track_has_name(self) -> JourneyEvent:
        if self.type == "track" and not self.name:
            raise ValueError("a track event needs a name")
        return self


class LeaveRequest(BaseModel):
    """Make the user leave the journey at once (the `leave` signal: archive)."""

    reason: str = Field(min_length=1, max_length=200)


class EntryContext(BaseModel):
    """What made the user enter: the entry event, or the `content` of `POST /trigger`."""

    message_id: str | None = None
    event: str | None = None
    properties: dict[str, Any] = Field(default_factory=dict)
    timestamp: AwareDatetime


class Delivered(BaseModel):
    """This run's delivery of a message node that was sent, and how far the user engaged with
    it (from the engagement events the run heard)."""

    delivery_id: int
    engagement: Engagement = "sent"


class JourneyState(BaseModel):
    """A run's progress, carried across continue-as-new."""

    enrollment_id: str
    entered_at: AwareDatetime
    current_node: str | None = None
    path: list[str] = Field(default_factory=list)
    deadline: AwareDatetime | None = None
    waiting_for: str | None = None
    event: dict[str, Any] = Field(default_factory=dict)
    variant: str | None = None
    converted: bool = False
    traits: dict[str, Any] = Field(default_factory=dict)
    seen: list[str] = Field(default_factory=list)
    pending: list[JourneyEvent] = Field(
        default_factory=list, description="received, not yet checked against exits and goal"
    )
    unclaimed: list[JourneyEvent] = Field(
        default_factory=list, description="checked, not yet offered to a wait"
    )
    notes: list[str] = Field(
        default_factory=list, description="shown under the current details (a winner taken)"
    )
    delivered: dict[str, Delivered] = Field(
        default_factory=dict, description="message node id → this run's sent delivery of it"
    )


class JourneyInput(BaseModel):
    """Input of `JourneyWorkflow`: the published definition snapshot, the user and the entry."""

    journey: Journey
    version: int
    user_id: str
    entry: EntryContext
    state: JourneyState | None = None
    continue_as_new_after: int | None = Field(
        default=None, description="history length that forces continue-as-new (tests)"
    )
    revision: int | None = Field(
        default=None,
        description="the interpreter revision the run started on (`workflows.patches`); None "
        "for runs started before revisions, whose patch markers tell how they behave",
    )


class JourneyOutcome(BaseModel):
    """How a run ended."""

    status: EndStatus
    path: list[str]
    reason: str | None = None


class StateView(BaseModel):
    """The answer of the `state` query."""

    journey_id: str
    version: int
    current_node: str | None
    path: list[str]
    waiting_for: str | None
    entered_at: datetime


# --- activities -------------------------------------------------------------------------------


class LoadContextInput(BaseModel):
    user_id: str
    facts: list[SegmentCondition | EventCountCondition] = Field(default_factory=list)


class UserContext(BaseModel):
    """The user's traits now, and the answers to the facts asked (keyed by `fact_key`)."""

    traits: dict[str, Any]
    facts: dict[str, bool | int] = Field(default_factory=dict)


class EnrollInput(BaseModel):
    enrollment_id: str
    user_id: str
    journey_id: str
    version: int
    workflow_id: str
    entered_at: datetime
    holdout: str | None = Field(
        default=None,
        description=(
            "`holdout` when the user is held out of the journey's messages; the activity that "
            "records the enrollment marks users of the global holdout"
        ),
    )


class AdmitInput(BaseModel):
    """A new run asks to enter a journey under its entry limit, at `at`."""

    enrollment: EnrollInput
    limit: EntryLimit
    at: datetime


class Admission(BaseModel):
    """Whether the run entered (False: the entry limit was reached)."""

    admitted: bool


class ProgressInput(BaseModel):
    """A step of an enrollment: reached a node, chose a variant, converted or ended."""

    enrollment_id: str
    at: datetime
    node_id: str | None = None
    variant: str | None = None
    converted: bool = False
    ended: EndStatus | None = None


class StepsInput(BaseModel):
    """What a run records at once: its enrollment (the first time) and its steps, in order."""

    enrollment: EnrollInput | None = None
    steps: list[ProgressInput] = Field(default_factory=list)


class TemplateContext(BaseModel):
    """The non-user namespaces a message or trait template sees."""

    entry: dict[str, Any] = Field(default_factory=dict)
    event: dict[str, Any] = Field(default_factory=dict)
    journey: dict[str, Any] = Field(default_factory=dict)
    variant: str | None = None

    def namespaces(
        self, user: dict[str, Any], *, unsubscribe_url: str | None = None
    ) -> dict[str, Any]:
        """Everything a template sees: `user` (traits and `id`), these namespaces and, in
        emails, `unsubscribe_url` (empty in transactional ones)."""
        seen = {**self.model_dump(), "user": user}
        if unsubscribe_url is not None:
            seen["unsubscribe_url"] = unsubscribe_url
        return seen


class DeliverInput(BaseModel):
    idempotency_key: str
    journey_id: str
    version: int
    node_id: str
    user_id: str
    channel: Channel
    content: dict[str, Any] | None = None
    template: str | None = None
    transactional: bool = False
    track: bool = Field(
        default=False, description="rewrite links (and add an open pixel) to track engagement"
    )
    context: TemplateContext
    skip_reason: str | None = Field(
        default=None, description="record the message as skipped for this reason, send nothing"
    )
    steps: StepsInput | None = Field(
        default=None, description="the run's steps (and enrollment) to record before delivering"
    )
    then: ProgressInput | None = Field(
        default=None,
        description="the run's next step, to record once the message went or was skipped",
    )


class DeliveryOutcome(BaseModel):
    status: FinalDeliveryStatus | Literal["waiting"]
    """"waiting": the channel's rate limit holds the message back until `waits_until`; the run
    delivers it again `retry_after` later (same key), and nothing was recorded meanwhile."""
    reason: str | None = None
    delivery_id: int | None = None
    waits_until: datetime | None = None
    retry_after: timedelta | None = None
    """How long until `waits_until` by the worker's clock (a timer's length needs no clock
    shared with the Temporal server)."""


class FailDeliveryInput(BaseModel):
    """A delivery whose activity gave up (non-retryable error or attempts exhausted), or that
    will not be sent: the run ended while it waited for a rate limit ("skipped")."""

    delivery: DeliverInput
    reason: str
    status: Literal["failed", "skipped"] = "failed"


class UpdateUserInput(BaseModel):
    user_id: str
    set: dict[str, Any] = Field(default_factory=dict)
    unset: list[str] = Field(default_factory=list)
    context: TemplateContext


class ActiveHourInput(BaseModel):
    user_id: str
    timezone: str


class ActiveHour(BaseModel):
    """The local hour (0-23) of the user's most events, or None when history is thin or tied."""

    hour: int | None


class WinnerInput(BaseModel):
    """Has the experiment at `node_id` a winner yet? (It may decide now: see
    `journeys.experiments.decide`.)"""

    journey_id: str
    version: int
    node_id: str
    variants: list[str]
    after: str
    min_users: int
    metric: Literal["conversion", "click"] = "conversion"
    within: Duration = Field(
        default=CLICK_WINDOW, description="metric click: how long a click counts"
    )
    tracked: list[str] = Field(
        default_factory=list, description="metric click: the message nodes whose clicks count"
    )


class WinnerAnswer(BaseModel):
    winner: str | None = None


class SweepInput(BaseModel):
    """Re-check segment entries (time-based segments change without any event)."""


class SweepResult(BaseModel):
    journeys: int
    users_checked: int
    started: int


class PredictInput(BaseModel):
    """Fit the conversion model and score every user (the nightly schedule)."""

    horizon_days: int = Field(default=7, ge=1, le=90)


class PredictionReport(BaseModel):
    """What a prediction run did, and how good its model is."""

    trained_at: AwareDatetime
    horizon_days: int
    status: Literal["trained", "not enough data"]
    users_scored: int = 0
    training_users: int = 0
    converters: int = 0
    held_out_users: int = 0
    auc: float | None = Field(
        default=None, description="area under the ROC curve on the held-out users"
    )
    coefficients: dict[str, float] = Field(default_factory=dict)
    message: str = ""


class RoutedAt(BaseModel):
    """A place in the events' routing order, where retention goes on from."""

    routed_at: AwareDatetime
    id: int


class RetentionInput(BaseModel):
    """Delete the routed events past retention (the nightly schedule), from `after` on."""

    after: RoutedAt | None = None
    batch_size: int = Field(default=1000, ge=1, le=10_000, description="events per transaction")
    batches_per_call: int = Field(
        default=100, ge=1, le=10_000, description="batches one activity call deletes at most"
    )
    calls_per_run: int = Field(
        default=50, ge=1, le=1000, description="activity calls before the run continues as new"
    )
    deleted: int = Field(default=0, ge=0, description="deleted by the runs before this one")
    scanned: int = Field(default=0, ge=0, description="looked at by the runs before this one")


class RetentionReport(BaseModel):
    """What retention did (counts only: no event or user in it)."""

    cutoff: AwareDatetime | None = Field(
        description="events older than this were deleted (None: a window in use reads every "
        "event for good, so none was)"
    )
    names_kept_longer: int = Field(
        default=0, description="event names a longer window in use keeps past the cutoff"
    )
    scanned: int = 0
    deleted: int = 0
    after: RoutedAt | None = None
    finished: bool = True
