"""The journey activities called directly (they are synchronous) against a real SQLite store."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import TypeAdapter
from temporalio.exceptions import ApplicationError

from activities.channels import embedded_channels
from activities.journey import PERMANENT_FAILURE, JourneyActivities
from journeys.conditions import Fact, fact_key
from journeys.contracts import (
    ActiveHourInput,
    DeliverInput,
    EnrollInput,
    FailDeliveryInput,
    LoadContextInput,
    ProgressInput,
    StepsInput,
    TemplateContext,
    UpdateUserInput,
)
from journeys.model import Channel, Condition, EventCountCondition, SegmentCondition
from journeys.store import DeliveryRecord, EnrollmentRecord, Store
from tests.factories import append_event, get_enrollment, merge_traits

CONDITION: TypeAdapter[Condition] = TypeAdapter(Condition)
USER = "u1"
JOURNEY = "welcome"
NOW = datetime.now(UTC)
CONTEXT = TemplateContext(
    entry={"plan": "pro", "total": 99.5},
    event={"sku": "A-1"},
    journey={"id": JOURNEY, "name": "Welcome", "version": 3},
    variant="b",
)
EMAIL_USER: dict[str, Any] = {"first_name": "Ada", "email": "ada@example.com"}


@pytest.fixture
def activities(store: Store) -> JourneyActivities:
    """The activities over the test's store."""
    return JourneyActivities(store, embedded_channels())


def deliver_input(
    *,
    key: str = "enr-1:hello",
    channel: Channel = "email",
    content: dict[str, Any] | None = None,
    template: str | None = None,
    skip_reason: str | None = None,
    user_id: str = USER,
) -> DeliverInput:
    """A delivery of node `hello` of version 3 of the welcome journey."""
    return DeliverInput(
        idempotency_key=key,
        journey_id=JOURNEY,
        version=3,
        node_id="hello",
        user_id=user_id,
        channel=channel,
        content=content,
        template=template,
        context=CONTEXT,
        skip_reason=skip_reason,
    )


def only_delivery(store: Store, user_id: str = USER) -> DeliveryRecord:
    """The user's one and only delivery."""
    deliveries = store.deliveries_for_user(user_id)
    assert len(deliveries) == 1
    return deliveries[0]


def add_event(
    store: Store,
    at: datetime,
    *,
    name: str = "Viewed",
    user_id: str = USER,
    properties: dict[str, Any] | None = None,
) -> None:
    """Append a track event at `at`."""
    assert append_event(
        store,
        message_id=uuid.uuid4().hex,
        user_id=user_id,
        type="track",
        name=name,
        properties=properties or {},
        timestamp=at,
    )


def as_fact(data: dict[str, Any]) -> Fact:
    """A segment or event_count condition from its document form."""
    condition = CONDITION.validate_python(data)
    assert isinstance(condition, SegmentCondition | EventCountCondition)
    return condition


def enrollment(store: Store, enrollment_id: str = "enr-1") -> EnrollmentRecord:
    """The stored enrollment, which must exist."""
    record = get_enrollment(store, enrollment_id)
    assert record is not None
    return record


# --- deliver -----------------------------------------------------------------------------------


def test_deliver_renders_every_namespace_and_records_sent(
    store: Store, activities: JourneyActivities
) -> None:
    merge_traits(store, USER, EMAIL_USER)
    content = {
        "subject": "Hi {{ user.first_name }} ({{ user.id }})",
        "body": "{{ entry.plan }} {{ entry.total }} {{ event.sku }} {{ user.missing }}|",
        "footer": "{{ journey.id }} · {{ journey.name }} v{{ journey.version }} · {{ variant }}",
        "data": {"tags": ["{{ variant }}", 7, True]},
    }
    outcome = activities.deliver(deliver_input(content=content))
    rendered = {
        "subject": "Hi Ada (u1)",
        "body": "pro 99.5 A-1 |",
        "footer": "welcome · Welcome v3 · b",
        "data": {"tags": ["b", 7, True]},
    }
    record = only_delivery(store)
    assert (outcome.status, outcome.reason, outcome.delivery_id) == ("sent", None, record.id)
    assert (record.status, record.reason, record.content) == ("sent", None, rendered)
    assert (record.journey_id, record.version, record.node_id) == (JOURNEY, 3, "hello")
    assert (record.channel, record.variant) == ("email", "b")


def test_deliver_retry_keeps_one_row_and_the_same_outcome(
    store: Store, activities: JourneyActivities
) -> None:
    merge_traits(store, USER, EMAIL_USER)
    request = deliver_input(content={"subject": "Hi {{ user.first_name }}"})
    first = activities.deliver(request)
    again = activities.deliver(request)
    assert first.status == "sent"
    assert again == first
    assert only_delivery(store).id == first.delivery_id


def carrying(*nodes: str, ended: bool = False, at: datetime = NOW) -> DeliverInput:
    """A delivery carrying the enrollment and reaching `nodes`, then the end if `ended`."""
    reached = [ProgressInput(enrollment_id="enr-1", at=at, node_id=node) for node in nodes]
    steps = StepsInput(enrollment=enroll_input(), steps=reached)
    then = ProgressInput(enrollment_id="enr-1", at=at, ended="completed") if ended else None
    return deliver_input().model_copy(update={"steps": steps, "then": then})


def test_deliver_records_the_steps_it_carries_and_once(
    store: Store, activities: JourneyActivities
) -> None:
    merge_traits(store, USER, EMAIL_USER)
    request = carrying("branch", "hello")
    first = activities.deliver(request)
    again = activities.deliver(request)  # a retry records nothing twice
    assert first.status == again.status == "sent"
    assert store.journey_counts(JOURNEY)["entered"] == 1
    reached = {node: counts["reached"] for node, counts in store.node_counts(JOURNEY).items()}
    assert (reached, enrollment(store).current_node) == ({"branch": 1, "hello": 1}, "hello")


def test_deliver_records_no_step_when_the_message_fails(
    store: Store, activities: JourneyActivities
) -> None:
    # The run keeps them and records them itself: a failed delivery records nothing twice.
    merge_traits(store, USER, {"email": "not an address"})
    with pytest.raises(ApplicationError):
        activities.deliver(carrying("hello", ended=True))
    assert get_enrollment(store, "enr-1") is None


def test_deliver_records_the_end_it_carries_after_the_steps(
    store: Store, activities: JourneyActivities
) -> None:
    merge_traits(store, USER, EMAIL_USER)
    at = NOW + timedelta(minutes=1)
    activities.deliver(carrying("hello", ended=True, at=at))
    record = enrollment(store)
    assert (record.status, record.current_node, record.ended_at) == ("completed", None, at)
    assert store.node_counts(JOURNEY) == {"hello": {"reached": 1, "waiting": 0}}


def test_deliver_retry_after_finish_does_not_render_again(
    store: Store, activities: JourneyActivities
) -> None:
    merge_traits(store, USER, EMAIL_USER)
    request = deliver_input(content={"subject": "Hi {{ user.first_name }}"})
    first = activities.deliver(request)
    merge_traits(store, USER, {"first_name": "Grace"})
    again = activities.deliver(request)
    assert again == first
    record = only_delivery(store)
    assert (record.status, record.content) == ("sent", {"subject": "Hi Ada"})


def test_deliver_completes_a_delivery_an_earlier_attempt_left_pending(
    store: Store, activities: JourneyActivities
) -> None:
    # An attempt that crashed after recording the delivery, before sending it.
    merge_traits(store, USER, EMAIL_USER)
    request = deliver_input(content={"subject": "Hi {{ user.first_name }}"})
    pending, _ = store.begin_delivery(
        idempotency_key=request.idempotency_key,
        journey_id=JOURNEY,
        version=3,
        node_id="hello",
        user_id=USER,
        channel="email",
        variant="b",
        content={"subject": "Hi {{ user.first_name }}"},
    )
    outcome = activities.deliver(request)
    assert (outcome.status, outcome.delivery_id) == ("sent", pending.id)
    assert only_delivery(store).content == {"subject": "Hi Ada"}


def test_deliver_with_skip_reason_records_skipped(
    store: Store, activities: JourneyActivities
) -> None:
    merge_traits(store, USER, EMAIL_USER)
    request = deliver_input(content={"subject": "Hi"}, skip_reason="quiet hours")
    outcome = activities.deliver(request)
    assert (outcome.status, outcome.reason) == ("skipped", "quiet hours")
    record = only_delivery(store)
    assert (record.id, record.status, record.reason) == (
        outcome.delivery_id,
        "skipped",
        "quiet hours",
    )
    assert activities.deliver(request) == outcome


@pytest.mark.parametrize(
    ("channel", "traits", "reason"),
    [
        ("email", None, "no email address"),
        ("email", {}, "no email address"),
        ("email", {"email": "  "}, "no email address"),
        ("email", {"email": ["ada@example.com"]}, "no email address"),
        ("email", {"email": "ada@example.com"}, None),
        ("sms", {}, "no phone number"),
        ("sms", {"phone": ""}, "no phone number"),
        ("sms", {"phone": True}, "no phone number"),
        ("sms", {"phone": 15550100}, None),
        ("sms", {"phone": "+1 (555) 010-0100"}, None),
        ("push", {}, "no push token"),
        ("push", {"push_tokens": []}, "no push token"),
        ("push", {"push_tokens": [""]}, "no push token"),
        ("push", {"push_tokens": "token"}, "no push token"),
        ("push", {"push_tokens": ["", "token"]}, None),
        ("in_app", None, None),
        ("in_app", {}, None),
    ],
)
def test_deliver_needs_an_address_for_the_channel(
    store: Store,
    activities: JourneyActivities,
    channel: Channel,
    traits: dict[str, Any] | None,
    reason: str | None,
) -> None:
    if traits is not None:  # None: no profile at all
        merge_traits(store, USER, traits)
    outcome = activities.deliver(deliver_input(channel=channel, content={"body": "Hi"}))
    expected = "sent" if reason is None else "skipped"
    assert (outcome.status, outcome.reason) == (expected, reason)
    record = only_delivery(store)
    assert (record.channel, record.status, record.reason) == (channel, expected, reason)


@pytest.mark.parametrize(
    ("channel", "traits", "reason"),
    [
        ("email", {"email": "ada.example.com"}, "invalid email address 'ada.example.com'"),
        ("email", {"email": "ada @example.com"}, "invalid email address 'ada @example.com'"),
        ("sms", {"phone": "call me"}, "invalid phone number 'call me'"),
        ("sms", {"phone": "+1 555"}, "invalid phone number '+1 555'"),
    ],
)
def test_deliver_to_an_invalid_address_fails_permanently(
    store: Store,
    activities: JourneyActivities,
    channel: Channel,
    traits: dict[str, Any],
    reason: str,
) -> None:
    merge_traits(store, USER, traits)
    with pytest.raises(ApplicationError) as raised:
        activities.deliver(deliver_input(channel=channel, content={"body": "Hi"}))
    assert (raised.value.type, raised.value.non_retryable, raised.value.message) == (
        PERMANENT_FAILURE,
        True,
        reason,
    )
    record = only_delivery(store)
    assert (record.status, record.reason) == ("failed", reason)


def test_deliver_uses_a_stored_template(store: Store, activities: JourneyActivities) -> None:
    merge_traits(store, USER, EMAIL_USER)
    store.put_template(
        "welcome-email",
        "email",
        {"subject": "Welcome {{ user.first_name }}", "body": "{{ journey.name }} / {{ variant }}"},
    )
    outcome = activities.deliver(deliver_input(template="welcome-email"))
    assert outcome.status == "sent"
    record = only_delivery(store)
    assert record.content == {"subject": "Welcome Ada", "body": "Welcome / b"}


def test_deliver_with_an_unknown_template_fails_permanently(
    store: Store, activities: JourneyActivities
) -> None:
    merge_traits(store, USER, EMAIL_USER)
    with pytest.raises(ApplicationError) as raised:
        activities.deliver(deliver_input(template="no-such-template"))
    assert raised.value.non_retryable
    assert raised.value.type == PERMANENT_FAILURE
    assert "no-such-template" in raised.value.message
    record = only_delivery(store)
    assert record.status == "failed"
    assert record.reason is not None
    assert "no-such-template" in record.reason


@pytest.mark.parametrize(
    ("content", "stored"),
    [
        ({"body": "{% include 'x' %}"}, None),
        ({"body": "ok", "data": {"deep": ["{% render 'partial' %}"]}}, None),
        (None, {"subject": "Hi", "body": "{% include 'x' %}"}),
    ],
    ids=["inline-include", "inline-nested-render", "stored-template-include"],
)
def test_deliver_with_a_template_that_fails_to_render_fails_permanently(
    store: Store,
    activities: JourneyActivities,
    content: dict[str, Any] | None,
    stored: dict[str, Any] | None,
) -> None:
    merge_traits(store, USER, EMAIL_USER)
    template = None
    if stored is not None:
        template = "broken"
        store.put_template(template, "email", stored)
    with pytest.raises(ApplicationError) as raised:
        activities.deliver(deliver_input(content=content, template=template))
    assert raised.value.non_retryable
    assert raised.value.type == PERMANENT_FAILURE
    assert raised.value.message.startswith("template does not render")
    record = only_delivery(store)
    assert (record.status, record.reason) == ("failed", raised.value.message)


# --- fail_delivery -----------------------------------------------------------------------------


def begin_pending(store: Store, key: str = "enr-1:hello") -> DeliveryRecord:
    """A delivery an attempt recorded and never finished."""
    record, created = store.begin_delivery(
        idempotency_key=key,
        journey_id=JOURNEY,
        version=3,
        node_id="hello",
        user_id=USER,
        channel="email",
        variant=None,
        content={"subject": "Hi"},
    )
    assert created
    return record


def test_fail_delivery_marks_failed_and_is_idempotent(
    store: Store, activities: JourneyActivities
) -> None:
    pending = begin_pending(store)
    failure = FailDeliveryInput(delivery=deliver_input(), reason="retries exhausted")
    activities.fail_delivery(failure)
    activities.fail_delivery(failure)
    record = only_delivery(store)
    assert (record.id, record.status, record.reason) == (pending.id, "failed", "retries exhausted")
    # A late attempt of the same delivery finds it finished and sends nothing.
    merge_traits(store, USER, EMAIL_USER)
    late = activities.deliver(deliver_input(content={"subject": "Hi"}))
    assert (late.status, late.reason, late.delivery_id) == (
        "failed",
        "retries exhausted",
        pending.id,
    )
    assert only_delivery(store).status == "failed"


def test_fail_delivery_of_a_delivery_never_recorded_records_it_failed(
    store: Store, activities: JourneyActivities
) -> None:
    failure = FailDeliveryInput(delivery=deliver_input(key="never-begun"), reason="timeout")
    activities.fail_delivery(failure)
    record = only_delivery(store)
    assert (record.idempotency_key, record.status, record.reason) == (
        "never-begun",
        "failed",
        "timeout",
    )


def test_fail_delivery_does_not_downgrade_a_sent_delivery(
    store: Store, activities: JourneyActivities
) -> None:
    request = deliver_input(channel="in_app", content={"body": "Hi"})
    outcome = activities.deliver(request)
    assert outcome.status == "sent"
    activities.fail_delivery(FailDeliveryInput(delivery=request, reason="timeout"))
    assert only_delivery(store).status == "sent"
    assert [m.id for m in store.inbox(USER)] == [outcome.delivery_id]


# --- load_context ------------------------------------------------------------------------------

SEGMENTS: dict[str, dict[str, Any]] = {
    "pro": {"field": "user.plan", "op": "eq", "value": "pro"},
    "pro-buyer": {
        "all": [
            {"segment": "pro"},
            {"event_count": {"event": "Purchased", "within": "30d"}, "op": "gte", "value": 2},
        ]
    },
    "loop": {"segment": "loop"},
    "loop-or-pro": {"any": [{"segment": "loop-or-pro"}, {"segment": "pro"}]},
    "ping": {"segment": "pong"},
    "pong": {"all": [{"segment": "ping"}, {"segment": "pro"}]},
}


@pytest.fixture
def history(store: Store) -> Store:
    """Segments, a pro user `u1` with purchases old and new, and a free user `u2`."""
    for segment_id, condition in SEGMENTS.items():
        store.put_segment(segment_id, segment_id.title(), condition)
    merge_traits(store, USER, {"plan": "pro", "email": "ada@example.com"})
    merge_traits(store, "u2", {"plan": "free"})
    add_event(store, NOW - timedelta(days=1), name="Purchased", properties={"amount": 50})
    add_event(store, NOW - timedelta(days=2), name="Purchased", properties={"amount": 150})
    add_event(store, NOW - timedelta(days=3), name="Viewed", properties={"page": "/"})
    add_event(store, NOW - timedelta(days=40), name="Purchased", properties={"amount": 500})
    for days in (1, 2):
        add_event(store, NOW - timedelta(days=days), name="Purchased", user_id="u2")
    return store


def count(event: str, **more: Any) -> dict[str, Any]:
    """An event_count fact (its op and value do not change the answer, a count)."""
    return {"event_count": {"event": event, **more}, "op": "gte", "value": 1}


BIG = {"field": "event.amount", "op": "gt", "value": 100}


@pytest.mark.parametrize(
    ("fact", "for_u1", "for_u2"),
    [
        ({"segment": "pro"}, True, False),
        ({"segment": "pro-buyer"}, True, False),
        ({"segment": "loop"}, False, False),
        ({"segment": "loop-or-pro"}, True, False),
        ({"segment": "ping"}, False, False),
        ({"segment": "missing"}, False, False),
        (count("*"), 4, 2),
        (count("Purchased"), 3, 2),
        (count("Never"), 0, 0),
        (count("*", within="30d"), 3, 2),
        (count("Purchased", within="36h"), 1, 1),
        (count("Purchased", where=BIG), 2, 0),
        (count("Purchased", where=BIG, within="30d"), 1, 0),
        (count("*", where={"field": "event.amount", "op": "exists"}), 3, 0),
        (count("*", where={"segment": "pro"}), 4, 0),
    ],
)
def test_load_context_answers_facts(
    history: Store,
    activities: JourneyActivities,
    fact: dict[str, Any],
    for_u1: bool | int,
    for_u2: bool | int,
) -> None:
    asked = as_fact(fact)
    for user_id, expected in ((USER, for_u1), ("u2", for_u2)):
        context = activities.load_context(LoadContextInput(user_id=user_id, facts=[asked]))
        assert context.facts == {fact_key(asked): expected}
        # A segment is a bool and a count an int (True == 1 would hide a mix-up).
        assert type(context.facts[fact_key(asked)]) is type(expected)


def test_load_context_returns_traits_and_every_fact_asked(
    history: Store, activities: JourneyActivities
) -> None:
    facts = [as_fact({"segment": "pro"}), as_fact(count("Purchased")), as_fact(count("*"))]
    context = activities.load_context(LoadContextInput(user_id=USER, facts=facts))
    assert context.traits == {"plan": "pro", "email": "ada@example.com"}
    assert context.facts == {fact_key(facts[0]): True, fact_key(facts[1]): 3, fact_key(facts[2]): 4}
    stranger = activities.load_context(LoadContextInput(user_id="nobody", facts=facts))
    assert stranger.traits == {}
    assert stranger.facts == {
        fact_key(facts[0]): False,
        fact_key(facts[1]): 0,
        fact_key(facts[2]): 0,
    }


# --- most_active_hour --------------------------------------------------------------------------

NEW_YORK = ZoneInfo("America/New_York")


def add_local_events(store: Store, hours: list[int], *, days_back: int = 1) -> None:
    """One event a day at each local New York hour, going back from `days_back` days ago."""
    today = NOW.astimezone(NEW_YORK).date()
    for offset, hour in enumerate(hours):
        day = today - timedelta(days=days_back + offset)
        add_event(store, datetime.combine(day, time(hour, 7 * offset % 60), tzinfo=NEW_YORK))


@pytest.mark.parametrize(
    ("hours", "expected"),
    [
        ([19, 19, 19, 19, 19], 19),
        ([19, 8, 19, 22, 19, 8], 19),
        ([19, 19, 19, 19], None),
        ([], None),
        ([19, 19, 19, 8, 8, 8], None),
        ([19, 19, 8, 8, 22], None),
        ([0, 0, 0, 23, 23], 0),
    ],
)
def test_most_active_hour_in_the_zone(
    store: Store, activities: JourneyActivities, hours: list[int], expected: int | None
) -> None:
    add_local_events(store, hours)
    add_event(store, NOW, user_id="u2")  # someone else's events do not count
    asked = ActiveHourInput(user_id=USER, timezone="America/New_York")
    assert activities.most_active_hour(asked).hour == expected


def test_most_active_hour_uses_the_requested_zone(
    store: Store, activities: JourneyActivities
) -> None:
    add_local_events(store, [19, 19, 19, 19, 19, 8])
    in_utc = activities.most_active_hour(ActiveHourInput(user_id=USER, timezone="UTC")).hour
    assert in_utc in (23, 0)  # 19:xx in New York is 23:xx (EDT) or 00:xx (EST) in UTC


def test_most_active_hour_ignores_old_history(store: Store, activities: JourneyActivities) -> None:
    add_local_events(store, [19] * 6, days_back=100)
    add_local_events(store, [8, 8, 8, 8, 8])
    asked = ActiveHourInput(user_id=USER, timezone="America/New_York")
    assert activities.most_active_hour(asked).hour == 8


# --- update_user -------------------------------------------------------------------------------


def test_update_user_renders_sets_and_unsets(store: Store, activities: JourneyActivities) -> None:
    merge_traits(store, USER, {"first_name": "Ada", "score": 1, "coupon": "X1", "tier": "gold"})
    request = UpdateUserInput(
        user_id=USER,
        set={
            "last_journey": "{{ journey.id }}",
            "greeting": "Hi {{ user.first_name }} ({{ variant }}, {{ entry.plan }})",
            "score": 42,
            "vip": True,
            "prefs": {"topics": ["{{ event.sku }}", 3], "mute": None},
            "broken": "{% include 'x' %}",
            "tier": "{% include 'x' %}",
        },
        unset=["coupon", "never-set"],
        context=CONTEXT,
    )
    expected = {
        "first_name": "Ada",
        "score": 42,
        "tier": "gold",  # its new value does not render: the old one stays
        "last_journey": "welcome",
        "greeting": "Hi Ada (b, pro)",
        "vip": True,
        "prefs": {"topics": ["A-1", 3], "mute": None},
    }
    updated = activities.update_user(request)
    assert updated.traits == expected
    assert updated.facts == {}
    user = store.get_user(USER)
    assert user is not None
    assert user.traits == expected


def test_update_user_creates_a_profile(store: Store, activities: JourneyActivities) -> None:
    request = UpdateUserInput(user_id="new", set={"who": "{{ user.id }}"}, context=CONTEXT)
    assert activities.update_user(request).traits == {"who": "new"}
    user = store.get_user("new")
    assert user is not None
    assert user.traits == {"who": "new"}


# --- enroll and record_progress ----------------------------------------------------------------


def enroll_input(enrollment_id: str = "enr-1", at: datetime = NOW) -> EnrollInput:
    """An enrollment of `u1` in version 3 of the welcome journey."""
    return EnrollInput(
        enrollment_id=enrollment_id,
        user_id=USER,
        journey_id=JOURNEY,
        version=3,
        workflow_id=f"journey:{JOURNEY}:{USER}",
        entered_at=at,
    )


def test_enroll_is_idempotent(store: Store, activities: JourneyActivities) -> None:
    activities.enroll(enroll_input())
    activities.enroll(enroll_input(at=NOW + timedelta(minutes=1)))
    record = enrollment(store)
    assert (record.user_id, record.journey_id, record.version) == (USER, JOURNEY, 3)
    assert (record.workflow_id, record.status, record.entered_at) == (
        f"journey:{JOURNEY}:{USER}",
        "active",
        NOW,
    )
    assert [e.id for e in store.enrollments_for_user(USER)] == ["enr-1"]
    assert store.journey_counts(JOURNEY)["entered"] == 1


def test_record_progress_counts_each_node_once(store: Store, activities: JourneyActivities) -> None:
    activities.enroll(enroll_input())
    at = NOW + timedelta(minutes=1)
    activities.record_progress(ProgressInput(enrollment_id="enr-1", at=at, node_id="hello"))
    activities.record_progress(ProgressInput(enrollment_id="enr-1", at=at, node_id="hello"))
    assert store.node_counts(JOURNEY) == {"hello": {"reached": 1, "waiting": 1}}
    assert enrollment(store).current_node == "hello"
    activities.record_progress(ProgressInput(enrollment_id="enr-1", at=at, node_id="wait"))
    assert store.node_counts(JOURNEY) == {
        "hello": {"reached": 1, "waiting": 0},
        "wait": {"reached": 1, "waiting": 1},
    }


def test_record_progress_variant_conversion_and_end(
    store: Store, activities: JourneyActivities
) -> None:
    activities.enroll(enroll_input())
    t1, t2, t3 = (NOW + timedelta(minutes=n) for n in (1, 2, 3))
    activities.record_progress(ProgressInput(enrollment_id="enr-1", at=t1, node_id="split"))
    activities.record_progress(ProgressInput(enrollment_id="enr-1", at=t1, variant="b"))
    assert enrollment(store).variant == "b"

    activities.record_progress(ProgressInput(enrollment_id="enr-1", at=t2, converted=True))
    activities.record_progress(ProgressInput(enrollment_id="enr-1", at=t3, converted=True))
    assert enrollment(store).converted_at == t2
    assert store.journey_counts(JOURNEY)["converted"] == 1

    ended = ProgressInput(enrollment_id="enr-1", at=t2, node_id="bye", ended="exited")
    activities.record_progress(ended)
    activities.record_progress(ProgressInput(enrollment_id="enr-1", at=t3, ended="completed"))
    record = enrollment(store)
    assert (record.status, record.current_node, record.ended_at) == ("exited", None, t2)
    assert (record.variant, record.converted_at) == ("b", t2)
    assert store.node_counts(JOURNEY) == {
        "split": {"reached": 1, "waiting": 0},
        "bye": {"reached": 1, "waiting": 0},
    }
    assert store.journey_counts(JOURNEY) == {
        "entered": 1,
        "active": 0,
        "completed": 0,
        "exited": 1,
        "converted": 1,
        "limited": 0,
    }
