"""Condition evaluation: every op, missing fields, numbers, nesting, facts and lookups."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter

from journeys.conditions import (
    Fact,
    compare,
    evaluate,
    fact_key,
    facts_needed,
    lookup,
    no_facts,
)
from journeys.model import Condition, EventCountCondition, SegmentCondition

CONDITION: TypeAdapter[Condition] = TypeAdapter(Condition)

CONTEXT: dict[str, Any] = {
    "user": {
        "id": "u-1",
        "email": "ada@example.com",
        "first_name": "Ada",
        "plan": "pro",
        "age": 36,
        "score": "42",
        "code": "007",
        "vip": True,
        "nickname": None,
        "tags": ["beta", "early-adopter", 7],
        "address": {"city": "London", "lines": ["1 Main St", "Flat 2"]},
        "orders": [{"total": 120.5, "items": [{"sku": "A1"}]}, {"total": 30}],
        "signed_up_at": "2024-03-01T10:00:00Z",
    },
    "entry": {"total_price": 149.99, "currency": "USD", "items": ["A1", "B2"]},
    "event": {"product_name": "Lamp", "price": "19.90"},
}


def cond(raw: dict[str, Any]) -> Condition:
    return CONDITION.validate_python(raw)


def holds(raw: dict[str, Any], context: dict[str, Any] | None = None) -> bool:
    return evaluate(cond(raw), CONTEXT if context is None else context)


# --- lookup ----------------------------------------------------------------------------------

MISSING = lookup({}, "user.nothing")
"""What `lookup` returns for a missing path (a private sentinel)."""


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("user.first_name", "Ada"),
        ("user.address.city", "London"),
        ("user.address.lines.1", "Flat 2"),
        ("user.tags.0", "beta"),
        ("user.tags.2", 7),
        ("user.orders.0.items.0.sku", "A1"),
        ("user.orders.1.total", 30),
        ("user.nickname", None),
        ("user.vip", True),
        ("entry.items", ["A1", "B2"]),
        ("user.address", {"city": "London", "lines": ["1 Main St", "Flat 2"]}),
    ],
)
def test_lookup_finds(path: str, value: Any) -> None:
    assert lookup(CONTEXT, path) == value


@pytest.mark.parametrize(
    "path",
    [
        "user.last_name",
        "user.address.zip",
        "user.address.lines.2",
        "user.tags.-1",
        "user.tags.first",
        "user.first_name.0",
        "user.age.value",
        "user.nickname.x",
        "journey.id",
        "user.orders.0.items.1.sku",
        "entry.total_price.cents",
    ],
)
def test_lookup_misses(path: str) -> None:
    assert lookup(CONTEXT, path) is MISSING


def test_lookup_reads_digit_keys_of_objects() -> None:
    assert lookup({"user": {"scores": {"2024": 9}}}, "user.scores.2024") == 9


def test_lookup_of_odd_digit_index_is_missing() -> None:
    assert lookup({"user": {"tags": ["a"]}}, "user.tags.²") is MISSING


# --- compare: every op -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("actual", "op", "expected", "result"),
    [
        # eq / ne
        ("pro", "eq", "pro", True),
        ("pro", "eq", "Pro", False),
        ("pro", "ne", "free", True),
        ("pro", "ne", "pro", False),
        (36, "eq", 36, True),
        (36, "eq", 36.0, True),
        (True, "eq", True, True),
        (False, "eq", True, False),
        (["a", "b"], "eq", ["a", "b"], True),
        # numbers compare as numbers, also against numeric strings
        ("42", "eq", 42, True),
        (42, "eq", "42", True),
        ("42.0", "eq", 42, True),
        ("19.90", "eq", 19.9, True),
        ("42", "ne", 42, False),
        # two strings compare as strings
        ("007", "eq", "7", False),
        ("007", "ne", "7", True),
        ("007", "eq", "007", True),
        ("007", "eq", 7, True),
        ("abc", "eq", 0, False),
        # ordering
        (36, "gt", 18, True),
        (18, "gt", 18, False),
        (18, "gte", 18, True),
        (17, "gte", 18, False),
        (17, "lt", 18, True),
        (18, "lt", 18, False),
        (18, "lte", 18, True),
        (19, "lte", 18, False),
        (149.99, "gte", 100, True),
        ("10", "gt", "9", True),
        ("10", "gt", 9, True),
        (10, "lt", "9.5", False),
        ("9", "lt", 10, True),
        ("2024-03-01", "lt", "2024-12-31", True),
        ("2024-03-01T10:00:00Z", "gte", "2024-03-01", True),
        ("banana", "gt", "apple", True),
        ("abc", "gt", 5, False),
        ("abc", "lt", 5, False),
        (["a"], "gt", 0, False),
        (True, "gt", 0, False),
        # in / not_in
        ("pro", "in", ["pro", "team"], True),
        ("free", "in", ["pro", "team"], False),
        ("5", "in", [5, 6], True),
        (5, "in", ["5"], True),
        ("007", "in", ["7"], False),
        ("pro", "in", [], False),
        ("free", "not_in", ["pro", "team"], True),
        ("pro", "not_in", ["pro", "team"], False),
        ("6", "not_in", [5, 6], False),
        ("pro", "not_in", [], True),
        # integers compare exactly, even beyond any float
        (5, "gt", 10**400, False),
        (5, "lt", 10**400, True),
        (10**400, "gt", 1.5, True),
        (-(10**400), "lte", "-1e300", True),
        (10**400, "lt", 10**401, True),
        (10**400, "eq", 10**401, False),
        (10**400, "ne", 10**401, True),
        (2**53 + 1, "eq", 2**53, False),
        # contains: substring of a string, or member of a list
        ("ada@example.com", "contains", "@example", True),
        ("ada@example.com", "contains", "@other", False),
        ("order 42", "contains", 42, False),
        (["beta", "early-adopter", 7], "contains", "beta", True),
        (["beta", "early-adopter", 7], "contains", "7", True),
        (["beta", "early-adopter"], "contains", "early", False),
        ([], "contains", "beta", False),
        ({"beta": True}, "contains", "beta", False),
        (42, "contains", 4, False),
        # starts_with: strings only
        ("ada@example.com", "starts_with", "ada", True),
        ("ada@example.com", "starts_with", "bob", False),
        ("ada", "starts_with", "", True),
        (4200, "starts_with", "42", False),
        (["ada"], "starts_with", "ada", False),
        # exists / not_exists
        ("pro", "exists", None, True),
        ("", "exists", None, True),
        (0, "exists", None, True),
        (False, "exists", None, True),
        ([], "exists", None, True),
        ("pro", "not_exists", None, False),
        (0, "not_exists", None, False),
        # null counts as missing
        (None, "exists", None, False),
        (None, "not_exists", None, True),
        (None, "eq", None, False),
        (None, "ne", "pro", False),
        (None, "not_in", ["pro"], False),
    ],
)
def test_compare(actual: Any, op: str, expected: Any, result: bool) -> None:
    assert compare(actual, op, expected) is result


@pytest.mark.parametrize(
    ("op", "expected"),
    [
        ("eq", "x"),
        ("ne", "x"),
        ("gt", 0),
        ("gte", 0),
        ("lt", 0),
        ("lte", 0),
        ("in", ["x"]),
        ("not_in", ["x"]),
        ("contains", "x"),
        ("starts_with", "x"),
        ("exists", None),
    ],
)
def test_missing_field_makes_every_op_false(op: str, expected: Any) -> None:
    raw: dict[str, Any] = {"field": "user.last_name", "op": op}
    if expected is not None:
        raw["value"] = expected
    assert compare(MISSING, op, expected) is False
    assert holds(raw) is False


def test_missing_field_not_exists_is_true() -> None:
    assert compare(MISSING, "not_exists", None) is True
    assert holds({"field": "user.last_name", "op": "not_exists"}) is True
    assert holds({"field": "user.address.lines.9", "op": "not_exists"}) is True
    assert holds({"field": "user.first_name", "op": "not_exists"}) is False


def test_unknown_op_is_false() -> None:
    assert compare("pro", "matches", "pro") is False


# --- evaluate --------------------------------------------------------------------------------

YES = {"field": "user.plan", "op": "eq", "value": "pro"}
NO = {"field": "user.plan", "op": "eq", "value": "free"}


@pytest.mark.parametrize(
    ("raw", "result"),
    [
        # the three namespaces and nested paths
        ({"field": "user.address.city", "op": "eq", "value": "London"}, True),
        ({"field": "user.address.lines.0", "op": "starts_with", "value": "1 "}, True),
        ({"field": "user.orders.0.total", "op": "gt", "value": 100}, True),
        ({"field": "user.orders.1.total", "op": "gt", "value": 100}, False),
        ({"field": "user.orders.0.items.0.sku", "op": "in", "value": ["A1"]}, True),
        ({"field": "entry.total_price", "op": "gte", "value": 100}, True),
        ({"field": "entry.items", "op": "contains", "value": "B2"}, True),
        ({"field": "event.price", "op": "lt", "value": 20}, True),
        ({"field": "event.product_name", "op": "eq", "value": "Lamp"}, True),
        ({"field": "user.score", "op": "gte", "value": 40}, True),
        ({"field": "user.code", "op": "eq", "value": "7"}, False),
        ({"field": "user.code", "op": "eq", "value": 7}, True),
        ({"field": "user.nickname", "op": "not_exists"}, True),
        # all / any / not, nested
        ({"all": [YES, YES]}, True),
        ({"all": [YES, NO]}, False),
        ({"all": []}, True),
        ({"any": [NO, YES]}, True),
        ({"any": [NO, NO]}, False),
        ({"any": []}, False),
        ({"not": YES}, False),
        ({"not": NO}, True),
        ({"not": {"not": YES}}, True),
        ({"all": [YES, {"any": [NO, {"not": NO}]}]}, True),
        ({"any": [{"all": [YES, NO]}, {"not": {"any": [YES]}}]}, False),
        (
            {
                "all": [
                    {"field": "user.email", "op": "exists"},
                    {"not": {"field": "user.plan", "op": "in", "value": ["free", "trial"]}},
                    {"any": [{"field": "user.age", "op": "gte", "value": 18}, NO]},
                ]
            },
            True,
        ),
    ],
)
def test_evaluate(raw: dict[str, Any], result: bool) -> None:
    assert holds(raw) is result


def test_missing_namespace_is_missing() -> None:
    context: dict[str, Any] = {"user": {"plan": "pro"}}
    assert holds({"field": "entry.total_price", "op": "gt", "value": 0}, context) is False
    assert holds({"field": "event.name", "op": "not_exists"}, context) is True


def test_all_and_any_stop_early() -> None:
    asked: list[str] = []

    def facts(fact: Fact) -> bool | int:
        asked.append(fact_key(fact))
        return True

    assert evaluate(cond({"any": [YES, {"segment": "vip"}]}), CONTEXT, facts) is True
    assert evaluate(cond({"all": [NO, {"segment": "vip"}]}), CONTEXT, facts) is False
    assert asked == []


# --- facts: segments and event counts --------------------------------------------------------

VIEWED_3_IN_1D: dict[str, Any] = {
    "event_count": {"event": "Product Viewed", "within": "1d"},
    "op": "gte",
    "value": 3,
}
INACTIVE_7D: dict[str, Any] = {
    "event_count": {"event": "*", "within": "7d"},
    "op": "eq",
    "value": 0,
}


class Store:
    """Answers facts like the store would, and records what was asked."""

    def __init__(self, segments: set[str], counts: dict[str, int]) -> None:
        self.segments = segments
        self.counts = counts
        self.asked: list[Fact] = []

    def __call__(self, fact: Fact) -> bool | int:
        self.asked.append(fact)
        match fact:
            case SegmentCondition(segment=segment):
                return segment in self.segments
            case EventCountCondition(event_count=count):
                return self.counts.get(count.event, 0)
        raise AssertionError(fact)


@pytest.mark.parametrize(
    ("raw", "segments", "counts", "result"),
    [
        ({"segment": "vip"}, {"vip"}, {}, True),
        ({"segment": "vip"}, {"churned"}, {}, False),
        ({"not": {"segment": "vip"}}, set(), {}, True),
        (VIEWED_3_IN_1D, set(), {"Product Viewed": 3}, True),
        (VIEWED_3_IN_1D, set(), {"Product Viewed": 2}, False),
        (INACTIVE_7D, set(), {}, True),
        (INACTIVE_7D, set(), {"*": 1}, False),
        ({**VIEWED_3_IN_1D, "op": "lt", "value": 3}, set(), {"Product Viewed": 2}, True),
        ({**VIEWED_3_IN_1D, "op": "ne", "value": 3}, set(), {"Product Viewed": 3}, False),
        ({"all": [YES, {"segment": "vip"}, VIEWED_3_IN_1D]}, {"vip"}, {"Product Viewed": 5}, True),
        ({"all": [YES, {"segment": "vip"}, VIEWED_3_IN_1D]}, {"vip"}, {"Product Viewed": 1}, False),
    ],
)
def test_facts_are_answered_by_the_callable(
    raw: dict[str, Any], segments: set[str], counts: dict[str, int], result: bool
) -> None:
    store = Store(segments, counts)
    assert evaluate(cond(raw), CONTEXT, store) is result
    assert store.asked


def test_event_count_compares_the_answer_as_an_int() -> None:
    assert evaluate(cond(VIEWED_3_IN_1D), CONTEXT, lambda fact: True) is False  # True is 1
    assert evaluate(cond({**VIEWED_3_IN_1D, "value": 1}), CONTEXT, lambda fact: True) is True


def test_the_fact_asked_is_the_condition_itself() -> None:
    condition = cond({"all": [{"segment": "vip"}, VIEWED_3_IN_1D]})
    store = Store({"vip"}, {"Product Viewed": 9})
    evaluate(condition, CONTEXT, store)
    assert store.asked == [cond({"segment": "vip"}), cond(VIEWED_3_IN_1D)]


def test_without_facts_asking_is_an_error() -> None:
    with pytest.raises(LookupError, match="no answer for"):
        evaluate(cond({"segment": "vip"}), CONTEXT)
    with pytest.raises(LookupError):
        no_facts(SegmentCondition(segment="vip"))
    assert evaluate(cond(YES), CONTEXT) is True  # field conditions need no facts


@pytest.mark.parametrize(
    ("raw", "needed"),
    [
        (YES, []),
        ({"segment": "vip"}, [{"segment": "vip"}]),
        (VIEWED_3_IN_1D, [VIEWED_3_IN_1D]),
        (
            {"all": [{"segment": "vip"}, {"any": [YES, {"not": INACTIVE_7D}]}]},
            [{"segment": "vip"}, INACTIVE_7D],
        ),
        ({"any": [{"segment": "vip"}, {"not": {"segment": "vip"}}]}, [{"segment": "vip"}]),
        (
            {"all": [{"segment": "b"}, {"segment": "a"}, {"segment": "b"}]},
            [{"segment": "b"}, {"segment": "a"}],
        ),
        (
            # A segment inside an event_count's `where` is for the store to apply, not a fact.
            {
                "event_count": {"event": "Order Completed", "where": {"segment": "vip"}},
                "op": "gte",
                "value": 1,
            },
            [
                {
                    "event_count": {"event": "Order Completed", "where": {"segment": "vip"}},
                    "op": "gte",
                    "value": 1,
                }
            ],
        ),
    ],
)
def test_facts_needed(raw: dict[str, Any], needed: list[dict[str, Any]]) -> None:
    assert facts_needed(cond(raw)) == [cond(item) for item in needed]


def test_facts_needed_of_nothing() -> None:
    assert facts_needed(None) == []


def test_facts_needed_answers_evaluate() -> None:
    condition = cond({"all": [{"segment": "vip"}, {"not": INACTIVE_7D}]})
    answers = {fact_key(fact): Store({"vip"}, {"*": 4})(fact) for fact in facts_needed(condition)}
    assert evaluate(condition, CONTEXT, lambda fact: answers[fact_key(fact)]) is True


@pytest.mark.parametrize(
    "where",
    [
        {"field": "event.sku", "op": "in", "value": ["A1", "B2"]},
        {"all": [{"field": "event.total", "op": "gt", "value": 0}]},
    ],
)
def test_facts_needed_with_lists_inside(where: dict[str, Any]) -> None:
    raw = {"event_count": {"event": "Order Completed", "where": where}, "op": "gte", "value": 1}
    assert facts_needed(cond({"all": [raw, raw]})) == [cond(raw)]


def test_fact_key_is_stable_and_distinct() -> None:
    a = cond({"event_count": {"within": "7d", "event": "*"}, "value": 0, "op": "eq"})
    b = cond({"op": "eq", "value": 0, "event_count": {"event": "*", "within": "7d"}})
    c = cond({"event_count": {"event": "*", "within": "P7D"}, "op": "eq", "value": 0})
    assert isinstance(a, EventCountCondition)
    assert isinstance(b, EventCountCondition)
    assert isinstance(c, EventCountCondition)
    assert fact_key(a) == fact_key(b)
    assert fact_key(a) != fact_key(c)
    assert fact_key(a) == '{"event_count": {"event": "*", "within": "7d"}, "op": "eq", "value": 0}'
    assert fact_key(SegmentCondition(segment="vip")) == '{"segment": "vip"}'


def test_fact_key_uses_the_document_names() -> None:
    fact = cond(
        {
            "event_count": {
                "event": "Viewed",
                "where": {"not": {"field": "event.x", "op": "exists"}},
            },
            "op": "gte",
            "value": 1,
        }
    )
    assert isinstance(fact, EventCountCondition)
    key = fact_key(fact)
    assert '"not": {' in key
    assert "not_" not in key
    assert '"within"' not in key  # absent options are left out
