"""Journey management: drafts, validation, publishing, status changes, versions and stats."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Self

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.auth import MANAGEMENT, Editor, Publisher
from api.body import DOCUMENT_LIMIT, RawJson
from api.deps import NO_NUL, ROW_ID, RoutingDep, StoreDep
from api.errors import ApiError, error_responses
from journeys import experiments
from journeys.errors import Conflict, InvalidJourney, NotFound
from journeys.holdouts import HOLDOUT, Lift, lift_of
from journeys.locales import BASE, LOCALES
from journeys.model import CLICK_WINDOW, ExperimentNode, Journey, MessageNode, to_timedelta
from journeys.store import JourneyRecord, JourneyStatus, JourneyVersionRecord, Store
from journeys.validation import Problem, validate

router = APIRouter(
    prefix="/v1/journeys",
    tags=["journeys"],
    dependencies=[MANAGEMENT],
    responses=error_responses(401, 404, 422),
)

JourneyDocument = Annotated[Any, Depends(RawJson(Journey, limit=DOCUMENT_LIMIT))]
JourneyId = Annotated[str, Path(pattern=NO_NUL, description="the journey's id (a slug)")]


class JourneySummary(BaseModel):
    """A journey in lists."""

    id: str
    name: str | None
    status: JourneyStatus
    version: int | None = Field(description="latest published version")
    updated_at: datetime


class Published(BaseModel):
    """The latest published version."""

    version: int
    published_at: datetime
    published_by: str | None = Field(
        description="who published it (a token's name or a person); null if not recorded"
    )

    @classmethod
    def of(cls, record: JourneyVersionRecord) -> Published:
        """The version as listed."""
        return cls(
            version=record.version,
            published_at=record.published_at,
            published_by=record.published_by,
        )


class JourneyDetail(BaseModel):
    """A journey: its draft, status and latest published version."""

    draft: dict[str, Any]
    status: JourneyStatus
    version: int | None
    published: Published | None


class ValidationResult(BaseModel):
    """Whether a document is valid, with every problem located."""

    valid: bool
    errors: list[Problem]


class PublishResult(BaseModel):
    """The version just published."""

    version: int


class ArchiveResult(JourneySummary):
    """The archived journey and how many users inside it were made to exit."""

    exited: int


class VersionDetail(Published):
    """One published, immutable version."""

    definition: dict[str, Any]


class NodeStats(BaseModel):
    """Users who reached the node, and users waiting there now."""

    reached: int = 0
    waiting: int = 0


class LocaleStats(BaseModel):
    """The deliveries of a message node sent in one locale, the users who opened and who
    clicked them (machine opens and clicks never count), and those as rates of `sent`."""

    sent: int = 0
    opened: int = 0
    clicked: int = 0
    open_rate: float | None = None
    click_rate: float | None = None

    @classmethod
    def of(cls, sent: int, opened: int, clicked: int) -> Self:
        """The counts with their rates (null when nothing was sent)."""
        return cls(
            sent=sent,
            opened=opened,
            clicked=clicked,
            open_rate=opened / sent if sent else None,
            click_rate=clicked / sent if sent else None,
        )


class MessageStats(LocaleStats):
    """Deliveries of a message node by outcome, the users who opened and who clicked them
    (machine opens and clicks never count), and those as rates of `sent` (null when nothing
    was sent); with localised content, the same per locale (`base`: the base content)."""

    skipped: int = 0
    failed: int = 0
    locales: dict[str, LocaleStats] | None = Field(
        default=None,
        exclude_if=lambda locales: locales is None,
        description="per language the message was sent in (`base`: the base content), when "
        "it has languages",
    )


class VariantStats(BaseModel):
    """Users assigned a variant, those who converted, and the conversion rate with its 95%
    confidence interval (Wilson); those who clicked a tracked message that followed, within
    the experiment's click window (machine clicks never count), and their share."""

    users: int
    conversions: int
    rate: float
    interval: tuple[float, float] = (0.0, 1.0)
    clicks: int = 0
    click_rate: float = 0.0


class ExperimentStats(BaseModel):
    """An experiment's variants, the p-value that they differ in what its winner rule
    measures (conversions, or clicks for `metric: click`; z-test for two variants, chi-square
    for more; null until every variant has users), and the winner once one was picked (it then
    takes every new arrival)."""

    variants: dict[str, VariantStats]
    p_value: float | None = None
    winner: str | None = None
    decided_at: datetime | None = None
    looks: int = Field(default=0, description="how many times the winner rule has looked")


class JourneyStats(BaseModel):
    """Counts of a journey's enrollments, nodes, messages and experiments; runs its entry
    limit kept out; its holdout comparison when it has one."""

    entered: int
    active: int
    completed: int
    exited: int
    converted: int
    limited: int = Field(default=0, description="runs kept out by the entry limit")
    nodes: dict[str, NodeStats]
    messages: dict[str, MessageStats]
    experiments: dict[str, ExperimentStats]
    holdout: Lift | None = Field(
        default=None,
        exclude_if=lambda holdout: holdout is None,
        description="the holdout against the treated users, when the journey has a holdout",
    )


def _journey(store: Store, journey_id: str) -> JourneyRecord:
    journey = store.get_journey(journey_id)
    if journey is None:
        raise NotFound(f"no journey '{journey_id}'")
    return journey


def _summary(journey: JourneyRecord) -> JourneySummary:
    name = journey.draft.get("name")
    return JourneySummary(
        id=journey.id,
        name=name if isinstance(name, str) else None,
        status=journey.status,
        version=journey.version,
        updated_at=journey.updated_at,
    )


def _detail(store: Store, journey: JourneyRecord) -> JourneyDetail:
    latest = None if journey.version is None else store.get_version(journey.id, journey.version)
    published = None
    if latest is not None:
        published = Published.of(latest)
    return JourneyDetail(
        draft=journey.draft, status=journey.status, version=journey.version, published=published
    )


@router.get("", summary="List journeys")
def list_journeys(store: StoreDep) -> list[JourneySummary]:
    """Every journey, by id."""
    return [_summary(journey) for journey in store.list_journeys()]


@router.post("/validate", summary="Validate a journey document")
def validate_journey(
    who: Editor,
    document: JourneyDocument,
    store: StoreDep,
    publish: Annotated[
        bool, Query(description="also check what publishing checks: stored segments, templates")
    ] = False,
) -> ValidationResult:
    """Every problem of the document: structure and graph, and with `publish=true` also the
    segments and templates it refers to, as publishing would."""
    problems = publish_problems(store, document) if publish else validate(document)
    return ValidationResult(valid=not problems, errors=problems)


@router.put("/{journey_id}", summary="Save a journey's draft", responses=error_responses(400))
def save_draft(
    who: Editor, journey_id: JourneyId, document: JourneyDocument, store: StoreDep
) -> JourneyDetail:
    """Create the journey or replace its draft; the document must be valid (422 otherwise)."""
    body_id = document.get("id") if isinstance(document, dict) else None
    if isinstance(body_id, str) and body_id != journey_id:
        raise ApiError(400, "id_mismatch", f"the document's id '{body_id}' is not '{journey_id}'")
    problems = validate(document)
    if problems:
        raise InvalidJourney(problems)
    saved = store.save_draft(journey_id, document)
    store.record_audit(who, "journey.draft_saved", journey_id)
    return _detail(store, saved)


@router.get("/{journey_id}", summary="Get a journey")
def get_journey(journey_id: JourneyId, store: StoreDep) -> JourneyDetail:
    """The journey's draft, status and latest published version."""
    return _detail(store, _journey(store, journey_id))


@router.post("/{journey_id}/publish", summary="Publish the draft", responses=error_responses(409))
def publish(who: Publisher, journey_id: JourneyId, store: StoreDep) -> PublishResult:
    """Validate the draft against the stored segments and templates, then publish it as a new
    version. Users already in the journey keep theirs."""
    journey = _journey(store, journey_id)
    if journey.status == "archived":
        raise Conflict(f"journey '{journey_id}' is archived")
    problems = publish_problems(store, journey.draft)
    if problems:
        raise InvalidJourney(problems)
    version = store.publish(journey_id, validated=journey.draft, published_by=who.actor)
    store.record_audit(who, "journey.published", journey_id, {"version": version})
    return PublishResult(version=version)


def publish_problems(store: Store, document: Any) -> list[Problem]:
    """The document's problems, with its segments and templates checked against the store."""
    channels = {template.id: template.channel for template in store.list_templates()}
    segments = {segment.id for segment in store.list_segments()}
    problems = validate(document, segments=segments, templates_known=set(channels))
    if not problems:
        problems = _template_channels(Journey.model_validate(document), channels)
    return problems


def _template_channels(journey: Journey, channels: dict[str, str]) -> list[Problem]:
    """Message nodes whose stored template is for another channel."""
    return [
        Problem(
            path=f"nodes.{node_id}.template",
            message=(
                f"template '{node.template}' is for {channels[node.template]} messages, "
                f"not {node.channel}"
            ),
        )
        for node_id, node in journey.nodes.items()
        if isinstance(node, MessageNode)
        and node.template is not None
        and channels.get(node.template, node.channel) != node.channel
    ]


@router.post("/{journey_id}/pause", summary="Pause", responses=error_responses(409))
def pause(who: Publisher, journey_id: JourneyId, store: StoreDep) -> JourneySummary:
    """No new entries; users inside continue. 409 if never published or archived."""
    if _journey(store, journey_id).version is None:
        raise Conflict(f"journey '{journey_id}' has never been published")
    paused = store.set_status(journey_id, "paused")
    store.record_audit(who, "journey.paused", journey_id)
    return _summary(paused)


@router.post("/{journey_id}/resume", summary="Resume", responses=error_responses(409))
def resume(who: Publisher, journey_id: JourneyId, store: StoreDep) -> JourneySummary:
    """Make the journey live again. 409 if never published or archived."""
    resumed = store.set_status(journey_id, "live")
    store.record_audit(who, "journey.resumed", journey_id)
    return _summary(resumed)


@router.post("/{journey_id}/archive", summary="Archive", responses=error_responses(503))
async def archive(
    who: Publisher, journey_id: JourneyId, store: StoreDep, routing: RoutingDep
) -> ArchiveResult:
    """No new entries, and every user inside exits at once. Final; repeating it is harmless
    (and finishes the exits if Temporal was unavailable the first time). The audit log
    records it once archived, before the runs are told to exit."""
    journey = await run_in_threadpool(store.set_status, journey_id, "archived")
    await run_in_threadpool(store.record_audit, who, "journey.archived", journey_id)
    exited = await routing.archive(journey_id)
    return ArchiveResult(**_summary(journey).model_dump(), exited=exited)


@router.get("/{journey_id}/versions", summary="List published versions")
def list_versions(journey_id: JourneyId, store: StoreDep) -> list[Published]:
    """Every published version, oldest first."""
    _journey(store, journey_id)
    return [Published.of(v) for v in store.list_versions(journey_id)]


@router.get("/{journey_id}/versions/{version}", summary="Get a published version")
def get_version(
    journey_id: JourneyId, version: Annotated[int, Path(ge=1, le=ROW_ID)], store: StoreDep
) -> VersionDetail:
    """One published version with its definition."""
    _journey(store, journey_id)
    record = store.get_version(journey_id, version)
    if record is None:
        raise NotFound(f"journey '{journey_id}' has no version {version}")
    return VersionDetail(**Published.of(record).model_dump(), definition=record.definition)


@router.get("/{journey_id}/stats", summary="Journey statistics")
def stats(journey_id: JourneyId, store: StoreDep) -> JourneyStats:
    """Enrollment counts, and per node of the latest version: arrivals and waiting users,
    message outcomes and experiment variants (every node listed, zeros included)."""
    journey = _journey(store, journey_id)
    latest = None if journey.version is None else store.get_version(journey_id, journey.version)
    document = None if latest is None else Journey.model_validate(latest.definition)
    nodes = {} if document is None else document.nodes

    node_stats = {node_id: NodeStats() for node_id in nodes}
    for node_id, counts in store.node_counts(journey_id).items():
        node_stats[node_id] = NodeStats(**counts)

    messages = {
        node_id: MessageStats() for node_id, node in nodes.items() if isinstance(node, MessageNode)
    }
    engaged = store.engagement_counts(journey_id)
    by_locale = store.locale_counts(journey_id)
    for node_id, by_status in store.message_counts(journey_id).items():
        # Pending and sending deliveries are in flight; the contract counts outcomes only.
        figures = LocaleStats.of(by_status["sent"], *engaged.get(node_id, (0, 0)))
        messages[node_id] = MessageStats(
            **figures.model_dump(), skipped=by_status["skipped"], failed=by_status["failed"]
        )
    for node_id, message in messages.items():
        # Every locale the node has now, and any an earlier version's deliveries used.
        found = by_locale.get(node_id, {})
        tags = _tags(nodes.get(node_id))
        if tags or found.keys() - {None}:
            sent = {BASE if tag is None else tag: LocaleStats.of(*c) for tag, c in found.items()}
            listed = {tag: LocaleStats() for tag in (BASE, *tags)}
            messages[node_id] = message.model_copy(update={"locales": listed | sent})

    experiment_stats = {
        node_id: _experiment(store, document, node_id, node)
        for node_id, node in nodes.items()
        if document is not None and isinstance(node, ExperimentNode)
    }
    return JourneyStats(
        **store.journey_counts(journey_id),
        nodes=node_stats,
        messages=messages,
        experiments=experiment_stats,
        holdout=_holdout(store, journey_id, document),
    )


def _tags(node: Any) -> list[str]:
    """The locale tags of a message node's inline content, as written."""
    if not isinstance(node, MessageNode) or not isinstance(node.content, dict):
        return []
    found = node.content.get(LOCALES)
    return list(found) if isinstance(found, dict) else []


def _holdout(store: Store, journey_id: str, journey: Journey | None) -> Lift | None:
    """The holdout comparison, when the latest version has a holdout or an earlier one had."""
    counts = store.holdout_counts(journey_id)
    if HOLDOUT not in counts and (journey is None or journey.holdout is None):
        return None
    held_out, treated = (experiments.Counts(*counts.get(mark, (0, 0))) for mark in (HOLDOUT, None))
    return lift_of(held_out, treated)


def _experiment(
    store: Store, journey: Journey, node_id: str, node: ExperimentNode
) -> ExperimentStats:
    names = [v.name for v in node.variants]
    counts = store.variant_counts(journey.id, node_id)
    variants = experiments.counts_of(names, counts)
    window = to_timedelta(node.winner.within if node.winner is not None else CLICK_WINDOW)
    clicked = store.variant_clicks(journey.id, node_id, journey.tracked_after(node_id), window)
    clicks = experiments.counts_of(names, counts, clicked)
    decision = store.experiment_decision(journey.id, node_id)
    measured = clicks if node.winner is not None and node.winner.metric == "click" else variants
    return ExperimentStats(
        variants={
            name: VariantStats(
                users=c.users,
                conversions=c.conversions,
                rate=c.rate,
                interval=experiments.wilson_interval(c),
                clicks=clicks[name].conversions,
                click_rate=clicks[name].rate,
            )
            for name, c in variants.items()
        },
        p_value=experiments.p_value(measured),
        winner=decision.winner,
        decided_at=decision.decided_at,
        looks=decision.looks,
    )
