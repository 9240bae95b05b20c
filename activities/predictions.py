"""Conversion predictions over the store: fit the model on the event history, then write
`predicted_conversion` and `preferred_channel` to every profile.

`run_predictions` is shared by the nightly activity (`PredictionActivities`) and
`journeys predict`; both report progress as they go.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from temporalio import activity

from journeys import predictions
from journeys.contracts import Activity, PredictInput, PredictionReport
from journeys.engagement import MACHINE
from journeys.predictions import Event
from journeys.store import Store

HISTORY = timedelta(days=400)
"""How far back events are read: a year of purchases and the windows before the cutoff."""
MIN_CLASS = 10
"""Fewer converters (or non-converters) than this is not enough to learn from."""

Progress = Callable[[str, int, int], None]
"""Told (stage, done, total) as a run goes: "reading", then "scoring"."""


@dataclass(frozen=True)
class _User:
    user_id: str
    events: list[Event]


def run_predictions(
    store: Store, horizon: timedelta, now: datetime, progress: Progress | None = None
) -> PredictionReport:
    """Fit on the users seen before `now - horizon`, score everyone at `now`, store the
    report; the report."""
    tell = progress or (lambda stage, done, total: None)
    users = _read(store, now, tell)
    cutoff = now - horizon
    training = [u for u in users if any(e.timestamp < cutoff for e in u.events)]
    rows = [predictions.features(u.events, cutoff) for u in training]
    labels = [predictions.converted(u.events, cutoff, horizon) for u in training]
    fold = [predictions.held_out(u.user_id) for u in training]
    fit_rows = [r for r, out in zip(rows, fold, strict=True) if not out]
    fit_labels = [y for y, out in zip(labels, fold, strict=True) if not out]
    report = PredictionReport(
        trained_at=now,
        horizon_days=horizon.days,
        status="not enough data",
        training_users=len(fit_rows),
        converters=sum(labels),
        held_out_users=len(rows) - len(fit_rows),
    )
    converters = sum(fit_labels)
    if min(converters, len(fit_labels) - converters) < MIN_CLASS:
        report.message = (
            f"{converters} converters among {len(fit_labels)} training users: at least "
            f"{MIN_CLASS} of each kind are needed; preferred channels were still updated"
        )
        model = None
    else:
        model = predictions.fit(fit_rows, fit_labels)
        held = [(r, y) for r, y, out in zip(rows, labels, fold, strict=True) if out]
        scores = model.predict([r for r, _ in held])
        report.status = "trained"
        report.auc = predictions.auc(list(scores), [y for _, y in held])
        report.coefficients = model.coefficients()
    # Every user scored in one matrix product rather than one at a time.
    user_scores = (
        None
        if model is None
        else model.predict([predictions.features(u.events, now) for u in users])
    )
    for done, user in enumerate(users, start=1):
        traits: dict[str, object] = {}
        if user_scores is not None:
            traits["predicted_conversion"] = predictions.rounded(float(user_scores[done - 1]))
        channel = predictions.preferred_channel(user.events)
        if channel is not None:
            traits["preferred_channel"] = channel
        if traits:
            store.update_traits(user.user_id, traits, [])
        if done % 200 == 0 or done == len(users):
            tell("scoring", done, len(users))
    report.users_scored = len(users) if model is not None else 0
    store.record_prediction_run(report.model_dump(mode="json"))
    return report


def _read(store: Store, now: datetime, tell: Progress) -> list[_User]:
    profiles = [u.user_id for u in store.iter_users()]
    users = []
    for done, user_id in enumerate(profiles, start=1):
        # What link scanners and mail proxies did is not what the user did.
        events = [
            Event(name=e.name, timestamp=e.timestamp)
            for e in store.events_for_user(user_id, since=now - HISTORY, newest_first=False)
            if e.properties.get(MACHINE) is not True
        ]
        users.append(_User(user_id=user_id, events=events))
        if done % 200 == 0 or done == len(profiles):
            tell("reading", done, len(profiles))
    return users


class PredictionActivities:
    """The nightly prediction run, bound to one store."""

    def __init__(self, store: Store) -> None:
        self._store = store

    @activity.defn(name=Activity.PREDICT_CONVERSIONS)
    def predict_conversions(self, request: PredictInput) -> PredictionReport:
        """Fit, score and report, heartbeating the progress."""
        horizon = timedelta(days=request.horizon_days)
        return run_predictions(self._store, horizon, datetime.now(UTC), activity.heartbeat)
