"""Every validation rule of the journey format (spec § Validation, and the model's own rules).

Each case starts from `BASE`, a small valid document that uses every node type, applies a few
edits and checks every problem `validate` returns: its exact JSON path and part of its message.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from journeys.durations import parse_duration
from journeys.errors import InvalidJourney
from journeys.model import Journey
from journeys.validation import Problem, format_path, parse, validate

SPEC_EXAMPLE = Path(__file__).with_name("spec_example.json")

BASE: dict[str, Any] = {
    "id": "cart-recovery",
    "name": "Cart recovery",
    "entry": {
        "event": "Added to Cart",
        "where": {"field": "event.total_price", "op": "gt", "value": 0},
        "reentry": "7d",
    },
    "exit": [{"event": "Order Completed"}],
    "goal": {"event": "Order Completed", "within": "3d"},
    "settings": {"timezone": "Europe/Paris", "quiet_hours": {"start": "22:00", "end": "08:00"}},
    "start": "wait",
    "nodes": {
        "wait": {
            "type": "wait_for_event",
            "paths": [{"event": "Checkout Started", "next": "email"}],
            "timeout": "24h",
            "on_timeout": "split",
        },
        "split": {
            "type": "branch",
            "paths": [
                {"when": {"field": "entry.total_price", "op": "gte", "value": 100}, "next": "email"}
            ],
            "else": "test",
        },
        "test": {
            "type": "experiment",
            "variants": [
                {"name": "a", "weight": 50, "next": "push"},
                {"name": "b", "weight": 50, "next": "pause"},
            ],
        },
        "pause": {"type": "delay", "duration": "PT1H", "next": "idle"},
        "idle": {"type": "wait_for_inactivity", "duration": "30m", "next": "tag"},
        "tag": {"type": "update_user", "set": {"stage": "cart-{{ user.plan }}"}, "next": "push"},
        "push": {
            "type": "message",
            "channel": "push",
            "content": {"title": "Hi {{ user.first_name | default: 'there' }}", "body": "Back?"},
            "next": "email",
        },
        "email": {
            "type": "message",
            "channel": "email",
            "content": {"subject": "Your cart", "body": "Come back"},
            "next": "done",
        },
        "done": {"type": "exit"},
    },
}

DROP: Any = object()
"""An edit's value that deletes the field instead of setting it."""

Edit = tuple[str, Any]
Expected = list[tuple[str, str]]
"""The problems a document must have, exactly: (JSON path, part of the message) each."""


def _steps(path: str) -> list[str | int]:
    return [
        int(part[1:-1]) if part.startswith("[") else part
        for part in re.findall(r"\[\d+\]|[^.\[\]]+", path)
    ]


def changed(*edits: Edit) -> dict[str, Any]:
    """A copy of `BASE` with each `(path, value)` applied.

    `DROP` deletes the field; an index one past the end of a list appends.
    """
    document = copy.deepcopy(BASE)
    for path, value in edits:
        *parents, last = _steps(path)
        target: Any = document
        for step in parents:
            target = target[step]
        if value is DROP:
            del target[last]
        elif isinstance(target, list) and last == len(target):
            target.append(copy.deepcopy(value))
        else:
            target[last] = copy.deepcopy(value)
    return document


def assert_problems(problems: list[Problem], expected: Expected) -> None:
    """`problems` are exactly `expected`, in any order: same paths, messages holding the parts."""
    found = [(p.path, p.message) for p in problems]
    remaining = list(found)
    for path, fragment in expected:
        match = next((f for f in remaining if f[0] == path and fragment in f[1]), None)
        assert match is not None, f"no problem at {path!r} containing {fragment!r}; got {found}"
        remaining.remove(match)
    assert not remaining, f"unexpected problems {remaining}; all: {found}"


def case(*edits: Edit, expect: Expected, id: str) -> Any:
    """One table row."""
    return pytest.param(list(edits), expect, id=id)


def test_base_document_is_valid() -> None:
    assert validate(BASE) == []


def test_helper_applies_edits_to_a_copy() -> None:
    document = changed(("nodes.test.variants[2]", {"name": "c"}), ("goal", DROP))
    assert document["nodes"]["test"]["variants"][2] == {"name": "c"}
    assert "goal" not in document
    assert "goal" in BASE
    assert len(BASE["nodes"]["test"]["variants"]) == 2


# --- the spec's example, and reporting -------------------------------------------------------


def test_spec_example_is_valid() -> None:
    document = json.loads(SPEC_EXAMPLE.read_text())
    assert validate(document) == []
    # At publish, with an empty store: it names no segment and no stored template.
    assert validate(document, segments=set(), templates_known=set()) == []
    assert isinstance(parse(document), Journey)


def test_parse_raises_with_every_problem() -> None:
    document = changed(("nodes.email.next", "nowhere"), ("nodes.orphan", {"type": "exit"}))
    with pytest.raises(InvalidJourney) as raised:
        parse(document)
    assert_problems(
        raised.value.problems,
        [
            ("nodes.email.next", "unknown node 'nowhere'"),
            ("nodes.done", "unreachable from start"),
            ("nodes.orphan", "unreachable from start"),
        ],
    )
    assert "nodes.email.next: unknown node 'nowhere'" in str(raised.value)


@pytest.mark.parametrize(
    ("location", "text"),
    [
        ((), ""),
        (("start",), "start"),
        (("nodes", "by_value", "paths", 0, "next"), "nodes.by_value.paths[0].next"),
        (("exit", 1, "where", "all", 0, "field"), "exit[1].where.all[0].field"),
    ],
)
def test_format_path(location: tuple[str | int, ...], text: str) -> None:
    assert format_path(location) == text


def test_every_structural_problem_is_reported_at_once() -> None:
    document = changed(
        ("nodes.wait.timeout", "soon"),
        ("nodes.email.nxt", "done"),
        ("entry.where.op", "equals"),
        ("settings.quiet_hours.start", "25:00"),
        ("nodes.test.variants[0].weight", 101),
        ("nodes.idle.type", "sleep"),
        ("exit[0]", {}),
    )
    assert_problems(
        validate(document),
        [
            ("nodes.wait.timeout", "bad duration 'soon'"),
            ("nodes.email.nxt", "unknown field"),
            ("entry.where.op", "Input should be 'eq'"),
            ("settings.quiet_hours.start", "use HH:MM"),
            ("nodes.test.variants[0].weight", "less than or equal to 100"),
            ("nodes.idle", "'type' must be one of"),
            ("exit[0]", "exactly one of event, when"),
        ],
    )


def test_every_whole_document_problem_is_reported_at_once() -> None:
    document = changed(
        ("nodes.email.next", "nowhere"),
        ("nodes.orphan", {"type": "exit"}),
        ("nodes.test.variants[0].weight", 60),
        ("nodes.test.variants[1].name", "a"),
        ("nodes.email.content.subject", "{{ user.first_name "),
        ("nodes.push.content", {"body": "no title"}),
        ("nodes.tag.unset", ["stage"]),
        ("nodes.idle.next", "pause"),
    )
    assert_problems(
        validate(document),
        [
            ("nodes.email.next", "unknown node 'nowhere'"),
            ("nodes.done", "unreachable from start"),
            ("nodes.orphan", "unreachable from start"),
            ("nodes.tag", "unreachable from start"),
            ("nodes.pause", "cycle: pause → idle → pause"),
            ("nodes.test.variants", "weights sum to 110, not 100"),
            ("nodes.test.variants[1].name", "duplicate variant name 'a'"),
            ("nodes.email.content.subject", "template does not parse"),
            ("nodes.push.content.title", "required for push messages"),
            ("nodes.tag.unset[0]", "trait 'stage' is also set"),
        ],
    )


def test_structural_and_graph_problems_are_reported_together() -> None:
    document = changed(("nodes.wait.timeout", "soon"), ("nodes.split.else", "nowhere"))
    assert_problems(
        validate(document),
        [
            ("nodes.wait.timeout", "bad duration 'soon'"),
            ("nodes.split.else", "unknown node 'nowhere'"),
        ],
    )


# --- graph: references, start, reachability, cycles ------------------------------------------


@pytest.mark.parametrize(
    ("edits", "expected"),
    [
        case(
            ("nodes.push.next", "nowhere"),
            expect=[("nodes.push.next", "unknown node 'nowhere'")],
            id="next",
        ),
        case(
            ("nodes.push.on_failure", "nowhere"),
            expect=[("nodes.push.on_failure", "unknown node 'nowhere'")],
            id="on_failure",
        ),
        case(
            ("nodes.wait.paths[0].next", "nowhere"),
            expect=[("nodes.wait.paths[0].next", "unknown node 'nowhere'")],
            id="wait-paths-next",
        ),
        case(
            ("nodes.wait.paths[1]", {"event": "Coupon Viewed", "next": "emial"}),
            expect=[("nodes.wait.paths[1].next", "unknown node 'emial'")],
            id="wait-second-path-next",
        ),
        case(
            ("nodes.push.next", "Email"),
            expect=[("nodes.push.next", "String should match pattern")],
            id="next-not-a-node-id",
        ),
        case(
            ("nodes.split.paths[0].next", "nowhere"),
            expect=[("nodes.split.paths[0].next", "unknown node 'nowhere'")],
            id="branch-paths-next",
        ),
        case(
            ("nodes.wait.paths[0].next", "split"),
            ("nodes.wait.on_timeout", "nowhere"),
            expect=[("nodes.wait.on_timeout", "unknown node 'nowhere'")],
            id="on_timeout",
        ),
        case(
            ("nodes.split.paths[0].next", "test"),
            ("nodes.split.else", "nowhere"),
            expect=[("nodes.split.else", "unknown node 'nowhere'")],
            id="else",
        ),
        case(
            ("nodes.test.variants[0].next", "pause"),
            ("nodes.test.variants[1].next", "nowhere"),
            expect=[("nodes.test.variants[1].next", "unknown node 'nowhere'")],
            id="variants-next",
        ),
        case(
            ("start", "nowhere"),
            expect=[("start", "unknown node 'nowhere'")],
            id="start-names-unknown-node",
        ),
        case(("start", DROP), expect=[("start", "required field missing")], id="start-absent"),
        case(
            ("start", "Wait"),
            expect=[("start", "String should match pattern")],
            id="start-not-a-node-id",
        ),
        case(
            ("nodes", {}),
            expect=[("start", "unknown node 'wait'")],
            id="no-nodes-at-all",
        ),
        case(("nodes", DROP), expect=[("nodes", "required field missing")], id="nodes-absent"),
        case(
            ("nodes.orphan", {"type": "exit"}),
            expect=[("nodes.orphan", "unreachable from start")],
            id="unreachable-node",
        ),
        case(
            ("nodes.island_a", {"type": "delay", "duration": "1h", "next": "island-b"}),
            ("nodes.island-b", {"type": "exit"}),
            expect=[
                ("nodes.island_a", "unreachable from start"),
                ("nodes.island-b", "unreachable from start"),
            ],
            id="unreachable-chain",
        ),
        case(
            ("start", "split"),
            expect=[("nodes.wait", "unreachable from start")],
            id="old-start-unreachable",
        ),
        case(
            ("nodes.tag.next", "pause"),
            expect=[
                ("nodes.pause", "cycle: pause → idle → tag → pause; journeys must flow forward")
            ],
            id="cycle",
        ),
        case(
            ("nodes.pause.next", "pause"),
            expect=[
                ("nodes.pause", "cycle: pause → pause"),
                ("nodes.idle", "unreachable from start"),
                ("nodes.tag", "unreachable from start"),
            ],
            id="self-loop",
        ),
        case(
            ("nodes.email.next", "wait"),
            expect=[
                ("nodes.wait", "cycle: wait → email → wait"),
                ("nodes.done", "unreachable from start"),
            ],
            id="cycle-back-to-start",
        ),
        case(
            ("nodes.push.on_failure", "test"),
            expect=[("nodes.test", "cycle: test → push → test")],
            id="cycle-through-on_failure",
        ),
        case(
            ("nodes.x", {"type": "delay", "duration": "1h", "next": "y"}),
            ("nodes.y", {"type": "delay", "duration": "1h", "next": "x"}),
            expect=[
                ("nodes.x", "unreachable from start"),
                ("nodes.y", "unreachable from start"),
                ("nodes.x", "cycle: x → y → x"),
            ],
            id="unreachable-cycle",
        ),
        case(
            ("nodes.wait.on_timeout", None),
            ("nodes.wait.paths[0].next", None),
            ("start", "split"),
            expect=[("nodes.wait", "unreachable from start")],
            id="null-next-ends-the-journey",
        ),
    ],
)
def test_graph(edits: list[Edit], expected: Expected) -> None:
    assert_problems(validate(changed(*edits)), expected)


# --- top level and entry ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("edits", "expected"),
    [
        case(
            ("entry.event", DROP),
            ("entry.where", DROP),
            expect=[("entry", "exactly one of event, page, segment, api is required (found none)")],
            id="no-entry-kind",
        ),
        case(
            ("entry.api", "signup"),
            expect=[
                ("entry", "exactly one of event, page, segment, api is required (found event, api)")
            ],
            id="event-and-api",
        ),
        case(
            ("entry.where", DROP),
            ("entry.segment", "vip"),
            expect=[("entry", "(found event, segment)")],
            id="event-and-segment",
        ),
        case(
            ("entry.event", DROP),
            ("entry.where", DROP),
            ("entry.segment", "vip"),
            ("entry.api", "signup"),
            expect=[("entry", "(found segment, api)")],
            id="segment-and-api",
        ),
        case(
            ("entry.event", DROP),
            ("entry.api", "signup"),
            expect=[("entry", "'where' applies only to an event or page entry")],
            id="where-on-api-entry",
        ),
        case(
            ("entry.page", "Checkout"),
            expect=[("entry", "(found event, page)")],
            id="event-and-page",
        ),
        case(("entry", DROP), expect=[("entry", "required field missing")], id="entry-absent"),
        case(
            ("entry.event", DROP),
            ("entry.where", DROP),
            ("entry.segment", "VIP users"),
            expect=[("entry.segment", "String should match pattern")],
            id="segment-not-a-slug",
        ),
        case(
            ("entry.event", ""),
            expect=[("entry.event", "at least 1 character")],
            id="empty-event-name",
        ),
        case(("id", "Cart Recovery"), expect=[("id", "String should match pattern")], id="id"),
        case(("id", DROP), expect=[("id", "required field missing")], id="id-absent"),
        case(("name", ""), expect=[("name", "at least 1 character")], id="empty-name"),
        case(
            ("exit[0]", {}),
            expect=[("exit[0]", "an exit rule needs exactly one of event, when")],
            id="exit-rule-neither",
        ),
        case(
            ("exit[0].when", {"field": "user.unsubscribed", "op": "eq", "value": True}),
            expect=[("exit[0]", "an exit rule needs exactly one of event, when")],
            id="exit-rule-both",
        ),
        case(
            ("exit[0]", {"when": {"segment": "vip"}, "where": {"segment": "vip"}}),
            expect=[("exit[0]", "'where' applies only to an event exit rule")],
            id="exit-where-without-event",
        ),
        case(("goal.event", DROP), expect=[("goal.event", "required field missing")], id="goal"),
    ],
)
def test_entry_and_top_level(edits: list[Edit], expected: Expected) -> None:
    assert_problems(validate(changed(*edits)), expected)


@pytest.mark.parametrize(
    "entry",
    [
        {"event": "Signed Up"},
        {"segment": "inactive-7d", "reentry": "always"},
        {"api": "password_reset", "reentry": "P30D"},
        {"api": "password_reset", "audience": {"field": "user.email", "op": "exists"}},
    ],
)
def test_each_entry_kind_alone_is_valid(entry: dict[str, Any]) -> None:
    assert validate(changed(("entry", entry))) == []


# --- experiments -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("edits", "expected"),
    [
        case(
            ("nodes.test.variants[0].weight", 60),
            expect=[("nodes.test.variants", "weights sum to 110, not 100")],
            id="weights-over-100",
        ),
        case(
            ("nodes.test.variants[0].weight", 40),
            expect=[("nodes.test.variants", "weights sum to 90, not 100")],
            id="weights-under-100",
        ),
        case(
            ("nodes.test.variants[2]", {"name": "control", "weight": 0, "next": None}),
            ("nodes.test.variants[0].weight", 0),
            expect=[("nodes.test.variants", "weights sum to 50, not 100")],
            id="zero-weights-count",
        ),
        case(
            ("nodes.test.variants[1].name", "a"),
            expect=[("nodes.test.variants[1].name", "duplicate variant name 'a'")],
            id="duplicate-name",
        ),
        case(
            ("nodes.test.variants[2]", {"name": "a", "weight": 0}),
            ("nodes.test.variants[3]", {"name": "a", "weight": 0}),
            expect=[
                ("nodes.test.variants[2].name", "duplicate variant name 'a'"),
                ("nodes.test.variants[3].name", "duplicate variant name 'a'"),
            ],
            id="every-duplicate",
        ),
        case(
            ("nodes.test.variants[1].name", "a"),
            ("nodes.test.variants[1].weight", 10),
            expect=[
                ("nodes.test.variants", "weights sum to 60, not 100"),
                ("nodes.test.variants[1].name", "duplicate variant name 'a'"),
            ],
            id="weights-and-duplicates",
        ),
        case(
            ("nodes.test.variants[0].weight", 101),
            expect=[("nodes.test.variants[0].weight", "less than or equal to 100")],
            id="weight-over-100",
        ),
        case(
            ("nodes.test.variants[0].weight", -1),
            expect=[("nodes.test.variants[0].weight", "greater than or equal to 0")],
            id="negative-weight",
        ),
        case(
            ("nodes.test.variants[0].weight", 49.5),
            expect=[("nodes.test.variants[0].weight", "valid integer")],
            id="fractional-weight",
        ),
        case(
            ("nodes.test.variants", [{"name": "all", "weight": 100}]),
            expect=[("nodes.test.variants", "at least 2 items")],
            id="one-variant",
        ),
        case(
            ("nodes.test.variants[0].name", ""),
            expect=[("nodes.test.variants[0].name", "at least 1 character")],
            id="empty-name",
        ),
        case(
            ("nodes.test.winner", {"after": "14d", "min_users": 0}),
            expect=[("nodes.test.winner.min_users", "greater than or equal to 1")],
            id="winner-min-users",
        ),
    ],
)
def test_experiments(edits: list[Edit], expected: Expected) -> None:
    assert_problems(validate(changed(*edits)), expected)


# --- durations -------------------------------------------------------------------------------

DURATION_PLACES: list[Any] = [
    pytest.param("nodes.wait.timeout", lambda d: d, "nodes.wait.timeout", id="timeout"),
    pytest.param("nodes.pause.duration", lambda d: d, "nodes.pause.duration", id="delay"),
    pytest.param("nodes.idle.duration", lambda d: d, "nodes.idle.duration", id="inactivity"),
    pytest.param("goal.within", lambda d: d, "goal.within", id="goal.within"),
    pytest.param(
        "nodes.test.winner",
        lambda d: {"after": d, "min_users": 100},
        "nodes.test.winner.after",
        id="winner.after",
    ),
    pytest.param(
        "entry.audience",
        lambda d: {
            "event_count": {"event": "Product Viewed", "within": d},
            "op": "gte",
            "value": 3,
        },
        "entry.audience.event_count.within",
        id="event_count.within",
    ),
    pytest.param(
        "nodes.split.paths[0].when",
        lambda d: {
            "all": [{"not": {"event_count": {"event": "*", "within": d}, "op": "eq", "value": 0}}]
        },
        "nodes.split.paths[0].when.all[0].not.event_count.within",
        id="nested-event_count.within",
    ),
]

BAD_DURATIONS = [
    pytest.param("24", "bad duration '24': use <n><unit>", id="no-unit"),
    pytest.param("1y", "bad duration '1y'", id="unknown-unit"),
    pytest.param("1.5h", "bad duration '1.5h'", id="fraction"),
    pytest.param("-5m", "bad duration '-5m'", id="negative"),
    pytest.param("ten minutes", "bad duration 'ten minutes'", id="words"),
    pytest.param("", "bad duration ''", id="empty"),
    pytest.param("PT", "bad duration 'PT'", id="iso-empty"),
    pytest.param("P1DT", "bad duration 'P1DT'", id="iso-dangling-T"),
    pytest.param("P1M", "bad duration 'P1M'", id="iso-months"),
    pytest.param("0s", "bad duration '0s': must be greater than 0", id="zero"),
    pytest.param("PT0S", "must be greater than 0", id="iso-zero"),
    pytest.param("366d", "bad duration '366d': must be at most 365 days", id="over-365d"),
    pytest.param("53w", "must be at most 365 days", id="weeks-over"),
    pytest.param("P366D", "must be at most 365 days", id="iso-over"),
    pytest.param("PT8761H", "must be at most 365 days", id="iso-hours-over"),
]


@pytest.mark.parametrize(("text", "fragment"), BAD_DURATIONS)
@pytest.mark.parametrize(("edit_path", "build", "problem_path"), DURATION_PLACES)
def test_bad_durations(
    edit_path: str, build: Callable[[str], Any], problem_path: str, text: str, fragment: str
) -> None:
    assert_problems(validate(changed((edit_path, build(text)))), [(problem_path, fragment)])


@pytest.mark.parametrize("text", ["1s", "90s", "P365D", "365d", "52w", "PT0.5S", "P1DT12H"])
@pytest.mark.parametrize(("edit_path", "build", "problem_path"), DURATION_PLACES)
def test_good_durations(
    edit_path: str, build: Callable[[str], Any], problem_path: str, text: str
) -> None:
    assert validate(changed((edit_path, build(text)))) == []


def test_duration_must_be_a_string() -> None:
    assert_problems(
        validate(changed(("nodes.wait.timeout", 3600))),
        [("nodes.wait.timeout", "valid string")],
    )


@pytest.mark.parametrize("reentry", ["never", "always", "30d", "P30D"])
def test_good_reentry(reentry: str) -> None:
    assert validate(changed(("entry.reentry", reentry))) == []


@pytest.mark.parametrize(
    ("edits", "expected"),
    [
        case(
            ("entry.reentry", "7x"),
            expect=[("entry.reentry", "bad duration '7x'")],
            id="reentry-bad",
        ),
        case(
            ("entry.reentry", "0s"),
            expect=[("entry.reentry", "must be greater than 0")],
            id="reentry-zero",
        ),
        case(
            ("entry.reentry", "400d"),
            expect=[("entry.reentry", "must be at most 365 days")],
            id="reentry-over",
        ),
    ],
)
def test_bad_reentry(edits: list[Edit], expected: Expected) -> None:
    assert_problems(validate(changed(*edits)), expected)


@pytest.mark.parametrize("text", ["1000000000d", "P9999999999D"])
def test_huge_duration_is_a_problem_not_a_crash(text: str) -> None:
    assert_problems(
        validate(changed(("nodes.wait.timeout", text))),
        [("nodes.wait.timeout", "must be at most 365 days")],
    )


# --- conditions: ops, field namespaces, shapes -----------------------------------------------


@pytest.mark.parametrize(
    ("edits", "expected"),
    [
        case(
            ("entry.where.op", "equals"),
            expect=[("entry.where.op", "Input should be 'eq', 'ne', 'gt', 'gte', 'lt', 'lte'")],
            id="unknown-op",
        ),
        case(
            ("entry.where.op", "EQ"),
            expect=[("entry.where.op", "Input should be 'eq'")],
            id="op-is-case-sensitive",
        ),
        case(
            (
                "nodes.split.paths[0].when",
                {
                    "all": [
                        {"field": "user.plan", "op": "exists"},
                        {"field": "user.plan", "op": "is", "value": "pro"},
                    ]
                },
            ),
            expect=[("nodes.split.paths[0].when.all[1].op", "Input should be 'eq'")],
            id="op-nested-in-all",
        ),
        case(
            ("exit[0].where", {"not": {"field": "event.total", "op": "~", "value": 1}}),
            expect=[("exit[0].where.not.op", "Input should be 'eq'")],
            id="op-nested-in-not",
        ),
        case(
            ("entry.audience", {"event_count": {"event": "Viewed"}, "op": "contains", "value": 3}),
            expect=[
                ("entry.audience.op", "Input should be 'eq', 'ne', 'gt', 'gte', 'lt' or 'lte'")
            ],
            id="event_count-op",
        ),
        case(
            ("entry.audience", {"event_count": {"event": "Viewed"}, "op": "gte", "value": "many"}),
            expect=[("entry.audience.value", "valid integer")],
            id="event_count-value",
        ),
        case(
            ("entry.where", {"field": "event.sku", "op": "in", "value": "A1"}),
            expect=[("entry.where", "'in' needs a list value")],
            id="in-needs-list",
        ),
        case(
            ("entry.where", {"field": "event.sku", "op": "not_in", "value": 3}),
            expect=[("entry.where", "'not_in' needs a list value")],
            id="not_in-needs-list",
        ),
        case(
            ("entry.where.value", DROP),
            expect=[("entry.where", "'gt' needs a value")],
            id="gt-needs-value",
        ),
        case(
            ("entry.where", {"field": "event.total_price", "op": "exists"}),
            expect=[],
            id="exists-needs-no-value",
        ),
        case(
            ("entry.where.field", "profile.plan"),
            expect=[("entry.where.field", "use a dotted path in user.*, entry.* or event.*")],
            id="unknown-namespace",
        ),
        case(
            ("entry.where.field", "total_price"),
            expect=[("entry.where.field", "bad field")],
            id="no-namespace",
        ),
        case(
            ("entry.where.field", "event"),
            expect=[("entry.where.field", "bad field")],
            id="namespace-alone",
        ),
        case(
            ("entry.where.field", "event."),
            expect=[("entry.where.field", "bad field")],
            id="trailing-dot",
        ),
        case(
            ("entry.where.field", "user..address"),
            expect=[("entry.where.field", "bad field")],
            id="empty-segment",
        ),
        case(
            ("entry.where.field", "User.plan"),
            expect=[("entry.where.field", "bad field")],
            id="namespace-case",
        ),
        case(
            ("goal.where", {"field": "order.total", "op": "gt", "value": 0}),
            expect=[("goal.where.field", "bad field")],
            id="field-in-goal",
        ),
        case(
            ("nodes.wait.paths[0].where", {"field": "cart.id", "op": "exists"}),
            expect=[("nodes.wait.paths[0].where.field", "bad field")],
            id="field-in-wait-path",
        ),
        case(
            (
                "entry.audience",
                {
                    "event_count": {
                        "event": "Viewed",
                        "where": {"field": "props.sku", "op": "exists"},
                    },
                    "op": "gte",
                    "value": 1,
                },
            ),
            expect=[("entry.audience.event_count.where.field", "bad field")],
            id="field-in-event_count-where",
        ),
        case(
            ("entry.where", {"total_price": {"gt": 0}}),
            expect=[("entry.where", "not a condition: expected one of all, any, not")],
            id="not-a-condition",
        ),
        case(
            ("entry.where", ["user.vip"]),
            expect=[("entry.where", "not a condition")],
            id="condition-not-an-object",
        ),
        case(
            ("entry.audience", {"all": [{"segment": "VIP"}]}),
            expect=[("entry.audience.all[0].segment", "String should match pattern")],
            id="segment-not-a-slug",
        ),
        case(
            ("entry.audience", {"any": {"segment": "vip"}}),
            expect=[("entry.audience.any", "valid list")],
            id="any-needs-list",
        ),
    ],
)
def test_conditions(edits: list[Edit], expected: Expected) -> None:
    assert_problems(validate(changed(*edits)), expected)


@pytest.mark.parametrize(
    "op",
    ["eq", "ne", "gt", "gte", "lt", "lte", "contains", "starts_with", "exists", "not_exists"],
)
def test_every_op_is_accepted(op: str) -> None:
    assert validate(changed(("entry.where.op", op))) == []


@pytest.mark.parametrize("op", ["in", "not_in"])
def test_list_ops_are_accepted(op: str) -> None:
    condition = {"field": "event.sku", "op": op, "value": ["A1", "B2"]}
    assert validate(changed(("entry.where", condition))) == []


# --- templates -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("edits", "expected"),
    [
        case(
            ("nodes.email.content.subject", "Hi {{ user.first_name "),
            expect=[("nodes.email.content.subject", "template does not parse: expected '}}'")],
            id="unclosed-output",
        ),
        case(
            ("nodes.email.content.body", "{% if user.vip %}VIP"),
            expect=[("nodes.email.content.body", "template does not parse")],
            id="unclosed-block",
        ),
        case(
            ("nodes.email.content.html", "<p>{% endif %}</p>"),
            expect=[("nodes.email.content.html", "template does not parse")],
            id="optional-field",
        ),
        case(
            ("nodes.email.content.body", "{% nosuchtag %}"),
            expect=[("nodes.email.content.body", "template does not parse: unexpected tag")],
            id="unknown-tag",
        ),
        case(
            ("nodes.push.content.data", {"deep_link": "shop://cart/{{ entry.cart_id"}),
            expect=[("nodes.push.content.data.deep_link", "template does not parse")],
            id="nested-object",
        ),
        case(
            ("nodes.email.channel", "webhook"),
            (
                "nodes.email.content",
                {"url": "https://crm.example.com", "body": {"tags": ["ok", "{{ }}"]}},
            ),
            expect=[("nodes.email.content.body.tags[1]", "template does not parse")],
            id="nested-list",
        ),
        case(
            ("nodes.tag.set.stage", "{{ user.plan "),
            expect=[("nodes.tag.set.stage", "template does not parse")],
            id="update_user-set",
        ),
        case(
            ("nodes.tag.set.labels", ["vip", "{% for %}"]),
            expect=[("nodes.tag.set.labels[1]", "template does not parse")],
            id="update_user-set-list",
        ),
        case(
            ("nodes.tag.set.score", 10),
            ("nodes.tag.set.vip", True),
            ("nodes.tag.set.cleared", None),
            expect=[],
            id="update_user-non-strings",
        ),
        case(
            ("nodes.email.content.subject", '{{ user.first_name | default: "there" | upcase }}'),
            ("nodes.email.content.body", "{% if variant == 'a' %}{{ journey.name }}{% endif %}"),
            expect=[],
            id="liquid-that-parses",
        ),
    ],
)
def test_templates(edits: list[Edit], expected: Expected) -> None:
    assert_problems(validate(changed(*edits)), expected)


# --- channel content -------------------------------------------------------------------------


def message(channel: str, content: dict[str, Any]) -> list[Edit]:
    return [("nodes.email.channel", channel), ("nodes.email.content", content)]


@pytest.mark.parametrize(
    ("edits", "expected"),
    [
        pytest.param(
            message("email", {"body": "Hi"}),
            [("nodes.email.content.subject", "required for email messages")],
            id="email-subject",
        ),
        pytest.param(
            message("email", {"subject": "Hi"}),
            [("nodes.email.content.body", "required for email messages")],
            id="email-body",
        ),
        pytest.param(
            message("email", {"subject": "   ", "body": "Hi"}),
            [("nodes.email.content.subject", "required for email messages")],
            id="email-blank-subject",
        ),
        pytest.param(
            message("email", {"subject": 5, "body": "Hi"}),
            [("nodes.email.content.subject", "required for email messages")],
            id="email-subject-not-a-string",
        ),
        pytest.param(
            message("email", {}),
            [
                ("nodes.email.content.subject", "required for email messages"),
                ("nodes.email.content.body", "required for email messages"),
            ],
            id="email-empty",
        ),
        pytest.param(
            message("push", {"body": "Hi"}),
            [("nodes.email.content.title", "required for push messages")],
            id="push-title",
        ),
        pytest.param(
            message("push", {"title": "Hi"}),
            [("nodes.email.content.body", "required for push messages")],
            id="push-body",
        ),
        pytest.param(
            message("sms", {"text": "Hi"}),
            [
                ("nodes.email.content.body", "required for sms messages"),
                ("nodes.email.content.text", "unknown field for sms messages"),
            ],
            id="sms-body",
        ),
        pytest.param(
            message("in_app", {"title": "Hi"}),
            [("nodes.email.content.body", "required for in_app messages")],
            id="in_app-body",
        ),
        pytest.param(
            message("webhook", {"method": "POST", "body": "{}"}),
            [("nodes.email.content.url", "required for webhook messages")],
            id="webhook-url",
        ),
        pytest.param(
            message("in_app", {"body": "Hi", "kind": "popup"}),
            [("nodes.email.content.kind", "must be one of modal, banner, tooltip")],
            id="in_app-kind",
        ),
        pytest.param(
            message("in_app", {"body": "Hi", "cta": {"label": "Go"}}),
            [("nodes.email.content.cta", "must be {label, url} strings")],
            id="in_app-cta",
        ),
        pytest.param(
            message("in_app", {"body": "Hi", "kind": "banner", "anchor": "#pay"}),
            [("nodes.email.content.anchor", 'only tooltips are anchored: set "kind": "tooltip"')],
            id="in_app-anchor-not-tooltip",
        ),
        pytest.param(
            message("in_app", {"body": "Hi", "kind": "tooltip", "anchor": " "}),
            [("nodes.email.content.anchor", "must be a CSS selector on one line")],
            id="in_app-anchor-blank",
        ),
        pytest.param(
            message("in_app", {"body": "Hi", "kind": "tooltip", "anchor": "#a" * 251}),
            [("nodes.email.content.anchor", "at most 500 characters")],
            id="in_app-anchor-long",
        ),
        pytest.param(
            message("webhook", {"url": "https://x.example", "method": "FETCH"}),
            [("nodes.email.content.method", "must be GET, POST, PUT, PATCH or DELETE")],
            id="webhook-method",
        ),
        pytest.param(
            message("fax", {"body": "Hi"}),
            [("nodes.email.channel", "Input should be 'email', 'push', 'sms', 'in_app'")],
            id="unknown-channel",
        ),
    ],
)
def test_channel_content(edits: list[Edit], expected: Expected) -> None:
    assert_problems(validate(changed(*edits)), expected)


@pytest.mark.parametrize(
    ("channel", "content"),
    [
        ("email", {"subject": "S", "body": "B"}),
        ("email", {"subject": "S", "body": "B", "html": "<p>B</p>"}),
        ("push", {"title": "T", "body": "B", "data": {"deep_link": "app://x"}}),
        ("sms", {"body": "B"}),
        ("in_app", {"body": "B"}),
        (
            "in_app",
            {"title": "T", "body": "B", "kind": "banner", "cta": {"label": "L", "url": "/u"}},
        ),
        ("in_app", {"body": "B", "kind": "tooltip", "anchor": "form#checkout > button.pay"}),
        ("webhook", {"url": "https://crm.example.com/hook"}),
        (
            "webhook",
            {
                "url": "https://crm.example.com/hook",
                "method": "PUT",
                "headers": {"X-Id": "{{ user.id }}"},
                "body": {"id": "{{ user.id }}"},
            },
        ),
    ],
)
def test_minimal_content_per_channel_is_valid(channel: str, content: dict[str, Any]) -> None:
    assert validate(changed(*message(channel, content))) == []


@pytest.mark.parametrize(
    ("edits", "expected"),
    [
        case(
            *message("email", {"subject": "S", "body": "B", "htlm": "<p>B</p>"}),
            expect=[("nodes.email.content.htlm", "unknown field")],
            id="content-typo",
        ),
        case(
            *message("push", {"title": "T", "body": "B", "data": "app://x"}),
            expect=[("nodes.email.content.data", "object")],
            id="push-data-not-object",
        ),
        case(
            *message("webhook", {"url": "https://x.example", "headers": "X-Id: 1"}),
            expect=[("nodes.email.content.headers", "object")],
            id="webhook-headers-not-object",
        ),
        case(
            *message("webhook", {"url": "https://x.example", "body": 42}),
            expect=[("nodes.email.content.body", "string or a JSON object of strings")],
            id="webhook-body-number",
        ),
    ],
)
def test_content_fields_and_shapes(edits: list[Edit], expected: Expected) -> None:
    assert_problems(validate(changed(*edits)), expected)


# --- unknown fields and node shapes ----------------------------------------------------------


@pytest.mark.parametrize(
    ("edits", "expected"),
    [
        case(
            ("name", DROP),
            ("nmae", "Cart"),
            expect=[("nmae", "unknown field"), ("name", "required field missing")],
            id="top-level",
        ),
        case(("descripton", "x"), expect=[("descripton", "unknown field")], id="description"),
        case(("entry.reentery", "7d"), expect=[("entry.reentery", "unknown field")], id="entry"),
        case(
            ("exit[0].wehre", {"segment": "vip"}),
            expect=[("exit[0].wehre", "unknown field")],
            id="exit-rule",
        ),
        case(
            ("goal.within", DROP),
            ("goal.witihn", "3d"),
            expect=[("goal.witihn", "unknown field"), ("goal.within", "required field missing")],
            id="goal",
        ),
        case(
            ("settings.quiet_hour", {"start": "22:00", "end": "08:00"}),
            expect=[("settings.quiet_hour", "unknown field")],
            id="settings",
        ),
        case(
            ("settings.quiet_hours.stop", "08:00"),
            expect=[("settings.quiet_hours.stop", "unknown field")],
            id="quiet-hours",
        ),
        case(("nodes.email.nxt", "done"), expect=[("nodes.email.nxt", "unknown field")], id="node"),
        case(
            ("nodes.wait.paths[0].nxt", "email"),
            expect=[("nodes.wait.paths[0].nxt", "unknown field")],
            id="wait-path",
        ),
        case(
            ("nodes.split.paths[0].then", "email"),
            expect=[("nodes.split.paths[0].then", "unknown field")],
            id="branch-path",
        ),
        case(
            ("nodes.test.variants[0].wieght", 50),
            ("nodes.test.variants[0].weight", DROP),
            expect=[
                ("nodes.test.variants[0].wieght", "unknown field"),
                ("nodes.test.variants[0].weight", "required field missing"),
            ],
            id="variant",
        ),
        case(
            ("entry.where.vlaue", 0),
            expect=[("entry.where.vlaue", "unknown field")],
            id="condition",
        ),
        case(
            ("nodes.done.next", None),
            expect=[("nodes.done.next", "unknown field")],
            id="exit-node-has-no-next",
        ),
        case(
            ("nodes.pause.duration", DROP),
            ("nodes.pause.until", {"time": "10:00", "timezon": "UTC"}),
            expect=[("nodes.pause.until.timezon", "unknown field")],
            id="until",
        ),
        case(
            ("nodes.split.else_", "test"),
            ("nodes.split.else", DROP),
            expect=[("nodes.split.else_", "unknown field")],
            id="python-name-of-else",
        ),
    ],
)
def test_unknown_fields(edits: list[Edit], expected: Expected) -> None:
    assert_problems(validate(changed(*edits)), expected)


TYPE_MESSAGE = (
    "'type' must be one of message, delay, wait_for_event, wait_for_inactivity, branch, "
    "experiment, update_user, exit"
)


@pytest.mark.parametrize(
    ("edits", "expected"),
    [
        case(("nodes.pause.type", "sleep"), expect=[("nodes.pause", TYPE_MESSAGE)], id="type"),
        case(("nodes.pause.type", DROP), expect=[("nodes.pause", TYPE_MESSAGE)], id="no-type"),
        case(("nodes.pause", "delay 1h"), expect=[("nodes.pause", TYPE_MESSAGE)], id="no-object"),
        case(
            ("nodes.email.template", "cart-reminder"),
            expect=[("nodes.email", "a message needs exactly one of content, template")],
            id="message-content-and-template",
        ),
        case(
            ("nodes.email.content", DROP),
            expect=[("nodes.email", "a message needs exactly one of content, template")],
            id="message-neither",
        ),
        case(
            ("nodes.email.content", DROP),
            ("nodes.email.template", "Cart Reminder"),
            expect=[("nodes.email.template", "String should match pattern")],
            id="template-id-not-a-slug",
        ),
        case(
            ("nodes.pause.until", {"time": "10:00"}),
            expect=[("nodes.pause", "a delay needs exactly one of duration, until")],
            id="delay-duration-and-until",
        ),
        case(
            ("nodes.pause.duration", DROP),
            expect=[("nodes.pause", "a delay needs exactly one of duration, until")],
            id="delay-neither",
        ),
        case(
            ("nodes.pause.duration", DROP),
            ("nodes.pause.until", {"time": "optimal"}),
            expect=[("nodes.pause.until", "'optimal' needs a 'fallback' time (HH:MM)")],
            id="optimal-without-fallback",
        ),
        case(
            ("nodes.pause.duration", DROP),
            ("nodes.pause.until", {"time": "10:00", "weekdays": []}),
            expect=[("nodes.pause.until", "'weekdays' must name at least one day")],
            id="no-weekdays",
        ),
        case(
            ("nodes.pause.duration", DROP),
            ("nodes.pause.until", {"time": "10:00", "weekdays": ["mon", "Friday"]}),
            expect=[("nodes.pause.until.weekdays[1]", "Input should be 'mon', 'tue'")],
            id="bad-weekday",
        ),
        case(
            ("nodes.wait.paths", []),
            expect=[("nodes.wait.paths", "at least 1 item")],
            id="wait-without-paths",
        ),
        case(
            ("nodes.wait.timeout", DROP),
            expect=[("nodes.wait.timeout", "required field missing")],
            id="wait-without-timeout",
        ),
        case(
            ("nodes.wait.paths[0].event", DROP),
            expect=[("nodes.wait.paths[0].event", "required field missing")],
            id="wait-path-without-event",
        ),
        case(
            ("nodes.split.paths", []),
            expect=[("nodes.split.paths", "at least 1 item")],
            id="branch-without-paths",
        ),
        case(
            ("nodes.split.paths[0].when", DROP),
            expect=[("nodes.split.paths[0].when", "required field missing")],
            id="branch-path-without-when",
        ),
        case(
            ("nodes.idle.events", ["Product Viewed", ""]),
            expect=[("nodes.idle.events[1]", "at least 1 character")],
            id="inactivity-empty-event-name",
        ),
        case(
            ("nodes.tag.unset", ["stage"]),
            expect=[("nodes.tag.unset[0]", "trait 'stage' is also set")],
            id="update_user-set-and-unset",
        ),
        case(
            ("nodes.tag.unset", [""]),
            expect=[("nodes.tag.unset[0]", "at least 1 character")],
            id="update_user-empty-trait",
        ),
        case(
            ("nodes.email.transactional", "sometimes"),
            expect=[("nodes.email.transactional", "valid boolean")],
            id="transactional-not-bool",
        ),
    ],
)
def test_nodes(edits: list[Edit], expected: Expected) -> None:
    assert_problems(validate(changed(*edits)), expected)


@pytest.mark.parametrize("node_id", ["send_email", "send-email", "step2", "a", "0_first"])
def test_node_ids_with_underscores_and_hyphens(node_id: str) -> None:
    document = changed(("nodes.done", DROP), ("nodes.email.next", node_id))
    document["nodes"][node_id] = {"type": "exit"}
    assert validate(document) == []


def test_bad_node_id_is_reported_at_the_node() -> None:
    document = changed(("nodes.Bad Id", {"type": "exit"}))
    assert_problems(validate(document), [("nodes.Bad Id", "String should match pattern")])


# --- clock times and time zones --------------------------------------------------------------

UNTIL_PATH = "nodes.pause.until"


def until(**fields: Any) -> list[Edit]:
    return [("nodes.pause.duration", DROP), (UNTIL_PATH, fields)]


@pytest.mark.parametrize(
    ("edits", "expected"),
    [
        case(
            ("settings.timezone", "Mars/Olympus_Mons"),
            expect=[("settings.timezone", "unknown time zone")],
            id="unknown-zone",
        ),
        case(
            ("settings.timezone", "Europe/Paris "),
            expect=[("settings.timezone", "unknown time zone")],
            id="zone-with-space",
        ),
        case(
            ("settings.timezone", ""),
            expect=[("settings.timezone", "unknown time zone")],
            id="empty",
        ),
        case(
            ("settings.timezone", "America"),
            expect=[("settings.timezone", "unknown time zone")],
            id="zone-area-alone",
        ),
        case(
            ("settings.quiet_hours.start", "8:00"),
            expect=[("settings.quiet_hours.start", "use HH:MM, 00:00 to 23:59")],
            id="one-digit-hour",
        ),
        case(
            ("settings.quiet_hours.end", "24:00"),
            expect=[("settings.quiet_hours.end", "use HH:MM")],
            id="hour-24",
        ),
        case(
            ("settings.quiet_hours.end", "07:60"),
            expect=[("settings.quiet_hours.end", "use HH:MM")],
            id="minute-60",
        ),
        case(
            ("settings.quiet_hours.start", "22:00:00"),
            expect=[("settings.quiet_hours.start", "use HH:MM")],
            id="seconds",
        ),
        case(
            ("settings.quiet_hours.start", "10pm"),
            expect=[("settings.quiet_hours.start", "use HH:MM")],
            id="am-pm",
        ),
        case(
            ("settings.quiet_hours.action", "postpone"),
            expect=[("settings.quiet_hours.action", "Input should be 'delay' or 'skip'")],
            id="quiet-hours-action",
        ),
        case(
            *until(time="optimal", fallback="9am"),
            expect=[("nodes.pause.until.fallback", "use HH:MM")],
            id="fallback",
        ),
        case(
            *until(time="25:00"),
            expect=[(f"{UNTIL_PATH}.time", "use HH:MM")],
            id="until-time",
        ),
        case(
            *until(time="10:00", timezone="Mars/Olympus_Mons"),
            expect=[(f"{UNTIL_PATH}.timezone", "unknown time zone")],
            id="until-timezone",
        ),
    ],
)
def test_clock_times_and_time_zones(edits: list[Edit], expected: Expected) -> None:
    assert_problems(validate(changed(*edits)), expected)


@pytest.mark.parametrize(
    "fields",
    [
        {"time": "00:00"},
        {"time": "23:59", "weekdays": ["sat", "sun"]},
        {"time": "10:00", "weekdays": ["mon"], "timezone": "user"},
        {"time": "09:30", "timezone": "Asia/Tokyo"},
        {"time": "optimal", "fallback": "18:00"},
    ],
)
def test_good_until(fields: dict[str, Any]) -> None:
    assert validate(changed(*until(**fields))) == []


@pytest.mark.parametrize(
    ("edits", "expected"),
    [
        case(
            ("settings.quiet_hours.start", "25:00"),
            expect=[("settings.quiet_hours.start", "bad time '25:00'")],
            id="clock",
        ),
        case(
            ("settings.timezone", "Mars/Olympus_Mons"),
            expect=[("settings.timezone", "unknown time zone 'Mars/Olympus_Mons'")],
            id="timezone",
        ),
        case(
            ("entry.where.field", "profile.plan"),
            expect=[("entry.where.field", "bad field 'profile.plan'")],
            id="field",
        ),
    ],
)
def test_messages_name_the_bad_value(edits: list[Edit], expected: Expected) -> None:
    assert_problems(validate(changed(*edits)), expected)


# --- publish time: segments and stored templates ---------------------------------------------

SEGMENT_REFERENCES = [
    pytest.param(
        [("entry.event", DROP), ("entry.where", DROP), ("entry.segment", "vip")],
        "entry.segment",
        id="entry-segment",
    ),
    pytest.param([("entry.audience", {"segment": "vip"})], "entry.audience.segment", id="audience"),
    pytest.param(
        [("entry.where", {"all": [{"segment": "vip"}]})], "entry.where.all[0].segment", id="where"
    ),
    pytest.param(
        [("exit[1]", {"when": {"not": {"segment": "vip"}}})],
        "exit[1].when.not.segment",
        id="exit-when",
    ),
    pytest.param(
        [
            (
                "goal.where",
                {"any": [{"field": "event.total", "op": "gt", "value": 0}, {"segment": "vip"}]},
            )
        ],
        "goal.where.any[1].segment",
        id="goal-where",
    ),
    pytest.param(
        [("nodes.split.paths[0].when", {"segment": "vip"})],
        "nodes.split.paths[0].when.segment",
        id="branch",
    ),
    pytest.param(
        [("nodes.wait.paths[0].where", {"segment": "vip"})],
        "nodes.wait.paths[0].where.segment",
        id="wait-path",
    ),
    pytest.param(
        [
            (
                "entry.audience",
                {
                    "event_count": {"event": "Viewed", "where": {"segment": "vip"}},
                    "op": "gte",
                    "value": 1,
                },
            )
        ],
        "entry.audience.event_count.where.segment",
        id="event_count-where",
    ),
]


@pytest.mark.parametrize(("edits", "path"), SEGMENT_REFERENCES)
def test_unknown_segment_on_publish(edits: list[Edit], path: str) -> None:
    document = changed(*edits)
    assert validate(document) == []  # drafts do not need the store
    assert validate(document, segments={"vip"}) == []
    assert_problems(validate(document, segments={"churned"}), [(path, "unknown segment 'vip'")])
    assert_problems(validate(document, segments=set()), [(path, "unknown segment 'vip'")])


def test_every_unknown_segment_is_reported() -> None:
    document = changed(
        ("entry.audience", {"all": [{"segment": "vip"}, {"not": {"segment": "churned"}}]}),
        ("nodes.split.paths[0].when", {"segment": "vip"}),
    )
    assert_problems(
        validate(document, segments={"churned"}),
        [
            ("entry.audience.all[0].segment", "unknown segment 'vip'"),
            ("nodes.split.paths[0].when.segment", "unknown segment 'vip'"),
        ],
    )


@pytest.mark.parametrize(
    ("templates_known", "expected"),
    [
        pytest.param(None, [], id="draft"),
        pytest.param({"cart-reminder", "welcome"}, [], id="known"),
        pytest.param(
            {"welcome"},
            [("nodes.email.template", "unknown template 'cart-reminder'")],
            id="unknown",
        ),
        pytest.param(
            set(),
            [("nodes.email.template", "unknown template 'cart-reminder'")],
            id="empty-store",
        ),
    ],
)
def test_unknown_template_on_publish(templates_known: set[str] | None, expected: Expected) -> None:
    document = changed(("nodes.email.content", DROP), ("nodes.email.template", "cart-reminder"))
    assert_problems(validate(document, templates_known=templates_known), expected)


# --- durations in both notations -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "length"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("24h", timedelta(hours=24)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(weeks=2)),
        ("365d", timedelta(days=365)),
        ("1s", timedelta(seconds=1)),
        ("PT90S", timedelta(seconds=90)),
        ("PT15M", timedelta(minutes=15)),
        ("PT24H", timedelta(hours=24)),
        ("P7D", timedelta(days=7)),
        ("P2W", timedelta(weeks=2)),
        ("P1DT12H", timedelta(days=1, hours=12)),
        ("PT1H30M", timedelta(hours=1, minutes=30)),
        ("PT0.5S", timedelta(milliseconds=500)),
        ("P365D", timedelta(days=365)),
        ("PT8760H", timedelta(days=365)),
    ],
)
def test_parse_duration(text: str, length: timedelta) -> None:
    assert parse_duration(text) == length


@pytest.mark.parametrize(("text", "fragment"), BAD_DURATIONS)
def test_parse_duration_refuses(text: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=re.escape(fragment)):
        parse_duration(text)


@pytest.mark.parametrize("text", ["1000000000d", "P9999999999D"])
def test_parse_duration_refuses_huge(text: str) -> None:
    with pytest.raises(ValueError, match="must be at most 365 days"):
        parse_duration(text)
