"""The simulator runs the real interpreter and activities on an engine of its own: one test per
node type, per channel and per reason a message is skipped, exit rules, goals, the horizon,
and two simulations at once."""

from __future__ import annotations

import asyncio
import http.server
import os
import subprocess
import sys
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import simulator.run
from journeys.experiments import experiment_bucket
from journeys.model import Journey
from journeys.simulation import SIMULATED_USER, SimulationRequest, SimulationResult
from journeys.store import Store
from simulator import SimulationFailed, Workspace, simulate

EMAIL = {"subject": "Hi {{ user.first_name }}", "body": "Your cart: {{ entry.total }}"}
BOTH_VARIANTS = ("u1", "u6", "u2", "u8")
"""Users split between an even experiment's variants a and b (by the stable hash)."""
ADA = {"first_name": "Ada", "email": "ada@example.com", "phone": "+15550001111"}


def journey(start: str, nodes: dict[str, Any], **top: Any) -> Journey:
    """A valid journey around `nodes`, entered on Added to Cart."""
    return Journey.model_validate(
        {
            "id": "sim-test",
            "name": "Simulated",
            "entry": {"event": "Added to Cart"},
            "start": start,
            "nodes": nodes,
            **top,
        }
    )


def email(next_node: str | None = None, **content: Any) -> dict[str, Any]:
    """An email node."""
    return {"type": "message", "channel": "email", "next": next_node, "content": content or EMAIL}


async def run(
    document: Journey,
    *,
    user: dict[str, Any] | None = None,
    workspace: Workspace | None = None,
    **request: Any,
) -> SimulationResult:
    """Simulate `document` as version 1 for Ada (or `user`)."""
    asked = SimulationRequest(user=ADA if user is None else user, **request)
    return await simulate(document, 1, asked, workspace)


def offsets(result: SimulationResult) -> list[tuple[str, timedelta]]:
    """Each node of the path with how long after entry it was reached, to the minute."""
    return [(step.node, _minutes(step.at - result.entered_at)) for step in result.path]


def _minutes(span: timedelta) -> timedelta:
    return timedelta(minutes=round(span.total_seconds() / 60))


async def test_messages_render_on_every_channel_and_nothing_is_sent() -> None:
    hits: list[str] = []

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            hits.append(self.path)
            self.send_response(204)
            self.end_headers()

    with _serving(Receiver) as url:
        document = journey(
            "mail",
            {
                "mail": email("push"),
                "push": {
                    "type": "message",
                    "channel": "push",
                    "next": "sms",
                    "content": {"title": "Hey {{ user.first_name }}", "body": "Come back"},
                },
                "sms": {
                    "type": "message",
                    "channel": "sms",
                    "next": "inbox",
                    "content": {"body": "Total {{ entry.total }}"},
                },
                "inbox": {
                    "type": "message",
                    "channel": "in_app",
                    "next": "hook",
                    "content": {"body": "Welcome back {{ user.first_name }}", "kind": "banner"},
                },
                "hook": {
                    "type": "message",
                    "channel": "webhook",
                    "next": None,
                    "content": {"url": f"{url}/hook", "body": {"user": "{{ user.id }}"}},
                },
            },
        )
        user = {**ADA, "push_tokens": ["token-1"]}
        result = await run(document, user=user, entry={"total": 42})
    assert result.status == "completed"
    assert [step.node for step in result.path] == ["mail", "push", "sms", "inbox", "hook"]
    by_node = {message.node: message for message in result.messages}
    assert by_node["mail"].content == {"subject": "Hi Ada", "body": "Your cart: 42"}
    assert by_node["push"].content == {"title": "Hey Ada", "body": "Come back"}
    assert by_node["sms"].content == {"body": "Total 42"}
    assert by_node["inbox"].content == {"body": "Welcome back Ada", "kind": "banner"}
    assert by_node["hook"].content["body"] == {"user": SIMULATED_USER}
    assert all(m.status == "sent" and m.skipped is None for m in result.messages)
    assert [m.channel for m in result.messages] == ["email", "push", "sms", "in_app", "webhook"]
    assert hits == []  # the webhook's receiver heard nothing


@pytest.mark.parametrize(
    ("user", "reason"),
    [
        ({"first_name": "Ada"}, "no email address"),
        ({**ADA, "unsubscribed": True}, "unsubscribed"),
        ({**ADA, "unsubscribed_email": "yes"}, "unsubscribed from email"),
    ],
)
async def test_a_skipped_message_says_why_and_still_shows_its_content(
    user: dict[str, Any], reason: str
) -> None:
    result = await run(journey("mail", {"mail": email()}), user=user, entry={"total": 5})
    [message] = result.messages
    assert (message.status, message.skipped) == ("skipped", reason)
    assert message.content == {"subject": "Hi Ada", "body": "Your cart: 5"}


async def test_messages_go_in_the_users_language_skipped_ones_too() -> None:
    content = {
        "subject": "Hello {{ user.first_name }}",
        "body": "Your cart",
        "locales": {"de": {"subject": "Hallo {{ user.first_name }}", "body": "Dein Warenkorb"}},
    }
    document = journey("mail", {"mail": {**email(), "content": content}})
    swiss = await run(document, user={**ADA, "locale": "de-CH"})
    japanese = await run(document, user={**ADA, "locale": "ja"})
    unsubscribed = await run(document, user={**ADA, "locale": "de", "unsubscribed": True})
    assert [(m.content["subject"], m.locale) for m in swiss.messages] == [("Hallo Ada", "de")]
    assert [(m.content["subject"], m.locale) for m in japanese.messages] == [("Hello Ada", None)]
    [skipped] = unsubscribed.messages
    assert (skipped.status, skipped.content["body"], skipped.locale) == (
        "skipped",
        "Dein Warenkorb",
        "de",
    )


async def test_an_invalid_address_fails_and_takes_on_failure() -> None:
    document = journey(
        "mail",
        {
            "mail": {**email("done"), "on_failure": "fallback"},
            "fallback": {
                "type": "message",
                "channel": "sms",
                "next": None,
                "content": {"body": "fallback"},
            },
            "done": {"type": "exit"},
        },
    )
    result = await run(document, user={**ADA, "email": "not-an-address"})
    assert [step.node for step in result.path] == ["mail", "fallback"]
    failed, fallback = result.messages
    assert failed.status == "failed"
    assert failed.failed is not None
    assert "invalid email address" in failed.failed
    assert fallback.status == "sent"


async def test_frequency_caps_skip_the_message_over_the_cap() -> None:
    workspace = Workspace(settings={"frequency_caps": [{"max": 1, "per": "1d"}]})
    document = journey("first", {"first": email("second"), "second": email()})
    result = await run(document, workspace=workspace)
    first, second = result.messages
    assert first.status == "sent"
    assert second.status == "skipped"
    assert second.skipped == "frequency cap: 1 per 1d"


async def test_frequency_caps_count_by_the_simulated_clock() -> None:
    workspace = Workspace(settings={"frequency_caps": [{"max": 1, "per": "24h"}]})
    document = journey(
        "first",
        {
            "first": email("pause"),
            "pause": {"type": "delay", "duration": "25h", "next": "second"},
            "second": email(),
        },
    )
    result = await run(document, workspace=workspace)
    assert [m.status for m in result.messages] == ["sent", "sent"]  # a day and an hour apart


async def test_event_counts_look_back_from_the_simulated_clock() -> None:
    viewed_recently = {
        "event_count": {"event": "Product Viewed", "within": "1h"},
        "op": "gte",
        "value": 1,
    }
    document = journey(
        "pause",
        {
            "pause": {"type": "delay", "duration": "1d", "next": "check"},
            "check": {
                "type": "branch",
                "else": None,
                "paths": [{"when": viewed_recently, "next": "mail"}],
            },
            "mail": email(),
        },
    )
    stale = await run(document, events=[{"at": "2h", "event": "Product Viewed"}])
    fresh = await run(document, events=[{"at": "PT23H30M", "event": "Product Viewed"}])
    assert stale.messages == []
    assert [m.node for m in fresh.messages] == ["mail"]


async def test_quiet_hours_skip_or_delay_by_the_users_local_time() -> None:
    nodes = {
        "late": {"type": "delay", "until": {"time": "23:00", "timezone": "UTC"}, "next": "mail"},
        "mail": email(),
    }
    skip = {"quiet_hours": {"start": "22:00", "end": "08:00", "action": "skip"}}
    skipped = await run(journey("late", nodes, settings=skip))
    [message] = skipped.messages
    assert (message.status, message.skipped) == ("skipped", "quiet hours")
    assert message.at.hour == 23

    delay = {"quiet_hours": {"start": "22:00", "end": "08:00", "action": "delay"}}
    delayed = await run(journey("late", nodes, settings=delay))
    [message] = delayed.messages
    assert message.status == "sent"
    assert (message.at.hour, message.at.minute) == (8, 0)
    assert _minutes(message.at - delayed.path[-1].at) == timedelta(hours=9)


async def test_a_holdout_user_gets_no_message() -> None:
    document = journey("mail", {"mail": email()}, holdout={"percent": 50})
    for user_id in ("a", "b", "c", "d", "e", "f"):
        result = await run(document, user={**ADA, "id": user_id})
        [message] = result.messages
        if message.status == "skipped":
            assert message.skipped == "holdout"
            return
    pytest.fail("none of six users was in a 50% holdout")


async def test_a_wait_ends_with_the_event_at_its_offset() -> None:
    document = journey(
        "wait",
        {
            "wait": {
                "type": "wait_for_event",
                "timeout": "24h",
                "on_timeout": "late",
                "paths": [{"event": "Checkout Started", "next": "thanks"}],
            },
            "thanks": email(None, subject="Thanks", body="{{ event.step }}"),
            "late": email(None, subject="Late", body="late"),
        },
    )
    result = await run(
        document, events=[{"at": "30m", "event": "Checkout Started", "properties": {"step": 2}}]
    )
    assert offsets(result) == [("wait", timedelta(0)), ("thanks", timedelta(minutes=30))]
    assert result.messages[0].content == {"subject": "Thanks", "body": "2"}


async def test_a_wait_times_out_without_the_event() -> None:
    document = journey(
        "wait",
        {
            "wait": {
                "type": "wait_for_event",
                "timeout": "24h",
                "on_timeout": "late",
                "paths": [{"event": "Checkout Started", "next": None}],
            },
            "late": email(),
        },
    )
    result = await run(document, events=[{"at": "2h", "event": "Something Else"}])
    assert offsets(result) == [("wait", timedelta(0)), ("late", timedelta(hours=24))]
    assert result.status == "completed"


async def test_delays_and_inactivity_waits_take_their_time() -> None:
    document = journey(
        "pause",
        {
            "pause": {"type": "delay", "duration": "2d", "next": "quiet"},
            "quiet": {
                "type": "wait_for_inactivity",
                "duration": "1h",
                "events": ["Product Viewed"],
                "next": "mail",
            },
            "mail": email(),
        },
    )
    result = await run(document, events=[{"at": "P2DT30M", "event": "Product Viewed"}])
    assert offsets(result) == [
        ("pause", timedelta(0)),
        ("quiet", timedelta(days=2)),
        ("mail", timedelta(days=2, minutes=90)),
    ]


async def test_a_branch_follows_the_entry_and_the_user() -> None:
    nodes = {
        "by_value": {
            "type": "branch",
            "else": "small",
            "paths": [
                {"when": {"field": "entry.total", "op": "gte", "value": 100}, "next": "big"},
            ],
        },
        "big": email(None, subject="big", body="b"),
        "small": email(None, subject="small", body="s"),
    }
    big = await run(journey("by_value", nodes), entry={"total": 150})
    small = await run(journey("by_value", nodes), entry={"total": 15})
    assert [s.node for s in big.path] == ["by_value", "big"]
    assert [s.node for s in small.path] == ["by_value", "small"]


async def test_update_user_changes_the_traits_later_nodes_see() -> None:
    document = journey(
        "mark",
        {
            "mark": {"type": "update_user", "set": {"stage": "{{ entry.plan }}"}, "next": "mail"},
            "mail": email(None, subject="{{ user.stage }}", body="b"),
        },
    )
    result = await run(document, entry={"plan": "gold"})
    assert result.messages[0].content["subject"] == "gold"


async def test_an_experiment_assigns_the_users_stable_variant() -> None:
    document = journey(
        "split",
        {
            "split": {
                "type": "experiment",
                "variants": [
                    {"name": "a", "weight": 50, "next": "to_a"},
                    {"name": "b", "weight": 50, "next": None},
                ],
            },
            "to_a": email(None, subject="{{ variant }}", body="b"),
        },
    )
    for user_id in BOTH_VARIANTS:
        expected = "a" if experiment_bucket("sim-test", "split", user_id) < 50 else "b"
        result = await run(document, user={**ADA, "id": user_id})
        assert result.variant == expected
        if expected == "a":
            assert [m.content["subject"] for m in result.messages] == ["a"]
        else:
            assert result.messages == []


async def test_an_exit_rule_ends_a_delay_at_once() -> None:
    document = journey(
        "pause",
        {"pause": {"type": "delay", "duration": "3d", "next": "mail"}, "mail": email()},
        exit=[{"event": "Order Completed"}],
    )
    result = await run(document, events=[{"at": "5h", "event": "Order Completed"}])
    assert result.status == "exited"
    assert result.ended == "exit event Order Completed"
    assert [s.node for s in result.path] == ["pause"]
    assert result.messages == []


async def test_a_trait_change_meets_a_when_exit_rule() -> None:
    document = journey(
        "pause",
        {"pause": {"type": "delay", "duration": "1d", "next": "mail"}, "mail": email()},
        exit=[{"when": {"field": "user.unsubscribed", "op": "eq", "value": True}}],
    )
    result = await run(document, events=[{"at": "2h", "traits": {"unsubscribed": True}}])
    assert (result.status, result.ended) == ("exited", "exit condition")
    assert [s.node for s in result.path] == ["pause"]
    stays = await run(document, events=[{"at": "2h", "traits": {"plan": "pro"}}])
    assert stays.status == "completed"
    assert [m.content["subject"] for m in stays.messages] == ["Hi Ada"]


async def test_the_goal_converts_within_its_window() -> None:
    document = journey(
        "pause",
        {"pause": {"type": "delay", "duration": "1d", "next": None}},
        goal={"event": "Order Completed", "within": "3d"},
    )
    result = await run(document, events=[{"at": "2h", "event": "Order Completed"}])
    assert result.converted_at is not None
    assert _minutes(result.converted_at - result.entered_at) == timedelta(hours=2)
    missed = await run(document, events=[{"at": "20h", "event": "Something Else"}])
    assert missed.converted_at is None


async def test_the_horizon_stops_the_simulation_and_later_events_are_ignored() -> None:
    document = journey("pause", {"pause": {"type": "delay", "duration": "10d", "next": None}})
    result = await run(
        document,
        horizon="1d",
        events=[{"at": "2d", "event": "Late"}, {"at": "1h", "event": "Early"}],
    )
    assert result.status == "active"
    assert [e.event for e in result.ignored_events] == ["Late"]
    assert result.horizon_at - result.entered_at == timedelta(days=1)


async def test_entry_conditions_keep_the_user_out() -> None:
    document = journey(
        "mail",
        {"mail": email()},
        entry={"event": "Added to Cart", "where": {"field": "event.total", "op": "gt", "value": 0}},
    )
    result = await run(document, entry={"total": 0})
    assert result.status == "not_entered"
    assert result.path == []
    assert result.messages == []


async def test_a_journey_with_a_day_long_wait_answers_in_seconds() -> None:
    document = journey(
        "wait",
        {
            "wait": {
                "type": "wait_for_event",
                "timeout": "24h",
                "on_timeout": "branch",
                "paths": [{"event": "Order Completed", "next": None}],
            },
            "branch": {
                "type": "branch",
                "else": "second",
                "paths": [
                    {"when": {"field": "user.plan", "op": "eq", "value": "pro"}, "next": "first"}
                ],
            },
            "first": email("second", subject="one", body="1"),
            "second": email(None, subject="two", body="2"),
        },
    )
    began = datetime.now()
    result = await run(document, user={**ADA, "plan": "pro"})
    assert datetime.now() - began < timedelta(seconds=5)
    assert [(m.node, _minutes(m.at - result.entered_at)) for m in result.messages] == [
        ("first", timedelta(hours=24)),
        ("second", timedelta(hours=24)),
    ]


async def test_two_simulations_at_once_keep_their_own_clocks() -> None:
    document = journey(
        "wait",
        {
            "wait": {
                "type": "wait_for_event",
                "timeout": "24h",
                "on_timeout": None,
                "paths": [{"event": "Checkout Started", "next": "mail"}],
            },
            "mail": email(),
        },
    )
    quick, slow, idle = await asyncio.gather(
        run(document, events=[{"at": "10m", "event": "Checkout Started"}]),
        run(document, events=[{"at": "20h", "event": "Checkout Started"}]),
        run(document),
    )
    assert offsets(quick)[-1] == ("mail", timedelta(minutes=10))
    assert offsets(slow)[-1] == ("mail", timedelta(hours=20))
    assert offsets(idle) == [("wait", timedelta(0))]
    assert idle.messages == []
    assert idle.status == "completed"


class _serving:
    """A loopback HTTP server for the block; its base URL."""

    def __init__(self, handler: type[http.server.BaseHTTPRequestHandler]) -> None:
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> str:
        self._thread.start()
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()


async def test_a_winner_the_experiment_picked_takes_the_simulated_user(store: Store) -> None:
    document = journey(
        "split",
        {
            "split": {
                "type": "experiment",
                "variants": [
                    {"name": "a", "weight": 50, "next": None},
                    {"name": "b", "weight": 50, "next": None},
                ],
                "winner": {"after": "1d", "min_users": 100},
            },
        },
    )
    store.save_draft(document.id, document.model_dump(mode="json", by_alias=True))
    for user_id in BOTH_VARIANTS:  # both variants by hash, before any winner
        result = await run(document, user={"id": user_id})
        hashed = "a" if experiment_bucket("sim-test", "split", user_id) < 50 else "b"
        assert result.variant == hashed
    assert {"a", "b"} == {
        "a" if experiment_bucket("sim-test", "split", u) < 50 else "b" for u in BOTH_VARIANTS
    }
    store.record_experiment_look(
        "sim-test", "split", after_looks=0, looks=1, winner="b", p_value=0.01
    )
    workspace = Workspace.of(store, document)
    assert workspace.winners == {"split": "b"}
    for user_id in BOTH_VARIANTS:
        assert (await run(document, user={"id": user_id}, workspace=workspace)).variant == "b"


async def test_rate_limits_do_not_hold_a_simulated_user_back(store: Store) -> None:
    store.put_settings({"rate_limits": {"email": "1/h"}, "timezone": "UTC"})
    workspace = Workspace.of(store)
    assert workspace.settings == {"timezone": "UTC"}
    document = journey("first", {"first": email("second"), "second": email()})
    result = await run(document, workspace=workspace)
    assert [(m.status, _minutes(m.at - result.entered_at)) for m in result.messages] == [
        ("sent", timedelta(0)),
        ("sent", timedelta(0)),
    ]


async def test_a_run_that_cannot_finish_in_time_fails_clearly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(simulator.run, "TIME_LIMIT", 0.001)
    with pytest.raises(SimulationFailed, match="did not finish in 0 s"):
        await run(journey("mail", {"mail": email()}))


def test_a_process_leaves_no_template_behind(tmp_path: Path) -> None:
    """The migrated template a process makes for its simulations goes when the process ends."""
    code = "from simulator.scratch import _migrated_template; print(_migrated_template().parent)"
    made = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    folder = Path(made.stdout.strip())
    assert folder.parent == tmp_path
    assert not folder.exists()
