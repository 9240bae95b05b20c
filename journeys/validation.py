"""Validation of journey documents: every problem, each with its JSON path.

`validate` runs in two passes. The first is the pydantic model (types, required fields,
allowed values, durations, time zones, condition shapes); it reports every structural problem
at once. When the structure holds, the second pass checks what needs the whole document:
node references, the start node, reachability, cycles, experiment weights and variant names,
channel content, Liquid syntax and, when the caller knows them, segments and templates.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import pydantic
from pydantic import BaseModel

from journeys import templates
from journeys.model import (
    MODEL_TAGS,
    AllOf,
    AnyOf,
    BranchNode,
    Condition,
    EventCountCondition,
    ExperimentNode,
    Journey,
    MessageNode,
    NotOf,
    SegmentCondition,
    UpdateUserNode,
    WaitForEventNode,
)

REQUIRED_CONTENT: Mapping[str, tuple[str, ...]] = {
    "email": ("subject", "body"),
    "push": ("title", "body"),
    "sms": ("body",),
    "in_app": ("body",),
    "webhook": ("url",),
}
IN_APP_KINDS = ("modal", "banner", "tooltip")


class Problem(BaseModel):
    """One validation problem: where (`nodes.by_value.paths[0].next`) and what."""

    path: str
    message: str


def format_path(location: Iterable[str | int]) -> str:
    """Join a location into the spec's notation: `nodes.x.paths[0].next`."""
    text = ""
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def validate(
    document: Any,
    *,
    segments: set[str] | None = None,
    templates_known: set[str] | None = None,
) -> list[Problem]:
    """Every problem of a journey document; an empty list means it is valid.

    `segments` and `templates_known` are the ids the store holds; pass them when publishing so
    references to missing ones are problems too.
    """
    try:
        journey = Journey.model_validate(document)
    except pydantic.ValidationError as error:
        return [_problem_from_pydantic(e) for e in error.errors()]
    return check(journey, segments=segments, templates_known=templates_known)


def parse(document: Any) -> Journey:
    """The journey a valid document describes; raise `InvalidJourney` listing every problem."""
    from journeys.errors import InvalidJourney

    problems = validate(document)
    if problems:
        raise InvalidJourney(problems)
    return Journey.model_validate(document)


def _problem_from_pydantic(error: Any) -> Problem:
    location = [part for part in error["loc"] if part not in MODEL_TAGS]
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        message = "unknown field"
    elif error["type"] == "missing":
        message = "required field missing"
    elif message.startswith("Value error, "):
        message = message.removeprefix("Value error, ")
    return Problem(path=format_path(location), message=message)


def check(
    journey: Journey,
    *,
    segments: set[str] | None = None,
    templates_known: set[str] | None = None,
) -> list[Problem]:
    """The whole-document rules, on a journey whose structure is already valid."""
    problems = list(_check_graph(journey))
    for node_id, node in journey.nodes.items():
        problems += _check_node(node_id, node, templates_known)
    if segments is not None:
        problems += [
            Problem(path=path, message=f"unknown segment '{segment}'")
            for path, segment in _segment_references(journey)
            if segment not in segments
        ]
    return problems


def _check_graph(journey: Journey) -> Iterator[Problem]:
    if journey.start not in journey.nodes:
        yield Problem(path="start", message=f"unknown node '{journey.start}'")
    for node_id in journey.nodes:
        for edge, target in journey.successors(node_id):
            if target is not None and target not in journey.nodes:
                yield Problem(path=f"nodes.{node_id}.{edge}", message=f"unknown node '{target}'")
    if journey.start not in journey.nodes:
        return
    reachable = _reachable(journey)
    for node_id in journey.nodes:
        if node_id not in reachable:
            yield Problem(path=f"nodes.{node_id}", message="unreachable from start")
    cycle = _find_cycle(journey)
    if cycle:
        yield Problem(
            path=f"nodes.{cycle[0]}",
            message="cycle: " + " → ".join(cycle) + "; journeys must flow forward",
        )


def _targets(journey: Journey, node_id: str) -> list[str]:
    return [t for _, t in journey.successors(node_id) if t is not None and t in journey.nodes]


def _reachable(journey: Journey) -> set[str]:
    seen = {journey.start}
    stack = [journey.start]
    while stack:
        for target in _targets(journey, stack.pop()):
            if target not in seen:
                seen.add(target)
                stack.append(target)
    return seen


def _find_cycle(journey: Journey) -> list[str] | None:
    """One cycle as the list of its nodes (first repeated at the end), or None."""
    done: set[str] = set()
    for root in journey.nodes:
        if root in done:
            continue
        trail: list[str] = []
        on_trail: set[str] = set()
        stack: list[tuple[str, Iterator[str]]] = []

        def enter(node: str) -> None:
            trail.append(node)
            on_trail.add(node)
            stack.append((node, iter(_targets(journey, node))))

        enter(root)
        while stack:
            node, pending = stack[-1]
            target = next(pending, None)
            if target is None:
                stack.pop()
                trail.pop()
                on_trail.discard(node)
                done.add(node)
            elif target in on_trail:
                return [*trail[trail.index(target) :], target]
            elif target not in done:
                enter(target)
    return None


def _check_node(node_id: str, node: Any, templates_known: set[str] | None) -> list[Problem]:
    base = f"nodes.{node_id}"
    match node:
        case MessageNode():
            return _check_message(base, node, templates_known)
        case ExperimentNode(variants=variants):
            problems = []
            total = sum(v.weight for v in variants)
            if total != 100:
                problems.append(
                    Problem(path=f"{base}.variants", message=f"weights sum to {total}, not 100")
                )
            seen: set[str] = set()
            for i, variant in enumerate(variants):
                if variant.name in seen:
                    problems.append(
                        Problem(
                            path=f"{base}.variants[{i}].name",
                            message=f"duplicate variant name '{variant.name}'",
                        )
                    )
                seen.add(variant.name)
            return problems
        case UpdateUserNode(set=assignments, unset=removals):
            problems = [
                Problem(path=f"{base}.unset[{i}]", message=f"trait '{trait}' is also set")
                for i, trait in enumerate(removals)
                if trait in assignments
            ]
            for trait, value in assignments.items():
                problems += _check_templates(f"{base}.set.{trait}", value)
            return problems
    return []


def _check_message(base: str, node: MessageNode, templates_known: set[str] | None) -> list[Problem]:
    if node.template is not None:
        if templates_known is not None and node.template not in templates_known:
            return [Problem(path=f"{base}.template", message=f"unknown template '{node.template}'")]
        return []
    return check_content(f"{base}.content", node.channel, node.content or {})


def check_content(base: str, channel: str, content: Mapping[str, Any]) -> list[Problem]:
    """Problems of a message's content for its channel: required fields, shapes, templates."""
    problems = [
        Problem(path=f"{base}.{field}", message=f"required for {channel} messages")
        for field in REQUIRED_CONTENT[channel]
        if not isinstance(content.get(field), str) or not content[field].strip()
    ]
    if channel == "in_app":
        kind = content.get("kind", "modal")
        if kind not in IN_APP_KINDS:
            problems.append(
                Problem(path=f"{base}.kind", message="must be one of " + ", ".join(IN_APP_KINDS))
            )
        cta = content.get("cta")
        if cta is not None and not (
            isinstance(cta, dict) and isinstance(cta.get("label"), str) and isinstance(cta.get("url"), str)
        ):
            problems.append(Problem(path=f"{base}.cta", message="must be {label, url} strings"))
    if channel == "webhook" and "method" in content and content["method"] not in (
        "GET", "POST", "PUT", "PATCH", "DELETE",
    ):  # fmt: skip
        problems.append(Problem(path=f"{base}.method", message="must be GET, POST, PUT, PATCH or DELETE"))
    for field, value in content.items():
        problems += _check_templates(f"{base}.{field}", value)
    return problems


def _check_templates(path: str, value: Any) -> list[Problem]:
    """Liquid syntax of every string inside a value (strings, lists and objects of them)."""
    if isinstance(value, str):
        error = templates.syntax_error(value)
        return [] if error is None else [Problem(path=path, message=f"template does not parse: {error}")]
    if isinstance(value, dict):
        return [p for key, item in value.items() for p in _check_templates(f"{path}.{key}", item)]
    if isinstance(value, list):
        return [p for i, item in enumerate(value) for p in _check_templates(f"{path}[{i}]", item)]
    return []


def _segment_references(journey: Journey) -> Iterator[tuple[str, str]]:
    if journey.entry.segment is not None:
        yield "entry.segment", journey.entry.segment
    for path, condition in conditions_of(journey):
        yield from _segments_in(path, condition)


def conditions_of(journey: Journey) -> Iterator[tuple[str, Condition]]:
    """Every condition of a journey with the JSON path where it stands."""
    entry = journey.entry
    for name in ("where", "audience"):
        condition = getattr(entry, name)
        if condition is not None:
            yield f"entry.{name}", condition
    for i, rule in enumerate(journey.exit):
        for name in ("where", "when"):
            condition = getattr(rule, name)
            if condition is not None:
                yield f"exit[{i}].{name}", condition
    if journey.goal is not None and journey.goal.where is not None:
        yield "goal.where", journey.goal.where
    for node_id, node in journey.nodes.items():
        match node:
            case BranchNode(paths=paths):
                for i, branch in enumerate(paths):
                    yield f"nodes.{node_id}.paths[{i}].when", branch.when
            case WaitForEventNode(paths=paths):
                for i, waited in enumerate(paths):
                    if waited.where is not None:
                        yield f"nodes.{node_id}.paths[{i}].where", waited.where


def _segments_in(path: str, condition: Condition) -> Iterator[tuple[str, str]]:
    match condition:
        case SegmentCondition(segment=segment):
            yield f"{path}.segment", segment
        case AllOf(all=items) | AnyOf(any=items):
            key = "all" if isinstance(condition, AllOf) else "any"
            for i, item in enumerate(items):
                yield from _segments_in(f"{path}.{key}[{i}]", item)
        case NotOf(not_=inner):
            yield from _segments_in(f"{path}.not", inner)
        case EventCountCondition(event_count=count) if count.where is not None:
            yield from _segments_in(f"{path}.event_count.where", count.where)
