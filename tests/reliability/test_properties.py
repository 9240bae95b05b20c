"""Property-based tests (hypothesis): random documents never crash validation, random conditions
never crash the evaluator, and random valid journeys run to an end on the time-skipping server.

Example counts are bounded so the module takes seconds; hypothesis's database is off, so every
run explores fresh examples and a failure prints the example that reproduces it.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pydantic
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from journeys.conditions import Fact, evaluate
from journeys.facts import CONDITION
from journeys.model import CHANNELS, Journey
from journeys.store import Store
from journeys.validation import Problem, validate
from tests.factories import merge_traits
from tests.workflows.helpers import start, workflow_task_failures

PURE = settings(max_examples=300, deadline=None, database=None)
RUNS = settings(
    max_examples=25,
    deadline=None,
    database=None,
    # One worker, store and task queue serve every example: each uses its own journey id.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# --- random JSON, and random documents that look like journeys ---------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
VOCABULARY = [
    "id", "name", "entry", "exit", "goal", "settings", "start", "nodes", "type", "next",
    "paths", "event", "where", "when", "else", "variants", "weight", "winner", "after",
    "min_users", "timeout", "on_timeout", "duration", "until", "time", "timezone", "channel",
    "content", "template", "on_failure", "set", "unset", "field", "op", "value", "all", "any",
    "not", "segment", "event_count", "within", "reentry", "audience", "api", "quiet_hours",
]  # fmt: skip
WORDS = [
    "message", "delay", "wait_for_event", "wait_for_inactivity", "branch", "experiment",
    "update_user", "exit", "email", "push", "sms", "in_app", "webhook", "eq", "in", "gt",
    "exists", "24h", "0s", "P400D", "a", "b", "start", "user.plan", "event.total", "{{ x",
    "{% for %}", "Europe/Nowhere", "optimal", "25:00",
]  # fmt: skip
journey_like = st.recursive(
    scalars | st.sampled_from(WORDS),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(VOCABULARY) | st.text(max_size=6), inner, max_size=6)
    ),
    max_leaves=40,
)


@st.composite
def documents(draw: st.DrawFn) -> Any:
    """Anything, a journey-shaped mess, or a valid journey with one part replaced by junk."""
    kind = draw(st.sampled_from(["json", "shaped", "mutated"]))
    if kind == "json":
        return draw(json_values)
    if kind == "shaped":
        document = draw(st.dictionaries(st.sampled_from(VOCABULARY), journey_like, max_size=8))
        if draw(st.booleans()):
            document["nodes"] = draw(
                st.dictionaries(st.sampled_from(["a", "b", "c"]), journey_like)
            )
        return document
    mutated = draw(journeys()).model_dump(mode="json", by_alias=True, exclude_none=True)
    node = draw(st.sampled_from(sorted(mutated["nodes"])))
    key = draw(st.sampled_from([*VOCABULARY, "nodes"]))
    target = mutated if key in mutated and draw(st.booleans()) else mutated["nodes"][node]
    target[key] = draw(journey_like)
    return mutated


@PURE
@given(documents())
def test_random_documents_never_crash_validation(document: Any) -> None:
    problems = validate(document)
    assert all(isinstance(p, Problem) and p.path is not None for p in problems)
    if not problems:  # what validation accepts, the model takes
        Journey.model_validate(document, by_name=False)


# --- random conditions ----------------------------------------------------------------------------

fields = st.sampled_from(["user", "entry", "event"]).flatmap(
    lambda namespace: st.lists(
        st.sampled_from(["plan", "total", "tags", "0", "a", "b", "x.y"]), min_size=1, max_size=3
    ).map(lambda parts: ".".join([namespace, *parts]))
)
ops = st.sampled_from(
    ["eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "contains", "starts_with", "exists",
     "not_exists"]
)  # fmt: skip
leaves = st.one_of(
    st.builds(lambda f, o, v: {"field": f, "op": o, "value": v}, fields, ops, json_values),
    st.builds(lambda s: {"segment": s}, st.sampled_from(["vips", "lapsed"])),
    st.builds(
        lambda e, o, v: {"event_count": {"event": e}, "op": o, "value": v},
        st.sampled_from(["Viewed", "*"]),
        st.sampled_from(["eq", "gt", "lte"]),
        st.integers(-3, 3),
    ),
)
conditions = st.recursive(
    leaves,
    lambda inner: (
        st.builds(lambda items: {"all": items}, st.lists(inner, max_size=3))
        | st.builds(lambda items: {"any": items}, st.lists(inner, max_size=3))
        | st.builds(lambda item: {"not": item}, inner)
    ),
    max_leaves=12,
)
contexts = st.fixed_dictionaries({"user": json_values, "entry": json_values, "event": json_values})


@PURE
@given(conditions, contexts, st.booleans(), st.integers(0, 5))
def test_random_conditions_never_crash_evaluate(
    raw: Any, context: dict[str, Any], member: bool, count: int
) -> None:
    try:
        condition = CONDITION.validate_python(raw)
    except pydantic.ValidationError:
        return  # refused at the edge, with a located problem: never evaluated

    def facts(fact: Fact) -> bool | int:
        return member if "segment" in type(fact).model_fields else count

    assert isinstance(evaluate(condition, context, facts), bool)


# --- random valid journeys run to an end ----------------------------------------------------------


def _content(channel: str) -> dict[str, Any]:
    return {
        "email": {"subject": "Hi {{ user.first_name | default: 'you' }}", "body": "b"},
        "push": {"title": "t", "body": "b"},
        "sms": {"body": "{{ entry.total }}"},
        "in_app": {"body": "b"},
        # Unreachable on purpose: the delivery fails and the journey must move on.
        "webhook": {"url": "http://127.0.0.1:9/hook"},
    }[channel]


@st.composite
def journeys(draw: st.DrawFn) -> Journey:
    """A valid journey: nodes n0..nk, each pointing only forward (so it is acyclic), every
    node reachable, durations short enough for the time-skipping server."""
    size = draw(st.integers(1, 7))
    names = [f"n{i}" for i in range(size)]
    nodes: dict[str, Any] = {}

    def later(i: int) -> str | None:
        return draw(st.sampled_from([*names[i + 1 :], None]))

    for i, name in enumerate(names):
        following = names[i + 1] if i + 1 < size else None  # keeps every node reachable
        kind = draw(
            st.sampled_from(
                ["message", "delay", "wait_for_event", "wait_for_inactivity", "branch",
                 "experiment", "update_user", "exit"]
            )
        )  # fmt: skip
        if kind == "exit" and following is not None:
            kind = "delay"
        duration = draw(st.sampled_from(["30s", "15m", "2h", "1d", "P7D"]))
        node: dict[str, Any]
        match kind:
            case "message":
                channel = draw(st.sampled_from(CHANNELS))
                node = {"type": "message", "channel": channel, "content": _content(channel),
                        "next": following, "on_failure": later(i)}  # fmt: skip
            case "delay":
                node = {"type": "delay", "duration": duration, "next": following}
            case "wait_for_event":
                node = {"type": "wait_for_event", "timeout": duration, "on_timeout": following,
                        "paths": [{"event": "Clicked", "next": later(i)}]}  # fmt: skip
            case "wait_for_inactivity":
                node = {"type": "wait_for_inactivity", "duration": duration, "next": following}
            case "branch":
                raw = draw(conditions.filter(_no_facts))
                node = {"type": "branch", "paths": [{"when": raw, "next": later(i)}],
                        "else": following}  # fmt: skip
            case "experiment":
                split = draw(st.integers(0, 100))
                node = {"type": "experiment", "variants": [
                    {"name": "a", "weight": split, "next": following},
                    {"name": "b", "weight": 100 - split, "next": later(i)}]}  # fmt: skip
            case "update_user":
                node = {"type": "update_user", "set": {"plan": "{{ entry.total }}"},
                        "unset": ["tags"], "next": following}  # fmt: skip
            case _:
                node = {"type": "exit"}
        nodes[name] = node
    document = {
        "id": f"prop-{uuid.uuid4().hex[:10]}",
        "name": "Random",
        "entry": {"event": "Added to Cart"},
        "exit": draw(st.sampled_from([[], [{"event": "Order Completed"}]])),
        "start": "n0",
        "nodes": nodes,
    }
    assert validate(document) == [], document
    return Journey.model_validate(document, by_name=False)


def _no_facts(raw: Any) -> bool:
    """Conditions without segments (which would need a stored segment) and with valid shapes."""
    try:
        CONDITION.validate_python(raw)
    except pydantic.ValidationError:
        return False
    return "segment" not in str(raw)


@RUNS
@given(case=st.tuples(journeys(), st.fixed_dictionaries({}, optional={"plan": scalars})))
async def test_random_valid_journeys_run_to_an_end(
    case: tuple[Journey, dict[str, Any]],
    time_skipping: WorkflowEnvironment,
    worker: Worker,
    store: Store,
    task_queue: str,
) -> None:
    journey, traits = case
    user = f"u-{uuid.uuid4().hex[:8]}"
    merge_traits(store, user, {"email": f"{user}@example.com", "phone": "+15550100", **traits})
    handle = await start(time_skipping, task_queue, journey, user, entry={"total": 42})
    # The time-skipping server jumps over every wait; a stuck run would time out here.
    outcome = await asyncio.wait_for(handle.result(), timeout=120)
    assert outcome.status in ("completed", "exited")
    assert outcome.path[0] == "n0"
    assert set(outcome.path) <= set(journey.nodes)
    assert await workflow_task_failures(time_skipping.client, handle.id) == []
