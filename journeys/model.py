"""The journey document (format v1, with the optional v2 additions) as pydantic models.

One schema: these models are the API body, the stored draft, the workflow input and what the
designer edits. Structural rules (types, required fields, allowed values, durations, time
zones) live here; rules that need the whole graph (references, reachability, cycles, weights,
content, templates) live in `journeys.validation`.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    model_validator,
)
from pydantic_core import PydanticCustomError

from journeys.durations import parse_duration

SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]{0,63}$"
NODE_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
"""Node ids are slugs like journey ids; `_` is accepted too, as the spec's own example uses it."""

Channel = Literal["email", "push", "sms", "in_app", "webhook"]
CHANNELS: tuple[Channel, ...] = ("email", "push", "sms", "in_app", "webhook")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Op = Literal[
    "eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in",
    "contains", "starts_with", "exists", "not_exists",
]  # fmt: skip
NAMESPACES = ("user", "entry", "event")


def _check_duration(text: str) -> str:
    try:
        parse_duration(text)
    except ValueError as error:
        raise PydanticCustomError("duration", str(error)) from None
    return text


def find_zone(name: str) -> ZoneInfo | None:
    """The IANA time zone of that name, or None when there is none."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a tzdata folder ("America")
        return None


def _check_clock(text: str) -> str:
    match = re.fullmatch(r"(\d{2}):(\d{2})", text)
    if not match or int(match.group(1)) > 23 or int(match.group(2)) > 59:
        raise PydanticCustomError(
            "clock", "bad time '{text}': use HH:MM, 00:00 to 23:59", {"text": text}
        )
    return text


def _check_timezone(name: str) -> str:
    if find_zone(name) is None:
        raise PydanticCustomError("timezone", "unknown time zone '{name}'", {"name": name})
    return name


def _check_reentry(text: str) -> str:
    return text if text in ("never", "always") else _check_duration(text)


def _check_delay_time(text: str) -> str:
    return text if text == "optimal" else _check_clock(text)


def _check_delay_timezone(name: str) -> str:
    return name if name == "user" else _check_timezone(name)


def _check_field_path(path: str) -> str:
    head, _, rest = path.partition(".")
    if head not in NAMESPACES or not rest or "" in rest.split("."):
        raise PydanticCustomError(
            "field_path",
            "bad field '{path}': use a dotted path in user.*, entry.* or event.*",
            {"path": path},
        )
    return path


Duration = Annotated[str, AfterValidator(_check_duration)]
"""A duration as written (`"24h"`, `"PT24H"`); `to_timedelta` reads it."""
Clock = Annotated[str, AfterValidator(_check_clock)]
TimeZoneName = Annotated[str, AfterValidator(_check_timezone)]
FieldPath = Annotated[str, AfterValidator(_check_field_path)]
Reentry = Annotated[str, AfterValidator(_check_reentry)]
"""`"never"`, `"always"` or a Duration."""
DelayTime = Annotated[str, AfterValidator(_check_delay_time)]
"""`"HH:MM"` or `"optimal"`."""
DelayTimeZone = Annotated[str, AfterValidator(_check_delay_timezone)]
"""`"user"` or an IANA name."""
NodeId = Annotated[str, Field(pattern=NODE_ID_PATTERN)]
NodeRef = NodeId | None
EventName = Annotated[str, Field(min_length=1, max_length=200)]


def to_timedelta(duration: Duration) -> timedelta:
    """The length of a validated duration."""
    return parse_duration(duration)


class Strict(BaseModel):
    """Base of every document model: unknown fields are errors, so typos never pass silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --- conditions -------------------------------------------------------------------------------


class AllOf(Strict):
    all: list[Condition]


class AnyOf(Strict):
    any: list[Condition]


class NotOf(Strict):
    not_: Condition = Field(alias="not")

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class FieldCondition(Strict):
    field: FieldPath
    op: Op
    value: Any = None

    @model_validator(mode="after")
    def _value_fits_op(self) -> FieldCondition:
        if self.op in ("in", "not_in") and not isinstance(self.value, list):
            raise PydanticCustomError("op_value", "'{op}' needs a list value", {"op": self.op})
        if self.op not in ("exists", "not_exists") and self.value is None:
            raise PydanticCustomError("op_value", "'{op}' needs a value", {"op": self.op})
        return self


class SegmentCondition(Strict):
    segment: Annotated[str, Field(pattern=SLUG_PATTERN)]


class EventCount(Strict):
    event: EventName
    where: Condition | None = None
    within: Duration | None = None


class EventCountCondition(Strict):
    event_count: EventCount
    op: Literal["eq", "ne", "gt", "gte", "lt", "lte"]
    value: int


class MessageCondition(Strict):
    """True when this enrollment's delivery of a message node reached an engagement state."""

    message: NodeId = Field(description="id of a message node of this journey")
    # The states of `journeys.engagement.ENGAGEMENTS` (which imports this module, so it cannot
    # be imported here); a test keeps the two equal.
    engagement: Literal["sent", "opened", "clicked"] = Field(
        description="sent, opened or clicked; clicked implies opened, which implies sent"
    )


_CONDITION_TAGS = {
    "all": "AllOf",
    "any": "AnyOf",
    "not": "NotOf",
    "field": "FieldCondition",
    "segment": "SegmentCondition",
    "event_count": "EventCountCondition",
    "message": "MessageCondition",
}


def _condition_tag(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        return type(value).__name__
    if isinstance(value, dict):
        for key, tag in _CONDITION_TAGS.items():
            if key in value:
                return tag
    return None


Condition = Annotated[
    Annotated[AllOf, Tag("AllOf")]
    | Annotated[AnyOf, Tag("AnyOf")]
    | Annotated[NotOf, Tag("NotOf")]
    | Annotated[FieldCondition, Tag("FieldCondition")]
    | Annotated[SegmentCondition, Tag("SegmentCondition")]
    | Annotated[EventCountCondition, Tag("EventCountCondition")]
    | Annotated[MessageCondition, Tag("MessageCondition")],
    Discriminator(
        _condition_tag,
        custom_error_type="condition",
        custom_error_message=(
            "not a condition: expected one of all, any, not, field/op/value, segment, "
            "event_count, message/engagement"
        ),
    ),
]

# --- entry, exit, goal, settings ---------------------------------------------------------------


ENTRY_KINDS = ("event", "page", "segment", "api")
"""What can start a journey: a track event, a page view, joining a segment, an API trigger."""


class EntryLimit(Strict):
    """At most `count` entries into the journey per rolling `per`, whoever enters."""

    count: Annotated[int, Field(ge=1, description="entries allowed in any window of `per`")]
    per: Duration = Field(description="the length of the rolling window, e.g. 1h or 1d")


class Entry(Strict):
    """Who enters and when: exactly one of `event`, `page`, `segment`, `api`."""

    event: EventName | None = None
    page: EventName | None = Field(
        default=None,
        description='enter on a page call (a web page view) of this name, e.g. "Checkout"',
    )
    where: Condition | None = None
    segment: Annotated[str, Field(pattern=SLUG_PATTERN)] | None = None
    api: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    audience: Condition | None = None
    reentry: Reentry = "never"
    limit: EntryLimit | None = Field(
        default=None,
        description="at most `count` entries per rolling `per`; users over it do not enter",
    )

    @model_validator(mode="after")
    def _one_kind(self) -> Entry:
        kinds = [k for k in ENTRY_KINDS if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise PydanticCustomError(
                "entry_kind",
                "exactly one of event, page, segment, api is required (found {found})",
                {"found": ", ".join(kinds) or "none"},
            )
        if self.where is not None and self.event is None and self.page is None:
            raise PydanticCustomError(
                "entry_where", "'where' applies only to an event or page entry"
            )
        return self


Match = dict[
    Annotated[str, Field(min_length=1, max_length=200)],
    Annotated[str, Field(max_length=2000)],
]
"""A keyed match: event property → template; the event must carry the rendered values."""
MATCH_DESCRIPTION = (
    "keyed match: event property → template over entry.* (not with a segment entry), user.* "
    "(and, on exit rules and goals, event.* of the journey's current event); the event must "
    'carry equal values, e.g. {"cart_id": "{{ entry.cart_id }}"}'
)


class ExitRule(Strict):
    """Leave at once: on an event (optionally filtered by `where`) or when a condition holds."""

    event: EventName | None = None
    where: Condition | None = None
    match: Match | None = Field(default=None, description=MATCH_DESCRIPTION)
    when: Condition | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> ExitRule:
        if (self.event is None) == (self.when is None):
            raise PydanticCustomError("exit_kind", "an exit rule needs exactly one of event, when")
        if self.where is not None and self.event is None:
            raise PydanticCustomError("exit_where", "'where' applies only to an event exit rule")
        if self.match is not None and self.event is None:
            raise PydanticCustomError("exit_match", "'match' applies only to an event exit rule")
        return self


class Goal(Strict):
    event: EventName
    where: Condition | None = None
    match: Match | None = Field(default=None, description=MATCH_DESCRIPTION)
    within: Duration


class QuietHours(Strict):
    start: Clock
    end: Clock
    action: Literal["delay", "skip"] = "delay"


JOURNEY_HOLDOUT_MAX = 50


class Holdout(Strict):
    """A share of entrants who get no non-transactional message, to measure the journey's lift
    against."""

    percent: Annotated[
        float,
        Field(
            ge=0,
            le=JOURNEY_HOLDOUT_MAX,
            description="percent of entrants held out (0 to 50), chosen by a stable hash",
        ),
    ]


class JourneySettings(Strict):
    timezone: TimeZoneName = "UTC"
    quiet_hours: QuietHours | None = None


# --- nodes ----------------------------------------------------------------------------------


class MessageFields(Strict):
    """What a message is: its channel, content (or template) and how it is sent. A journey's
    message node and a broadcast's message both are one."""

    channel: Channel
    content: dict[str, Any] | None = None
    template: Annotated[str, Field(pattern=SLUG_PATTERN)] | None = None
    transactional: bool = False
    track: bool | None = Field(
        default=None,
        description=(
            "track opens and clicks (signed redirect links, an open pixel for email); "
            "default: on for email, sms, push and in_app unless transactional; never for webhooks"
        ),
    )

    @model_validator(mode="after")
    def _content_or_template(self) -> MessageFields:
        if (self.content is None) == (self.template is None):
            raise PydanticCustomError(
                "message_source", "a message needs exactly one of content, template"
            )
        return self

    @property
    def tracked(self) -> bool:
        """Whether opens and clicks of this message are tracked: never for webhooks, else
        `track` when set, else every message that is not transactional."""
        if self.channel == "webhook":
            return False
        if self.track is not None:
            return self.track
        return not self.transactional


class MessageNode(MessageFields):
    type: Literal["message"]
    next: NodeRef = None
    on_failure: NodeRef = None


class Until(Strict):
    time: DelayTime
    weekdays: list[Weekday] | None = None
    timezone: DelayTimeZone = "user"
    fallback: Clock | None = None

    @model_validator(mode="after")
    def _fallback_for_optimal(self) -> Until:
        if self.time == "optimal" and self.fallback is None:
            raise PydanticCustomError("fallback", "'optimal' needs a 'fallback' time (HH:MM)")
        if self.weekdays is not None and not self.weekdays:
            raise PydanticCustomError("weekdays", "'weekdays' must name at least one day")
        return self


class DelayNode(Strict):
    type: Literal["delay"]
    duration: Duration | None = None
    until: Until | None = None
    next: NodeRef = None

    @model_validator(mode="after")
    def _duration_or_until(self) -> DelayNode:
        if (self.duration is None) == (self.until is None):
            raise PydanticCustomError("delay_kind", "a delay needs exactly one of duration, until")
        return self


class EventPath(Strict):
    event: EventName
    where: Condition | None = None
    of: NodeRef = Field(
        default=None,
        description=(
            "id of a tracked message node earlier in the journey: the path matches only "
            "engagement events about this enrollment's delivery of that node"
        ),
    )
    match: Match | None = Field(default=None, description=MATCH_DESCRIPTION)
    next: NodeRef = None


class WaitForEventNode(Strict):
    type: Literal["wait_for_event"]
    paths: Annotated[list[EventPath], Field(min_length=1)]
    timeout: Duration
    on_timeout: NodeRef = None


class WaitForInactivityNode(Strict):
    type: Literal["wait_for_inactivity"]
    duration: Duration
    events: list[EventName] | None = None
    next: NodeRef = None


class BranchPath(Strict):
    when: Condition
    next: NodeRef = None


class BranchNode(Strict):
    type: Literal["branch"]
    paths: Annotated[list[BranchPath], Field(min_length=1)]
    else_: NodeRef = Field(default=None, alias="else")

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class Variant(Strict):
    name: Annotated[str, Field(min_length=1, max_length=64)]
    weight: Annotated[int, Field(ge=0, le=100)]
    next: NodeRef = None


CLICK_WINDOW = "7d"
"""How long after a user's assignment to a variant their click counts, unless `within` says."""


class Winner(Strict):
    after: Duration
    min_users: Annotated[int, Field(ge=1)]
    metric: Literal["conversion", "click"] = Field(
        default="conversion",
        description=(
            "what counts as a success: conversion (the journey goal) or click (a non-machine "
            "click on a tracked message sent after the assignment, within `within`)"
        ),
    )
    within: Duration = Field(
        default=CLICK_WINDOW,
        description="for metric click: how long after the assignment a click counts",
    )


class ExperimentNode(Strict):
    type: Literal["experiment"]
    variants: Annotated[list[Variant], Field(min_length=2)]
    winner: Winner | None = None


class UpdateUserNode(Strict):
    type: Literal["update_user"]
    set: dict[Annotated[str, Field(min_length=1)], Any] = Field(default_factory=dict)
    unset: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    next: NodeRef = None


class ExitNode(Strict):
    type: Literal["exit"]


_NODE_TAGS = {
    "message": "MessageNode",
    "delay": "DelayNode",
    "wait_for_event": "WaitForEventNode",
    "wait_for_inactivity": "WaitForInactivityNode",
    "branch": "BranchNode",
    "experiment": "ExperimentNode",
    "update_user": "UpdateUserNode",
    "exit": "ExitNode",
}


def _node_tag(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        return type(value).__name__
    if isinstance(value, dict):
        kind = value.get("type")
        # A list or object as the type is unhashable: it is simply no node type.
        return _NODE_TAGS.get(kind) if isinstance(kind, str) else None
    return None


Node = Annotated[
    Annotated[MessageNode, Tag("MessageNode")]
    | Annotated[DelayNode, Tag("DelayNode")]
    | Annotated[WaitForEventNode, Tag("WaitForEventNode")]
    | Annotated[WaitForInactivityNode, Tag("WaitForInactivityNode")]
    | Annotated[BranchNode, Tag("BranchNode")]
    | Annotated[ExperimentNode, Tag("ExperimentNode")]
    | Annotated[UpdateUserNode, Tag("UpdateUserNode")]
    | Annotated[ExitNode, Tag("ExitNode")],
    Discriminator(
        _node_tag,
        custom_error_type="node_type",
        custom_error_message="'type' must be one of " + ", ".join(_NODE_TAGS),
    ),
]
MODEL_TAGS = frozenset(_NODE_TAGS.values()) | frozenset(_CONDITION_TAGS.values())
"""Discriminator tags pydantic puts in error locations; validation drops them from paths."""


class Journey(Strict):
    """A journey document (format v1)."""

    id: Annotated[str, Field(pattern=SLUG_PATTERN)]
    name: Annotated[str, Field(min_length=1, max_length=200)]
    description: str | None = None
    entry: Entry
    exit: list[ExitRule] = Field(default_factory=list)
    goal: Goal | None = None
    settings: JourneySettings = Field(default_factory=JourneySettings)
    holdout: Holdout | None = None
    start: NodeId
    nodes: dict[NodeId, Node]

    def downstream(self, node_id: str) -> set[str]:
        """The nodes a user can reach after `node_id` (not itself: journeys are acyclic)."""
        seen: set[str] = set()
        stack = [node_id]
        while stack:
            for _, target in node_edges(self.nodes[stack.pop()]):
                if target is not None and target in self.nodes and target not in seen:
                    seen.add(target)
                    stack.append(target)
        return seen

    def tracked_after(self, node_id: str) -> list[str]:
        """The tracked message nodes a user can reach after `node_id`, in document order."""
        after = self.downstream(node_id)
        return [
            other
            for other, node in self.nodes.items()
            if other in after and isinstance(node, MessageNode) and node.tracked
        ]


def node_edges(node: Node) -> list[tuple[str, str | None]]:
    """Every outgoing edge of a node as (JSON path below the node, target or None)."""
    match node:
        case MessageNode(next=nxt, on_failure=failure):
            return [("next", nxt), ("on_failure", failure)]
        case DelayNode(next=nxt) | WaitForInactivityNode(next=nxt) | UpdateUserNode(next=nxt):
            return [("next", nxt)]
        case WaitForEventNode(paths=paths, on_timeout=timeout):
            edges = [(f"paths[{i}].next", p.next) for i, p in enumerate(paths)]
            return [*edges, ("on_timeout", timeout)]
        case BranchNode(paths=paths, else_=otherwise):
            edges = [(f"paths[{i}].next", p.next) for i, p in enumerate(paths)]
            return [*edges, ("else", otherwise)]
        case ExperimentNode(variants=variants):
            return [(f"variants[{i}].next", v.next) for i, v in enumerate(variants)]
        case ExitNode():
            return []
    raise AssertionError(f"unhandled node type {type(node).__name__}")


NODE = TypeAdapter[Node](Node)
"""Validates one node on its own."""


AllOf.model_rebuild()
AnyOf.model_rebuild()
NotOf.model_rebuild()
EventCount.model_rebuild()
