"""Condition evaluation as a pure function over the three namespaces.

A context is `{"user": {...}, "entry": {...}, "event": {...}}`. Segment membership and
`event_count` depend on the store; the evaluator asks `facts` for them, so the same code runs
in the workflow (facts fetched beforehand by an activity) and in activities (facts computed on
demand from the store). A `message` condition asks how far a run's delivery of a message node
got: only a run knows, so the workflow passes its `engagement`; elsewhere it is false.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from numbers import Real
from typing import Any

from journeys.engagement import ENGAGEMENTS, Engagement
from journeys.model import (
    AllOf,
    AnyOf,
    Condition,
    EventCountCondition,
    FieldCondition,
    MessageCondition,
    NotOf,
    SegmentCondition,
)

Fact = SegmentCondition | EventCountCondition
FactAnswer = Callable[[Fact], bool | int]
_MISSING = object()


def fact_key(fact: Fact) -> str:
    """A stable key for a fact, to carry answers across the activity boundary."""
    return json.dumps(
        fact.model_dump(mode="json", by_alias=True, exclude_none=True), sort_keys=True
    )


def facts_needed(condition: Condition | None) -> list[Fact]:
    """The facts `evaluate` will ask for (those inside an `event_count.where` are the store's)."""
    if condition is None:
        return []
    return list({fact_key(fact): fact for fact in _facts(condition)}.values())


def _facts(condition: Condition) -> Iterator[Fact]:
    match condition:
        case AllOf(all=items) | AnyOf(any=items):
            for item in items:
                yield from _facts(item)
        case NotOf(not_=inner):
            yield from _facts(inner)
        case SegmentCondition() | EventCountCondition():
            yield condition


def no_facts(fact: Fact) -> bool | int:
    """For conditions known to need none; asking is a programming error."""
    raise LookupError(f"no answer for {fact_key(fact)}")


def evaluate(
    condition: Condition,
    context: Mapping[str, Any],
    facts: FactAnswer = no_facts,
    engagement: Mapping[str, Engagement] | None = None,
) -> bool:
    """Whether `condition` holds in `context`; `engagement` is how far each message node's
    delivery got in the run evaluating it (a node missing there was not sent)."""
    match condition:
        case AllOf(all=items):
            return all(evaluate(item, context, facts, engagement) for item in items)
        case AnyOf(any=items):
            return any(evaluate(item, context, facts, engagement) for item in items)
        case NotOf(not_=inner):
            return not evaluate(inner, context, facts, engagement)
        case FieldCondition(field=path, op=op, value=expected):
            return compare(lookup(context, path), op, expected)
        case SegmentCondition():
            return bool(facts(condition))
        case EventCountCondition(op=op, value=expected):
            return compare(int(facts(condition)), op, expected)
        case MessageCondition(message=node_id, engagement=wanted):
            reached = (engagement or {}).get(node_id)
            return reached is not None and ENGAGEMENTS.index(reached) >= ENGAGEMENTS.index(wanted)
    raise AssertionError(f"unhandled condition {condition!r}")


def carries(properties: Mapping[str, Any], expected: Mapping[str, str]) -> bool:
    """Whether an event's properties hold every expected value (a keyed `match`: dotted names
    reach nested properties; values compare as `eq` does, so `"42"` matches `42`)."""
    return all(compare(lookup(properties, name), "eq", value) for name, value in expected.items())


def lookup(context: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path, or `_MISSING`; digits index into lists."""
    value: Any = context
    for part in path.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdecimal() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def _number(value: Any) -> int | float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value  # as it is: Python compares integers exactly, even beyond any float
    if isinstance(value, Real):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _equal(actual: Any, expected: Any) -> bool:
    # Numbers compare as numbers, also against numeric strings ("100" eq 100); two strings
    # compare as strings, so "007" is not "7"; booleans equal only booleans (True is not 1).
    if isinstance(actual, bool) or isinstance(expected, bool):
        return type(actual) is type(expected) and actual == expected
    if not (isinstance(actual, str) and isinstance(expected, str)):
        a, b = _number(actual), _number(expected)
        if a is not None and b is not None:
            return a == b
    return bool(actual == expected)


def compare(actual: Any, op: str, expected: Any) -> bool:
    """Apply an operator; a missing value makes every operator false except `not_exists`."""
    if op == "not_exists":
        return actual is _MISSING or actual is None
    if actual is _MISSING or actual is None:
        return False
    match op:
        case "exists":
            return True
        case "eq":
            return _equal(actual, expected)
        case "ne":
            return not _equal(actual, expected)
        case "in":
            return any(_equal(actual, item) for item in expected)
        case "not_in":
            return not any(_equal(actual, item) for item in expected)
        case "contains":
            if isinstance(actual, str):
                return isinstance(expected, str) and expected in actual
            if isinstance(actual, list | tuple):
                return any(_equal(item, expected) for item in actual)
            return False
        case "starts_with":
            return (
                isinstance(actual, str)
                and isinstance(expected, str)
                and actual.startswith(expected)
            )
        case "gt" | "gte" | "lt" | "lte":
            return _order(actual, op, expected)
    return False


def _order(actual: Any, op: str, expected: Any) -> bool:
    a, b = _number(actual), _number(expected)
    left: Any
    right: Any
    if a is not None and b is not None:
        left, right = a, b
    elif isinstance(actual, str) and isinstance(expected, str):
        left, right = actual, expected  # ISO dates and plain strings order lexically
    else:
        return False
    match op:
        case "gt":
            return bool(left > right)
        case "gte":
            return bool(left >= right)
        case "lt":
            return bool(left < right)
    return bool(left <= right)
