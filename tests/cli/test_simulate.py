"""`journeys simulate FILE` as users run it: no API, no stack, days of waits in seconds."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest

from journeys.simulation import SimulationResult
from tests.conftest import run_journeys

JOURNEY = {
    "id": "reminder",
    "name": "Reminder",
    "entry": {"event": "Added to Cart"},
    "start": "wait",
    "nodes": {
        "wait": {
            "type": "wait_for_event",
            "timeout": "24h",
            "on_timeout": "nudge",
            "paths": [{"event": "Checkout Started", "next": "thanks"}],
        },
        "nudge": {
            "type": "message",
            "channel": "email",
            "next": None,
            "content": {"subject": "Still thinking, {{ user.first_name }}?", "body": "b"},
        },
        "thanks": {
            "type": "message",
            "channel": "sms",
            "next": None,
            "content": {"body": "Thanks for step {{ event.step }}"},
        },
    },
}
USER = '{"id": "ada", "first_name": "Ada", "email": "ada@example.com", "phone": "+15550001"}'


@pytest.fixture
def journey_file(tmp_path: Path) -> Path:
    """The journey as a file."""
    path = tmp_path / "reminder.json"
    path.write_text(json.dumps(JOURNEY))
    return path


def test_prints_the_path_and_the_rendered_messages(journey_file: Path) -> None:
    result = run_journeys("simulate", str(journey_file), "--user", USER, "--horizon", "3d")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert re.fullmatch(r" +\+[0-9]s  wait", lines[2])  # at entry, give or take the engine
    assert lines[:2] + lines[3:] == [
        "Reminder (reminder): completed at +1d",
        "path:",
        "           +1d  nudge",
        "messages:",
        "           +1d  nudge · email · sent",
        "                  subject: Still thinking, Ada?",
        "                  body: b",
        f"simulated up to +3d in {result.stdout.split(' in ')[-1].strip()}",
    ]
    assert "running the journey" in result.stderr  # progress, apart from the result


def test_scripted_events_and_json_output(journey_file: Path, tmp_path: Path) -> None:
    events = tmp_path / "events.json"
    events.write_text(json.dumps([{"at": "40d", "event": "Checkout Started"}]))
    result = run_journeys(
        "simulate",
        str(journey_file),
        "--user",
        USER,
        "--event",
        '30m:Checkout Started:{"step": 2}',
        "--events",
        str(events),
        "--json",
    )
    assert result.returncode == 0, result.stderr
    answer = SimulationResult.model_validate_json(result.stdout)
    assert [step.node for step in answer.path] == ["wait", "thanks"]
    assert answer.messages[0].content == {"body": "Thanks for step 2"}
    assert [e.event for e in answer.ignored_events] == ["Checkout Started"]
    reached = answer.path[1].at - answer.entered_at
    assert timedelta(minutes=30) <= reached < timedelta(minutes=31)


@pytest.mark.parametrize(
    ("arguments", "said"),
    [
        (["--event", "soon"], '--event "soon": use OFFSET:NAME'),
        (["--event", "1h:X:{nope"], "is not JSON"),
        (["--horizon", "400d"], "horizon: bad duration '400d': must be at most 365 days"),
        (["--user", "[1]"], "--user must be a JSON object"),
        (["--events", "missing.json"], "missing.json: cannot read"),
    ],
)
def test_bad_arguments_say_what_is_wrong(
    journey_file: Path, arguments: list[str], said: str
) -> None:
    result = run_journeys("simulate", str(journey_file), *arguments)
    assert result.returncode == 1
    assert said in result.stderr
    assert result.stdout == ""


def test_an_invalid_document_lists_its_problems(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({**JOURNEY, "start": "nowhere"}))
    result = run_journeys("simulate", str(broken))
    assert result.returncode == 1
    assert f"{broken}: start: unknown node 'nowhere'" in result.stderr.splitlines()
