"""The retention activity: delete, in short batches, the routed events older than
`events_retention_days` that no window in use still reads (`journeys.retention`)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from temporalio import activity

from journeys.contracts import Activity, RetentionInput, RetentionReport, RoutedAt
from journeys.facts import CONDITION, wall_clock
from journeys.model import Journey
from journeys.retention import RetentionPlan, retention_plan, windows_in_use
from journeys.store import Store
from journeys.workspace import load_workspace_settings

logger = logging.getLogger("journeys.retention")


def current_plan(store: Store, now: datetime) -> RetentionPlan:
    """What may be deleted at `now`: the retention setting, stretched by the windows of the
    journey versions runs may still evaluate and of every segment."""
    days = load_workspace_settings(store).events_retention_days
    journeys = [Journey.model_validate(v.definition) for v in store.versions_in_use()]
    segments = [CONDITION.validate_python(s.condition) for s in store.list_segments()]
    return retention_plan(days, now, windows_in_use(journeys, segments))


class RetentionActivities:
    """Retention, bound to one store and a clock."""

    def __init__(self, store: Store, clock: Callable[[], datetime] = wall_clock) -> None:
        self._store = store
        self._clock = clock

    @activity.defn(name=Activity.DELETE_EXPIRED_EVENTS)
    def delete_expired_events(self, request: RetentionInput) -> RetentionReport:
        """Up to `batches_per_call` batches from `request.after` on, heartbeating the report
        after each, so a retried attempt goes on where the last one got to."""
        plan = current_plan(self._store, self._clock())
        report = RetentionReport(
            cutoff=plan.cutoff, names_kept_longer=len(plan.kept), after=request.after
        )
        details = activity.info().heartbeat_details
        if details:
            previous = RetentionReport.model_validate(details[0])
            report.after, report.scanned, report.deleted = (
                previous.after,
                previous.scanned,
                previous.deleted,
            )
        resumed = report.deleted
        if plan.cutoff is not None:
            report.finished = self._delete(plan, plan.cutoff, request, report)
        activity.metric_meter().create_counter(
            "journeys_events_deleted", "routed events deleted by retention"
        ).add(report.deleted - resumed)
        logger.info(
            "retention: %d events deleted of %d looked at (%s)",
            report.deleted,
            report.scanned,
            "done" if report.finished else "more to look at",
        )
        return report

    def _delete(
        self,
        plan: RetentionPlan,
        cutoff: datetime,
        request: RetentionInput,
        report: RetentionReport,
    ) -> bool:
        """Delete batch after batch into `report`; whether no routed event before the cutoff
        is left to look at."""
        for _ in range(request.batches_per_call):
            after = report.after
            batch = self._store.delete_expired_events(
                cutoff,
                plan.expired,
                after=None if after is None else (after.routed_at, after.id),
                kept_for_good=plan.kept_for_good,
                limit=request.batch_size,
            )
            if batch.last is None:
                return True
            report.scanned += batch.scanned
            report.deleted += batch.deleted
            report.after = RoutedAt(routed_at=batch.last[0], id=batch.last[1])
            activity.heartbeat(report)
            if batch.scanned < request.batch_size:
                return True
        return False
