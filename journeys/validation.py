"""Validation of journey documents: every problem, each with its JSON path.

`validate` runs in two passes. The first is the pydantic model (types, required fields,
allowed values, durations, time zones, condition shapes). The second checks what needs the
whole document: node references, the start node, reachability, cycles, experiment weights and
variant names, channel content, templates, engagement (`of`, `match`, `message` conditions,
tracking, click winners) and, when the caller knows them, segments and stored templates.
When the first pass fails, the second still runs over every node that is valid on its own (and
the references of those that are not), so every problem is listed at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import pydantic
from pydantic import BaseModel

from journeys import locales, templates
from journeys.engagement import events_of
from journeys.locales import LOCALES
from journeys.model import (
    MODEL_TAGS,
    NODE,
    AllOf,
    AnyOf,
    BranchNode,
    Condition,
    Entry,
    EventCountCondition,
    EventPath,
    ExperimentNode,
    Journey,
    Match,
    MessageCondition,
    MessageFields,
    MessageNode,
    Node,
    NotOf,
    SegmentCondition,
    UpdateUserNode,
    WaitForEventNode,
    node_edges,
)

Edges = dict[str, list[tuple[str, str | None]]]
"""Each node's outgoing edges: (JSON path below the node, target or None)."""

REQUIRED_CONTENT: Mapping[str, tuple[str, ...]] = {
    "email": ("subject", "body"),
    "push": ("title", "body"),
    "sms": ("body",),
    "in_app": ("body",),
    "webhook": ("url",),
}
IN_APP_KINDS = ("modal", "banner", "tooltip")
WEBHOOK_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def _strings_inside(value: Any) -> bool:
    if isinstance(value, dict):
        return all(_strings_inside(item) for item in value.values())
    if isinstance(value, list):
        return all(_strings_inside(item) for item in value)
    return isinstance(value, str)


Shape = tuple[Callable[[Any], bool], str]
TEXT: Shape = (lambda v: isinstance(v, str), "must be a string")
OBJECT: Shape = (lambda v: isinstance(v, dict), "must be an object")
STRING_MAP: Shape = (
    lambda v: isinstance(v, dict) and all(isinstance(x, str) for x in v.values()),
    "must be an object of strings",
)
BODY: Shape = (
    lambda v: isinstance(v, str) or (isinstance(v, dict) and _strings_inside(v)),
    "must be a string or a JSON object of strings",
)
KIND: Shape = (lambda v: v in IN_APP_KINDS, "must be one of " + ", ".join(IN_APP_KINDS))
CTA: Shape = (
    lambda v: (
        isinstance(v, dict)
        and set(v) == {"label", "url"}
        and all(isinstance(x, str) for x in v.values())
    ),
    "must be {label, url} strings",
)
METHOD: Shape = (lambda v: v in WEBHOOK_METHODS, "must be GET, POST, PUT, PATCH or DELETE")
MAX_ANCHOR = 500
ANCHOR: Shape = (
    lambda v: isinstance(v, str) and 0 < len(v.strip()) <= MAX_ANCHOR and "\n" not in v,
    f'must be a CSS selector on one line, at most {MAX_ANCHOR} characters (e.g. "#pay-button")',
)

CONTENT_FIELDS: Mapping[str, Mapping[str, Shape]] = {
    "email": {"subject": TEXT, "body": TEXT, "html": TEXT},
    "push": {"title": TEXT, "body": TEXT, "data": OBJECT},
    "sms": {"body": TEXT},
    "in_app": {"title": TEXT, "body": TEXT, "kind": KIND, "cta": CTA, "anchor": ANCHOR},
    "webhook": {"url": TEXT, "method": METHOD, "headers": STRING_MAP, "body": BODY},
}
"""The content fields of each channel, with the shape each must have."""


MAX_NESTING = 64
"""The deepest nesting of objects and arrays a document (or any API body) may have. Far more
than any journey needs, and far less than what pydantic serialises (about 255 levels, with the
wrappers a workflow input adds) or Python's parser recurses through (about 1,000): a deeper
document would validate, then fail every time it is sent to Temporal."""


def too_deep(value: Any, limit: int = MAX_NESTING) -> list[str | int] | None:
    """The location of the first object or array nested deeper than `limit` levels (the
    document itself is level 1), or None. Iterative, so any depth can be checked."""
    stack: list[tuple[Any, list[str | int]]] = [(value, [])]
    while stack:
        item, location = stack.pop()
        if isinstance(item, dict):
            children: list[tuple[str | int, Any]] = [(str(k), v) for k, v in item.items()]
        elif isinstance(item, list):
            children = list(enumerate(item))
        else:
            continue
        if len(location) >= limit:
            return location
        stack.extend((child, [*location, key]) for key, child in children)
    return None


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
    deep = too_deep(document)
    if deep is not None:
        # Checked first: pydantic would stop at its own recursion limit with a wall of paths.
        return [Problem(path=format_path(deep), message=f"nested deeper than {MAX_NESTING} levels")]
    try:
        journey = Journey.model_validate(document, by_name=False)
    except pydantic.ValidationError as error:
        problems = _unique([_problem_from_pydantic(e) for e in error.errors()])
        # One mistake, one problem: where the structure is already wrong, say only that.
        located = {p.path for p in problems}
        partial = _check_partial(document, templates_known)
        return problems + [p for p in partial if p.path not in located]
    return check(journey, segments=segments, templates_known=templates_known)


def parse(document: Any) -> Journey:
    """The journey a valid document describes; raise `InvalidJourney` listing every problem."""
    from journeys.errors import InvalidJourney

    problems = validate(document)
    if problems:
        raise InvalidJourney(problems)
    return Journey.model_validate(document, by_name=False)


def _unique(problems: list[Problem]) -> list[Problem]:
    return list({(p.path, p.message): p for p in problems}.values())


def _problem_from_pydantic(error: Any) -> Problem:
    # Drop pydantic's discriminator tags and its "[key]" marker for a bad dictionary key.
    location = [part for part in error["loc"] if part not in MODEL_TAGS and part != "[key]"]
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
    edges = {node_id: node_edges(node) for node_id, node in journey.nodes.items()}
    problems = _check_graph(journey.start, edges)
    segment_entry = journey.entry.segment is not None
    for node_id, node in journey.nodes.items():
        problems += _check_node(node_id, node, templates_known, segment_entry=segment_entry)
    problems += _check_engagement(journey)
    if segments is not None:
        problems += [
            Problem(path=path, message=f"unknown segment '{segment}'")
            for path, segment in _segment_references(journey)
            if segment not in segments
        ]
    return problems


def _check_partial(document: Any, templates_known: set[str] | None) -> list[Problem]:
    """The whole-document rules over what can be read of a structurally invalid document."""
    if not isinstance(document, dict) or not isinstance(document.get("nodes"), dict):
        return []
    edges: Edges = {}
    problems: list[Problem] = []
    complete = True
    try:
        segment_entry = Entry.model_validate(document.get("entry")).segment is not None
    except pydantic.ValidationError:
        segment_entry = False  # the first pass reported the entry
    for node_id, raw in document["nodes"].items():
        try:
            node: Node = NODE.validate_python(raw, by_name=False)
        except pydantic.ValidationError:
            edges[node_id] = _raw_edges(raw)
            complete = False
            continue
        edges[node_id] = node_edges(node)
        problems += _check_node(node_id, node, templates_known, segment_entry=segment_entry)
    start = document.get("start")
    graph = _check_graph(start if isinstance(start, str) else None, edges, complete=complete)
    return graph + problems


def _raw_edges(raw: Any) -> list[tuple[str, str | None]]:
    """The references of a node that is not valid on its own, as far as they can be read."""
    if not isinstance(raw, dict):
        return []
    edges = [(key, raw[key]) for key in ("next", "on_failure", "on_timeout", "else") if key in raw]
    for key in ("paths", "variants"):
        items = raw.get(key)
        if isinstance(items, list):
            edges += [
                (f"{key}[{i}].next", item["next"])
                for i, item in enumerate(items)
                if isinstance(item, dict) and "next" in item
            ]
    return [(path, target) for path, target in edges if target is None or isinstance(target, str)]


def _check_graph(start: str | None, edges: Edges, *, complete: bool = True) -> list[Problem]:
    """References, start, reachability (only when every node's edges are known) and cycles."""
    problems = [
        Problem(path=f"nodes.{node_id}.{edge}", message=f"unknown node '{target}'")
        for node_id, node_edges_ in edges.items()
        for edge, target in node_edges_
        if target is not None and target not in edges
    ]
    if start is None:
        return problems  # the first pass reported the missing start
    if start not in edges:
        return [Problem(path="start", message=f"unknown node '{start}'"), *problems]
    targets = {
        node_id: [t for _, t in node_edges_ if t is not None and t in edges]
        for node_id, node_edges_ in edges.items()
    }
    if complete:
        reachable = _reachable(start, targets)
        problems += [
            Problem(path=f"nodes.{node_id}", message="unreachable from start")
            for node_id in edges
            if node_id not in reachable
        ]
    cycle = _find_cycle(targets)
    if cycle:
        problems.append(
            Problem(
                path=f"nodes.{cycle[0]}",
                message="cycle: " + " → ".join(cycle) + "; journeys must flow forward",
            )
        )
    return problems


def _reachable(start: str, targets: dict[str, list[str]]) -> set[str]:
    seen = {start}
    stack = [start]
    while stack:
        for target in targets[stack.pop()]:
            if target not in seen:
                seen.add(target)
                stack.append(target)
    return seen


def _find_cycle(targets: dict[str, list[str]]) -> list[str] | None:
    """One cycle as the list of its nodes (first repeated at the end), or None."""
    state: dict[str, str] = {}  # "trail" while being explored, then "done"
    for root, children in targets.items():
        if root in state:
            continue
        trail, pending = [root], [iter(children)]
        state[root] = "trail"
        while pending:
            target = next(pending[-1], None)
            if target is None:
                pending.pop()
                state[trail.pop()] = "done"
            elif state.get(target) == "trail":
                return [*trail[trail.index(target) :], target]
            elif target not in state:
                state[target] = "trail"
                trail.append(target)
                pending.append(iter(targets[target]))
    return None


def _check_node(
    node_id: str, node: Any, templates_known: set[str] | None, *, segment_entry: bool
) -> list[Problem]:
    base = f"nodes.{node_id}"
    match node:
        case MessageNode():
            return message_problems(base, node, templates_known)
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
        case WaitForEventNode(paths=paths):
            return [
                problem
                for i, path in enumerate(paths)
                if path.match is not None
                for problem in _check_match(
                    f"{base}.paths[{i}].match", path.match, PATH_MATCH, segment_entry=segment_entry
                )
            ]
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


def message_problems(
    base: str, node: MessageFields, templates_known: set[str] | None
) -> list[Problem]:
    """Problems of a message (a journey's node or a broadcast's) at `base`: its content for
    its channel (templates parsed and trial-rendered), a template it names, tracking."""
    problems = []
    if node.channel == "webhook" and node.track:
        problems.append(Problem(path=f"{base}.track", message="webhooks are never tracked"))
    if node.template is None:
        return problems + check_content(f"{base}.content", node.channel, node.content or {})
    if templates_known is not None and node.template not in templates_known:
        problems.append(
            Problem(path=f"{base}.template", message=f"unknown template '{node.template}'")
        )
    return problems


def check_content(base: str, channel: str, content: Mapping[str, Any]) -> list[Problem]:
    """Problems of a message's content for its channel: fields, their shapes, templates, and
    the same of each of its `locales` (`journeys.locales`)."""
    problems = _check_fields(base, channel, content, REQUIRED_CONTENT[channel], base=True)
    problems += _check_anchor(base, channel, content, content)
    if LOCALES in content:
        problems += _check_locales(f"{base}.{LOCALES}", channel, content)
    return problems


def _check_fields(
    path: str, channel: str, content: Mapping[str, Any], required: Iterable[str], *, base: bool
) -> list[Problem]:
    fields = CONTENT_FIELDS[channel]
    problems = [
        Problem(path=f"{path}.{field}", message=f"required for {channel} messages")
        for field in required
        if not isinstance(content.get(field), str) or not content[field].strip()
    ]
    for field, value in content.items():
        if base and field == LOCALES:
            continue  # checked on its own
        if field not in fields:
            known = ", ".join(fields)
            message = f"unknown field for {channel} messages (known: {known})"
            problems.append(Problem(path=f"{path}.{field}", message=message))
            continue
        fits, shape = fields[field]
        if not fits(value):
            if field not in REQUIRED_CONTENT[channel] or isinstance(value, str):
                problems.append(Problem(path=f"{path}.{field}", message=shape))
            continue
        problems += _check_templates(f"{path}.{field}", value)
    return problems


def _check_anchor(
    path: str, channel: str, content: Mapping[str, Any], given: Mapping[str, Any]
) -> list[Problem]:
    """Only tooltips are anchored (`content`: what a user gets; `given`: the fields written at
    `path`, where a problem only they cause is reported)."""
    if channel != "in_app" or "anchor" not in content or content.get("kind") == "tooltip":
        return []
    if "anchor" not in given and "kind" not in given:
        return []  # the base's own problem, reported there
    where = "anchor" if "anchor" in given else "kind"
    message = 'only tooltips are anchored: set "kind": "tooltip"'
    return [Problem(path=f"{path}.{where}", message=message)]


def _check_locales(path: str, channel: str, content: Mapping[str, Any]) -> list[Problem]:
    """Each locale's tag, and its fields as the base's are checked (those it leaves out are
    the base's, so none is required)."""
    given_by_tag = content[LOCALES]
    if not isinstance(given_by_tag, dict) or not given_by_tag:
        message = 'must be an object of contents by language tag, e.g. {"de": {"subject": ...}}'
        return [Problem(path=path, message=message)]
    problems: list[Problem] = []
    seen: dict[str, str] = {}
    for tag, given in given_by_tag.items():
        where = f"{path}.{tag}"
        problem = locales.tag_problem(tag)
        if problem is None and tag.lower() in seen:
            problem = f"the same tag as '{seen[tag.lower()]}' (tags ignore case)"
        if problem is None and (not isinstance(given, dict) or not given):
            problem = "must be an object of the content fields this language changes"
        if problem is not None:
            problems.append(Problem(path=where, message=problem))
            continue
        seen[tag.lower()] = tag
        required = [name for name in REQUIRED_CONTENT[channel] if name in given]
        problems += _check_fields(where, channel, given, required, base=False)
        problems += _check_anchor(where, channel, {**content, **given}, given)
        for name, why in locales.half_translated(channel, content, given):
            problems.append(Problem(path=f"{where}.{name}", message=why))
    return problems


def _check_templates(path: str, value: Any) -> list[Problem]:
    """Liquid syntax of every string inside a value (strings, lists and objects of them)."""
    if isinstance(value, str):
        error = templates.template_problem(value)
        return (
            []
            if error is None
            else [Problem(path=path, message=f"template does not parse: {error}")]
        )
    if isinstance(value, dict):
        return [p for key, item in value.items() for p in _check_templates(f"{path}.{key}", item)]
    if isinstance(value, list):
        return [p for i, item in enumerate(value) for p in _check_templates(f"{path}[{i}]", item)]
    return []


def _segment_references(journey: Journey) -> Iterator[tuple[str, str]]:
    if journey.entry.segment is not None:
        yield "entry.segment", journey.entry.segment
    for path, condition in conditions_of(journey):
        for where, leaf in leaf_conditions(path, condition):
            if isinstance(leaf, SegmentCondition):
                yield f"{where}.segment", leaf.segment


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


def leaf_conditions(path: str, condition: Condition) -> Iterator[tuple[str, Condition]]:
    """Every condition inside `condition` that is not `all`, `any` or `not` (those inside an
    `event_count`'s `where` too), each with its JSON path."""
    match condition:
        case AllOf(all=items) | AnyOf(any=items):
            key = "all" if isinstance(condition, AllOf) else "any"
            for i, item in enumerate(items):
                yield from leaf_conditions(f"{path}.{key}[{i}]", item)
        case NotOf(not_=inner):
            yield from leaf_conditions(f"{path}.not", inner)
        case EventCountCondition(event_count=count):
            yield path, condition
            if count.where is not None:
                yield from leaf_conditions(f"{path}.event_count.where", count.where)
        case _:
            yield path, condition


def segment_problems(condition: Condition) -> list[Problem]:
    """Problems of a segment's condition (`condition.*` paths): a `message` condition asks a
    journey run about its own messages, and a segment has no run."""
    return [
        Problem(path=f"{where}.message", message="only a journey can ask about its messages")
        for where, leaf in leaf_conditions("condition", condition)
        if isinstance(leaf, MessageCondition)
    ]


# --- engagement -------------------------------------------------------------------------------

PATH_MATCH = frozenset({"entry", "user"})
"""What a wait path's `match` may read: its `event` is the event being matched, compared with
the match's values, so reading it there would compare the event with itself."""
RULE_MATCH = frozenset({"entry", "event", "user"})
"""What an exit rule's or the goal's `match` may read (`event`: the run's current event)."""
NO_ENTRY_FIELDS = (
    "a segment entry provides no entry fields to match on (a run holds the properties of "
    "whichever event made the user a member, or none when the scheduled check found them); "
    "match on user.* instead"
)
"""Why a `match` of a journey with a segment entry cannot read `entry.*`: event and page
entries give the entry event's properties and API entries the trigger's `content`, any names,
but what a segment entry gives depends on how the membership was noticed, so a keyed wait on it
would quietly wait for its timeout."""


def _check_engagement(journey: Journey) -> list[Problem]:
    """`of`, `message` conditions, the `match` of exit rules and the goal, click winners."""
    problems: list[Problem] = []
    segment_entry = journey.entry.segment is not None
    for i, rule in enumerate(journey.exit):
        if rule.match is not None:
            problems += _check_match(
                f"exit[{i}].match", rule.match, RULE_MATCH, segment_entry=segment_entry
            )
    if journey.goal is not None and journey.goal.match is not None:
        problems += _check_match(
            "goal.match", journey.goal.match, RULE_MATCH, segment_entry=segment_entry
        )
    for node_id, node in journey.nodes.items():
        base = f"nodes.{node_id}"
        match node:
            case WaitForEventNode(paths=paths):
                for i, waited in enumerate(paths):
                    if waited.of is not None:
                        problems += _check_of(journey, f"{base}.paths[{i}]", node_id, waited)
            case ExperimentNode(winner=winner) if (
                winner is not None
                and winner.metric == "click"
                and not journey.tracked_after(node_id)
            ):
                message = "no tracked message can follow this experiment: no click to count"
                problems.append(Problem(path=f"{base}.winner.metric", message=message))
    for path, condition in conditions_of(journey):
        # The node a condition is evaluated at, when it is one (a branch, a wait's path).
        at = path.split(".")[1] if path.startswith("nodes.") else None
        for where, leaf in leaf_conditions(path, condition):
            if isinstance(leaf, MessageCondition):
                problems += _check_message_condition(journey, where, at, leaf)
    return problems


def _check_of(journey: Journey, base: str, wait: str, path: EventPath) -> list[Problem]:
    """An `of` names a tracked message node that can run before the wait, and the path waits
    for an engagement event of that node's channel."""
    assert path.of is not None
    problem = _message_problem(journey, path.of, before=wait, tracked=True)
    if problem is not None:
        return [Problem(path=f"{base}.of", message=problem)]
    node = journey.nodes[path.of]
    assert isinstance(node, MessageNode)  # _message_problem said so
    events = events_of(node.channel)
    if path.event in events:
        return []
    message = (
        f"'{path.event}' is not an engagement event of {node.channel} messages "
        f"(use one of: {', '.join(events)})"
    )
    return [Problem(path=f"{base}.event", message=message)]


def _check_message_condition(
    journey: Journey, path: str, at: str | None, condition: MessageCondition
) -> list[Problem]:
    """A `message` condition is evaluated inside a run, after the node it names could run."""
    if path.startswith("entry."):
        problem: str | None = "no message was sent before the entry: not allowed here"
    elif ".event_count." in path:
        problem = "stored events are counted without a run: not allowed in event_count"
    else:
        tracked = condition.engagement != "sent"
        problem = _message_problem(journey, condition.message, before=at, tracked=tracked)
    return [] if problem is None else [Problem(path=f"{path}.message", message=problem)]


def _message_problem(
    journey: Journey, name: str, *, before: str | None, tracked: bool
) -> str | None:
    """Why `name` cannot be the message node engagement is asked about at node `before` (None:
    anywhere in the run), or None."""
    node = journey.nodes.get(name)
    if node is None:
        return f"unknown node '{name}'"
    if not isinstance(node, MessageNode):
        return f"'{name}' is not a message node"
    if before is not None and before not in journey.downstream(name):
        return f"'{name}' cannot run before '{before}'"
    if not tracked or node.tracked:
        return None
    if node.channel == "webhook":
        return f"'{name}' is a webhook: webhooks are never tracked"
    if node.track is False:
        return f"'{name}' is not tracked (track: false)"
    return f"'{name}' is transactional, so not tracked unless it sets track: true"


def _check_match(
    base: str, match: Match, allowed: frozenset[str], *, segment_entry: bool
) -> list[Problem]:
    """Each `match` value is a template that parses and reads only what `allowed` names (and,
    after a segment entry, no `entry.*`), and never the clock (the interpreter renders it, so
    it must render the same on replay)."""
    problems: list[Problem] = []
    for key, source in match.items():
        path = f"{base}.{key}"
        if not key.strip():
            problems.append(Problem(path=path, message="name an event property"))
            continue
        error = templates.template_problem(source)
        if error is not None:
            problems.append(Problem(path=path, message=f"template does not parse: {error}"))
            continue
        names, filters = templates.names_read(source)
        if "event" in names and "event" not in allowed:
            message = "a path's match cannot read event.*: the event is what it compares"
            problems.append(Problem(path=path, message=message))
        elif names - allowed:
            read = ", ".join(sorted(names - allowed))
            known = ", ".join(f"{name}.*" for name in sorted(allowed))
            problems.append(Problem(path=path, message=f"reads {read}: a match reads {known}"))
        elif segment_entry and "entry" in names:
            read = ", ".join(templates.variables_read(source, "entry"))
            problems.append(Problem(path=path, message=f"reads {read}: {NO_ENTRY_FIELDS}"))
        if "date" in filters:
            message = "the date filter can read the clock: not allowed in a match"
            problems.append(Problem(path=path, message=message))
    return problems
