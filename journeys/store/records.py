"""The store's tables (SQLModel), their column types and the inputs some store methods take.

Timestamps are aware UTC datetimes in Python; columns hold naive UTC (`UTCDateTime`), which
both databases compare correctly. `journeys.migrations` must match these models.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import JSON, Column, DateTime, Dialect, Index
from sqlalchemy.types import TypeDecorator
from sqlmodel import AutoString, Field, SQLModel

from journeys.contracts import EnrollmentStatus, EventType
from journeys.engagement import DELIVERY_ID

JourneyStatus = Literal["draft", "live", "paused", "archived"]
DeliveryStatus = Literal["pending", "sending", "sent", "skipped", "failed"]
"""pending (recorded, not yet handed to a provider) → sending (claimed: being handed over) →
sent; or → skipped / failed. A send a provider refused cleanly goes back to pending."""

DELIVERY_STATUSES: tuple[DeliveryStatus, ...] = ("pending", "sending", "sent", "skipped", "failed")
UNFINISHED: tuple[DeliveryStatus, ...] = ("pending", "sending")
IN_APP = "in_app"


def utcnow() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime stored as naive UTC (SQLite has no time zones).

    Naive datetimes are refused rather than guessed at: they are a bug in the caller.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert an aware datetime to naive UTC for storage."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()}: pass an aware (UTC) datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Mark a stored naive UTC datetime as UTC."""
        return None if value is None else value.replace(tzinfo=UTC)


def _time_column(*, nullable: bool = False) -> Any:
    return Column(UTCDateTime(), nullable=nullable)


def _json_column(*, nullable: bool = False) -> Any:
    return Column(JSON, nullable=nullable)


# --- tables ------------------------------------------------------------------------------------


class JourneyRecord(SQLModel, table=True):
    """A journey: its editable draft document, status and latest published version."""

    __tablename__ = "journeys"

    id: str = Field(primary_key=True)
    draft: dict[str, Any] = Field(default_factory=dict, sa_column=_json_column())
    status: JourneyStatus = Field(default="draft", sa_type=AutoString)
    version: int | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_column=_time_column())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_time_column())


class JourneyVersionRecord(SQLModel, table=True):
    """A published, immutable copy of a journey's draft."""

    __tablename__ = "journey_versions"

    journey_id: str = Field(primary_key=True, foreign_key="journeys.id")
    version: int = Field(primary_key=True)
    definition: dict[str, Any] = Field(default_factory=dict, sa_column=_json_column())
    published_at: datetime = Field(default_factory=utcnow, sa_column=_time_column())
    published_by: str | None = None
    """Who published it (the audit log's actor); None for versions published before it was
    recorded."""


class UserRecord(SQLModel, table=True):
    """A user profile: traits by name."""

    __tablename__ = "users"

    user_id: str = Field(primary_key=True)
    traits: dict[str, Any] = Field(default_factory=dict, sa_column=_json_column())
    created_at: datetime = Field(default_factory=utcnow, sa_column=_time_column())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_time_column())


class EventRecord(SQLModel, table=True):
    """An ingested event; `name` is the track event or the page/screen name (None for identify)."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_user_name_timestamp", "user_id", "name", "timestamp"),
        Index("ix_events_routed_at", "routed_at", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    message_id: str = Field(unique=True)
    user_id: str
    type: EventType = Field(sa_type=AutoString)
    name: str | None = None
    properties: dict[str, Any] = Field(default_factory=dict, sa_column=_json_column())
    timestamp: datetime = Field(sa_column=_time_column())
    received_at: datetime = Field(default_factory=utcnow, sa_column=_time_column())
    routed_at: datetime | None = Field(default=None, sa_column=_time_column(nullable=True))
    """None until the event reached every journey that cares: the events table is the outbox."""
    partition_key: int | None = None
    """Places the event in a partition of the outbox (`journeys.store.claims`); set on every
    event stored since revision 0005 (events routed before it have none)."""


class SegmentRecord(SQLModel, table=True):
    """A named condition over users."""

    __tablename__ = "segments"

    id: str = Field(primary_key=True)
    name: str
    condition: dict[str, Any] = Field(default_factory=dict, sa_column=_json_column())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_time_column())


class TemplateRecord(SQLModel, table=True):
    """Stored message content for one channel."""

    __tablename__ = "templates"

    id: str = Field(primary_key=True)
    channel: str
    content: dict[str, Any] = Field(default_factory=dict, sa_column=_json_column())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_time_column())


class BroadcastRecord(SQLModel, table=True):
    """A broadcast: what was asked (`definition`), its status and how many members it took.
    Its deliveries are the `deliveries` of `journey_id` `broadcast:{id}`."""

    __tablename__ = "broadcasts"

    id: str = Field(primary_key=True)
    definition: dict[str, Any] = Field(default_factory=dict, sa_column=_json_column())
    status: str
    """scheduled, sending, completed or cancelled (`journeys.broadcasts.BroadcastStatus`)."""
    targeted: int = 0
    created_at: datetime = Field(default_factory=utcnow, sa_column=_time_column())
    finished_at: datetime | None = Field(default=None, sa_column=_time_column(nullable=True))


class DeliveryRecord(SQLModel, table=True):
    """One message to one user from one node visit; `idempotency_key` makes retries safe."""

    __tablename__ = "deliveries"
    __table_args__ = (
        Index("ix_deliveries_journey_node_status", "journey_id", "node_id", "status"),
        Index("ix_deliveries_user_sent_at", "user_id", "sent_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(unique=True)
    journey_id: str
    version: int
    node_id: str
    user_id: str = Field(index=True)
    channel: str
    status: DeliveryStatus = Field(default="pending", sa_type=AutoString)
    reason: str | None = None
    content: dict[str, Any] = Field(default_factory=dict, sa_column=_json_column())
    variant: str | None = None
    transactional: bool = False
    provider: str | None = None
    """Who took the message: "smtp", "push", "sms", "webhook", "outbox" or "inbox"."""
    provider_message_id: str | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_column=_time_column())
    sent_at: datetime | None = Field(default=None, sa_column=_time_column(nullable=True))
    read_at: datetime | None = Field(default=None, sa_column=_time_column(nullable=True))
    opened_at: datetime | None = Field(default=None, sa_column=_time_column(nullable=True))
    """When the user first opened it (machine opens never count); a click opens it too."""
    clicked_at: datetime | None = Field(default=None, sa_column=_time_column(nullable=True))
    """When the user first clicked a tracked link in it (machine clicks never count)."""
    waits_until: datetime | None = Field(default=None, sa_column=_time_column(nullable=True))
    """Set while a pending delivery waits for its channel's rate limit: when its turn comes."""
    locale: str | None = None
    """The tag of the localised content it was sent with, as the message writes it; None
    for the base content (`journeys.locales`)."""

    @property
    def finished(self) -> bool:
        """Whether the delivery has its outcome (sent, skipped or failed)."""
        return self.status not in UNFINISHED

    def attribution(self) -> dict[str, Any]:
        """The properties that tie an engagement event to this delivery and where it came
        from (`variant` only when it has one)."""
        properties: dict[str, Any] = {
            DELIVERY_ID: self.id,
            "journey_id": self.journey_id,
            "journey_version": self.version,
            "node_id": self.node_id,
            "channel": self.channel,
        }
        if self.variant is not None:
            properties["variant"] = self.variant
        return properties


class RateGrantRecord(SQLModel, table=True):
    """One send under a rate limit (`journeys.store.ratelimits`): reserved a time while it
    waits for its turn, granted when it may go, finished once the provider answered."""

    __tablename__ = "rate_grants"
    __table_args__ = (
        Index("ix_rate_grants_bucket_key", "bucket", "key"),
        Index("ix_rate_grants_bucket_finished_at", "bucket", "finished_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    bucket: str
    """What the limit is on: a channel's name."""
    key: str
    """Who sends: a delivery's idempotency key."""
    reserved_for: datetime | None = Field(default=None, sa_column=_time_column(nullable=True))
    granted_at: datetime | None = Field(default=None, sa_column=_time_column(nullable=True))
    finished_at: datetime | None = Field(default=None, sa_column=_time_column(nullable=True))


class EnrollmentRecord(SQLModel, table=True):
    """One user's run through one journey version."""

    __tablename__ = "enrollments"
    __table_args__ = (
        Index("ix_enrollments_journey_status", "journey_id", "status"),
        Index("ix_enrollments_journey_current_node", "journey_id", "current_node"),
        Index("ix_enrollments_workflow_id", "workflow_id"),
    )

    id: str = Field(primary_key=True)
    user_id: str = Field(index=True)
    journey_id: str
    version: int
    workflow_id: str
    status: EnrollmentStatus = Field(default="active", sa_type=AutoString)
    current_node: str | None = None
    variant: str | None = None
    entered_at: datetime = Field(sa_column=_time_column())
    ended_at: datetime | None = Field(default=None, sa_column=_time_column(nullable=True))
    converted_at: datetime | None = Field(default=None, sa_column=_time_column(nullable=True))
    holdout: str | None = None
    """Why the run sends no non-transactional message: `holdout` (the journey's) or `global
    holdout`; None for a treated run."""


class EntryAdmissionRecord(SQLModel, table=True):
    """A run's admission under its journey's entry limit: let in, or refused (`entry limit`).

    Keyed by the run's enrollment id, so a retried admission finds its first answer."""

    __tablename__ = "entry_admissions"
    __table_args__ = (
        Index("ix_entry_admissions_journey_at", "journey_id", "admitted", "at"),
        Index("ix_entry_admissions_workflow_id", "workflow_id"),
    )

    enrollment_id: str = Field(primary_key=True)
    journey_id: str
    user_id: str
    workflow_id: str
    admitted: bool
    at: datetime = Field(sa_column=_time_column())


class NodeVisitRecord(SQLModel, table=True):
    """That an enrollment reached a node (at most once: journeys are acyclic)."""

    __tablename__ = "node_visits"
    __table_args__ = (Index("ix_node_visits_journey_node", "journey_id", "node_id"),)

    enrollment_id: str = Field(primary_key=True, foreign_key="enrollments.id")
    node_id: str = Field(primary_key=True)
    journey_id: str
    reached_at: datetime = Field(sa_column=_time_column())


class ExperimentDecisionRecord(SQLModel, table=True):
    """Where an experiment node's winner rule stands: looks made so far, and the winner once
    one is picked (then final)."""

    __tablename__ = "experiment_decisions"

    journey_id: str = Field(primary_key=True)
    node_id: str = Field(primary_key=True)
    looks: int = 0
    winner: str | None = None
    p_value: float | None = None
    """The p-value at the latest look."""
    decided_at: datetime | None = Field(default=None, sa_column=_time_column(nullable=True))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_time_column())


class PredictionRunRecord(SQLModel, table=True):
    """One run of the conversion model: its report (`journeys.contracts.PredictionReport`)."""

    __tablename__ = "prediction_runs"

    id: int | None = Field(default=None, primary_key=True)
    trained_at: datetime = Field(sa_column=_time_column())
    report: dict[str, Any] = Field(default_factory=dict, sa_column=_json_column())


class SuppressionRecord(SQLModel, table=True):
    """An erased user: events for the user id are dropped at ingest until the user is
    identified again with consent. Holds a hash of the id (`journeys.store.privacy`), never
    the id itself."""

    __tablename__ = "suppressions"

    user_hash: str = Field(primary_key=True)
    erased_at: datetime = Field(default_factory=utcnow, sa_column=_time_column())


class TokenRecord(SQLModel, table=True):
    """A personal API token (`journeys.access`): only the hash of its key is kept."""

    __tablename__ = "tokens"

    id: str = Field(primary_key=True)
    name: str
    role: str
    key_hash: str
    created_by: str
    created_at: datetime = Field(default_factory=utcnow, sa_column=_time_column())
    expires_at: datetime | None = Field(default=None, sa_column=_time_column(nullable=True))
    revoked_at: datetime | None = Field(default=None, sa_column=_time_column(nullable=True))


class AuditRecord(SQLModel, table=True):
    """One management change: who made it, what and on what."""

    __tablename__ = "audit_log"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_column=_time_column())
    actor: str
    token_id: str | None = None
    """The personal token the change came with (None: the admin token)."""
    action: str
    target: str
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=_json_column())


class PersonRecord(SQLModel, table=True):
    """Someone who signs in to the designer (`journeys.people`): the role they act under, and
    the hash of their password (None for people who sign in only through OIDC)."""

    __tablename__ = "people"

    email: str = Field(primary_key=True)
    role: str
    password_hash: str | None = None
    created_by: str
    created_at: datetime = Field(default_factory=utcnow, sa_column=_time_column())


class SignInFailureRecord(SQLModel, table=True):
    """Failed sign-ins under one key (a hashed account or client address) since the start of
    the current window."""

    __tablename__ = "sign_in_failures"

    key: str = Field(primary_key=True)
    failures: int
    window_start: datetime = Field(sa_column=_time_column())


class SettingRecord(SQLModel, table=True):
    """One global setting (e.g. `frequency_caps`, `timezone`) as JSON."""

    __tablename__ = "settings"

    key: str = Field(primary_key=True)
    value: Any = Field(default=None, sa_column=_json_column(nullable=True))


# --- inputs ------------------------------------------------------------------------------------


TraitOperationKind = Literal["set_once", "unset", "add", "append", "union", "remove"]


@dataclass(frozen=True)
class TraitOperation:
    """A change to a profile that depends on the traits it has when the event is stored (see
    `journeys.store.profiles.apply_operations`): `values` maps each trait to its operand
    (ignored for `unset`)."""

    kind: TraitOperationKind
    values: dict[str, Any]


@dataclass(frozen=True)
class NewEvent:
    """An event to store with `Store.append_events`, and what it does to profiles.

    Identify events carry their traits twice: in `properties` (so the events table alone says
    what each identify changed) and in `traits` (merged into the profile).
    """

    message_id: str
    user_id: str
    type: EventType
    name: str | None
    properties: dict[str, Any]
    timestamp: datetime
    received_at: datetime | None = None
    traits: dict[str, Any] = field(default_factory=dict)
    """Merged into the profile of `user_id` (identify)."""
    merge_from: str | None = None
    """A profile to merge into `user_id` first (an anonymous visitor who identified)."""
    operations: tuple[TraitOperation, ...] = ()
    """Applied to the profile after `traits`, in order; what they change is also recorded in
    the stored event's properties (a removed trait as null)."""
    consent: bool = False
    """The call said `context.consent: true`: an identify with it lifts the user's
    suppression (an erased user who came back and agreed); without it, events for a
    suppressed user are dropped."""


@dataclass(frozen=True)
class CapWindow:
    """A frequency cap as `Store.claim_delivery` applies it: at most `max` non-transactional
    messages (on `channel`, or on any) sent since `since`; `label` names it in the reason."""

    max: int
    since: datetime
    channel: str | None
    label: str
