"""Channel rate limits: rates as settings write them, and the limiter that grants sends in turn,
exact under threads and processes on both databases."""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
from datetime import datetime, timedelta

import pytest

from journeys.ratelimits import Rate, parse_rate
from journeys.store import Store, utcnow
from journeys.store.ratelimits import SHORTEST_WAIT, Slot, finish_slot, take_slot
from tests.journeys.test_store import begin

BOTH = pytest.mark.store_backends("sqlite", "postgresql")
SECOND = timedelta(seconds=1)


@pytest.mark.parametrize(
    ("text", "count", "window", "label"),
    [
        ("20/s", 20, SECOND, "20/s"),
        (" 600 / m ", 600, timedelta(minutes=1), "600/m"),
        ("1000/h", 1000, timedelta(hours=1), "1000/h"),
    ],
)
def test_a_rate_is_a_count_per_second_minute_or_hour(
    text: str, count: int, window: timedelta, label: str
) -> None:
    assert parse_rate(text) == Rate(count=count, window=window, label=label)


@pytest.mark.parametrize("text", ["fast", "0/s", "-5/s", "5/d", "1.5/s", "5", "/s", "2000000/s"])
def test_a_rate_that_does_not_parse_says_how_to_write_one(text: str) -> None:
    with pytest.raises(ValueError, match=r"bad rate .*(use <count>|count must be from 1)"):
        parse_rate(text)


def slot(store: Store, key: str, rate: Rate, now: datetime) -> Slot:
    with store._write() as session:
        return take_slot(session, "sms", key, rate, now)


def finish(store: Store, key: str, now: datetime) -> None:
    with store._write() as session:
        finish_slot(session, "sms", key, now)


@BOTH
def test_sends_beyond_the_rate_queue_up_in_turn_and_keep_their_place(store: Store) -> None:
    three = Rate(count=3, window=SECOND, label="3/s")
    start = utcnow()

    def at(offset: timedelta) -> datetime:
        return start + offset

    assert [slot(store, key, three, start).granted for key in "abc"] == [True, True, True]
    # The window is full: the next send may go once a slot opens (unfinished sends are taken
    # to finish now), the one after it a third of a second later.
    assert slot(store, "d", three, start) == Slot(granted=False, retry_at=at(SECOND))
    e_turn = at(SECOND + three.spacing)
    assert slot(store, "e", three, start) == Slot(granted=False, retry_at=e_turn)
    assert slot(store, "d", three, at(0.5 * SECOND)).retry_at == at(SECOND)  # not its turn yet
    for key in "abc":
        finish(store, key, at(0.1 * SECOND))
    # A newcomer queues behind the reservations, though it could have counted on a free slot.
    late = slot(store, "f", three, at(0.5 * SECOND))
    assert late == Slot(granted=False, retry_at=e_turn + three.spacing)
    # d's turn came, but the three sends count for a second after they finished: d keeps its
    # place at the head and is told when the first of them stops counting.
    assert slot(store, "d", three, at(SECOND)) == Slot(granted=False, retry_at=at(1.1 * SECOND))
    assert slot(store, "d", three, at(1.1 * SECOND)).granted
    assert slot(store, "e", three, e_turn).granted
    assert slot(store, "f", three, e_turn + three.spacing).granted
    # Three unfinished sends fill the window too; a place nobody comes back for just lapses.
    assert slot(store, "g", three, at(1.7 * SECOND)).retry_at == at(2.7 * SECOND)
    for key in "def":
        finish(store, key, at(2 * SECOND))
    later = at(3.5 * SECOND)
    assert [slot(store, key, three, later).granted for key in "hij"] == [True, True, True]


@BOTH
def test_a_send_that_never_finished_stops_counting_after_a_while(store: Store) -> None:
    one = Rate(count=1, window=SECOND, label="1/s")
    start = utcnow()
    assert slot(store, "crashed", one, start).granted
    assert not slot(store, "next", one, start + timedelta(minutes=1)).granted
    finish(store, "next", start + timedelta(minutes=1))  # gave up: its place is dropped
    assert slot(store, "next", one, start + timedelta(minutes=4)).granted


@BOTH
def test_a_delivery_held_back_waits_then_goes_and_counts_until_a_window_after(
    store: Store,
) -> None:
    two = Rate(count=2, window=timedelta(milliseconds=400), label="2 per 0.4s")
    for key in ("a", "b", "c"):
        begin(store, key, channel="sms")
    assert store.claim_delivery("a", {}, rate=two).status == "sending"
    assert store.claim_delivery("b", {}, rate=two).status == "sending"
    before = utcnow()
    held = store.claim_delivery("c", {"body": "Hi"}, rate=two)
    assert (held.status, held.reason, held.content) == (
        "pending",
        "sms rate limit 2 per 0.4s: waiting for a slot",
        {"subject": "Hi"},
    )
    assert held.waits_until is not None
    assert before + two.window <= held.waits_until
    store.finish_delivery("a", "sent")
    store.release_delivery("b")  # the provider refused it, but it saw the request: it counts
    assert store.claim_delivery("c", {"body": "Hi"}, rate=two).status == "pending"
    finished = utcnow()
    while utcnow() < finished + two.window + SHORTEST_WAIT:
        threading.Event().wait(0.05)
    going = store.claim_delivery("c", {"body": "Hi"}, rate=two)
    assert (going.status, going.reason, going.waits_until) == ("sending", None, None)


def claim_all(store: Store, keys: list[str], rate: Rate) -> list[str]:
    """Claim each delivery from a thread of its own, all at once; their statuses."""
    barrier = threading.Barrier(len(keys))
    statuses: dict[str, str] = {}

    def claim(key: str) -> None:
        barrier.wait(timeout=10)
        statuses[key] = store.claim_delivery(key, {}, rate=rate).status

    threads = [threading.Thread(target=claim, args=(key,)) for key in keys]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return [statuses[key] for key in keys]


@BOTH
def test_threads_racing_for_slots_get_exactly_the_rate(store: Store) -> None:
    five = Rate(count=5, window=timedelta(hours=1), label="5/h")
    keys = [f"k{n}" for n in range(16)]
    for key in keys:
        begin(store, key, channel="sms", user_id=key)
    statuses = claim_all(store, keys, five)
    assert statuses.count("sending") == 5
    waiting = [delivery for key in keys for delivery in store.deliveries_for_user(key)]
    turns = sorted(d.waits_until for d in waiting if d.waits_until is not None)
    assert len(turns) == 11
    # Each waits its own turn: a spacing apart (12 minutes, for 5 an hour).
    assert all(b - a >= five.spacing for a, b in itertools.pairwise(turns))


CLAIMER = """
import sys
from datetime import timedelta
from journeys.ratelimits import Rate
from journeys.store import Store
url, *keys = sys.argv[1:]
store = Store(url)
rate = Rate(count=5, window=timedelta(hours=1), label="5/h")
print(" ".join(store.claim_delivery(key, {}, rate=rate).status for key in keys))
"""


@BOTH
def test_processes_racing_for_slots_get_exactly_the_rate(store: Store) -> None:
    keys = [f"k{n}" for n in range(16)]
    for key in keys:
        begin(store, key, channel="sms", user_id=key)
    url = store.engine.url.render_as_string(hide_password=False)
    claimers = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIMER, url, *keys[n::2]], stdout=subprocess.PIPE, text=True
        )
        for n in range(2)
    ]
    statuses = [status for c in claimers for status in c.communicate(timeout=60)[0].split()]
    assert [c.returncode for c in claimers] == [0, 0]
    assert (statuses.count("sending"), statuses.count("pending")) == (5, 11)


@BOTH
def test_a_resend_after_an_interrupted_attempt_takes_a_slot_of_its_own(store: Store) -> None:
    hourly = Rate(count=1, window=timedelta(hours=1), label="1/h")
    begin(store, "a", channel="sms")
    assert store.claim_delivery("a", {"body": "Hi"}, rate=hourly).status == "sending"
    # Its attempt stopped mid-call: the first request still counts, so the resend waits.
    resend = store.reclaim_delivery("a", hourly)
    assert (resend.status, resend.reason) == ("sending", "sms rate limit 1/h: waiting for a slot")
    assert resend.waits_until is not None
    assert resend.content == {"body": "Hi"}  # what the provider sees again
    store.finish_delivery("a", "sent")
    assert store.reclaim_delivery("a", hourly).status == "sent"  # finished: unchanged


@BOTH
def test_a_delivery_waiting_when_its_limit_is_removed_goes_at_once(store: Store) -> None:
    hourly = Rate(count=1, window=timedelta(hours=1), label="1/h")
    for key in ("a", "b"):
        begin(store, key, channel="sms")
    assert store.claim_delivery("a", {}, rate=hourly).status == "sending"
    assert store.claim_delivery("b", {}, rate=hourly).waits_until is not None
    going = store.claim_delivery("b", {"body": "Hi"}, rate=None)  # the limit was removed
    assert (going.status, going.reason, going.waits_until) == ("sending", None, None)


@BOTH
def test_an_attempt_that_may_have_gone_keeps_its_claim_but_ends_its_slot(store: Store) -> None:
    short = Rate(count=1, window=timedelta(milliseconds=300), label="1 per 0.3s")
    for key in ("a", "b"):
        begin(store, key, channel="sms")
    assert store.claim_delivery("a", {}, rate=short).status == "sending"
    # The provider timed out: the message may have gone, so "a" stays claimed for a resend to
    # decide, but its request is over: the slot counts a window from now, not minutes more.
    assert store.release_delivery("a", keep_claim=True).status == "sending"
    ended = utcnow()
    while utcnow() < ended + short.window + SHORTEST_WAIT:
        threading.Event().wait(0.05)
    assert store.claim_delivery("b", {}, rate=short).status == "sending"
