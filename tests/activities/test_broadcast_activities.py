"""The broadcast activities against a real store and a real HTTP receiver: the segment read a
page at a time, a failure for now tried again (then recorded as failed), a channel's rate limit
holding members back, nothing sent once the broadcast is cancelled, a cancelled activity
stopping between members (never inside one), and closing a cancelled broadcast skipping only
the messages still pending."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.testing import ActivityEnvironment

from activities.broadcasts import MAX_ATTEMPTS, BroadcastActivities
from activities.channels import build_channels
from activities.journey import JourneyActivities
from journeys.broadcasts import (
    Broadcast,
    CloseInput,
    MembersInput,
    SendInput,
    SendResult,
    broadcast_delivery_key,
)
from journeys.settings import Settings
from journeys.store import Store
from journeys.workspace import WorkspaceSettings, save_workspace_settings
from tests.receivers import HttpReceiver, ReceivedRequest, Reply


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    """A webhook receiver on loopback."""
    with HttpReceiver(Reply.json({"ok": True})) as running:
        yield running


@pytest.fixture
def activities(store: Store, receiver: HttpReceiver) -> BroadcastActivities:
    """The broadcast activities, delivering webhooks to loopback."""
    channels = build_channels(Settings(webhook_allow="127.0.0.1"))
    return BroadcastActivities(store, JourneyActivities(store, channels))


def hook(receiver: HttpReceiver, **changes: object) -> Broadcast:
    """A webhook broadcast to the `vips` segment."""
    message = {"channel": "webhook", "content": {"url": f"{receiver.url}/hook", "body": "hi"}}
    return Broadcast.model_validate(
        {"id": "sale", "segment": "vips", "message": message, **changes}
    )


def send(
    store: Store,
    activities: BroadcastActivities,
    broadcast: Broadcast,
    *users: str,
    failures: int = 0,
    environment: ActivityEnvironment | None = None,
) -> SendResult:
    """Run the send activity for `users` (the broadcast recorded first, as the workflow's
    first activity does)."""
    definition = broadcast.model_dump(mode="json", exclude_none=True)
    store.add_broadcast(broadcast.id, definition, "sending")
    request = SendInput(
        broadcast_id=broadcast.id,
        users=list(users),
        failures={user: failures for user in users if failures},
        now=datetime.now(UTC),
    )
    running = environment or ActivityEnvironment()
    result: SendResult = running.run(activities.send_broadcast, request)
    return result


def test_members_are_read_a_page_at_a_time(store: Store, activities: BroadcastActivities) -> None:
    store.put_segment("vips", "VIPs", {"field": "user.plan", "op": "eq", "value": "vip"})
    for user, plan in (("a", "vip"), ("b", "free"), ("c", "vip"), ("d", "vip")):
        store.update_traits(user, {"plan": plan}, [])
    store.add_broadcast("sale", {}, "sending")
    environment = ActivityEnvironment()
    request = MembersInput(broadcast_id="sale", segment="vips", limit=2)
    first = environment.run(activities.broadcast_members, request)
    assert (first.users, first.after, first.done, first.targeted) == (["a", "c"], "c", False, 2)
    following = request.model_copy(update={"after": "c", "targeted": 2})
    second = environment.run(activities.broadcast_members, following)
    assert (second.users, second.done, second.targeted) == (["d"], True, 3)
    record = store.get_broadcast("sale")
    assert record is not None
    assert record.targeted == 3
    store.delete_segment("vips")  # deleted meanwhile: no more members
    gone = environment.run(activities.broadcast_members, following)
    assert (gone.users, gone.done) == ([], True)


def test_a_failure_for_now_is_tried_again_then_recorded_failed(
    store: Store, activities: BroadcastActivities, receiver: HttpReceiver
) -> None:
    receiver.respond = Reply.json({"error": "busy"}, status=503)
    broadcast = hook(receiver)
    first = send(store, activities, broadcast, "ada")
    assert (first.again, first.failing, first.counts.failed) == (["ada"], ["ada"], 0)
    assert first.retry_after is not None
    assert first.retry_after > timedelta(0)
    [waiting] = store.deliveries_for_user("ada")
    assert waiting.status == "pending"
    last = send(store, activities, broadcast, "ada", failures=MAX_ATTEMPTS - 1)
    assert (last.again, last.counts.failed) == ([], 1)
    [failed] = store.deliveries_for_user("ada")
    assert failed.status == "failed"
    assert "503" in (failed.reason or "")


def test_a_channel_rate_limit_holds_members_back(
    store: Store, activities: BroadcastActivities, receiver: HttpReceiver
) -> None:
    save_workspace_settings(
        store, WorkspaceSettings.model_validate({"rate_limits": {"webhook": "1/h"}})
    )
    result = send(store, activities, hook(receiver), "ada", "bo")
    assert (result.counts.sent, result.again, result.failing) == (1, ["bo"], [])
    assert result.retry_after is not None
    assert timedelta(minutes=59) < result.retry_after <= timedelta(hours=1)
    assert len(receiver.requests) == 1
    # Sending again is never sending twice: the one sent is answered from its record.
    again = send(store, activities, hook(receiver), "ada")
    assert again.counts.sent == 1
    assert len(receiver.requests) == 1


def test_nothing_is_sent_once_the_broadcast_is_cancelled(
    store: Store, activities: BroadcastActivities, receiver: HttpReceiver
) -> None:
    store.add_broadcast("sale", {}, "cancelled")
    result = send(store, activities, hook(receiver), "ada")
    assert result.cancelled
    assert receiver.requests == []
    assert store.deliveries_for_user("ada") == []


def test_a_cancelled_send_stops_between_members_never_inside_one(
    store: Store, activities: BroadcastActivities, receiver: HttpReceiver
) -> None:
    environment = ActivityEnvironment()

    def cancel_meanwhile(request: ReceivedRequest) -> Reply:
        # The workflow cancels the activity while the provider is answering the first member.
        environment.cancel()
        return Reply.json({"ok": True})

    receiver.respond = cancel_meanwhile
    result = send(store, activities, hook(receiver), "ada", "bo", environment=environment)
    assert (result.cancelled, result.counts.sent) == (True, 1)
    # The member whose send was under way is recorded sent, not left `sending` for good.
    [sent] = store.deliveries_for_user("ada")
    assert sent.status == "sent"
    assert store.deliveries_for_user("bo") == []
    assert len(receiver.requests) == 1


@pytest.mark.store_backends("sqlite", "postgresql")
def test_closing_a_cancelled_broadcast_skips_only_the_messages_still_pending(
    store: Store,
    activities: BroadcastActivities,
    receiver: HttpReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    save_workspace_settings(
        store, WorkspaceSettings.model_validate({"rate_limits": {"webhook": "1/h"}})
    )
    held = send(store, activities, hook(receiver), "ada", "bo", "cy")
    assert held.again == ["bo", "cy"]  # pending, held back by the rate limit
    listed = store.unfinished_recipients

    def listed_then_sent(*args: object, **kwargs: object) -> list[str]:
        # Between the listing and the skipping, bo's message is sent by a send under way.
        users = listed(*args, **kwargs)  # type: ignore[arg-type]
        key = broadcast_delivery_key("sale", "bo")
        if store.claim_delivery(key, {"body": "hi"}).status == "sending":
            store.finish_delivery(key, "sent")
        return users

    monkeypatch.setattr(store, "unfinished_recipients", listed_then_sent)
    close = CloseInput(broadcast_id="sale", status="cancelled", targeted=3)
    ActivityEnvironment().run(activities.close_broadcast, close)
    status = {u: (d.status, d.reason) for u in ("bo", "cy") for d in store.deliveries_for_user(u)}
    assert status == {"bo": ("sent", None), "cy": ("skipped", "broadcast cancelled")}
