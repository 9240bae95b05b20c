"""Enrollments (a user's run through a journey version) and their steps, admissions under
entry limits, and the counts the journey statistics show."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from sqlmodel import Session, col, func, select

from journeys.contracts import AdmitInput, EndStatus, EnrollInput, ProgressInput
from journeys.errors import NotFound
from journeys.model import to_timedelta
from journeys.store.base import StoreBase, get_or_raise, once_more_on_conflict
from journeys.store.privacy import erased_run, suppressed_in
from journeys.store.records import (
    EnrollmentRecord,
    EntryAdmissionRecord,
    JourneyRecord,
    NodeVisitRecord,
)

CLOCK_SLACK = timedelta(seconds=5)
"""How far the clock of the process that started a run may be ahead of Temporal's."""


class EnrollmentsAggregate(StoreBase):
    """Enrollments: recorded with their steps, looked up per user, counted per journey and node."""

    def record_steps(
        self, steps: Sequence[ProgressInput], *, enrollment: EnrollInput | None = None
    ) -> None:
        """Record an enrollment (unless recorded already) and then its steps, in order, in one
        transaction. Recording the same again changes nothing, so a retry is harmless.

        Raises NotFound for a step of an enrollment that is neither recorded nor `enrollment`.
        """
        once_more_on_conflict(lambda: self._record_steps(steps, enrollment))

    def _record_steps(self, steps: Sequence[ProgressInput], enrollment: EnrollInput | None) -> None:
        with self._write() as session:
            record_steps_in(session, steps, enrollment)

    def admit_entry(self, request: AdmitInput) -> bool:
        """Whether the new run of `request.enrollment` may enter its journey at `request.at`:
        yes while fewer than `limit.count` runs were admitted in the `limit.per` up to then.
        Counting and recording the answer are one transaction, serialised per journey
        (PostgreSQL: on the journey's row; SQLite: one writer anyway), so admissions racing
        from any number of workers never let in more than the count. The answer is kept under
        the enrollment id: asking again (a retry) returns it and takes no second place. Raises
        NotFound for an unknown journey."""
        return once_more_on_conflict(lambda: self._admit_entry(request))

    def _admit_entry(self, request: AdmitInput) -> bool:
        run, limit = request.enrollment, request.limit
        with self._write() as session:
            get_or_raise(session, JourneyRecord, run.journey_id, lock=True)
            answered = session.get(EntryAdmissionRecord, run.enrollment_id)
            if answered is not None:
                return answered.admitted
            admitted_since = (
                select(func.count())
                .select_from(EntryAdmissionRecord)
                .where(
                    EntryAdmissionRecord.journey_id == run.journey_id,
                    col(EntryAdmissionRecord.admitted).is_(True),
                    col(EntryAdmissionRecord.at) > request.at - to_timedelta(limit.per),
                )
            )
            admitted = session.exec(admitted_since).one() < limit.count
            session.add(
                EntryAdmissionRecord(
                    enrollment_id=run.enrollment_id,
                    journey_id=run.journey_id,
                    user_id=run.user_id,
                    workflow_id=run.workflow_id,
                    admitted=admitted,
                    at=request.at,
                )
            )
            return admitted

    def enrollments_for_user(self, user_id: str) -> list[EnrollmentRecord]:
        """The user's enrollments in every journey, newest first."""
        statement = (
            select(EnrollmentRecord)
            .where(EnrollmentRecord.user_id == user_id)
            .order_by(col(EnrollmentRecord.entered_at).desc(), col(EnrollmentRecord.id).desc())
        )
        with self._read() as session:
            return list(session.exec(statement))

    def visits_for_user(self, user_id: str) -> list[NodeVisitRecord]:
        """The nodes the user's enrollments reached, in every journey, oldest first."""
        statement = (
            select(NodeVisitRecord)
            .join(EnrollmentRecord, col(EnrollmentRecord.id) == col(NodeVisitRecord.enrollment_id))
            .where(EnrollmentRecord.user_id == user_id)
            .order_by(col(NodeVisitRecord.reached_at), col(NodeVisitRecord.node_id))
        )
        with self._read() as session:
            return list(session.exec(statement))

    def refused_entries(self, user_id: str) -> list[EntryAdmissionRecord]:
        """The user's runs an entry limit kept out, oldest first."""
        statement = (
            select(EntryAdmissionRecord)
            .where(
                EntryAdmissionRecord.user_id == user_id,
                col(EntryAdmissionRecord.admitted).is_(False),
            )
            .order_by(col(EntryAdmissionRecord.at), col(EntryAdmissionRecord.enrollment_id))
        )
        with self._read() as session:
            return list(session.exec(statement))

    def last_enrollment(self, journey_id: str, user_id: str) -> EnrollmentRecord | None:
        """The user's most recent enrollment in the journey, or None."""
        statement = (
            select(EnrollmentRecord)
            .where(EnrollmentRecord.journey_id == journey_id, EnrollmentRecord.user_id == user_id)
            .order_by(col(EnrollmentRecord.entered_at).desc(), col(EnrollmentRecord.id).desc())
            .limit(1)
        )
        with self._read() as session:
            return session.exec(statement).first()

    def started_runs(self, started: Mapping[str, datetime]) -> set[str]:
        """Which of these workflow ids (each with when its run was started) have a run that is
        active, or that ended at or after that time (less `CLOCK_SLACK`): a run records its
        enrollment once its first workflow task has run. (Its `entered_at` is when its entry
        event happened, which may be long before a backlog let it start.) A run under an entry
        limit asks for its place first thing, so an admission at or after that time counts
        too: a refused run records no enrollment."""
        if not started:
            return set()
        enrolled = select(
            EnrollmentRecord.workflow_id, EnrollmentRecord.status, EnrollmentRecord.ended_at
        ).where(col(EnrollmentRecord.workflow_id).in_(list(started)))
        admitted = select(EntryAdmissionRecord.workflow_id, EntryAdmissionRecord.at).where(
            col(EntryAdmissionRecord.workflow_id).in_(list(started))
        )
        with self._read() as session:
            enrollments = session.exec(enrolled).all()
            admissions = session.exec(admitted).all()
        running = {
            workflow_id
            for workflow_id, status, ended_at in enrollments
            if status == "active"
            or (ended_at is not None and ended_at >= started[workflow_id] - CLOCK_SLACK)
        }
        return running | {
            workflow_id
            for workflow_id, at in admissions
            if at >= started[workflow_id] - CLOCK_SLACK
        }

    def active_workflow_ids(self, journey_id: str) -> list[str]:
        """The workflow ids of the journey's active enrollments."""
        statement = select(EnrollmentRecord.workflow_id).where(
            EnrollmentRecord.journey_id == journey_id, EnrollmentRecord.status == "active"
        )
        with self._read() as session:
            return list(session.exec(statement))

    def journey_counts(self, journey_id: str) -> dict[str, int]:
        """Enrollments of the journey: entered, active, completed, exited and converted; and
        the runs its entry limit kept out (limited)."""
        statement = (
            select(
                EnrollmentRecord.status,
                func.count(),
                func.count(col(EnrollmentRecord.converted_at)),
            )
            .where(EnrollmentRecord.journey_id == journey_id)
            .group_by(col(EnrollmentRecord.status))
        )
        limited = (
            select(func.count())
            .select_from(EntryAdmissionRecord)
            .where(
                EntryAdmissionRecord.journey_id == journey_id,
                col(EntryAdmissionRecord.admitted).is_(False),
            )
        )
        counts = {"entered": 0, "active": 0, "completed": 0, "exited": 0, "converted": 0}
        with self._read() as session:
            for status, enrolled, converted in session.exec(statement):
                counts[status] = enrolled
                counts["entered"] += enrolled
                counts["converted"] += converted
            counts["limited"] = session.exec(limited).one()
        return counts

    def holdout_counts(self, journey_id: str) -> dict[str | None, tuple[int, int]]:
        """Enrollments of the journey and how many converted, by holdout mark (`holdout`,
        `global holdout`, None for treated runs)."""
        statement = (
            select(
                EnrollmentRecord.holdout,
                func.count(),
                func.count(col(EnrollmentRecord.converted_at)),
            )
            .where(EnrollmentRecord.journey_id == journey_id)
            .group_by(col(EnrollmentRecord.holdout))
        )
        with self._read() as session:
            return {mark: (users, converted) for mark, users, converted in session.exec(statement)}

    def node_counts(self, journey_id: str) -> dict[str, dict[str, int]]:
        """Per node of the journey: how many enrollments reached it and how many wait there."""
        reached = (
            select(NodeVisitRecord.node_id, func.count())
            .where(NodeVisitRecord.journey_id == journey_id)
            .group_by(col(NodeVisitRecord.node_id))
        )
        waiting = (
            select(EnrollmentRecord.current_node, func.count())
            .where(
                EnrollmentRecord.journey_id == journey_id,
                EnrollmentRecord.status == "active",
                col(EnrollmentRecord.current_node).is_not(None),
            )
            .group_by(col(EnrollmentRecord.current_node))
        )
        counts: dict[str, dict[str, int]] = {}
        with self._read() as session:
            for node_id, count in session.exec(reached):
                counts.setdefault(node_id, {"reached": 0, "waiting": 0})["reached"] = count
            for current_node, count in session.exec(waiting):
                if current_node is not None:
                    counts.setdefault(current_node, {"reached": 0, "waiting": 0})["waiting"] = count
        return counts


def record_steps_in(
    session: Session, steps: Sequence[ProgressInput], enrollment: EnrollInput | None
) -> None:
    """`EnrollmentsAggregate.record_steps` inside the caller's write transaction (a delivery
    records the run's steps with its outcome). On PostgreSQL the enrollment's insert may lose a
    race (IntegrityError): `record_steps` then runs its transaction once more, and a delivery
    commits its outcome and fails, for its retry to record the steps."""
    records: dict[str, EnrollmentRecord] = {}
    new: set[str] = set()
    if enrollment is not None:
        record, created = _enrollment_of(session, enrollment)
        if record is None:
            return  # the user was erased: nothing of the run is recorded any more
        records[enrollment.enrollment_id] = record
        if created:
            new.add(enrollment.enrollment_id)
    for step in steps:
        if step.enrollment_id not in records:
            found = session.get(EnrollmentRecord, step.enrollment_id, with_for_update=True)
            if found is None:
                if erased_run(session, step.enrollment_id):
                    return  # a run ending after its user was erased: its record went with them
                raise NotFound(f"no enrollment {step.enrollment_id!r}")
            records[step.enrollment_id] = found
    # The visits recorded already, in one query rather than one per step (an enrollment
    # recorded just now has none).
    reached = {
        (e, n) for step in steps if (n := step.node_id) and (e := step.enrollment_id) not in new
    }
    visited: set[tuple[str, str]] = set()
    if reached:
        statement = select(NodeVisitRecord.enrollment_id, NodeVisitRecord.node_id).where(
            col(NodeVisitRecord.enrollment_id).in_({e for e, _ in reached}),
            col(NodeVisitRecord.node_id).in_({n for _, n in reached}),
        )
        visited = {(e, n) for e, n in session.exec(statement)}
    for step in steps:
        record = records[step.enrollment_id]
        if step.node_id is not None:
            first = (step.enrollment_id, step.node_id) not in visited
            _reach(session, record, step.node_id, step.at, first=first)
            visited.add((step.enrollment_id, step.node_id))
        if step.variant is not None:
            record.variant = step.variant
        if step.converted and record.converted_at is None:
            record.converted_at = step.at
        if step.ended is not None:
            _finish(session, record, step.ended, step.at)
        session.add(record)


def _enrollment_of(
    session: Session, enrollment: EnrollInput
) -> tuple[EnrollmentRecord | None, bool]:
    """The enrollment's record, locked, or a new one if it has none yet (and whether it is
    new); None for a user who was erased (whose runs are ending: none is recorded again)."""
    record = session.get(EnrollmentRecord, enrollment.enrollment_id, with_for_update=True)
    if record is not None:
        return record, False
    if suppressed_in(session, {enrollment.user_id}):
        return None, False
    record = EnrollmentRecord(
        id=enrollment.enrollment_id,
        user_id=enrollment.user_id,
        journey_id=enrollment.journey_id,
        version=enrollment.version,
        workflow_id=enrollment.workflow_id,
        entered_at=enrollment.entered_at,
        holdout=enrollment.holdout,
    )
    # No flush here: the session inserts it before its visits (which refer to it) when the
    # steps are written, with their changes already in it: one statement, not an insert and an
    # update.
    session.add(record)
    return record, True


def _reach(
    session: Session, enrollment: EnrollmentRecord, node_id: str, at: datetime, *, first: bool
) -> None:
    """The enrollment reached a node: a `first` visit there is recorded, and an active
    enrollment is now at that node."""
    if first:
        session.add(
            NodeVisitRecord(
                enrollment_id=enrollment.id,
                node_id=node_id,
                journey_id=enrollment.journey_id,
                reached_at=at,
            )
        )
    if enrollment.status == "active" and enrollment.current_node != node_id:
        enrollment.current_node = node_id
        session.add(enrollment)


def _finish(
    session: Session, enrollment: EnrollmentRecord, status: EndStatus, at: datetime
) -> None:
    """End an active enrollment; a finished one keeps how it ended."""
    if enrollment.status == "active":
        enrollment.status = status
        enrollment.ended_at = at
        enrollment.current_node = None
        session.add(enrollment)
