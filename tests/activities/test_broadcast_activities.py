"""The broadcast activities against a real store and a real HTTP receiver: the segment read a
page at a time, a failure for now tried again (then recorded as failed), a channel's rate limit
holding members back, and nothing sent once the broadcast is cancelled."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.testing import ActivityEnvironment

from activities.broadcasts import MAX_ATTEMPTS, BroadcastActivities
from activities.channels import build_channels
from activities.journey import JourneyActivities
from journeys.broadcasts import Broadcast, MembersInput, SendInput, SendResult
from journeys.settings import Settings
from journeys.store import Store
from journeys.workspace import WorkspaceSettings, save_workspace_settings
from tests.receivers import HttpReceiver, Reply


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
    activities: BroadcastActivities, broadcast: Broadcast, *users: str, failures: int = 0
) -> SendResult:
    """Run the send activity for `users`."""
    request = SendInput(
        broadcast=broadcast,
        users=list(users),
        failures={user: failures for user in users if failures},
        now=datetime.now(UTC),
    )
    result: SendResult = ActivityEnvironment().run(activities.send_broadcast, request)
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
    first = send(activities, broadcast, "ada")
    assert (first.again, first.failing, first.counts.failed) == (["ada"], ["ada"], 0)
    assert first.retry_after is not None
    assert first.retry_after > timedelta(0)
    [waiting] = store.deliveries_for_user("ada")
    assert waiting.status == "pending"
    last = send(activities, broadcast, "ada", failures=MAX_ATTEMPTS - 1)
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
    result = send(activities, hook(receiver), "ada", "bo")
    assert (result.counts.sent, result.again, result.failing) == (1, ["bo"], [])
    assert result.retry_after is not None
    assert timedelta(minutes=59) < result.retry_after <= timedelta(hours=1)
    assert len(receiver.requests) == 1
    # Sending again is never sending twice: the one sent is answered from its record.
    again = send(activities, hook(receiver), "ada")
    assert again.counts.sent == 1
    assert len(receiver.requests) == 1


def test_nothing_is_sent_once_the_broadcast_is_cancelled(
    store: Store, activities: BroadcastActivities, receiver: HttpReceiver
) -> None:
    store.add_broadcast("sale", {}, "cancelled")
    result = send(activities, hook(receiver), "ada")
    assert result.cancelled
    assert receiver.requests == []
    assert store.deliveries_for_user("ada") == []
