"""Conversion predictions: features from a user's event history, a logistic regression fitted
with numpy, and its quality (AUC). Pure functions; `activities.predictions` runs them over the
store.

Training looks back: features are computed at a cutoff `horizon` ago from the events before
it, and the label says whether the user converted within the horizon after it. The model then
scores every user on features computed now, giving `predicted_conversion`: the chance they
convert within the next `horizon`.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt

from journeys.engagement import EVENTS

CONVERSION_EVENT = "Order Completed"
VIEW_EVENTS = frozenset({"Product Viewed", "Product List Viewed", "Products Searched"})
CART_EVENTS = frozenset({"Added to Cart", "Product Added"})
ENGAGEMENT_EVENTS: dict[str, str] = {
    name: channel for name, (channel, state) in EVENTS.items() if state is not None
}
"""Events that say a user opened or clicked a message, and on which channel (a dismissal says
neither). Opens and clicks made by machines are left out before the features see events."""

RECENT = timedelta(days=30)
FEATURES = (
    "days_since_last_event",
    "events_30d",
    "views_30d",
    "cart_adds_30d",
    "days_since_last_cart_add",
    "purchases",
    "messages_engaged",
)
NEVER_DAYS = 365.0
"""Days since an event that never happened."""

HELD_OUT_PERCENT = 25
RIDGE = 1.0
"""L2 penalty on the weights (not the intercept), so rare features cannot run away."""


@dataclass(frozen=True)
class Event:
    """What the features need of an event."""

    name: str | None
    timestamp: datetime


def features(events: Iterable[Event], at: datetime) -> list[float]:
    """The feature vector (`FEATURES`) of a user at `at`, from their events before `at`."""
    before = [e for e in events if e.timestamp < at]
    recent = [e for e in before if e.timestamp >= at - RECENT]

    def days_since(names: frozenset[str] | None) -> float:
        times = [e.timestamp for e in before if names is None or e.name in names]
        return min(NEVER_DAYS, (at - max(times)).total_seconds() / 86400) if times else NEVER_DAYS

    return [
        days_since(None),
        float(len(recent)),
        float(sum(e.name in VIEW_EVENTS for e in recent)),
        float(sum(e.name in CART_EVENTS for e in recent)),
        days_since(CART_EVENTS),
        float(sum(e.name == CONVERSION_EVENT for e in before)),
        float(sum(e.name in ENGAGEMENT_EVENTS for e in before)),
    ]


def converted(events: Iterable[Event], start: datetime, horizon: timedelta) -> bool:
    """Whether the user converted within `horizon` after `start`."""
    return any(
        e.name == CONVERSION_EVENT and start <= e.timestamp < start + horizon for e in events
    )


def preferred_channel(events: Iterable[Event]) -> str | None:
    """The channel the user engages with most (opens and clicks), or None when they never
    engaged or two channels tie."""
    engaged = Counter(ENGAGEMENT_EVENTS[e.name] for e in events if e.name in ENGAGEMENT_EVENTS)
    ranked = engaged.most_common(2)
    if not ranked or (len(ranked) == 2 and ranked[0][1] == ranked[1][1]):
        return None
    return ranked[0][0]


def held_out(user_id: str) -> bool:
    """Whether the user is in the held-out split (a stable hash, the same on every run)."""
    digest = hashlib.sha256(f"held-out:{user_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 100 < HELD_OUT_PERCENT


Matrix = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Model:
    """A fitted logistic regression over `FEATURES` (log1p-scaled, then standardized)."""

    mean: Matrix
    scale: Matrix
    weights: Matrix
    intercept: float

    def predict(self, rows: Sequence[Sequence[float]]) -> Matrix:
        """The probability of converting, per row of features."""
        if not rows:
            return np.zeros(0)
        x = (np.log1p(np.asarray(rows, dtype=np.float64)) - self.mean) / self.scale
        return _sigmoid(x @ self.weights + self.intercept)

    def coefficients(self) -> dict[str, float]:
        """The weight of each feature (on the standardized scale): what drives the score."""
        return {name: round(float(w), 4) for name, w in zip(FEATURES, self.weights, strict=True)}


def fit(rows: Sequence[Sequence[float]], labels: Sequence[bool]) -> Model:
    """Fit the model by Newton's method (a few iterations converge for this convex problem).

    Raises ValueError when the labels hold a single class: there is nothing to learn.
    """
    y = np.asarray(labels, dtype=np.float64)
    if y.size == 0 or y.min() == y.max():
        raise ValueError("the training data needs both converters and non-converters")
    raw = np.log1p(np.asarray(rows, dtype=np.float64))
    mean = raw.mean(axis=0)
    scale = raw.std(axis=0)
    scale[scale == 0] = 1.0
    x = np.hstack([np.ones((len(y), 1)), (raw - mean) / scale])
    beta = np.zeros(x.shape[1])
    penalty = np.eye(x.shape[1]) * RIDGE
    penalty[0, 0] = 0.0
    for _ in range(50):
        p = _sigmoid(x @ beta)
        gradient = x.T @ (p - y) + penalty @ beta
        hessian = (x * (p * (1 - p))[:, None]).T @ x + penalty
        step = np.linalg.solve(hessian, gradient)
        beta -= step
        if np.abs(step).max() < 1e-8:
            break
    return Model(mean=mean, scale=scale, weights=beta[1:], intercept=float(beta[0]))


def auc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """The area under the ROC curve: the chance a random converter scores above a random
    non-converter (ties count half); None without both classes."""
    positives = sum(labels)
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        return None
    order = np.argsort(np.asarray(scores, dtype=np.float64), kind="mergesort")
    ranks = np.empty(len(order))
    sorted_scores = np.asarray(scores, dtype=np.float64)[order]
    i = 0
    while i < len(order):  # average ranks over ties
        j = i
        while j + 1 < len(order) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    positive_ranks = float(ranks[np.asarray(labels, dtype=bool)].sum())
    return (positive_ranks - positives * (positives + 1) / 2) / (positives * negatives)


def _sigmoid(z: Matrix) -> Matrix:
    result: Matrix = 1 / (1 + np.exp(-np.clip(z, -30, 30)))
    return result


def rounded(probability: float) -> float:
    """A probability as stored in a trait: four decimals, within 0..1."""
    return round(min(1.0, max(0.0, probability)), 4) if math.isfinite(probability) else 0.0
