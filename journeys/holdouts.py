"""Holdouts: who is held out of a journey's (or every journey's) messages, and the lift the
journey's messages make against them. Pure functions.

A user is held out when a stable hash of their id (and the journey's, for a journey holdout)
falls under the percent: the same answer on every run and every worker, no randomness in
workflows. The journey's and the global hash are independent, so the global holdout takes the
same share of every journey's holdout as of its treated users.

The comparison: the conversion rate of held-out users (`rate`) and of treated users
(`treated_rate`); `lift` is their difference, in proportion points, with a 95% interval by
Newcombe's hybrid score method (from the two Wilson intervals: sound for small counts and
rates near 0 or 1), and the p-value of a two-sided pooled two-proportion z-test. Each is None
while it is undefined (a group without users).
"""

from __future__ import annotations

import math

from pydantic import BaseModel, Field

from journeys.experiments import Counts, stable_hash, two_proportion_p, wilson_interval
from journeys.model import Journey

HOLDOUT = "holdout"
"""The skip reason of a message to a user held out of the journey, and their enrollment's mark."""
GLOBAL_HOLDOUT = "global holdout"
"""The same, for a user in the global holdout (workspace settings)."""
GLOBAL_HOLDOUT_MAX = 20
"""The largest global holdout, in percent (a journey's may reach `JOURNEY_HOLDOUT_MAX`)."""
TOO_FEW_USERS = 30
"""Fewer users than this in either group: the comparison is shown, but read as too early."""


def _bucket(key: str) -> float:
    """A stable number in [0, 100) with two decimals, so fractional percents work."""
    return (stable_hash(key) % 10_000) / 100


def in_journey_holdout(journey: Journey, user_id: str) -> bool:
    """Whether the user is held out of this journey's non-transactional messages."""
    holdout = journey.holdout
    return holdout is not None and _bucket(f"holdout:{journey.id}:{user_id}") < holdout.percent


def in_global_holdout(percent: float, user_id: str) -> bool:
    """Whether the user is in a global holdout of `percent`: the same for every journey."""
    return _bucket(f"global-holdout:{user_id}") < percent


class Lift(BaseModel):
    """The journey's holdout against its treated users (users of the global holdout are in
    neither): users and conversions of each, their conversion rates (null without users), the
    lift (treated rate minus holdout rate, in proportion points: 0.021 is 2.1 points) with its
    95% interval (Newcombe's hybrid score method), and the two-sided p-value of a pooled
    two-proportion z-test (null until both groups have users)."""

    users: int
    conversions: int
    rate: float | None
    treated_users: int
    treated_conversions: int
    treated_rate: float | None
    lift: float | None
    interval: tuple[float, float] | None = Field(
        description="95% interval of the lift (Newcombe's hybrid score method)"
    )
    p_value: float | None

    @property
    def too_few(self) -> bool:
        """Whether either group is too small for the comparison to mean much."""
        return min(self.users, self.treated_users) < TOO_FEW_USERS


def lift_of(held_out: Counts, treated: Counts) -> Lift:
    """Compare the held-out and the treated users' conversions."""
    both = held_out.users > 0 and treated.users > 0
    return Lift(
        users=held_out.users,
        conversions=held_out.conversions,
        rate=held_out.rate if held_out.users else None,
        treated_users=treated.users,
        treated_conversions=treated.conversions,
        treated_rate=treated.rate if treated.users else None,
        lift=treated.rate - held_out.rate if both else None,
        interval=newcombe_interval(treated, held_out) if both else None,
        p_value=two_proportion_p(treated, held_out) if both else None,
    )


def newcombe_interval(a: Counts, b: Counts) -> tuple[float, float]:
    """The 95% interval of `a.rate - b.rate` by Newcombe's hybrid score method (his method 10):
    each rate's distance to its own Wilson limits, combined."""
    low_a, high_a = wilson_interval(a)
    low_b, high_b = wilson_interval(b)
    difference = a.rate - b.rate
    below = math.hypot(a.rate - low_a, high_b - b.rate)
    above = math.hypot(high_a - a.rate, b.rate - low_b)
    return max(-1.0, difference - below), min(1.0, difference + above)
