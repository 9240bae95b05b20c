"""Experiments and predictions: variant counts, the winner rule's decisions, and the
conversion model's runs."""

from __future__ import annotations

import copy
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import col, func, select

from journeys.store.base import StoreBase, once_more_on_conflict
from journeys.store.records import (
    DeliveryRecord,
    EnrollmentRecord,
    ExperimentDecisionRecord,
    NodeVisitRecord,
    PredictionRunRecord,
    utcnow,
)


class ExperimentsAggregate(StoreBase):
    """Experiments and predictions: what each variant did, decisions, model runs."""

    def variant_counts(self, journey_id: str, node_id: str) -> dict[str, dict[str, int]]:
        """Per variant, the enrollments of the journey that reached `node_id` (an experiment)
        with that variant: `users`, and `conversions` among them.

        An enrollment records one variant, so a journey with several experiment nodes counts
        each enrollment under its latest variant.
        """
        statement = (
            select(
                EnrollmentRecord.variant,
                func.count(),
                func.count(col(EnrollmentRecord.converted_at)),
            )
            .join(NodeVisitRecord, col(NodeVisitRecord.enrollment_id) == col(EnrollmentRecord.id))
            .where(
                NodeVisitRecord.journey_id == journey_id,
                NodeVisitRecord.node_id == node_id,
                col(EnrollmentRecord.variant).is_not(None),
            )
            .group_by(col(EnrollmentRecord.variant))
        )
        counts: dict[str, dict[str, int]] = {}
        with self._read() as session:
            for variant, users, conversions in session.exec(statement):
                if variant is not None:
                    counts[variant] = {"users": users, "conversions": conversions}
        return counts

    def variant_clicks(
        self, journey_id: str, node_id: str, messages: Collection[str], within: timedelta
    ) -> dict[str, int]:
        """Per variant, the enrollments counted by `variant_counts` whose own delivery of one
        of the `messages` nodes (which follow the experiment, so it was sent after the
        assignment) was clicked within `within` of reaching `node_id`. Only a person's click
        sets `clicked_at` (a link scanner's never does)."""
        if not messages:
            return {}
        # An enrollment's deliveries are those keyed `journeys.contracts.delivery_key`.
        own_key = col(EnrollmentRecord.id) + ":" + col(DeliveryRecord.node_id)
        statement = (
            select(
                EnrollmentRecord.variant,
                NodeVisitRecord.reached_at,
                DeliveryRecord.clicked_at,
                EnrollmentRecord.id,
            )
            .join(NodeVisitRecord, col(NodeVisitRecord.enrollment_id) == col(EnrollmentRecord.id))
            .join(
                DeliveryRecord,
                (col(DeliveryRecord.user_id) == col(EnrollmentRecord.user_id))
                & (col(DeliveryRecord.idempotency_key) == own_key),
            )
            .where(
                NodeVisitRecord.journey_id == journey_id,
                NodeVisitRecord.node_id == node_id,
                col(EnrollmentRecord.variant).is_not(None),
                col(DeliveryRecord.node_id).in_(list(messages)),
                col(DeliveryRecord.clicked_at).is_not(None),
            )
        )
        clickers: dict[str, set[str]] = {}
        with self._read() as session:
            for variant, reached_at, clicked_at, enrollment in session.exec(statement):
                # Compared here, not in SQL: adding an interval is spelled differently by
                # every database.
                if (
                    variant is not None
                    and clicked_at is not None
                    and clicked_at - reached_at <= within
                ):
                    clickers.setdefault(variant, set()).add(enrollment)
        return {variant: len(enrollments) for variant, enrollments in clickers.items()}

    def experiment_decision(self, journey_id: str, node_id: str) -> ExperimentDecisionRecord:
        """Where the experiment's winner rule stands (no looks yet when never recorded)."""
        with self._read() as session:
            record = session.get(ExperimentDecisionRecord, (journey_id, node_id))
        return record or ExperimentDecisionRecord(journey_id=journey_id, node_id=node_id)

    def record_experiment_look(
        self,
        journey_id: str,
        node_id: str,
        *,
        after_looks: int,
        looks: int,
        winner: str | None,
        p_value: float | None,
    ) -> ExperimentDecisionRecord:
        """Record a look made when `after_looks` looks were done, unless another caller
        recorded one since (then nothing changes); the decision as it stands."""

        def record() -> ExperimentDecisionRecord:
            with self._write() as session:
                key = (journey_id, node_id)
                stored = session.get(ExperimentDecisionRecord, key, with_for_update=True)
                decision = stored or ExperimentDecisionRecord(
                    journey_id=journey_id, node_id=node_id
                )
                if decision.looks != after_looks or decision.winner is not None:
                    return decision
                now = utcnow()
                decision.looks, decision.p_value, decision.updated_at = looks, p_value, now
                if winner is not None:
                    decision.winner, decision.decided_at = winner, now
                session.add(decision)
                return decision

        return once_more_on_conflict(record)

    def record_prediction_run(self, report: dict[str, Any]) -> None:
        """Keep a prediction run's report (JSON, with its `trained_at`)."""
        trained_at = datetime.fromisoformat(report["trained_at"])
        with self._write() as session:
            session.add(PredictionRunRecord(trained_at=trained_at, report=copy.deepcopy(report)))

    def prediction_runs(self, limit: int) -> list[dict[str, Any]]:
        """The latest prediction reports, newest first."""
        statement = (
            select(PredictionRunRecord)
            .order_by(
                col(PredictionRunRecord.trained_at).desc(), col(PredictionRunRecord.id).desc()
            )
            .limit(limit)
        )
        with self._read() as session:
            return [record.report for record in session.exec(statement)]
