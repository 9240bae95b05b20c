"""Experiments and predictions: variant counts, the winner rule's decisions, and the
conversion model's runs."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from sqlmodel import col, func, select

from journeys.store.base import StoreBase, once_more_on_conflict
from journeys.store.records import (
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
