"""`journeys simulate FILE`: run a journey document for one described user on a time-skipping
engine, right here (no API, no running stack), and print the path and every message."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from journeys.model import Journey
from journeys.simulation import (
    DEFAULT_HORIZON,
    SimulatedMessage,
    SimulationRequest,
    SimulationResult,
    after_entry,
)
from journeys.validation import validate

EVENT_HELP = (
    'an event the user performs after entering: "OFFSET:NAME" or "OFFSET:NAME:{JSON '
    'properties}", e.g. "30m:Checkout Started" (repeatable)'
)


def add_parser(commands: Any) -> None:
    """Add `simulate` to the subcommands."""
    simulate = commands.add_parser(
        "simulate",
        help="run a journey document for one user on a time-skipping engine (sends nothing)",
        description=(
            "Run FILE (a journey document) for one described user on Temporal's time-skipping "
            "test server, with the real interpreter, an isolated store and channels that send "
            "nothing; the scripted events happen at their offsets after entry. Days of waits "
            "take about a second. No stored segments, templates or workspace settings are "
            "known here: simulate through the API (or the designer's Test tab) for those."
        ),
    )
    simulate.add_argument("file", metavar="FILE", help="a journey document (JSON)")
    simulate.add_argument(
        "--event", action="append", default=[], metavar="OFFSET:NAME", help=EVENT_HELP
    )
    simulate.add_argument(
        "--events",
        metavar="FILE",
        help='a JSON list of scripted events: [{"at": "30m", "event": "...", "properties": {}}]',
    )
    simulate.add_argument(
        "--user",
        default="{}",
        metavar="JSON",
        help='the user\'s traits as JSON, "id" naming the user, e.g. \'{"id": "ada", '
        '"email": "ada@example.com", "plan": "pro"}\'',
    )
    simulate.add_argument(
        "--entry", default="{}", metavar="JSON", help="the entry event's properties (entry.*)"
    )
    simulate.add_argument(
        "--horizon",
        default=DEFAULT_HORIZON,
        metavar="DURATION",
        help=f"follow the user this long after entry, at most 365d (default {DEFAULT_HORIZON})",
    )
    simulate.add_argument(
        "--version",
        type=int,
        default=1,
        metavar="N",
        help="the version number the run carries ({{ journey.version }}; default 1)",
    )
    simulate.add_argument("--json", action="store_true", help="print the result as JSON")
    simulate.set_defaults(handler=cmd_simulate)


class _Refused(Exception):
    """The command's input cannot be simulated; the message says why."""


def cmd_simulate(args: argparse.Namespace) -> int:
    """Simulate FILE for the described user; print the result."""
    from simulator import simulate

    try:
        journey, request = _inputs(args)
    except _Refused as refused:
        print(refused, file=sys.stderr)
        return 1

    def show(step: str) -> None:
        print(f"journeys: {step}…", file=sys.stderr, flush=True)

    result = asyncio.run(simulate(journey, args.version, request, progress=show))
    if args.json:
        print(result.model_dump_json(indent=2))
    else:
        print("\n".join(describe(journey, result)))
    return 0


def _inputs(args: argparse.Namespace) -> tuple[Journey, SimulationRequest]:
    """The journey and the simulation request the arguments describe."""
    document = _json_file(Path(args.file), args.file)
    problems = validate(document)
    if problems:
        raise _Refused("\n".join(f"{args.file}: {p.path or '$'}: {p.message}" for p in problems))
    events: list[Any] = [_event(text) for text in args.event]
    if args.events:
        listed = _json_file(Path(args.events), args.events)
        if not isinstance(listed, list):
            raise _Refused(f"{args.events}: must be a JSON list of events")
        events.extend(listed)
    body = {
        "version": args.version,
        "user": _json_option(args.user, "--user"),
        "entry": _json_option(args.entry, "--entry"),
        "events": events,
        "horizon": args.horizon,
    }
    try:
        request = SimulationRequest.model_validate(body)
    except ValidationError as error:
        lines = [f"{'.'.join(str(p) for p in e['loc']) or '$'}: {e['msg']}" for e in error.errors()]
        raise _Refused("journeys simulate: " + "\n".join(lines)) from None
    return Journey.model_validate(document), request


def _json_file(path: Path, name: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise _Refused(f"{name}: cannot read: {error.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _Refused(f"{name}: not a JSON document: {error}") from None


def _json_option(text: str, option: str) -> Any:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise _Refused(f"journeys simulate: {option} is not JSON: {error}") from None
    if not isinstance(value, dict):
        raise _Refused(f"journeys simulate: {option} must be a JSON object")
    return value


def _event(text: str) -> dict[str, Any]:
    """`OFFSET:NAME` or `OFFSET:NAME:{JSON}` as a scripted event."""
    at, colon, rest = text.partition(":")
    if not colon or not rest.strip():
        raise _Refused(
            f'journeys simulate: --event "{text}": use OFFSET:NAME, e.g. "30m:Signed Up"'
        )
    name, properties = rest, "{}"
    if ":{" in rest:
        name, _, json_part = rest.partition(":{")
        properties = "{" + json_part
    return {
        "at": at.strip(),
        "event": name.strip(),
        "properties": _json_option(properties, f'--event "{text}"'),
    }


def describe(journey: Journey, result: SimulationResult) -> list[str]:
    """The result as lines for people: the outcome, the path, the messages, what was left."""

    def after(moment: datetime) -> str:
        return after_entry(moment - result.entered_at)

    outcome = result.status.replace("_", " ") + (f" ({result.ended})" if result.ended else "")
    if result.ended_at is not None:
        outcome += f" at {after(result.ended_at)}"
    lines = [f"{journey.name} ({journey.id}): {outcome}", "path:"]
    lines += [f"  {after(step.at):>12}  {step.node}" for step in result.path] or ["  (none)"]
    lines.append("messages:")
    lines += [line for message in result.messages for line in _message(message, after)] or [
        "  (none)"
    ]
    if result.variant is not None:
        lines.append(f"experiment variant: {result.variant}")
    if result.converted_at is not None:
        lines.append(f"converted: {after(result.converted_at)}")
    for event in result.ignored_events:
        lines.append(f"ignored (after the horizon): {event.at} {event.what}")
    horizon = after(result.horizon_at)
    lines.append(f"simulated up to {horizon} in {result.duration:.1f} s")
    return lines


def _message(message: SimulatedMessage, after: Any) -> list[str]:
    why = message.skipped or message.failed
    status = message.status + (f" ({why})" if why else "")
    language = f" · {message.locale}" if message.locale else ""
    lines = [f"  {after(message.at):>12}  {message.node} · {message.channel}{language} · {status}"]
    for field, value in message.content.items():
        shown = value if isinstance(value, str) else json.dumps(value)
        indent = " " * (20 + len(field))
        lines.append(f"  {'':>12}    {field}: " + shown.replace("\n", "\n" + indent))
    return lines
