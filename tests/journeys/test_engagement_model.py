"""The engagement parts of the journey document: tracking, `of`, `match`, the `message`
condition and click winners, in the model and in validation (every problem at its path).

The cases edit `BASE` of `test_validation` (wait → split → test → push → email → done) after
adding a wait `check` behind the email: `email` and `push` can run before `check`, nothing runs
before `wait`, and `email` runs after `split`.
"""

from __future__ import annotations

from typing import Any, get_args

import pytest

from journeys.conditions import carries, evaluate
from journeys.engagement import ENGAGEMENTS
from journeys.model import (
    AllOf,
    ExperimentNode,
    FieldCondition,
    Journey,
    MessageCondition,
    MessageNode,
)
from journeys.validation import segment_problems, validate
from tests.journeys.test_validation import Edit, Expected, assert_problems, case, changed

CHECK: list[Edit] = [
    ("nodes.email.next", "check"),
    (
        "nodes.check",
        {
            "type": "wait_for_event",
            "timeout": "1d",
            "on_timeout": "done",
            "paths": [{"event": "Email Link Clicked", "of": "email", "next": "done"}],
        },
    ),
]
HOOK: list[Edit] = [
    ("nodes.email.next", "hook"),
    ("nodes.hook", {"type": "message", "channel": "webhook", "content": {"url": "https://x.io"}}),
    ("nodes.hook.next", "check"),
]


def with_check(*edits: Edit) -> dict[str, Any]:
    return changed(*CHECK, *edits)


def message(node: str, engagement: str = "opened") -> dict[str, str]:
    return {"message": node, "engagement": engagement}


# --- the model --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("channel", "transactional", "track", "tracked"),
    [
        ("email", False, None, True),
        ("sms", False, None, True),
        ("push", False, None, True),
        ("in_app", False, None, True),
        ("email", True, None, False),
        ("email", True, True, True),
        ("sms", False, False, False),
        ("webhook", False, None, False),
        ("webhook", False, True, False),  # refused by validation, never tracked anyway
    ],
)
def test_tracked_is_the_effective_default(
    channel: str, transactional: bool, track: bool | None, tracked: bool
) -> None:
    node = MessageNode.model_validate(
        {
            "type": "message",
            "channel": channel,
            "template": "t",
            "transactional": transactional,
            "track": track,
        }
    )
    assert node.tracked is tracked


def test_message_condition_states_are_the_engagement_states() -> None:
    annotation = MessageCondition.model_fields["engagement"].annotation
    assert get_args(annotation) == ENGAGEMENTS


def test_schema_describes_every_new_field() -> None:
    schema = Journey.model_json_schema()
    defs = schema["$defs"]
    assert "track" in defs["MessageNode"]["properties"]
    assert {"of", "match"} <= set(defs["EventPath"]["properties"])
    assert "match" in defs["ExitRule"]["properties"]
    assert "match" in defs["Goal"]["properties"]
    assert {"metric", "within"} <= set(defs["Winner"]["properties"])
    assert defs["MessageCondition"]["required"] == ["message", "engagement"]
    for name, field in [("MessageNode", "track"), ("EventPath", "of"), ("Winner", "metric")]:
        assert defs[name]["properties"][field]["description"]


def test_click_winner_defaults() -> None:
    journey = Journey.model_validate(
        changed(("nodes.test.winner", {"after": "1d", "min_users": 5}))
    )
    node = journey.nodes["test"]
    assert isinstance(node, ExperimentNode)
    assert node.winner is not None
    assert (node.winner.metric, node.winner.within) == ("conversion", "7d")


def test_downstream_and_tracked_after() -> None:
    journey = Journey.model_validate(changed(*HOOK, *CHECK[1:]))
    assert journey.downstream("email") == {"hook", "check", "done"}
    assert journey.downstream("done") == set()
    assert journey.tracked_after("test") == ["push", "email"]  # the webhook is never tracked
    assert journey.tracked_after("email") == []


@pytest.mark.parametrize(
    ("reached", "wanted", "holds"),
    [
        (None, "sent", False),
        ("sent", "sent", True),
        ("sent", "opened", False),
        ("opened", "sent", True),
        ("opened", "clicked", False),
        ("clicked", "opened", True),
        ("clicked", "clicked", True),
    ],
)
def test_message_condition_evaluates_against_the_runs_engagement(
    reached: str | None, wanted: str, holds: bool
) -> None:
    condition = MessageCondition.model_validate({"message": "mail", "engagement": wanted})
    engagement: Any = {} if reached is None else {"mail": reached}
    assert evaluate(condition, {}, engagement=engagement) is holds
    assert evaluate(condition, {}) is False  # outside a run nothing was sent


@pytest.mark.parametrize(
    ("properties", "expected", "holds"),
    [
        ({"cart_id": "A"}, {"cart_id": "A"}, True),
        ({"cart_id": "B"}, {"cart_id": "A"}, False),
        ({}, {"cart_id": "A"}, False),
        ({}, {"cart_id": ""}, False),  # empty only matches an empty value
        ({"cart_id": ""}, {"cart_id": ""}, True),
        ({"cart_id": 42}, {"cart_id": "42"}, True),
        ({"cart_id": "042"}, {"cart_id": "42"}, False),  # two strings compare as strings
        ({"cart": {"id": "A"}}, {"cart.id": "A"}, True),
        ({"cart_id": "A", "store": "x"}, {"cart_id": "A", "store": "y"}, False),
        ({"flag": True}, {"flag": "true"}, False),
    ],
)
def test_carries(properties: dict[str, Any], expected: dict[str, str], holds: bool) -> None:
    assert carries(properties, expected) is holds


# --- validation: valid documents --------------------------------------------------------------


@pytest.mark.parametrize(
    "document",
    [
        pytest.param(with_check(), id="of-email"),
        pytest.param(
            with_check(
                ("nodes.check.paths[0]", {"event": "Push Notification Opened", "of": "push"})
            ),
            id="of-an-earlier-push",
        ),
        pytest.param(
            with_check(("nodes.email.transactional", True), ("nodes.email.track", True)),
            id="transactional-tracked-explicitly",
        ),
        pytest.param(
            with_check(("nodes.check.paths[0].where", message("push", "clicked"))),
            id="message-in-a-path-where",
        ),
        pytest.param(
            changed(
                ("nodes.email.transactional", True), ("exit[1]", {"when": message("email", "sent")})
            ),
            id="sent-of-an-untracked-message",
        ),
        pytest.param(changed(("exit[1]", {"when": message("email")})), id="exit-when-any-message"),
        pytest.param(changed(("goal.where", message("push", "clicked"))), id="goal-where"),
        pytest.param(
            changed(
                (
                    "nodes.wait.paths[0].match",
                    {"cart_id": "{{ entry.cart_id }}", "u": "{{ user.id }}"},
                )
            ),
            id="keyed-path",
        ),
        pytest.param(
            changed(("exit[0].match", {"order": "{{ event.order_id | default: entry.order_id }}"})),
            id="exit-match-reads-the-runs-event",
        ),
        pytest.param(
            changed(("goal.match", {"k": "{% assign c = entry.cart %}{{ c | upcase }}"})),
            id="assigned-variables",
        ),
        pytest.param(
            changed(("nodes.test.winner", {"after": "1d", "min_users": 5, "metric": "click"})),
            id="click-winner",
        ),
    ],
)
def test_valid_engagement_documents(document: dict[str, Any]) -> None:
    assert validate(document) == []


# --- validation: problems ---------------------------------------------------------------------

OF = "nodes.check.paths[0].of"


@pytest.mark.parametrize(
    ("edits", "expected"),
    [
        case(
            ("nodes.check.paths[0].of", "nope"),
            expect=[(OF, "unknown node 'nope'")],
            id="of-unknown",
        ),
        case(
            ("nodes.check.paths[0].of", "split"),
            expect=[(OF, "'split' is not a message node")],
            id="of-not-a-message",
        ),
        case(
            ("nodes.wait.paths[0]", {"event": "Email Opened", "of": "email", "next": "email"}),
            expect=[("nodes.wait.paths[0].of", "'email' cannot run before 'wait'")],
            id="of-a-later-message",
        ),
        case(
            ("nodes.email.transactional", True),
            expect=[(OF, "'email' is transactional, so not tracked unless it sets track: true")],
            id="of-transactional",
        ),
        case(
            ("nodes.email.track", False),
            expect=[(OF, "'email' is not tracked (track: false)")],
            id="of-track-false",
        ),
        case(
            *HOOK,
            ("nodes.check.paths[0].of", "hook"),
            expect=[(OF, "'hook' is a webhook: webhooks are never tracked")],
            id="of-webhook",
        ),
        case(
            ("nodes.check.paths[0].event", "Push Notification Opened"),
            expect=[
                (
                    "nodes.check.paths[0].event",
                    "'Push Notification Opened' is not an engagement event of email messages "
                    "(use one of: Email Opened, Email Link Clicked)",
                )
            ],
            id="of-other-channels-event",
        ),
        case(
            ("nodes.check.paths[0].event", "Order Completed"),
            expect=[("nodes.check.paths[0].event", "not an engagement event of email")],
            id="of-no-engagement-event",
        ),
        case(
            ("nodes.check.paths[0].of", 7),
            expect=[(OF, "valid string")],
            id="of-not-a-string",
        ),
        case(
            *HOOK,
            ("nodes.hook.track", True),
            ("nodes.check.paths[0].of", "push"),
            ("nodes.check.paths[0].event", "Push Notification Opened"),
            expect=[("nodes.hook.track", "webhooks are never tracked")],
            id="track-on-a-webhook",
        ),
        case(
            ("nodes.email.track", "maybe"),
            expect=[("nodes.email.track", "valid boolean")],
            id="track-not-a-boolean",
        ),
    ],
)
def test_of_and_track_problems(edits: list[Edit], expected: Expected) -> None:
    assert_problems(validate(with_check(*edits)), expected)


@pytest.mark.parametrize(
    ("edits", "expected"),
    [
        case(
            ("nodes.split.paths[0].when", message("email")),
            expect=[("nodes.split.paths[0].when.message", "'email' cannot run before 'split'")],
            id="branch-before-the-message",
        ),
        case(
            ("nodes.wait.paths[0].where", message("push")),
            expect=[("nodes.wait.paths[0].where.message", "'push' cannot run before 'wait'")],
            id="path-where-before-the-message",
        ),
        case(
            ("exit[1]", {"when": {"all": [{"not": message("nope", "sent")}]}}),
            expect=[("exit[1].when.all[0].not.message", "unknown node 'nope'")],
            id="nested-unknown",
        ),
        case(
            ("goal.where", message("wait")),
            expect=[("goal.where.message", "'wait' is not a message node")],
            id="goal-not-a-message",
        ),
        case(
            ("nodes.email.transactional", True),
            ("exit[1]", {"when": message("email", "clicked")}),
            expect=[("exit[1].when.message", "'email' is transactional")],
            id="clicked-of-untracked",
        ),
        case(
            ("entry.audience", message("email", "sent")),
            expect=[("entry.audience.message", "no message was sent before the entry")],
            id="in-the-entry",
        ),
        case(
            ("entry.where", {"any": [message("email")]}),
            expect=[("entry.where.any[0].message", "no message was sent before the entry")],
            id="in-the-entry-where",
        ),
        case(
            (
                "exit[1]",
                {
                    "when": {
                        "event_count": {"event": "Email Opened", "where": message("email")},
                        "op": "gte",
                        "value": 1,
                    }
                },
            ),
            expect=[
                (
                    "exit[1].when.event_count.where.message",
                    "stored events are counted without a run: not allowed in event_count",
                )
            ],
            id="in-event-count",
        ),
        case(
            ("exit[1]", {"when": message("email", "bounced")}),
            expect=[("exit[1].when.engagement", "Input should be 'sent', 'opened' or 'clicked'")],
            id="bad-engagement",
        ),
        case(
            ("exit[1]", {"when": {"message": "email"}}),
            expect=[("exit[1].when.engagement", "required field missing")],
            id="engagement-missing",
        ),
        case(
            ("exit[1]", {"when": {"message": "Email!", "engagement": "sent"}}),
            expect=[("exit[1].when.message", "String should match pattern")],
            id="not-a-node-id",
        ),
    ],
)
def test_message_condition_problems(edits: list[Edit], expected: Expected) -> None:
    assert_problems(validate(changed(*edits)), expected)


MATCH = "nodes.wait.paths[0].match"


@pytest.mark.parametrize(
    ("edits", "expected"),
    [
        case(
            (MATCH, {"cart_id": "{{ event.cart_id }}"}),
            expect=[
                (
                    f"{MATCH}.cart_id",
                    "a path's match cannot read event.*: the event is what it compares",
                )
            ],
            id="path-reads-event",
        ),
        case(
            (MATCH, {"v": "{{ journey.id }}-{{ variant }}"}),
            expect=[(f"{MATCH}.v", "reads journey, variant: a match reads entry.*, user.*")],
            id="path-reads-other-namespaces",
        ),
        case(
            ("goal.match", {"v": "{{ unsubscribe_url }}"}),
            expect=[
                ("goal.match.v", "reads unsubscribe_url: a match reads entry.*, event.*, user.*")
            ],
            id="goal-reads-other",
        ),
        case(
            (MATCH, {"cart_id": "{{ entry.cart_id"}),
            expect=[(f"{MATCH}.cart_id", "template does not parse")],
            id="does-not-parse",
        ),
        case(
            ("exit[0].match", {"day": "{{ 'now' | date: '%Y' }}"}),
            expect=[("exit[0].match.day", "the date filter can read the clock")],
            id="date-filter",
        ),
        case(
            (MATCH, {" ": "{{ entry.cart_id }}"}),
            expect=[(f"{MATCH}. ", "name an event property")],
            id="blank-key",
        ),
        case(
            (MATCH, {"": "x"}),
            expect=[(f"{MATCH}.", "at least 1 character")],  # at the key ""
            id="empty-key",
        ),
        case(
            (MATCH, {"cart_id": 42}),
            expect=[(f"{MATCH}.cart_id", "valid string")],
            id="not-a-template",
        ),
        case(
            (MATCH, ["cart_id"]),
            expect=[(MATCH, "valid dictionary")],
            id="not-an-object",
        ),
        case(
            ("exit[1]", {"when": message("email", "sent"), "match": {"a": "b"}}),
            expect=[("exit[1]", "'match' applies only to an event exit rule")],
            id="match-on-a-when-rule",
        ),
    ],
)
def test_match_problems(edits: list[Edit], expected: Expected) -> None:
    assert_problems(validate(changed(*edits)), expected)


SEGMENT_ENTRY: Edit = ("entry", {"segment": "vips"})
KEYED_ON_ENTRY: list[Edit] = [
    (MATCH, {"cart_id": "{{ entry.cart_id }}", "owner": "{{ user.id }}"}),
    ("exit[0].match", {"order": "{{ entry.order_id | default: entry.cart_id }}"}),
    ("goal.match", {"cart_id": "{% assign c = entry.cart %}{{ c }}", "x": "{{ event.x }}"}),
]


@pytest.mark.parametrize(
    "entry",
    [
        pytest.param({"event": "Added to Cart"}, id="event"),
        pytest.param({"page": "Checkout"}, id="page"),
        pytest.param({"api": "cart-saved"}, id="api"),  # the trigger's content, any names
    ],
)
def test_a_match_reads_any_field_of_an_event_page_or_api_entry(entry: dict[str, str]) -> None:
    assert validate(changed(("entry", entry), *KEYED_ON_ENTRY)) == []


def test_a_match_cannot_read_the_entry_of_a_segment_entry() -> None:
    # A segment entry gives a run whichever event made the user a member, or nothing at all.
    assert_problems(
        validate(changed(SEGMENT_ENTRY, *KEYED_ON_ENTRY)),
        [
            (f"{MATCH}.cart_id", "reads entry.cart_id: a segment entry provides no entry fields"),
            ("exit[0].match.order", "reads entry.order_id, entry.cart_id: a segment entry"),
            ("goal.match.cart_id", "reads entry.cart: a segment entry provides no entry fields"),
        ],
    )
    # Keyed on the user (and, for exit rules and goals, on the run's current event), it is valid.
    keyed_on_user = changed(
        SEGMENT_ENTRY,
        (MATCH, {"account": "{{ user.account_id }}"}),
        ("exit[0].match", {"order": "{{ event.order_id }}"}),
    )
    assert validate(keyed_on_user) == []


def test_a_broken_segment_journey_still_reports_a_paths_match_on_the_entry() -> None:
    document = changed(
        SEGMENT_ENTRY, (MATCH, {"cart_id": "{{ entry.cart_id }}"}), ("nodes.pause.duration", "x")
    )
    problems = validate(document)
    assert [p.path for p in problems] == ["nodes.pause.duration", f"{MATCH}.cart_id"]
    assert "segment entry" in problems[1].message


@pytest.mark.parametrize(
    ("edits", "expected"),
    [
        case(
            ("nodes.test.winner", {"after": "1d", "min_users": 5, "metric": "click"}),
            ("nodes.push.track", False),
            ("nodes.email.transactional", True),
            expect=[
                (
                    "nodes.test.winner.metric",
                    "no tracked message can follow this experiment: no click to count",
                )
            ],
            id="no-tracked-message-after",
        ),
        case(
            ("nodes.test.winner", {"after": "1d", "min_users": 5, "metric": "opens"}),
            expect=[("nodes.test.winner.metric", "Input should be 'conversion' or 'click'")],
            id="bad-metric",
        ),
        case(
            (
                "nodes.test.winner",
                {"after": "1d", "min_users": 5, "metric": "click", "within": "0s"},
            ),
            expect=[("nodes.test.winner.within", "must be greater than 0")],
            id="bad-within",
        ),
    ],
)
def test_click_winner_problems(edits: list[Edit], expected: Expected) -> None:
    assert_problems(validate(changed(*edits)), expected)


def test_engagement_problems_are_listed_with_the_others() -> None:
    problems = validate(
        with_check(
            ("nodes.check.paths[0].of", "split"),
            ("nodes.split.paths[0].when", message("email")),
            ("nodes.email.on_failure", "nowhere"),
        )
    )
    assert_problems(
        problems,
        [
            (OF, "'split' is not a message node"),
            ("nodes.split.paths[0].when.message", "'email' cannot run before 'split'"),
            ("nodes.email.on_failure", "unknown node 'nowhere'"),
        ],
    )


def test_a_structurally_broken_document_still_reports_tracking_on_a_webhook() -> None:
    problems = validate(with_check(*HOOK, ("nodes.hook.track", True), ("nodes.push.next", 5)))
    assert_problems(
        problems,
        [
            ("nodes.push.next", "valid string"),
            ("nodes.hook.track", "webhooks are never tracked"),
        ],
    )


def test_segments_cannot_ask_about_messages() -> None:
    condition = AllOf(all=[FieldCondition(field="user.plan", op="exists"), message_condition()])
    assert [(p.path, p.message) for p in segment_problems(condition)] == [
        ("condition.all[1].message", "only a journey can ask about its messages")
    ]
    assert segment_problems(FieldCondition(field="user.plan", op="exists")) == []


def message_condition() -> MessageCondition:
    return MessageCondition(message="email", engagement="sent")
