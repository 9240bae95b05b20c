"""A user's timeline: what happened to them and why, oldest first (`GET /v1/users/{id}/timeline`).

Everything here is read back from what the store records anyway, so the interpreter issues
nothing more for it: the user's events; each run's entry (and the runs an entry limit kept
out), the nodes it reached, its messages with their outcome and engagement, its conversion and
its end. What ended a wait is read from the run's published graph: the node reached next says
which way the wait went (an event path or the timeout), and the time it took settles a path
and a timeout that lead to the same node; a run that ended at a wait was ended by an exit.

Entries carry a `cursor`, their place in the timeline, for paging: a page holds the entries
after one place (or before one, for the latest ones), and its `next` and `previous` cursors
lead on. A place may also be a plain time.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from journeys.broadcasts import broadcast_of
from journeys.contracts import delivery_key
from journeys.durations import as_written
from journeys.model import (
    BranchNode,
    DelayNode,
    ExperimentNode,
    Journey,
    MessageNode,
    UpdateUserNode,
    WaitForEventNode,
    WaitForInactivityNode,
    to_timedelta,
)
from journeys.store import (
    DeliveryRecord,
    EnrollmentRecord,
    EntryAdmissionRecord,
    EventRecord,
    NodeVisitRecord,
    Store,
)

TimelineKind = Literal[
    "event", "entered", "not entered", "step", "wait ended", "message", "engagement",
    "converted", "ended",
]  # fmt: skip

MESSAGES_READ = 10_000
"""The most messages of one user a timeline reads (their latest)."""
SEQ_MAX = 2**31 - 1
"""The largest `seq` a cursor may hold: the largest event id the store keeps (an INTEGER on
PostgreSQL, which refuses to compare one with a larger number)."""
SLACK = timedelta(seconds=5)
"""How far an event's time (the sender's clock) may be after the step it caused (Temporal's)."""


class TimelineEntry(BaseModel):
    """One thing that happened to the user: what, why, and in which run."""

    at: datetime
    kind: TimelineKind
    what: str = Field(description="what happened, in plain words")
    why: str | None = Field(default=None, description="the reason, when there is one")
    journey_id: str | None = None
    version: int | None = None
    workflow_id: str | None = Field(default=None, description="the run (its Temporal workflow)")
    node_id: str | None = None
    delivery_id: int | None = None
    details: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "an event's properties; a message's channel, status, variant and content (and "
            "`broadcast`: the broadcast it came from)"
        ),
    )
    cursor: str = Field(description="this entry's place: `after` or `before` it for a page")


class Timeline(BaseModel):
    """A page of the user's timeline, oldest first."""

    user_id: str
    entries: list[TimelineEntry]
    next: str | None = Field(description="pass as `after` for the next page; null at the end")
    previous: str | None = Field(
        description="pass as `before` for the page before; null at the beginning"
    )


@dataclass(frozen=True, order=True)
class Place:
    """A place in a timeline: entries sort by time, then an instant's events before its run
    steps (each run's in order), so two entries never share a place."""

    at: datetime
    rank: int
    """-1: a plain time (before everything at that instant); 0: an event; 1: a run's entry."""
    group: str = ""
    """The run (enrollment id) of a run's entry."""
    seq: int = 0
    """The event's id, or the entry's number within its run."""

    def cursor(self) -> str:
        """The place as an opaque cursor."""
        raw = json.dumps([self.at.isoformat(), self.rank, self.group, self.seq])
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    def event_bound(self) -> tuple[datetime, int | None]:
        """The place among events, as a position for `Store.events_page`: a plain time comes
        before every event of its instant (no id is -1), a run's entry after them all."""
        if self.rank == 0:
            return self.at, self.seq
        return self.at, -1 if self.rank < 0 else None


def parse_place(text: str) -> Place:
    """A place from a cursor, or from an ISO 8601 time with a zone; ValueError otherwise."""
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        return _decode(text)
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("a time needs its zone, e.g. 2026-12-01T10:00:00Z")
    return Place(_utc(at), -1)


def _decode(cursor: str) -> Place:
    problem = "not a cursor of this timeline, nor an ISO 8601 time"
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, rank, group, seq = json.loads(raw)
        place = Place(_utc(datetime.fromisoformat(at)), int(rank), str(group), int(seq))
    # binascii.Error and JSON errors are ValueErrors; a number like 1e400 is inf, no int.
    except (ValueError, TypeError, OverflowError) as bad:
        raise ValueError(problem) from bad
    # Only what `Place.cursor` writes: a crafted number would fail in the store's query.
    if place.rank not in (-1, 0, 1) or not 0 <= place.seq <= SEQ_MAX:
        raise ValueError(problem)
    return place


def _utc(at: datetime) -> datetime:
    """An aware time in UTC (as the store compares them); ValueError for a naive one or one
    whose UTC falls outside the calendar (year 1 or 9999 in a far zone)."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("a time needs its zone")
    try:
        return at.astimezone(UTC)
    except OverflowError as bad:
        raise ValueError(f"{at.isoformat()} is out of range") from bad


def user_timeline(
    store: Store,
    user_id: str,
    *,
    limit: int,
    after: Place | None = None,
    before: Place | None = None,
) -> Timeline | None:
    """The user's timeline between two places, at most `limit` entries, oldest first: the
    first ones after `after` (or from the beginning), or, given only `before`, the last ones
    before it. None for a user the store knows nothing about.

    A user's runs are read whole (a run has few steps); events, which may be many, are read a
    page at a time."""
    runs = sorted(_run_entries(store, user_id), key=lambda pair: pair[0])
    if not runs and store.get_user(user_id) is None and not store.events_page(user_id, limit=1):
        return None
    inside = [(p, e) for p, e in runs if _between(p, after, before)]
    events = store.events_page(
        user_id,
        after=None if after is None else after.event_bound(),
        before=None if before is None else before.event_bound(),
        limit=limit + 1,
    )
    merged = sorted([*inside, *(_event_entry(e) for e in events)], key=lambda pair: pair[0])
    page = merged[-limit:] if after is None and before is not None else merged[:limit]
    entries = [entry.model_copy(update={"cursor": place.cursor()}) for place, entry in page]
    if not page:
        return Timeline(user_id=user_id, entries=[], next=None, previous=None)
    first, last = page[0][0], page[-1][0]
    later = any(p > last for p, _ in runs) or store.events_page(
        user_id, after=last.event_bound(), limit=1
    )
    earlier = any(p < first for p, _ in runs) or store.events_page(
        user_id, before=first.event_bound(), limit=1
    )
    return Timeline(
        user_id=user_id,
        entries=entries,
        next=last.cursor() if later else None,
        previous=first.cursor() if earlier else None,
    )


def _between(place: Place, after: Place | None, before: Place | None) -> bool:
    return (after is None or place > after) and (before is None or place < before)


def _event_entry(event: EventRecord) -> tuple[Place, TimelineEntry]:
    assert event.id is not None  # stored
    match event.type:
        case "identify":
            changed = ", ".join(event.properties)
            what = f"identified: traits {changed}" if changed else "identified"
        case "track":
            what = f"event {event.name}"
        case _:
            what = f"{event.type} {event.name or ''}".strip()
    entry = TimelineEntry(
        at=event.timestamp, kind="event", what=what, details=event.properties, cursor=""
    )
    return Place(event.timestamp, 0, "", event.id), entry


def _run_entries(store: Store, user_id: str) -> list[tuple[Place, TimelineEntry]]:
    """Every entry of the user's runs, refused entries and messages, placed."""
    enrollments = store.enrollments_for_user(user_id)
    visits: dict[str, list[NodeVisitRecord]] = {}
    for visit in store.visits_for_user(user_id):
        visits.setdefault(visit.enrollment_id, []).append(visit)
    messages = store.deliveries_for_user(user_id, limit=MESSAGES_READ)
    deliveries = {delivery.idempotency_key: delivery for delivery in messages}
    graphs = _Graphs(store)
    placed: list[tuple[Place, TimelineEntry]] = []
    for enrollment in enrollments:
        run = _Run(store, enrollment, graphs.version(enrollment.journey_id, enrollment.version))
        placed += run.entries(visits.get(enrollment.id, []), deliveries)
    for refused in store.refused_entries(user_id):
        placed.append(_refused_entry(refused, graphs.latest(refused.journey_id)))
    # Messages of no run of the user: a broadcast's (and one of a run no longer stored).
    for delivery in deliveries.values():
        placed += _placed(f"delivery:{delivery.id}", _message_entries(delivery))
    return placed


def _placed(group: str, entries: Iterable[TimelineEntry]) -> list[tuple[Place, TimelineEntry]]:
    """A run's entries in their order, placed so: each at its time, or just after the entry
    before it when that one is later (clocks of the worker and of Temporal differ).
    Engagement happens whenever the user gets to it, so it is placed at its own time and
    moves no later entry of the run."""
    placed: list[tuple[Place, TimelineEntry]] = []
    latest: datetime | None = None
    for seq, entry in enumerate(entries):
        if entry.kind == "engagement":
            placed.append((Place(entry.at, 1, group, seq), entry))
            continue
        latest = entry.at if latest is None else max(latest, entry.at)
        placed.append((Place(latest, 1, group, seq), entry))
    return placed


class _Graphs:
    """Published journey versions, read once each."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._versions: dict[tuple[str, int], Journey | None] = {}

    def version(self, journey_id: str, version: int) -> Journey | None:
        key = (journey_id, version)
        if key not in self._versions:
            record = self._store.get_version(journey_id, version)
            try:
                journey = None if record is None else Journey.model_validate(record.definition)
            except ValidationError:  # a version this code no longer reads: no reasons then
                journey = None
            self._versions[key] = journey
        return self._versions[key]

    def latest(self, journey_id: str) -> Journey | None:
        record = self._store.get_journey(journey_id)
        if record is None or record.version is None:
            return None
        return self.version(journey_id, record.version)


def _refused_entry(
    refused: EntryAdmissionRecord, journey: Journey | None
) -> tuple[Place, TimelineEntry]:
    limit = None if journey is None else journey.entry.limit
    rule = "" if limit is None else f": at most {limit.count} per {as_written(limit.per)}"
    entry = TimelineEntry(
        at=refused.at,
        kind="not entered",
        what=f"did not enter {journey.name if journey else refused.journey_id}",
        why=f"entry limit{rule}",
        journey_id=refused.journey_id,
        workflow_id=refused.workflow_id,
        cursor="",
    )
    return Place(refused.at, 1, refused.enrollment_id, 0), entry


def _message_entries(delivery: DeliveryRecord) -> list[TimelineEntry]:
    """A message's outcome, then how the user engaged with it. A broadcast's message names
    the broadcast and its workflow, and no journey: its `journey_id` is the workflow's."""
    status = {
        "pending": "waiting for its channel's rate limit" if delivery.waits_until else "queued",
        "sending": "being sent",
    }.get(delivery.status, delivery.status)
    broadcast = broadcast_of(delivery.journey_id)
    common: dict[str, Any] = {"delivery_id": delivery.id, "cursor": ""}
    if broadcast is None:
        common |= {
            "journey_id": delivery.journey_id,
            "version": delivery.version,
            "node_id": delivery.node_id,
        }
    else:
        common["workflow_id"] = delivery.journey_id
    details = {
        "channel": delivery.channel,
        "status": delivery.status,
        "variant": delivery.variant,
        "content": delivery.content,
    }
    why = delivery.reason
    if broadcast is not None:
        details["broadcast"] = broadcast
        why = f"broadcast {broadcast}" + (f"; {why}" if why else "")
    entries = [
        TimelineEntry(
            at=delivery.sent_at or delivery.created_at,
            kind="message",
            what=f"{delivery.channel} message {status}",
            why=why,
            details=details,
            **common,
        )
    ]
    for at, what in (
        (delivery.opened_at, "opened"),
        (delivery.clicked_at, "clicked a link in"),
        (delivery.read_at, "read"),
    ):
        if at is not None:
            engaged = f"{what} the {delivery.channel} message"
            entries.append(TimelineEntry(at=at, kind="engagement", what=engaged, **common))
    return entries


class _Run:
    """The entries of one run, read back from its records and its published graph."""

    def __init__(self, store: Store, enrollment: EnrollmentRecord, journey: Journey | None) -> None:
        self._store = store
        self._run = enrollment
        self._journey = journey
        self._name = journey.name if journey is not None else enrollment.journey_id
        self._left: tuple[str | None] | None = None  # the exit reason, once looked up

    def entries(
        self, visits: list[NodeVisitRecord], deliveries: dict[str, DeliveryRecord]
    ) -> list[tuple[Place, TimelineEntry]]:
        """The run's entries in order (a run's deliveries are taken out of `deliveries`)."""
        run = self._run
        entries = [self._entry(run.entered_at, "entered", f"entered {self._name}", self._why())]
        path = self._path(visits)
        for index, visit in enumerate(path):
            following = path[index + 1] if index + 1 < len(path) else None
            entries += self._visit(visit, following, deliveries)
        if run.converted_at is not None:
            goal = self._journey.goal if self._journey is not None else None
            why = None if goal is None else f"the goal: {goal.event} within {goal.within}"
            # Where it happened on the way: before the first step that came later.
            at = next((i for i, e in enumerate(entries) if e.at > run.converted_at), len(entries))
            entries.insert(at, self._entry(run.converted_at, "converted", "converted", why))
        if run.ended_at is not None:
            if run.status == "completed":
                entries.append(self._entry(run.ended_at, "ended", "completed the journey"))
            else:
                what = f"left {self._name}"
                entries.append(self._entry(run.ended_at, "ended", what, self._exit_reason()))
        return _placed(run.id, entries)

    def _why(self) -> str | None:
        """How the user entered, and whether they are held out of its messages."""
        reasons = []
        if self._journey is not None:
            entry = self._journey.entry
            if entry.event is not None:
                reasons.append(f"entry event {entry.event}")
            elif entry.page is not None:
                reasons.append(f"entry page {entry.page}")
            elif entry.segment is not None:
                reasons.append(f"joined segment {entry.segment}")
            elif entry.api is not None:
                reasons.append(f"API trigger {entry.api}")
        if self._run.holdout is not None:
            reasons.append(f"held out ({self._run.holdout}): gets no non-transactional message")
        return "; ".join(reasons) or None

    def _entry(
        self, at: datetime, kind: TimelineKind, what: str, why: str | None = None, **more: Any
    ) -> TimelineEntry:
        run = self._run
        return TimelineEntry(
            at=at, kind=kind, what=what, why=why, journey_id=run.journey_id,
            version=run.version, workflow_id=run.workflow_id, cursor="", **more,
        )  # fmt: skip

    def _path(self, visits: list[NodeVisitRecord]) -> list[NodeVisitRecord]:
        """The visits in the order the run made them: by time, and at one instant (a chain
        of instant nodes) upstream first (a node has fewer nodes after it than the one
        before it on any path)."""
        journey = self._journey
        if journey is None:
            return visits

        def after(node_id: str) -> int:
            return -len(journey.downstream(node_id)) if node_id in journey.nodes else 0

        return sorted(visits, key=lambda visit: (visit.reached_at, after(visit.node_id)))

    def _visit(
        self,
        visit: NodeVisitRecord,
        following: NodeVisitRecord | None,
        deliveries: dict[str, DeliveryRecord],
    ) -> list[TimelineEntry]:
        node_id = visit.node_id
        node = None if self._journey is None else self._journey.nodes.get(node_id)
        kind = "" if node is None else f" ({node.type})"
        next_id = None if following is None else following.node_id
        step = self._entry(visit.reached_at, "step", f"reached {node_id}{kind}", node_id=node_id)
        entries = [step]
        match node:
            case BranchNode(paths=paths):
                taken = [i for i, path in enumerate(paths) if path.next == next_id]
                step.why = (
                    f"condition {taken[0] + 1} held" if taken else "no condition held: else"
                ) if following is not None else None  # fmt: skip
            case UpdateUserNode(set=changed, unset=removed):
                step.why = f"changes traits {', '.join([*changed, *removed])}"
            case MessageNode(transactional=transactional):
                delivery = deliveries.pop(delivery_key(self._run.id, node_id), None)
                if delivery is not None:
                    if not transactional and self._run.holdout is None:
                        entries += self._quiet_hours(visit, delivery)
                    entries += [
                        entry.model_copy(update={"workflow_id": self._run.workflow_id})
                        for entry in _message_entries(delivery)
                    ]
            case DelayNode() | WaitForEventNode() | WaitForInactivityNode():
                ended = self._wait_end(node, visit, following)
                if ended is not None:
                    entries.append(ended)
            case ExperimentNode() if self._run.variant is not None:
                step.why = f"variant {self._run.variant}"
        return entries

    def _quiet_hours(self, visit: NodeVisitRecord, delivery: DeliveryRecord) -> list[TimelineEntry]:
        """A message held back by the journey's quiet hours (action `delay`): it went out
        later than the run reached it."""
        quiet = self._journey.settings.quiet_hours if self._journey is not None else None
        if (
            quiet is None
            or quiet.action != "delay"
            or delivery.created_at - visit.reached_at < SLACK
        ):
            return []
        why = f"quiet hours {quiet.start}–{quiet.end} (the user's time) held the message"
        return [self._ended(visit, delivery.created_at, why, what="quiet hours over")]

    def _wait_end(
        self,
        node: DelayNode | WaitForEventNode | WaitForInactivityNode,
        visit: NodeVisitRecord,
        following: NodeVisitRecord | None,
    ) -> TimelineEntry | None:
        """What ended a wait or a delay: the node reached next says which way it went."""
        run = self._run
        if following is not None:
            ended_at, next_id = following.reached_at, following.node_id
        elif run.ended_at is not None:
            ended_at, next_id = run.ended_at, None
            if run.status == "exited":
                left = self._exit_reason() or "the user left the journey"
                return self._ended(visit, ended_at, f"exit: {left}")
        else:
            return None  # still waiting
        match node:
            case DelayNode(duration=duration, until=until):
                passed = f"{as_written(duration)} passed" if duration else None
                if until is not None:
                    passed = f"{until.time} came ({until.timezone} time)"
                return self._ended(visit, ended_at, passed, what="delay over")
            case WaitForInactivityNode(duration=duration):
                return self._ended(visit, ended_at, f"no activity for {as_written(duration)}")
            case WaitForEventNode(paths=paths, timeout=timeout, on_timeout=on_timeout):
                names = list(dict.fromkeys(path.event for path in paths))
                taken = list(dict.fromkeys(p.event for p in paths if p.next == next_id))
                # A path and the timeout to one node: an end well before the timeout was an
                # event (the clocks of the records may differ by a little).
                length = to_timedelta(timeout)
                quick = ended_at - visit.reached_at < length - min(SLACK, length / 10)
                if taken and (on_timeout != next_id or quick):
                    return self._ended(visit, ended_at, self._arrived(taken, visit, ended_at))
                why = f"timeout: no {' or '.join(names)} within {as_written(timeout)}"
                return self._ended(visit, ended_at, why)
        return None

    def _ended(
        self, visit: NodeVisitRecord, at: datetime, why: str | None, *, what: str = "wait over"
    ) -> TimelineEntry:
        node_id = visit.node_id
        return self._entry(at, "wait ended", f"{what} at {node_id}", why, node_id=node_id)

    def _arrived(self, names: list[str], visit: NodeVisitRecord, ended_at: datetime) -> str:
        """Which of these events ended a wait (the latest before the run moved on)."""
        since = min(visit.reached_at, ended_at) - SLACK
        found = self._latest(names, since, ended_at + SLACK)
        name = found.name if found is not None else " or ".join(names)
        goal = self._journey.goal if self._journey is not None else None
        mark = " (the journey's goal)" if goal is not None and goal.event == name else ""
        return f"the event {name} arrived{mark}"

    def _latest(self, names: list[str], since: datetime, until: datetime) -> EventRecord | None:
        found = [
            event
            for name in names
            for event in self._store.events_for_user(
                self._run.user_id, name=name, since=since, limit=50, newest_first=False
            )
            if event.timestamp <= until
        ]
        return max(found, key=lambda event: event.timestamp, default=None)

    def _exit_reason(self) -> str | None:
        """Why the run left early, as far as the store tells: an exit event that happened,
        else an exit condition, else the journey's archival; None if none of these."""
        if self._left is None:
            self._left = (self._find_exit_reason(),)
        return self._left[0]

    def _find_exit_reason(self) -> str | None:
        run, journey = self._run, self._journey
        if journey is None or run.ended_at is None:
            return None
        events = [rule.event for rule in journey.exit if rule.event is not None]
        found = self._latest(events, run.entered_at, run.ended_at + SLACK) if events else None
        if found is not None:
            return f"exit rule: the event {found.name} arrived"
        if any(rule.when is not None for rule in journey.exit):
            return "exit rule: its condition held"
        record = self._store.get_journey(run.journey_id)
        if record is not None and record.status == "archived":
            return "the journey was archived"
        return None
