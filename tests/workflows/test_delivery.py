"""Messages through real providers, driven by the interpreter on the time-skipping server:
every channel end to end, a worker dying after the provider took a message, failures that
retry or take `on_failure`, and frequency caps across journeys."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
from temporalio import activity
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.channels import Provider, build_channels, closing_channels
from activities.journey import JourneyActivities
from journeys.contracts import JOURNEY_NODE, Activity, DeliverInput, DeliveryOutcome
from journeys.model import Channel
from journeys.settings import Settings
from journeys.store import Store
from journeys.unsubscribe import Links
from journeys.workspace import FrequencyCap, WorkspaceSettings, save_workspace_settings
from tests.activities.test_delivery import CrashAfterSend
from tests.factories import merge_traits
from tests.receivers import HttpReceiver, Reply, SmtpReceiver
from tests.workflows.helpers import make_journey, run_delivering_with, start
from worker.main import build_worker

LINKS = Links("https://api.shop.example", "unsubscribe-secret")
ADA = {
    "first_name": "Ada",
    "email": "ada@example.com",
    "phone": "+15550100200",
    "push_tokens": ["device-1"],
}


@dataclass(frozen=True)
class Receivers:
    """Real servers on loopback: SMTP, and HTTP (honouring idempotency keys) standing in for
    the push gateway, the SMS API and webhook targets."""

    smtp: SmtpReceiver
    http: HttpReceiver


@pytest.fixture
def receivers() -> Iterator[Receivers]:
    """The test's receivers."""
    with (
        SmtpReceiver() as smtp,
        HttpReceiver(Reply.json({"name": "m/1", "sid": "SM1"}), idempotent=True) as http,
    ):
        yield Receivers(smtp, http)


def channels_for(receivers: Receivers) -> dict[Channel, Provider]:
    """Every provider configured against the receivers."""
    http = receivers.http
    settings = Settings(
        smtp_url=receivers.smtp.url,
        email_from="shop@example.com",
        push_url=f"{http.url}/push",
        sms_url=f"{http.url}/sms",
        webhook_allow="127.0.0.1",
    )
    return build_channels(settings)


@pytest.fixture
async def delivering_worker(
    time_skipping: WorkflowEnvironment,
    store: Store,
    task_queue: str,
    executor: ThreadPoolExecutor,
    receivers: Receivers,
) -> AsyncIterator[Worker]:
    """A journeys worker delivering through the receivers."""
    with closing_channels(channels_for(receivers)) as channels:
        worker = build_worker(
            time_skipping.client, store, task_queue, executor, channels=channels, links=LINKS
        )
        async with worker:
            yield worker


def message(channel: Channel, content: dict[str, Any], next: str | None = None) -> dict[str, Any]:
    """A message node."""
    return {"type": "message", "channel": channel, "content": content, "next": next}


async def test_every_channel_delivers_through_its_provider(
    time_skipping: WorkflowEnvironment,
    delivering_worker: Worker,
    store: Store,
    task_queue: str,
    receivers: Receivers,
) -> None:
    smtp, http = receivers.smtp, receivers.http
    merge_traits(store, "u1", ADA)
    journey = make_journey(
        "mail",
        {
            "mail": message("email", {"subject": "Hi {{ user.first_name }}", "body": "b"}, "push"),
            "push": message("push", {"title": "{{ entry.sku }}", "body": "In stock"}, "sms"),
            "sms": message("sms", {"body": "Code {{ journey.id }}"}, "inbox"),
            "inbox": message("in_app", {"body": "Welcome", "kind": "banner"}, "hook"),
            "hook": message("webhook", {"url": f"{http.url}/hook", "body": {"u": "{{ user.id }}"}}),
        },
    )
    handle = await start(time_skipping, task_queue, journey, entry={"sku": "A-1"})
    outcome = await handle.result()
    assert outcome.path == ["mail", "push", "sms", "inbox", "hook"]

    [mail] = smtp.messages
    assert (mail.message["Subject"], mail.text()) == ("Hi Ada", "b\n")
    assert mail.message["List-Unsubscribe"].startswith("<https://api.shop.example/unsubscribe?")
    push, sms, hook = http.requests
    assert push.json()["message"]["notification"] == {"title": "A-1", "body": "In stock"}
    assert sms.form() == {"To": "+15550100200", "Body": "Code test-journey"}
    assert (hook.path, hook.body) == ("/hook", b'{"u":"u1"}')
    # One key per delivery (`{enrollment}:{node}`), and per device token for push.
    assert ":push:" in (push.header("Idempotency-Key") or "")
    assert (sms.header("Idempotency-Key") or "").endswith(":sms")
    assert (hook.header("Idempotency-Key") or "").endswith(":hook")
    [inbox] = store.inbox("u1")
    assert inbox.content == {"body": "Welcome", "kind": "banner"}
    providers = {d.node_id: (d.status, d.provider) for d in store.deliveries_for_user("u1")}
    assert providers == {
        "mail": ("sent", "smtp"),
        "push": ("sent", "push"),
        "sms": ("sent", "sms"),
        "inbox": ("sent", "inbox"),
        "hook": ("sent", "webhook"),
    }
    assert {node: counts["sent"] for node, counts in store.message_counts(journey.id).items()} == {
        "mail": 1,
        "push": 1,
        "sms": 1,
        "inbox": 1,
        "hook": 1,
    }


async def test_a_worker_dying_after_the_provider_took_the_message_delivers_once(
    time_skipping: WorkflowEnvironment,
    store: Store,
    task_queue: str,
    executor: ThreadPoolExecutor,
    receivers: Receivers,
) -> None:
    smtp, http = receivers.smtp, receivers.http
    channels = channels_for(receivers)
    # First attempts die at the worst moments: the webhook right after the receiver answered
    # (nothing recorded yet), the email after its outcome was recorded but before Temporal heard.
    crashing = {**channels, "webhook": CrashAfterSend(channels["webhook"])}
    activities = JourneyActivities(store, crashing, LINKS)
    died: set[str] = set()

    @activity.defn(name=Activity.DELIVER)
    def deliver_then_die(request: DeliverInput) -> DeliveryOutcome:
        outcome = activities.deliver(request)
        if request.channel == "email" and request.node_id not in died:
            died.add(request.node_id)
            raise RuntimeError("worker killed before reporting")
        return outcome

    merge_traits(store, "u1", ADA)
    journey = make_journey(
        "mail",
        {
            "mail": message("email", {"subject": "Once", "body": "b"}, "hook"),
            "hook": message("webhook", {"url": f"{http.url}/hook", "body": "{{ user.id }}"}),
        },
    )
    with closing_channels(channels):
        outcome = await run_delivering_with(
            time_skipping,
            task_queue,
            executor,
            journey,
            activities=activities,
            deliver=deliver_then_die,
        )
    assert outcome.path == ["mail", "hook"]
    assert len(smtp.messages) == 1
    first, again = http.requests  # the retry sent the same request under the same key
    assert first.header("Idempotency-Key") == again.header("Idempotency-Key")
    assert first.body == again.body == b"u1"
    assert len(http.deliveries()) == 1
    assert {d.status for d in store.deliveries_for_user("u1")} == {"sent"}


async def test_a_permanent_failure_takes_on_failure_and_a_transient_one_retries(
    time_skipping: WorkflowEnvironment,
    delivering_worker: Worker,
    store: Store,
    task_queue: str,
    receivers: Receivers,
) -> None:
    http = receivers.http
    http.script(Reply(503, {"Retry-After": "1"}))
    http.respond = lambda request: Reply(404) if request.path == "/gone" else Reply()
    journey = make_journey(
        "flaky",
        {
            "flaky": message("webhook", {"url": f"{http.url}/flaky"}, "gone"),
            "gone": {
                **message("webhook", {"url": f"{http.url}/gone"}, "never"),
                "on_failure": "fallback",
            },
            "never": {"type": "exit"},
            "fallback": message("in_app", {"body": "We could not reach you"}),
        },
    )
    outcome = await (await start(time_skipping, task_queue, journey)).result()
    assert outcome.path == ["flaky", "gone", "fallback"]
    assert [r.path for r in http.requests] == ["/flaky", "/flaky", "/gone"]
    by_node = {d.node_id: d for d in store.deliveries_for_user("u1")}
    assert by_node["flaky"].status == "sent"
    assert (by_node["gone"].status, by_node["gone"].reason) == ("failed", "webhook 404: Not Found")


async def test_a_run_held_up_by_its_provider_is_recorded_where_it_waits(
    time_skipping: WorkflowEnvironment,
    delivering_worker: Worker,
    store: Store,
    task_queue: str,
    receivers: Receivers,
) -> None:
    # The local attempt fails and the provider asks for an hour: before the run waits for it,
    # it records its enrollment and the node it is held up at, and publishes that node, so the
    # journey's stats and the Temporal UI show a user held up by a provider.
    http = receivers.http
    http.script(Reply(503, {"Retry-After": "3600"}))
    journey = make_journey("flaky", {"flaky": message("webhook", {"url": f"{http.url}/flaky"})})
    handle = await start(time_skipping, task_queue, journey)
    async with asyncio.timeout(10):
        while not store.enrollments_for_user("u1"):
            await asyncio.sleep(0.02)
    [enrollment] = store.enrollments_for_user("u1")
    assert (enrollment.status, enrollment.current_node) == ("active", "flaky")
    assert store.node_counts(journey.id) == {"flaky": {"reached": 1, "waiting": 1}}
    attributes = (await handle.describe()).typed_search_attributes
    assert attributes.get(JOURNEY_NODE) == "flaky"
    assert [d.status for d in store.deliveries_for_user("u1")] == ["pending"]

    assert (await handle.result()).path == ["flaky"]  # an hour later, the provider took it
    assert [r.path for r in http.requests] == ["/flaky", "/flaky"]
    [enrollment] = store.enrollments_for_user("u1")
    assert (enrollment.status, enrollment.current_node) == ("completed", None)
    assert [d.status for d in store.deliveries_for_user("u1")] == ["sent"]


async def test_frequency_caps_skip_across_journeys_and_the_journey_moves_on(
    time_skipping: WorkflowEnvironment,
    delivering_worker: Worker,
    store: Store,
    task_queue: str,
    receivers: Receivers,
) -> None:
    save_workspace_settings(
        store, WorkspaceSettings(frequency_caps=[FrequencyCap(max=1, per="1d", channel="email")])
    )
    merge_traits(store, "u1", ADA)
    promo = message("email", {"subject": "Sale", "body": "b"}, "after")
    receipt = {**message("email", {"subject": "Receipt", "body": "b"}), "transactional": True}
    first = make_journey("mail", {"mail": promo, "after": {"type": "exit"}}, id="first")
    second = make_journey(
        "mail",
        {"mail": promo, "after": message("email", {"subject": "", "body": ""}) | receipt},
        id="second",
    )
    assert (await (await start(time_skipping, task_queue, first)).result()).path == [
        "mail",
        "after",
    ]
    outcome = await (await start(time_skipping, task_queue, second)).result()
    assert outcome.path == ["mail", "after"]
    capped = {
        (d.journey_id, d.node_id): (d.status, d.reason) for d in store.deliveries_for_user("u1")
    }
    assert capped == {
        ("first", "mail"): ("sent", None),
        ("second", "mail"): ("skipped", "frequency cap: 1 per 1d on email"),
        ("second", "after"): ("sent", None),  # transactional: never capped
    }
    assert [m.message["Subject"] for m in receivers.smtp.messages] == ["Sale", "Receipt"]
