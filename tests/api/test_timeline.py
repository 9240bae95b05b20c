"""A user's timeline (`GET /v1/users/{id}/timeline`), read back from real runs of published
journeys on the time-skipping server: entries, waits and what ended them, capped messages,
conversion, refused entries and holdouts, and paging."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from journeys.broadcasts import BROADCAST_NODE, broadcast_delivery_key, broadcast_workflow_id
from journeys.contracts import EVENT_SIGNAL, EntryContext, JourneyEvent
from journeys.holdouts import in_journey_holdout
from journeys.model import Journey
from journeys.store import Store
from journeys.timeline import SEQ_MAX
from tests.api.helpers import SDK_AUTH, ApiClient, assert_error
from tests.factories import broadcast_delivery
from tests.workflows.helpers import reached
from worker.main import build_worker
from workflows.client import start_journey

ADDRESS = {"email": "ada@example.com"}
Story = tuple[str, str, str | None]
"""A timeline entry as (kind, what, why)."""
MAIL = {"subject": "Your cart", "body": "Still there"}


def email(next: str | None) -> dict[str, Any]:
    """An email node."""
    return {"type": "message", "channel": "email", "content": MAIL, "next": next}


def cart(journey_id: str = "cart", *, checkout: str = "1h", goal: str = "3d") -> dict[str, Any]:
    """Cart recovery: an email, up to `checkout` for a checkout, a reminder, then up to 2 days
    for an order (the goal, within `goal`)."""
    return {
        "id": journey_id,
        "name": "Cart recovery",
        "entry": {"event": "Added to Cart"},
        "goal": {"event": "Order Completed", "within": goal},
        "start": "welcome",
        "nodes": {
            "welcome": email("wait_checkout"),
            "wait_checkout": {
                "type": "wait_for_event",
                "paths": [{"event": "Checkout Started", "next": None}],
                "timeout": checkout,
                "on_timeout": "reminder",
            },
            "reminder": email("wait_order"),
            "wait_order": {
                "type": "wait_for_event",
                "paths": [{"event": "Order Completed", "next": None}],
                "timeout": "2d",
            },
        },
    }


CART = cart()
CAP = {"frequency_caps": [{"max": 1, "per": "1d", "channel": "email"}]}
"""One email a day: the reminder that follows the first email is capped."""


def capped_and_converted(*, checkout: str = "1h", goal: str = "3d") -> list[Story]:
    """The timeline of a user who identified, entered `cart`, timed out waiting to check out,
    had the reminder capped (under `CAP`) and then ordered: what each entry says."""
    return [
        ("event", "identified: traits email", None),
        ("event", "event Added to Cart", None),
        ("entered", "entered Cart recovery", "entry event Added to Cart"),
        ("step", "reached welcome (message)", None),
        ("message", "email message sent", None),
        ("step", "reached wait_checkout (wait_for_event)", None),
        (
            "wait ended",
            "wait over at wait_checkout",
            f"timeout: no Checkout Started within {checkout}",
        ),
        ("step", "reached reminder (message)", None),
        ("message", "email message skipped", "frequency cap: 1 per 1d on email"),
        ("step", "reached wait_order (wait_for_event)", None),
        ("event", "event Order Completed", None),
        (
            "wait ended",
            "wait over at wait_order",
            "the event Order Completed arrived (the journey's goal)",
        ),
        ("converted", "converted", f"the goal: Order Completed within {goal}"),
        ("ended", "completed the journey", None),
    ]


class Shop:
    """Publishes journeys, sends events (stored through the API, then signalled to the run,
    as the router would) and starts runs, all at the time-skipping server's time."""

    def __init__(self, api: ApiClient, env: WorkflowEnvironment, task_queue: str) -> None:
        self.api, self.env, self.task_queue = api, env, task_queue
        self.sent = 0

    async def publish(self, document: dict[str, Any]) -> Journey:
        """Save and publish a journey through the API."""
        journey_id = document["id"]
        assert (await self.api.admin("PUT", f"/v1/journeys/{journey_id}", document)).is_success
        assert (await self.api.admin("POST", f"/v1/journeys/{journey_id}/publish")).is_success
        return Journey.model_validate(document)

    async def track(self, user_id: str, name: str) -> JourneyEvent:
        """Store an event of the user through the API, now."""
        self.sent += 1
        now = await self.env.get_current_time()
        event = JourneyEvent(message_id=f"{user_id}-{self.sent}", name=name, timestamp=now)
        body = {
            "userId": user_id,
            "event": name,
            "messageId": event.message_id,
            "timestamp": event.timestamp.isoformat(),
        }
        assert (await self.api.ingest("/v1/track", body)).is_success
        return event

    async def enter(self, journey: Journey, user_id: str) -> WorkflowHandle[Any, Any]:
        """The user does the journey's entry event, which starts their run."""
        assert journey.entry.event is not None
        entry = await self.track(user_id, journey.entry.event)
        return await start_journey(
            self.env.client,
            journey=journey,
            version=1,
            user_id=user_id,
            entry=EntryContext(
                message_id=entry.message_id, event=entry.name, timestamp=entry.timestamp
            ),
            task_queue=self.task_queue,
        )

    async def signal(self, handle: WorkflowHandle[Any, Any], user_id: str, name: str) -> None:
        """The user does `name`; the run hears of it."""
        await handle.signal(EVENT_SIGNAL, await self.track(user_id, name))


@pytest.fixture
def shop(api: ApiClient, time_skipping: WorkflowEnvironment, task_queue: str) -> Shop:
    """The test's shop."""
    return Shop(api, time_skipping, task_queue)


async def timeline(api: ApiClient, user_id: str, **query: Any) -> dict[str, Any]:
    """The user's timeline page (it must be found)."""
    response = await api.admin("GET", f"/v1/users/{user_id}/timeline", params=query)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


def story(page: dict[str, Any]) -> list[Story]:
    """The page's entries as (kind, what, why)."""
    return [(e["kind"], e["what"], e["why"]) for e in page["entries"]]


async def test_entered_waited_capped_and_converted_reads_in_order_with_every_reason(
    api: ApiClient, shop: Shop, worker: Worker, time_skipping: WorkflowEnvironment
) -> None:
    assert (await api.admin("PUT", "/v1/settings", CAP)).is_success
    await api.ingest("/v1/identify", {"userId": "ada", "traits": ADDRESS})
    journey = await shop.publish(CART)
    handle = await shop.enter(journey, "ada")
    await reached(handle, "wait_checkout")
    await time_skipping.sleep(timedelta(hours=1, minutes=1))
    await reached(handle, "wait_order")
    await shop.signal(handle, "ada", "Order Completed")
    await handle.result()

    page = await timeline(api, "ada")
    assert story(page) == capped_and_converted()
    runs = {e["workflow_id"] for e in page["entries"] if e["kind"] != "event"}
    assert runs == {"journey:cart:ada"}
    [capped] = [e for e in page["entries"] if e["why"] and "frequency cap" in e["why"]]
    assert capped["details"]["status"] == "skipped"
    assert capped["node_id"] == "reminder"
    assert (page["next"], page["previous"]) == (None, None)

    # Paging: three at a time, forwards by `next`, backwards by `previous`, same entries.
    forwards: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        part = await timeline(api, "ada", limit=3, **({"after": cursor} if cursor else {}))
        forwards += part["entries"]
        assert len(part["entries"]) <= 3
        if (cursor := part["next"]) is None:
            break
    assert forwards == page["entries"]
    last = await timeline(api, "ada", limit=3, before=forwards[-1]["cursor"])
    assert last["entries"] == page["entries"][-4:-1]
    assert last["previous"] == page["entries"][-4]["cursor"]
    first = await timeline(api, "ada", limit=3, before=page["entries"][3]["cursor"])
    assert (first["entries"], first["previous"]) == (page["entries"][:3], None)


async def test_a_refused_entry_shows_the_entry_limit_and_a_held_out_entry_shows_its_holdout(
    api: ApiClient, shop: Shop, worker: Worker
) -> None:
    document = {
        **CART,
        "id": "limited",
        "entry": {"event": "Added to Cart", "limit": {"count": 1, "per": "1d"}},
        "holdout": {"percent": 50},
        "nodes": {"welcome": email(None)},
    }
    journey = Journey.model_validate(document)
    held, other = _users(journey, held_out=True), _users(journey, held_out=False)
    await shop.publish(document)
    await (await shop.enter(journey, held)).result()
    await (await shop.enter(journey, other)).result()

    assert story(await timeline(api, held)) == [
        ("event", "event Added to Cart", None),
        (
            "entered",
            "entered Cart recovery",
            "entry event Added to Cart; held out (holdout): gets no non-transactional message",
        ),
        ("step", "reached welcome (message)", None),
        ("message", "email message skipped", "holdout"),
        ("ended", "completed the journey", None),
    ]
    refused = await timeline(api, other)
    assert story(refused) == [
        ("event", "event Added to Cart", None),
        ("not entered", "did not enter Cart recovery", "entry limit: at most 1 per 1d"),
    ]
    assert refused["entries"][1]["workflow_id"] == f"journey:limited:{other}"


async def test_a_delay_a_branch_an_update_and_an_exit_during_a_wait_each_say_why(
    api: ApiClient, shop: Shop, worker: Worker, time_skipping: WorkflowEnvironment
) -> None:
    await api.ingest("/v1/identify", {"userId": "ada", "traits": {"plan": "pro"}})
    document = {
        "id": "winback",
        "name": "Win back",
        "entry": {"event": "Added to Cart"},
        "exit": [{"event": "Unsubscribed"}],
        "start": "pause",
        "nodes": {
            "pause": {"type": "delay", "duration": "1h", "next": "by_plan"},
            "by_plan": {
                "type": "branch",
                "paths": [
                    {"when": {"field": "user.plan", "op": "eq", "value": "free"}, "next": None},
                    {"when": {"field": "user.plan", "op": "eq", "value": "pro"}, "next": "vip"},
                ],
                "else": None,
            },
            "vip": {"type": "update_user", "set": {"tier": "vip"}, "next": "wait_checkout"},
            "wait_checkout": {
                "type": "wait_for_event",
                "paths": [{"event": "Checkout Started", "next": None}],
                "timeout": "1d",
            },
        },
    }
    handle = await shop.enter(await shop.publish(document), "ada")
    await reached(handle, "pause")
    await time_skipping.sleep(timedelta(hours=1, minutes=1))
    await reached(handle, "wait_checkout")
    await shop.signal(handle, "ada", "Unsubscribed")
    assert (await handle.result()).reason == "exit event Unsubscribed"

    left = "exit rule: the event Unsubscribed arrived"
    assert story(await timeline(api, "ada"))[2:] == [
        ("entered", "entered Win back", "entry event Added to Cart"),
        ("step", "reached pause (delay)", None),
        ("wait ended", "delay over at pause", "1h passed"),
        ("step", "reached by_plan (branch)", "condition 2 held"),
        ("step", "reached vip (update_user)", "changes traits tier"),
        ("step", "reached wait_checkout (wait_for_event)", None),
        ("event", "event Unsubscribed", None),
        ("wait ended", "wait over at wait_checkout", f"exit: {left}"),
        ("ended", "left Win back", left),
    ]


@pytest.fixture
async def real_time_shop(
    api: ApiClient,
    dev_server: WorkflowEnvironment,
    store: Store,
    task_queue: str,
    executor: ThreadPoolExecutor,
) -> AsyncIterator[Shop]:
    """A shop on the dev server, with a worker: Temporal's clock is the API's, as in
    production (the time-skipping server's runs ahead once a test has skipped time)."""
    async with build_worker(dev_server.client, store, task_queue, executor):
        yield Shop(api, dev_server, task_queue)


async def test_a_wait_whose_event_and_timeout_lead_to_one_node_is_told_by_its_length(
    api: ApiClient, shop: Shop, worker: Worker, time_skipping: WorkflowEnvironment
) -> None:
    document = {
        **CART,
        "id": "either",
        "start": "wait",
        "nodes": {
            "wait": {
                "type": "wait_for_event",
                "paths": [{"event": "Checkout Started", "next": "after"}],
                "timeout": "1h",
                "on_timeout": "after",
            },
            "after": {"type": "exit"},
        },
    }
    journey = await shop.publish(document)
    quick, slow = await shop.enter(journey, "quick"), await shop.enter(journey, "slow")
    await reached(quick, "wait")
    await reached(slow, "wait")
    await shop.signal(quick, "quick", "Checkout Started")
    await quick.result()
    await time_skipping.sleep(timedelta(hours=1, minutes=1))
    await slow.result()

    def ended(page: dict[str, Any]) -> list[str | None]:
        return [e["why"] for e in page["entries"] if e["kind"] == "wait ended"]

    assert ended(await timeline(api, "quick")) == ["the event Checkout Started arrived"]
    assert ended(await timeline(api, "slow")) == ["timeout: no Checkout Started within 1h"]


async def test_engagement_shows_when_it_happened_and_moves_no_step_of_the_run(
    api: ApiClient, real_time_shop: Shop
) -> None:
    shop = real_time_shop
    inbox = {"type": "message", "channel": "in_app", "content": {"body": "Hi"}, "next": "wait"}
    wait = {
        "type": "wait_for_event",
        "paths": [{"event": "Checkout Started", "next": None}],
        "timeout": "1d",
    }
    document = {**CART, "id": "hello", "nodes": {"welcome": inbox, "wait": wait}}
    handle = await shop.enter(await shop.publish(document), "ada")
    await reached(handle, "wait")
    await shop.signal(handle, "ada", "Checkout Started")
    await handle.result()
    # Only then does the user open the message, click it and mark it read.
    [message] = (await api.http.get("/v1/users/ada/inbox", headers=SDK_AUTH)).json()
    clicked = {
        "userId": "ada",
        "event": "In-App Message Clicked",
        "properties": {"delivery_id": message["id"]},
    }
    assert (await api.ingest("/v1/track", clicked)).is_success
    read = await api.http.post(f"/v1/users/ada/inbox/{message['id']}/read", headers=SDK_AUTH)
    assert read.is_success

    entries = (await timeline(api, "ada"))["entries"]
    assert [e["what"] for e in entries] == [
        "event Added to Cart",
        "entered Cart recovery",
        "reached welcome (message)",
        "in_app message sent",
        "reached wait (wait_for_event)",
        "event Checkout Started",
        "wait over at wait",
        "completed the journey",
        "event In-App Message Clicked",
        "opened the in_app message",
        "clicked a link in the in_app message",
        "event In-App Message Viewed",  # marking it read says it was seen
        "read the in_app message",
    ]
    engaged = [e for e in entries if e["kind"] == "engagement"]
    assert {(e["delivery_id"], e["workflow_id"]) for e in engaged} == {
        (message["id"], "journey:hello:ada")
    }


def _users(journey: Journey, *, held_out: bool) -> str:
    """A user id that is (or is not) in the journey's holdout."""
    return next(
        user
        for user in (f"user-{n}" for n in range(100))
        if in_journey_holdout(journey, user) == held_out
    )


async def test_a_broadcasts_message_says_which_broadcast_and_names_no_journey(
    api: ApiClient, store: Store
) -> None:
    broadcast_delivery(store, "spring-sale", "ada")
    key = broadcast_delivery_key("autumn", "ada")
    store.begin_delivery(
        idempotency_key=key, journey_id=broadcast_workflow_id("autumn"), version=0,
        node_id=BROADCAST_NODE, user_id="ada", channel="sms", variant=None, content={},
    )  # fmt: skip
    store.finish_delivery(key, "skipped", "unsubscribed from sms")
    page = await timeline(api, "ada")
    assert story(page) == [
        ("message", "email message sent", "broadcast spring-sale"),
        ("message", "sms message skipped", "broadcast autumn; unsubscribed from sms"),
    ]
    for entry, broadcast in zip(page["entries"], ["spring-sale", "autumn"], strict=True):
        assert (entry["journey_id"], entry["version"], entry["node_id"]) == (None, None, None)
        assert entry["workflow_id"] == f"broadcast:{broadcast}"  # the broadcast's workflow
        assert entry["details"]["broadcast"] == broadcast
        assert entry["delivery_id"] is not None


async def test_unknown_user_is_404(api: ApiClient) -> None:
    response = await api.admin("GET", "/v1/users/nobody/timeline")
    assert_error(response, 404, "not_found")


def crafted(rank: str, seq: str) -> str:
    """A cursor as `Place.cursor` writes one, with these numbers written as given."""
    raw = f'["2026-01-01T00:00:00+00:00", {rank}, "", {seq}]'
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "query",
    [
        {"limit": "0"},
        {"limit": "1001"},
        {"limit": "many"},
        {"after": "not-a-cursor"},
        {"before": "2026-12-01T10:00:00"},  # no zone
        {"after": "WzEsMiwzXQ"},  # base64 JSON, but not a place
        {"after": crafted("1e400", "0")},  # a rank of inf
        {"before": crafted("0", "NaN")},
        {"after": crafted("0", str(10**23))},  # past any id the store holds
        {"before": crafted("0", str(SEQ_MAX + 1))},
        {"after": crafted("0", "-1")},
        {"after": crafted("2", "0")},  # no such rank
    ],
)
async def test_bad_query_parameters_are_422_located(api: ApiClient, query: dict[str, str]) -> None:
    await api.ingest("/v1/track", {"userId": "ada", "event": "Viewed"})
    response = await api.admin("GET", "/v1/users/ada/timeline", params=query)
    error = assert_error(response, 422, "validation_error")
    [name] = query
    assert [detail["path"] for detail in error["details"]] == [f"query.{name}"]


@pytest.mark.store_backends("sqlite", "postgresql")
async def test_a_cursor_at_the_largest_id_reads_on_every_store(api: ApiClient) -> None:
    # At the cursor's instant, so the store compares the event's id with the cursor's.
    body = {"userId": "ada", "event": "Viewed", "timestamp": "2026-01-01T00:00:00Z"}
    assert (await api.ingest("/v1/track", body)).is_success
    after = await timeline(api, "ada", after=crafted("0", str(SEQ_MAX)))
    assert after["entries"] == []
    before = await timeline(api, "ada", before=crafted("0", str(SEQ_MAX)))
    assert [e["what"] for e in before["entries"]] == ["event Viewed"]


async def test_a_time_is_a_place_and_an_empty_page_leads_nowhere(api: ApiClient) -> None:
    for n, at in enumerate(["2026-01-01T10:00:00Z", "2026-01-02T10:00:00Z"]):
        body = {"userId": "ada", "event": f"E{n}", "timestamp": at}
        assert (await api.ingest("/v1/track", body)).is_success
    page = await timeline(api, "ada", after="2026-01-02T10:00:00Z")
    assert [e["what"] for e in page["entries"]] == ["event E1"]  # a time is inclusive after
    assert (page["next"], page["previous"]) == (None, page["entries"][0]["cursor"])
    page = await timeline(api, "ada", before="2026-01-02T10:00:00Z")
    assert [e["what"] for e in page["entries"]] == ["event E0"]  # and exclusive before
    assert page["next"] == page["entries"][0]["cursor"]
    empty = await timeline(api, "ada", after="2027-01-01T00:00:00+00:00")
    assert empty == {"user_id": "ada", "entries": [], "next": None, "previous": None}
