"""The deliver activity against real providers: an SMTP server and HTTP servers on loopback.

Exactly once from the user's point of view, consent and fatigue rules, and which failures are
retried.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from temporalio.exceptions import ApplicationError

from activities.channels import Message, Provider, Receipt, build_channels, embedded_channels
from activities.journey import PERMANENT_FAILURE, TRANSIENT_FAILURE, JourneyActivities
from journeys.contracts import DeliverInput, EnrollInput, ProgressInput, TemplateContext
from journeys.errors import NotFound
from journeys.model import Channel
from journeys.settings import Settings
from journeys.store import DeliveryRecord, Store
from journeys.unsubscribe import Links, Unsubscribe, verify
from journeys.workspace import FrequencyCap, WorkspaceSettings, save_workspace_settings
from tests.factories import merge_traits
from tests.receivers import HttpReceiver, Reply, SmtpReceiver

SECRET = "unsubscribe-secret"
LINKS = Links("https://api.shop.example", SECRET)
USER = "ada"
CONTEXT = TemplateContext(
    entry={"total": 120}, journey={"id": "cart", "name": "Cart", "version": 2}, variant="b"
)
EMAIL = {
    "subject": "{{ user.first_name | default: 'friend' }}, your cart",
    "body": "Total {{ entry.total }}. Leave: {{ unsubscribe_url }}",
    "html": "<p>Total <b>{{ entry.total }}</b></p>",
}


def deliver_input(
    channel: Channel = "email",
    content: dict[str, Any] | None = None,
    *,
    key: str = "enr-1:node",
    transactional: bool = False,
    track: bool = False,
) -> DeliverInput:
    """A delivery of node `node` of the cart journey to Ada (tracked with `track`)."""
    return DeliverInput(
        idempotency_key=key,
        journey_id="cart",
        version=2,
        node_id="node",
        user_id=USER,
        channel=channel,
        content=EMAIL if content is None and channel == "email" else content,
        transactional=transactional,
        track=track,
        context=CONTEXT,
    )


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    """A real SMTP server on loopback."""
    with SmtpReceiver() as receiver:
        yield receiver


@pytest.fixture
def http() -> Iterator[HttpReceiver]:
    """A real HTTP server on loopback that honours idempotency keys, as providers do."""
    with HttpReceiver(Reply.json({"sid": "SM1", "name": "projects/p/messages/1"})) as receiver:
        yield receiver


def activities_for(store: Store, smtp: SmtpReceiver, http: HttpReceiver) -> JourneyActivities:
    """The activities with every provider configured against the receivers."""
    settings = Settings(
        smtp_url=smtp.url,
        email_from="Shop <shop@example.com>",
        push_url=f"{http.url}/v1/projects/p/messages:send",
        push_token="push-token",
        sms_url=f"{http.url}/2010-04-01/Accounts/AC1/Messages.json",
        sms_token="AC1:sms-secret",
        sms_from="+15550000000",
        webhook_secret="hook-secret",
        webhook_allow="127.0.0.1",
    )
    return JourneyActivities(store, build_channels(settings), LINKS)


@pytest.fixture
def activities(store: Store, smtp: SmtpReceiver, http: HttpReceiver) -> JourneyActivities:
    """The activities over the test's store and receivers."""
    merge_traits(
        store,
        USER,
        {
            "first_name": "Ada",
            "email": "ada@example.com",
            "phone": "+44 20 7946 0000",
            "push_tokens": ["device-1"],
        },
    )
    return activities_for(store, smtp, http)


def failure(raised: pytest.ExceptionInfo[ApplicationError]) -> tuple[str | None, bool, str]:
    error = raised.value
    return error.type, error.non_retryable, error.message


def test_an_email_goes_out_rendered_with_a_signed_unsubscribe_link(
    activities: JourneyActivities, store: Store, smtp: SmtpReceiver
) -> None:
    outcome = activities.deliver(deliver_input())
    assert outcome.status == "sent"
    [mail] = smtp.messages
    assert (mail.sender, mail.recipients) == ("shop@example.com", ("ada@example.com",))
    headers = mail.message
    assert (headers["From"], headers["To"], headers["Subject"]) == (
        "Shop <shop@example.com>",
        "ada@example.com",
        "Ada, your cart",
    )
    link = headers["List-Unsubscribe"].strip("<>")
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mail.text("plain") == f"Total 120. Leave: {link}\n"
    assert mail.text("html") == "<p>Total <b>120</b></p>\n"
    (token,) = parse_qs(urlsplit(link).query)["token"]
    assert link.startswith("https://api.shop.example/unsubscribe?token=")
    assert verify(SECRET, token) == Unsubscribe(user_id=USER, channel="email")
    record = store.deliveries_for_user(USER)[0]
    assert (record.provider, record.provider_message_id) == ("smtp", headers["Message-ID"])
    assert record.content["subject"] == "Ada, your cart"


def test_a_transactional_email_carries_no_unsubscribe_link(
    activities: JourneyActivities, smtp: SmtpReceiver
) -> None:
    activities.deliver(deliver_input(transactional=True))
    [mail] = smtp.messages
    assert mail.message["List-Unsubscribe"] is None
    assert mail.text("plain") == "Total 120. Leave: \n"


def test_push_sms_and_webhook_requests_are_exact(
    activities: JourneyActivities, store: Store, http: HttpReceiver
) -> None:
    activities.deliver(deliver_input("push", {"title": "Hi {{ user.first_name }}", "body": "b"}))
    activities.deliver(deliver_input("sms", {"body": "Code {{ entry.total }}"}, key="k-sms"))
    hook = {
        "url": f"{http.url}/hooks/cart?user={{{{ user.id }}}}",
        "headers": {"X-Shop": "{{ journey.id }}"},
        "body": {"user": "{{ user.id }}", "variant": "{{ variant }}"},
    }
    activities.deliver(deliver_input("webhook", hook, key="k-hook"))
    push, sms, webhook = http.requests

    assert (push.method, push.path) == ("POST", "/v1/projects/p/messages:send")
    assert push.header("Authorization") == "Bearer push-token"
    assert push.header(
        "Idempotency-Key",
    ).startswith("enr-1:node:")  # type: ignore[union-attr]
    assert push.json() == {
        "message": {"token": "device-1", "notification": {"title": "Hi Ada", "body": "b"}}
    }

    assert (sms.method, sms.path) == ("POST", "/2010-04-01/Accounts/AC1/Messages.json")
    assert sms.header("Idempotency-Key") == "k-sms"
    assert sms.header("Authorization") == "Basic QUMxOnNtcy1zZWNyZXQ="  # AC1:sms-secret
    assert sms.form() == {"To": "+442079460000", "From": "+15550000000", "Body": "Code 120"}

    assert (webhook.method, webhook.path) == ("POST", "/hooks/cart?user=ada")
    assert webhook.body == b'{"user":"ada","variant":"b"}'
    assert webhook.header("X-Shop") == "cart"
    assert webhook.header("Idempotency-Key") == "k-hook"
    timestamp, v1 = (webhook.header("X-Journeys-Signature") or "").split(",")
    signature = {"t": timestamp.removeprefix("t="), "v1": v1.removeprefix("v1=")}
    expected = hmac.new(
        b"hook-secret", f"{signature['t']}.".encode() + webhook.body, hashlib.sha256
    ).hexdigest()
    assert hmac.compare_digest(signature["v1"], expected)
    providers = {d.channel: d.provider for d in store.deliveries_for_user(USER)}
    assert providers == {"push": "push", "sms": "sms", "webhook": "webhook"}


class CrashAfterSend:
    """A provider whose first send dies after the real provider took the message, as a worker
    killed at that moment would: nothing is recorded after the send."""

    def __init__(self, provider: Provider) -> None:
        self.provider = provider
        self.name = provider.name
        self.honours_idempotency_key = provider.honours_idempotency_key
        self.crashed = False

    def send(self, message: Message) -> Receipt:
        receipt = self.provider.send(message)
        if not self.crashed:
            self.crashed = True
            raise RuntimeError("worker killed")
        return receipt

    def close(self) -> None:
        self.provider.close()


def test_a_crash_after_the_provider_took_a_webhook_resends_it_under_the_same_key(
    activities: JourneyActivities, store: Store, http: HttpReceiver
) -> None:
    channels = build_channels(Settings(webhook_allow="127.0.0.1"))
    crashing = JourneyActivities(
        store, {**channels, "webhook": CrashAfterSend(channels["webhook"])}
    )
    request = deliver_input("webhook", {"url": f"{http.url}/hook", "body": "{{ user.id }}"})
    with pytest.raises(RuntimeError):
        crashing.deliver(request)
    assert store.deliveries_for_user(USER)[0].status == "sending"
    merge_traits(store, USER, {"id_changed": True})
    assert crashing.deliver(request).status == "sent"
    first, again = http.requests
    assert first.header("Idempotency-Key") == again.header("Idempotency-Key") == "enr-1:node"
    assert first.body == again.body == b"ada"
    assert len(http.deliveries()) == 1  # to a receiver honouring the key: one message


def test_a_crash_after_the_smtp_server_took_an_email_never_sends_it_twice(
    store: Store, smtp: SmtpReceiver, http: HttpReceiver
) -> None:
    merge_traits(store, USER, {"email": "ada@example.com"})
    channels = build_channels(Settings(smtp_url=smtp.url, email_from="shop@example.com"))
    crashing = JourneyActivities(store, {**channels, "email": CrashAfterSend(channels["email"])})
    with pytest.raises(RuntimeError):
        crashing.deliver(deliver_input())
    # SMTP servers do not deduplicate: the retry cannot know whether it went, so it stops.
    with pytest.raises(ApplicationError) as raised:
        crashing.deliver(deliver_input())
    assert raised.value.non_retryable
    assert len(smtp.messages) == 1
    record = store.deliveries_for_user(USER)[0]
    assert record.status == "failed"
    assert "not sent again" in (record.reason or "")


def test_overlapping_attempts_send_once(
    activities: JourneyActivities, store: Store, smtp: SmtpReceiver
) -> None:
    # A retry (B) starts while the first attempt (A) still runs, as after a heartbeat timeout:
    # both find the delivery pending, A claims it first, then B tries to. B must not send.
    claim = store.claim_delivery
    b_began, a_claimed = threading.Event(), threading.Event()

    def claiming(*args: Any, **kwargs: Any) -> DeliveryRecord:
        if threading.current_thread().name == "B":
            b_began.set()
            assert a_claimed.wait(5)
            return claim(*args, **kwargs)
        assert b_began.wait(5)
        try:
            return claim(*args, **kwargs)
        finally:
            a_claimed.set()

    outcomes: dict[str, Any] = {}

    def attempt() -> None:
        try:
            outcomes[threading.current_thread().name] = activities.deliver(deliver_input())
        except ApplicationError as error:
            outcomes[threading.current_thread().name] = error

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(store, "claim_delivery", claiming)
        threads = [threading.Thread(target=attempt, name=name) for name in "AB"]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
    assert outcomes["A"].status == "sent"
    lost = outcomes["B"]
    assert isinstance(lost, ApplicationError)
    assert (lost.type, lost.non_retryable) == (TRANSIENT_FAILURE, False)
    assert len(smtp.messages) == 1
    # B's retry finds A's outcome.
    assert activities.deliver(deliver_input()) == outcomes["A"]
    assert len(smtp.messages) == 1


def test_a_message_that_went_stays_sent_when_recording_the_run_fails(
    activities: JourneyActivities, store: Store, smtp: SmtpReceiver
) -> None:
    # The run's steps go in the transaction of the outcome; when they cannot be recorded (here
    # a step of an enrollment the store does not know yet), the outcome is kept all the same,
    # the attempt fails, and its retry records the steps without sending again.
    at = datetime.now(UTC)
    request = deliver_input().model_copy(
        update={"then": ProgressInput(enrollment_id="enr-1", at=at, node_id="next")}
    )
    with pytest.raises(NotFound):
        activities.deliver(request)
    [record] = store.deliveries_for_user(USER)
    assert (record.status, len(smtp.messages)) == ("sent", 1)

    enrollment = EnrollInput(
        enrollment_id="enr-1", user_id=USER, journey_id="cart", version=2,
        workflow_id="journey:cart:ada", entered_at=at,
    )  # fmt: skip
    store.record_steps([], enrollment=enrollment)
    assert activities.deliver(request).status == "sent"
    assert len(smtp.messages) == 1
    assert store.node_counts("cart")["next"]["reached"] == 1


def test_a_retry_after_the_outcome_was_recorded_sends_nothing(
    activities: JourneyActivities, smtp: SmtpReceiver, http: HttpReceiver
) -> None:
    # The worker died after recording "sent", before Temporal heard the activity completed.
    first = activities.deliver(deliver_input())
    hook = deliver_input("webhook", {"url": f"{http.url}/hook"}, key="k-hook")
    hooked = activities.deliver(hook)
    assert activities.deliver(deliver_input()) == first
    assert activities.deliver(hook) == hooked
    assert (len(smtp.messages), len(http.requests)) == (1, 1)


def test_transient_errors_retry_and_permanent_ones_fail_at_once(
    activities: JourneyActivities, store: Store, http: HttpReceiver
) -> None:
    hook = deliver_input("webhook", {"url": f"{http.url}/hook"})
    http.script(Reply(429, {"Retry-After": "7"}), Reply(503))
    for delay in (timedelta(seconds=7), None):
        with pytest.raises(ApplicationError) as raised:
            activities.deliver(hook)
        assert failure(raised)[:2] == (TRANSIENT_FAILURE, False)
        assert raised.value.next_retry_delay == delay
        assert store.deliveries_for_user(USER)[0].status == "pending"  # free to try again
    assert activities.deliver(hook).status == "sent"

    http.script(Reply(400, body=b"bad request"))
    refused = deliver_input("webhook", {"url": f"{http.url}/hook"}, key="k-400")
    with pytest.raises(ApplicationError) as raised:
        activities.deliver(refused)
    assert failure(raised)[:2] == (PERMANENT_FAILURE, True)
    assert store.deliveries_for_user(USER)[0].status == "failed"


def test_an_unregistered_push_token_is_removed_from_the_profile(
    activities: JourneyActivities, store: Store, http: HttpReceiver
) -> None:
    merge_traits(store, USER, {"push_tokens": ["device-1", "stale"]})
    unregistered = {"error": {"status": "NOT_FOUND", "details": [{"errorCode": "UNREGISTERED"}]}}
    http.respond = lambda request: (
        Reply.json(unregistered, 404) if b"stale" in request.body else Reply.json({"name": "m"})
    )
    assert activities.deliver(deliver_input("push", {"title": "t", "body": "b"})).status == "sent"
    assert store.get_user(USER).traits["push_tokens"] == ["device-1"]  # type: ignore[union-attr]
    merge_traits(store, USER, {"push_tokens": ["stale"]})
    with pytest.raises(ApplicationError):
        activities.deliver(deliver_input("push", {"title": "t", "body": "b"}, key="k2"))
    assert store.get_user(USER).traits["push_tokens"] == []  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "target",
    ["127.0.0.1", "10.0.0.1", "169.254.169.254", "localhost", "[::1]"],
)
def test_a_webhook_to_a_private_address_is_refused_unless_allowed(
    store: Store, http: HttpReceiver, target: str
) -> None:
    merge_traits(store, USER, {})
    activities = JourneyActivities(store, embedded_channels())
    hook = deliver_input("webhook", {"url": f"http://{target}:{http.port}/hook"})
    with pytest.raises(ApplicationError) as raised:
        activities.deliver(hook)
    assert failure(raised)[:2] == (PERMANENT_FAILURE, True)
    assert "JOURNEYS_WEBHOOK_ALLOW" in raised.value.message
    assert http.requests == []
    record = store.deliveries_for_user(USER)[0]
    assert (record.status, record.reason) == ("failed", raised.value.message)


# --- consent and fatigue ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("traits", "channel", "reason"),
    [
        ({"unsubscribed": True}, "email", "unsubscribed"),
        ({"unsubscribed": "true"}, "sms", "unsubscribed"),
        ({"unsubscribed_email": True}, "email", "unsubscribed from email"),
        ({"unsubscribed_push": "yes"}, "push", "unsubscribed from push"),
        ({"unsubscribed_email": True}, "sms", None),
        ({"unsubscribed": False}, "email", None),
    ],
)
def test_unsubscribed_users_are_skipped_unless_the_message_is_transactional(
    activities: JourneyActivities,
    store: Store,
    traits: dict[str, Any],
    channel: Channel,
    reason: str | None,
) -> None:
    merge_traits(store, USER, traits)
    content = EMAIL if channel == "email" else {"title": "t", "body": "b"}
    outcome = activities.deliver(deliver_input(channel, content))
    expected = ("sent", None) if reason is None else ("skipped", reason)
    assert (outcome.status, outcome.reason) == expected
    forced = activities.deliver(deliver_input(channel, content, key="k2", transactional=True))
    assert (forced.status, forced.reason) == ("sent", None)


def test_frequency_caps_count_across_journeys_and_skip_with_the_cap_as_reason(
    activities: JourneyActivities, store: Store, smtp: SmtpReceiver, http: HttpReceiver
) -> None:
    caps = [FrequencyCap(max=2, per="1d"), FrequencyCap(max=1, per="1d", channel="push")]
    save_workspace_settings(store, WorkspaceSettings(frequency_caps=caps))
    push = {"title": "t", "body": "b"}

    def send(channel: Channel, key: str, **options: Any) -> tuple[str, str | None]:
        outcome = activities.deliver(
            deliver_input(channel, push if channel == "push" else None, key=key, **options)
        )
        return outcome.status, outcome.reason

    assert send("push", "journey-a:push") == ("sent", None)
    assert send("push", "journey-b:push") == ("skipped", "frequency cap: 1 per 1d on push")
    assert send("email", "journey-b:email") == ("sent", None)
    assert send("email", "journey-c:email", transactional=True) == ("sent", None)  # not counted
    assert send("email", "journey-c:email2") == ("skipped", "frequency cap: 2 per 1d")
    assert send("email", "journey-d:receipt", transactional=True) == ("sent", None)
    assert len(smtp.messages) == 3
    assert len(http.requests) == 1
