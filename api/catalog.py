"""What journeys refer to: segments, message templates and the workspace settings."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Response
from pydantic import BaseModel, ConfigDict, Field

from api.auth import MANAGEMENT, Editor, Publisher
from api.body import JsonModel
from api.deps import AppState, StateDep, StoreDep
from api.errors import ApiError, error_responses, problems_error
from journeys import locales
from journeys.conditions import evaluate
from journeys.contracts import TemplateContext
from journeys.errors import NotFound
from journeys.facts import CONDITION, fact_answerer
from journeys.model import SLUG_PATTERN, Channel, Condition
from journeys.store import SegmentRecord, Store, TemplateRecord
from journeys.templates import render_value
from journeys.unsubscribe import Links
from journeys.validation import check_content, segment_problems
from journeys.workspace import WorkspaceSettings, load_workspace_settings, save_workspace_settings

router = APIRouter(dependencies=[MANAGEMENT], responses=error_responses(401, 404, 422))

Slug = Annotated[str, Field(pattern=SLUG_PATTERN)]
SegmentId = Annotated[str, Path(pattern=SLUG_PATTERN, description="a slug")]
TemplateId = Annotated[str, Path(pattern=SLUG_PATTERN, description="a slug")]


class SegmentBody(BaseModel):
    """A segment: a named condition over users (`id`, when given, must be the path's)."""

    model_config = ConfigDict(extra="forbid")

    id: Slug | None = None
    name: Annotated[str, Field(min_length=1, max_length=200)]
    condition: Condition


class SegmentOut(BaseModel):
    """A stored segment."""

    id: str
    name: str
    condition: dict[str, Any]
    updated_at: datetime


class SegmentCount(BaseModel):
    """How many users are in the segment now."""

    members: int


class TemplateBody(BaseModel):
    """Stored message content for one channel (`id`, when given, must be the path's)."""

    model_config = ConfigDict(extra="forbid")

    id: Slug | None = None
    channel: Channel
    content: dict[str, Any]


class TemplateOut(BaseModel):
    """A stored template."""

    id: str
    channel: str
    content: dict[str, Any]
    updated_at: datetime


class PreviewContext(TemplateContext):
    """The namespaces a template sees; those not given are empty."""

    model_config = ConfigDict(extra="forbid")

    user: dict[str, Any] = Field(default_factory=dict)


class PreviewRequest(BaseModel):
    """Render for a stored user (`user_id`), for a given `context`, or both (the context's
    namespaces win)."""

    model_config = ConfigDict(extra="forbid")

    user_id: Annotated[str, Field(min_length=1)] | None = None
    context: PreviewContext | None = None


def _check_id(body_id: str | None, path_id: str) -> None:
    if body_id is not None and body_id != path_id:
        raise ApiError(400, "id_mismatch", f"the body's id '{body_id}' is not '{path_id}'")


# --- segments ---------------------------------------------------------------------------------


def _segment_out(record: SegmentRecord) -> SegmentOut:
    return SegmentOut(**record.model_dump())


def _segment(store: Store, segment_id: str) -> SegmentRecord:
    record = store.get_segment(segment_id)
    if record is None:
        raise NotFound(f"no segment '{segment_id}'")
    return record


@router.get("/v1/segments", tags=["segments"], summary="List segments")
def list_segments(store: StoreDep) -> list[SegmentOut]:
    """Every segment, by id."""
    return [_segment_out(record) for record in store.list_segments()]


@router.put(
    "/v1/segments/{segment_id}",
    tags=["segments"],
    summary="Create or replace a segment",
    responses=error_responses(400),
)
def put_segment(
    who: Editor,
    segment_id: SegmentId,
    body: Annotated[SegmentBody, Depends(JsonModel(SegmentBody))],
    store: StoreDep,
) -> SegmentOut:
    """Store the segment; its condition must be valid (422 with located problems)."""
    _check_id(body.id, segment_id)
    _check_segment(body.condition)
    # Stored as written (unset defaults left out), in the journey format's spelling.
    condition = CONDITION.dump_python(
        body.condition, mode="json", by_alias=True, exclude_unset=True
    )
    saved = store.put_segment(segment_id, body.name, condition)
    store.record_audit(who, "segment.saved", segment_id)
    return _segment_out(saved)


@router.get("/v1/segments/{segment_id}", tags=["segments"], summary="Get a segment")
def get_segment(segment_id: SegmentId, store: StoreDep) -> SegmentOut:
    """The segment."""
    return _segment_out(_segment(store, segment_id))


@router.delete(
    "/v1/segments/{segment_id}", tags=["segments"], summary="Delete a segment", status_code=204
)
def delete_segment(who: Editor, segment_id: SegmentId, store: StoreDep) -> Response:
    """Delete the segment (journeys referring to it are refused on their next publish)."""
    if not store.delete_segment(segment_id):
        raise NotFound(f"no segment '{segment_id}'")
    store.record_audit(who, "segment.deleted", segment_id)
    return Response(status_code=204)


@router.get("/v1/segments/{segment_id}/count", tags=["segments"], summary="Count members")
def count_segment(segment_id: SegmentId, store: StoreDep) -> SegmentCount:
    """How many users are members now: the condition evaluated over every profile."""
    condition = CONDITION.validate_python(_segment(store, segment_id).condition)
    # Evaluating the segment itself: a reference back to it is a loop and counts as "no".
    return _count(store, condition, frozenset({segment_id}))


class ConditionBody(BaseModel):
    """A condition to count the members of, before it is saved as a segment."""

    model_config = ConfigDict(extra="forbid")

    condition: Condition


@router.post(
    "/v1/segments/count",
    tags=["segments"],
    summary="Count the members of an unsaved condition",
    responses=error_responses(400),
)
def count_condition(
    who: Editor,
    body: Annotated[ConditionBody, Depends(JsonModel(ConditionBody))],
    store: StoreDep,
) -> SegmentCount:
    """How many users the condition holds for now (what a segment of it would count)."""
    _check_segment(body.condition)
    return _count(store, body.condition, frozenset())


def _check_segment(condition: Condition) -> None:
    problems = segment_problems(condition)
    if problems:
        raise problems_error("validation_error", "the condition is invalid", problems)


def _count(store: Store, condition: Condition, visiting: frozenset[str]) -> SegmentCount:
    members = sum(
        evaluate(
            condition,
            {"user": {**user.traits, "id": user.user_id}},
            fact_answerer(store, user.user_id, user.traits, visiting),
        )
        for user in store.iter_users()
    )
    return SegmentCount(members=members)


# --- templates --------------------------------------------------------------------------------


def _template_out(record: TemplateRecord) -> TemplateOut:
    return TemplateOut(**record.model_dump())


def _template(store: Store, template_id: str) -> TemplateRecord:
    record = store.get_template(template_id)
    if record is None:
        raise NotFound(f"no template '{template_id}'")
    return record


@router.get("/v1/templates", tags=["templates"], summary="List templates")
def list_templates(store: StoreDep) -> list[TemplateOut]:
    """Every template, by id."""
    return [_template_out(record) for record in store.list_templates()]


@router.put(
    "/v1/templates/{template_id}",
    tags=["templates"],
    summary="Create or replace a template",
    responses=error_responses(400),
)
def put_template(
    who: Editor,
    template_id: TemplateId,
    body: Annotated[TemplateBody, Depends(JsonModel(TemplateBody))],
    store: StoreDep,
) -> TemplateOut:
    """Store the template; its content must suit its channel and parse (422 otherwise)."""
    _check_id(body.id, template_id)
    problems = check_content("content", body.channel, body.content)
    if problems:
        raise problems_error("validation_error", "the template is invalid", problems)
    saved = store.put_template(template_id, body.channel, body.content)
    store.record_audit(who, "template.saved", template_id, {"channel": body.channel})
    return _template_out(saved)


@router.get("/v1/templates/{template_id}", tags=["templates"], summary="Get a template")
def get_template(template_id: TemplateId, store: StoreDep) -> TemplateOut:
    """The template."""
    return _template_out(_template(store, template_id))


@router.delete(
    "/v1/templates/{template_id}",
    tags=["templates"],
    summary="Delete a template",
    status_code=204,
)
def delete_template(who: Editor, template_id: TemplateId, store: StoreDep) -> Response:
    """Delete the template (journeys using it are refused on their next publish)."""
    if not store.delete_template(template_id):
        raise NotFound(f"no template '{template_id}'")
    store.record_audit(who, "template.deleted", template_id)
    return Response(status_code=204)


@router.post("/v1/templates/{template_id}/preview", tags=["templates"], summary="Render a template")
def preview_template(
    who: Editor,
    template_id: TemplateId,
    body: Annotated[PreviewRequest, Depends(JsonModel(PreviewRequest))],
    state: StateDep,
) -> dict[str, Any]:
    """The template's content rendered for a user or a context (422 when it does not render).

    Email templates see `unsubscribe_url`: the user's real link.
    """
    template = _template(state.store, template_id)
    return _render_preview(state, template.channel, template.content, body)


class MessagePreviewRequest(PreviewRequest):
    """A message node's `content` (or stored `template`) for `channel`, rendered for a stored
    user (`user_id`), a given `context`, or both."""

    channel: Channel
    content: dict[str, Any] | None = None
    template: Slug | None = None


@router.post(
    "/v1/messages/preview",
    tags=["templates"],
    summary="Render a message node's content",
    responses=error_responses(400),
)
def preview_message(
    who: Editor,
    body: Annotated[MessagePreviewRequest, Depends(JsonModel(MessagePreviewRequest))],
    state: StateDep,
) -> dict[str, Any]:
    """What a message node would send: its inline `content`, or its stored `template`,
    checked for the channel and rendered (422 when it does not suit the channel or render)."""
    if (body.content is None) == (body.template is None):
        raise ApiError(400, "invalid_request", "give either content or template")
    content = body.content
    if body.template is not None:
        template = _template(state.store, body.template)
        if template.channel != body.channel:
            raise ApiError(
                400,
                "invalid_request",
                f"template '{template.id}' is for {template.channel}, not {body.channel}",
            )
        content = template.content
    assert content is not None
    problems = check_content("content", body.channel, content)
    if problems:
        raise problems_error("validation_error", "the content is invalid", problems)
    return _render_preview(state, body.channel, content, body)


def _render_preview(
    state: AppState, channel: str, content: dict[str, Any], request: PreviewRequest
) -> dict[str, Any]:
    context = request.context or PreviewContext()
    user = context.user
    if request.user_id is not None and "user" not in context.model_fields_set:
        stored = state.store.get_user(request.user_id)
        if stored is None:
            raise NotFound(f"no user '{request.user_id}'")
        user = {**stored.traits, "id": stored.user_id}
    unsubscribe_url = None
    if channel == "email":
        links = Links(state.settings.links_base_url, state.link_secret)
        unsubscribe_url = links.unsubscribe(str(user.get("id") or "preview"), "email")
    namespaces = context.namespaces(user, unsubscribe_url=unsubscribe_url)
    # In the locale the user's `locale` trait picks, as a delivery would be.
    rendered: dict[str, Any] = render_value(locales.for_user(content, user).content, namespaces)
    return rendered


# --- settings ---------------------------------------------------------------------------------


@router.get(
    "/v1/settings",
    tags=["settings"],
    summary="Get the workspace settings",
    response_model_exclude_none=True,
)
def get_settings(store: StoreDep) -> WorkspaceSettings:
    """Frequency caps and time zone (defaults when never set)."""
    return load_workspace_settings(store)


@router.put(
    "/v1/settings",
    tags=["settings"],
    summary="Replace the workspace settings",
    response_model_exclude_none=True,
)
def put_settings(
    who: Publisher,
    body: Annotated[WorkspaceSettings, Depends(JsonModel(WorkspaceSettings))],
    store: StoreDep,
) -> WorkspaceSettings:
    """Replace every workspace setting (fields left out take their defaults)."""
    before = load_workspace_settings(store).model_dump(mode="json")
    saved = save_workspace_settings(store, body)
    after = saved.model_dump(mode="json")
    changed = sorted(name for name in after if after[name] != before.get(name))
    store.record_audit(who, "settings.changed", "workspace", {"changed": changed})
    return saved
