"""Experiment analysis: conversion rates, confidence intervals, p-values, and when to pick a
winner. Pure functions over counts.

The p-value compares every variant at once: a two-proportion z-test for two variants, a
chi-square test of independence for more. A winner is picked by `decide`, which guards against
the usual trap of looking again and again until a difference happens to pass p < 0.05 (with
twenty looks at two identical variants, about a quarter of experiments would "find" a winner).
It looks only when the smallest variant has doubled since the previous look, and spends the
5% error budget over those looks (2.5%, 1.25%, ...), so the chance of ever picking a winner
between identical variants stays under 5% however long the experiment runs.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

ALPHA = 0.05
"""The chance of picking a winner when the variants are really the same, over all looks."""

Z_95 = 1.959963984540054
"""The standard normal quantile for two-sided 95% intervals."""


def stable_hash(key: str) -> int:
    """A number from `key` alone, the same in every process and on every run (splits by it
    need no randomness in workflows): the first 8 bytes of its SHA-256."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")


def experiment_bucket(journey_id: str, node_id: str, user_id: str) -> int:
    """A stable number in 0..99 for a user at an experiment node, the same on every run (the
    interpreter splits by it)."""
    return stable_hash(f"{journey_id}:{node_id}:{user_id}") % 100


@dataclass(frozen=True)
class Counts:
    """A variant's users and those among them who succeeded: converted (the journey's goal),
    or clicked (an experiment decided on clicks)."""

    users: int
    conversions: int

    @property
    def rate(self) -> float:
        """The conversion rate (0 with no users)."""
        return self.conversions / self.users if self.users else 0.0


def counts_of(
    names: Iterable[str],
    stored: Mapping[str, Mapping[str, int]],
    clicks: Mapping[str, int] | None = None,
) -> dict[str, Counts]:
    """Each named variant's counts, from the store's `variant_counts` (zero for a variant
    nobody has taken yet); with `clicks` (the store's `variant_clicks`), clicks are the
    successes instead of conversions."""
    counts = {}
    for name in names:
        users = stored.get(name, {}).get("users", 0)
        if clicks is None:
            counts[name] = Counts(users, stored.get(name, {}).get("conversions", 0))
        else:
            counts[name] = Counts(users, clicks.get(name, 0))
    return counts


@dataclass(frozen=True)
class Decision:
    """The outcome of a look: the winner if one was picked, and how many looks are done."""

    winner: str | None
    looks: int


def wilson_interval(counts: Counts, z: float = Z_95) -> tuple[float, float]:
    """The 95% Wilson score interval of the conversion rate (sound for small counts and for
    rates near 0 or 1, unlike the normal approximation)."""
    n = counts.users
    if n == 0:
        return 0.0, 1.0
    p = counts.rate
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def two_proportion_p(a: Counts, b: Counts) -> float:
    """The two-sided p-value of a pooled two-proportion z-test that `a` and `b` convert alike."""
    if a.users == 0 or b.users == 0:
        return 1.0
    pooled = (a.conversions + b.conversions) / (a.users + b.users)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / a.users + 1 / b.users))
    if spread == 0:
        return 1.0
    z = (a.rate - b.rate) / spread
    return math.erfc(abs(z) / math.sqrt(2))


def chi_square_p(variants: Mapping[str, Counts]) -> float:
    """The p-value of a chi-square test that every variant converts alike."""
    present = [c for c in variants.values() if c.users > 0]
    users = sum(c.users for c in present)
    conversions = sum(c.conversions for c in present)
    if len(present) < 2 or conversions in (0, users):
        return 1.0
    pooled = conversions / users
    statistic = 0.0
    for counts in present:
        expected_yes = counts.users * pooled
        expected_no = counts.users - expected_yes
        statistic += (counts.conversions - expected_yes) ** 2 / expected_yes
        statistic += (counts.users - counts.conversions - expected_no) ** 2 / expected_no
    return _chi_square_survival(statistic, len(present) - 1)


def p_value(variants: Mapping[str, Counts]) -> float | None:
    """The p-value that the variants differ: z-test for two, chi-square for more; None until
    every variant has a user."""
    if len(variants) < 2 or any(c.users == 0 for c in variants.values()):
        return None
    if len(variants) == 2:
        a, b = variants.values()
        return two_proportion_p(a, b)
    return chi_square_p(variants)


def look_size(min_users: int, look: int) -> int:
    """The users the smallest variant needs for look `look` (0, 1, 2, ...): doubling."""
    return min_users << look


def look_budget(look: int) -> float:
    """The p-value by which the best variant must beat every other one at look `look`: the
    budgets of all looks sum to ALPHA."""
    return ALPHA / (2 << look)


def decide(variants: Mapping[str, Counts], min_users: int, looks: int) -> Decision:
    """Look for a winner once the smallest variant has `min_users * 2**looks` users.

    At look k (0, 1, 2, ...) the best-converting variant wins if it beats every other one at
    p < ALPHA / 2**(k+1): the error budgets sum to ALPHA. Before the next look is due, nothing
    is decided and `looks` stays as it was.
    """
    smallest = min((c.users for c in variants.values()), default=0)
    if smallest < look_size(min_users, looks):
        return Decision(winner=None, looks=looks)
    # Looks the experiment grew past without being asked are skipped, not made up: their
    # budget is simply not spent.
    look = looks
    while look_size(min_users, look + 1) <= smallest:
        look += 1
    budget = look_budget(look)
    name, best = max(variants.items(), key=lambda item: (item[1].rate, item[0]))
    beaten = all(
        best.rate > other.rate and two_proportion_p(best, other) < budget
        for other_name, other in variants.items()
        if other_name != name
    )
    return Decision(winner=name if beaten else None, looks=look + 1)


def _chi_square_survival(statistic: float, degrees: int) -> float:
    """P(X >= statistic) for X chi-square with `degrees` degrees of freedom: the regularized
    upper incomplete gamma function Q(degrees/2, statistic/2)."""
    if statistic <= 0:
        return 1.0
    return _upper_gamma(degrees / 2, statistic / 2)


def _upper_gamma(a: float, x: float) -> float:
    """Q(a, x), by its series below a + 1 and its continued fraction above (both converge
    fast there)."""
    log_prefix = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1:
        term = total = 1 / a
        n = a
        while abs(term) > abs(total) * 1e-15:
            n += 1
            term *= x / n
            total += term
        return max(0.0, 1 - total * math.exp(log_prefix))
    # Lentz's method for the continued fraction.
    tiny = 1e-300
    b = x + 1 - a
    c = 1 / tiny
    d = 1 / b
    h = d
    i = 0
    while True:
        i += 1
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        step = d * c
        h *= step
        if abs(step - 1) < 1e-15 or i > 1000:
            break
    return min(1.0, math.exp(log_prefix) * h)
