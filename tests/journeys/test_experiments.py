"""Experiment statistics, checked against known values and by simulation."""

from __future__ import annotations

import math
import random

import pytest

from journeys.experiments import (
    ALPHA,
    Counts,
    Decision,
    chi_square_p,
    decide,
    p_value,
    two_proportion_p,
    wilson_interval,
)


def test_two_proportion_p_matches_known_values() -> None:
    # 120/1000 vs 60/1000: z = 4.69 → p ≈ 2.76e-6.
    assert two_proportion_p(Counts(1000, 120), Counts(1000, 60)) == pytest.approx(2.76e-6, rel=0.01)
    # 50/500 vs 40/500: z = 1.105 → p ≈ 0.269.
    assert two_proportion_p(Counts(500, 50), Counts(500, 40)) == pytest.approx(0.269, abs=0.001)
    assert two_proportion_p(Counts(10, 0), Counts(10, 0)) == 1.0
    assert two_proportion_p(Counts(0, 0), Counts(10, 3)) == 1.0


def test_chi_square_p_matches_known_values() -> None:
    # A 3x2 table with statistic 12.5 on 2 degrees of freedom: p = exp(-6.25).
    variants = {"a": Counts(100, 20), "b": Counts(100, 10), "c": Counts(100, 30)}
    assert chi_square_p(variants) == pytest.approx(math.exp(-6.25), rel=1e-9)
    # Two variants: the chi-square test is the z-test.
    two = {"a": Counts(500, 50), "b": Counts(500, 40)}
    assert chi_square_p(two) == pytest.approx(two_proportion_p(*two.values()), rel=1e-9)
    assert chi_square_p({"a": Counts(10, 0), "b": Counts(10, 0), "c": Counts(5, 0)}) == 1.0


def test_p_value_waits_for_every_variant() -> None:
    assert p_value({"a": Counts(10, 1), "b": Counts(0, 0)}) is None
    assert p_value({"a": Counts(10, 1)}) is None
    assert p_value({"a": Counts(10, 1), "b": Counts(10, 5)}) == two_proportion_p(
        Counts(10, 1), Counts(10, 5)
    )


def test_wilson_interval() -> None:
    low, high = wilson_interval(Counts(100, 10))
    assert low == pytest.approx(0.0552, abs=1e-3)
    assert high == pytest.approx(0.1744, abs=1e-3)
    assert wilson_interval(Counts(0, 0)) == (0.0, 1.0)
    low, high = wilson_interval(Counts(20, 0))
    assert low == 0.0
    assert 0.1 < high < 0.2


def test_decide_looks_only_when_the_smallest_variant_has_doubled() -> None:
    clear = {"a": Counts(100, 30), "b": Counts(100, 5)}
    assert decide(clear, min_users=200, looks=0) == Decision(winner=None, looks=0)
    assert decide(clear, min_users=100, looks=0) == Decision(winner="a", looks=1)
    even = {"a": Counts(400, 40), "b": Counts(410, 41)}
    assert decide(even, min_users=100, looks=0) == Decision(winner=None, looks=3)  # look 2
    assert decide(even, min_users=100, looks=3) == Decision(winner=None, looks=3)  # not due
    # The worst variant never wins, and every other variant must be beaten.
    three = {"a": Counts(200, 60), "b": Counts(200, 58), "c": Counts(200, 5)}
    assert decide(three, min_users=200, looks=0).winner is None


def simulate(rates: dict[str, float], seed: int, min_users: int, arrivals: int) -> str | None:
    """Users arrive one by one, split evenly; the experiment is asked after every arrival."""
    rng = random.Random(seed)
    users = dict.fromkeys(rates, 0)
    conversions = dict.fromkeys(rates, 0)
    looks = 0
    names = list(rates)
    for i in range(arrivals):
        name = names[i % len(names)]
        users[name] += 1
        conversions[name] += rng.random() < rates[name]
        counts = {n: Counts(users[n], conversions[n]) for n in names}
        decision = decide(counts, min_users, looks)
        if decision.winner is not None:
            return decision.winner
        looks = decision.looks
    return None


def test_a_clearly_better_variant_is_picked() -> None:
    picked = [simulate({"a": 0.06, "b": 0.12}, seed, 300, 6000) for seed in range(100)]
    assert picked.count("b") >= 95
    assert "a" not in picked


def test_identical_variants_rarely_produce_a_winner_however_long_it_runs() -> None:
    runs = 1000
    picked = [simulate({"a": 0.1, "b": 0.1}, seed, 100, 3200) for seed in range(runs)]
    false_positives = sum(winner is not None for winner in picked) / runs
    # Six looks on the way, yet the error stays within the budget (binomial noise allowed).
    assert false_positives <= ALPHA + 0.02
