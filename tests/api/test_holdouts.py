"""Entry limits and holdouts through the HTTP API: bad values are 422 with their field, the
stats count limited runs and compare a journey's holdout with its treated users, and the lift
maths holds for known cases and small counts."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from journeys.contracts import EnrollInput, ProgressInput
from journeys.experiments import Counts
from journeys.holdouts import in_global_holdout, in_journey_holdout, lift_of, newcombe_interval
from journeys.model import EntryLimit, Journey
from journeys.store import Store
from tests.api.helpers import ApiClient, assert_error, journey_document, paths_of
from tests.factories import admit

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


async def _publish(api: ApiClient, document: dict[str, Any]) -> None:
    saved = await api.admin("PUT", f"/v1/journeys/{document['id']}", document)
    assert saved.status_code == 200, saved.text
    published = await api.admin("POST", f"/v1/journeys/{document['id']}/publish")
    assert published.status_code == 200, published.text


def _with(**changes: Any) -> dict[str, Any]:
    document = journey_document()
    entry = changes.pop("entry", None)
    if entry is not None:
        document["entry"] = {**document["entry"], **entry}
    return {**document, **changes}


@pytest.mark.parametrize(
    ("document", "path"),
    [
        (_with(entry={"limit": {"count": 0, "per": "1h"}}), "entry.limit.count"),
        (_with(entry={"limit": {"count": 10, "per": "soon"}}), "entry.limit.per"),
        (_with(entry={"limit": {"count": 10}}), "entry.limit.per"),
        (_with(entry={"limit": {"count": "many", "per": "1h"}}), "entry.limit.count"),
        (_with(holdout={"percent": 51}), "holdout.percent"),
        (_with(holdout={"percent": -1}), "holdout.percent"),
        (_with(holdout={"share": 10}), "holdout.share"),
    ],
)
async def test_bad_limits_and_holdouts_are_422_with_their_field(
    api: ApiClient, document: dict[str, Any], path: str
) -> None:
    error = assert_error(
        await api.admin("PUT", "/v1/journeys/abandoned-cart", document), 422, "invalid_journey"
    )
    assert path in paths_of(error)


@pytest.mark.parametrize(
    ("body", "path"),
    [({"holdout": {"percent": 21}}, "holdout.percent"), ({"holdout": 5}, "holdout")],
)
async def test_a_global_holdout_over_the_maximum_is_422(
    api: ApiClient, store: Store, body: dict[str, Any], path: str
) -> None:
    error = assert_error(await api.admin("PUT", "/v1/settings", body), 422, "validation_error")
    assert paths_of(error) == [path]
    assert store.get_settings() == {}


async def test_the_global_holdout_is_a_setting(api: ApiClient) -> None:
    saved = await api.admin("PUT", "/v1/settings", {"holdout": {"percent": 12.5}})
    assert saved.status_code == 200, saved.text
    assert (await api.admin("GET", "/v1/settings")).json()["holdout"] == {"percent": 12.5}


async def test_limits_and_holdouts_are_valid_documents(api: ApiClient) -> None:
    document = _with(entry={"limit": {"count": 100, "per": "1d"}}, holdout={"percent": 10})
    await _publish(api, document)
    stats = (await api.admin("GET", "/v1/journeys/abandoned-cart/stats")).json()
    assert stats["limited"] == 0
    # A holdout with nobody in it yet: every figure that needs users is null.
    assert stats["holdout"] == {
        "users": 0,
        "conversions": 0,
        "rate": None,
        "treated_users": 0,
        "treated_conversions": 0,
        "treated_rate": None,
        "lift": None,
        "interval": None,
        "p_value": None,
    }


async def test_stats_count_the_runs_the_entry_limit_kept_out(api: ApiClient, store: Store) -> None:
    await _publish(api, _with(entry={"limit": {"count": 2, "per": "1h"}}))
    limit = EntryLimit(count=2, per="1h")
    for n in range(5):
        admit(store, "abandoned-cart", f"run-{n}", T0, limit)
    stats = (await api.admin("GET", "/v1/journeys/abandoned-cart/stats")).json()
    assert stats["limited"] == 3
    assert "holdout" not in stats  # no holdout, no comparison


async def test_two_thousand_users_with_a_known_effect(api: ApiClient, store: Store) -> None:
    """Held-out users convert at 20%, treated users at 30% (their messages work): the stats
    find the lift, and the holdout is its share of the users."""
    document = _with(holdout={"percent": 10})
    await _publish(api, document)
    journey = Journey.model_validate(document)
    draw = random.Random(18)
    users = [f"shopper-{n}" for n in range(2_000)]
    held_out = {u for u in users if in_journey_holdout(journey, u)}
    for user_id in users:
        rate = 0.20 if user_id in held_out else 0.30
        enrollment = EnrollInput(
            enrollment_id=f"e-{user_id}",
            user_id=user_id,
            journey_id=journey.id,
            version=1,
            workflow_id=f"w-{user_id}",
            entered_at=T0,
            holdout="holdout" if user_id in held_out else None,
        )
        converted = draw.random() < rate
        at = T0 + timedelta(hours=1)
        steps = [ProgressInput(enrollment_id=enrollment.enrollment_id, at=at, converted=True)]
        store.record_steps(steps if converted else [], enrollment=enrollment)

    holdout = (await api.admin("GET", "/v1/journeys/abandoned-cart/stats")).json()["holdout"]
    assert abs(holdout["users"] / len(users) - 0.10) <= 0.02
    assert holdout["users"] + holdout["treated_users"] == len(users)
    assert 0.15 <= holdout["rate"] <= 0.25
    assert 0.27 <= holdout["treated_rate"] <= 0.33
    low, high = holdout["interval"]
    assert low < holdout["lift"] < high
    assert low > 0  # the effect is found
    assert holdout["p_value"] < 0.05
    expected = lift_of(
        Counts(holdout["users"], holdout["conversions"]),
        Counts(holdout["treated_users"], holdout["treated_conversions"]),
    )
    assert holdout["lift"] == pytest.approx(expected.lift)
    assert holdout["p_value"] == pytest.approx(expected.p_value)


def test_newcombe_interval_matches_the_published_example() -> None:
    # Newcombe (1998), Statistics in Medicine 17, table II, example (a): 56/70 against 48/80.
    low, high = newcombe_interval(Counts(70, 56), Counts(80, 48))
    assert (round(low, 4), round(high, 4)) == (0.0524, 0.3339)


def test_small_counts_give_no_division_by_zero() -> None:
    nobody = lift_of(Counts(0, 0), Counts(0, 0))
    assert (nobody.rate, nobody.treated_rate, nobody.lift, nobody.p_value) == (None,) * 4
    one_side = lift_of(Counts(0, 0), Counts(3, 1))
    assert (one_side.treated_rate, one_side.lift, one_side.interval) == (1 / 3, None, None)
    alike = lift_of(Counts(1, 0), Counts(1, 0))  # no spread at all
    assert (alike.lift, alike.p_value) == (0.0, 1.0)
    assert alike.interval is not None
    assert alike.interval[0] < 0 < alike.interval[1]
    assert lift_of(Counts(5, 5), Counts(5, 5)).too_few


def test_holdout_assignment_is_stable_and_takes_its_share() -> None:
    journey = Journey.model_validate(_with(holdout={"percent": 20}))
    other = Journey.model_validate({**_with(holdout={"percent": 20}), "id": "other"})
    users = [f"u{n}" for n in range(10_000)]
    held = [u for u in users if in_journey_holdout(journey, u)]
    assert held == [u for u in users if in_journey_holdout(journey, u)]
    assert abs(len(held) / len(users) - 0.20) < 0.015
    # Another journey holds out other users; the global holdout is the same for every journey.
    assert set(held) != {u for u in users if in_journey_holdout(other, u)}
    globally = [u for u in users if in_global_holdout(5, u)]
    assert abs(len(globally) / len(users) - 0.05) < 0.01
    assert set(globally) <= {u for u in users if in_global_holdout(10, u)}
