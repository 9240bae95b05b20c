"""The conversion model's runs and quality through the API."""

from __future__ import annotations

from datetime import timedelta

from activities.predictions import run_predictions
from journeys.store import Store
from tests.activities.test_predictions import HORIZON, NOW, shoppers
from tests.api.helpers import ApiClient


async def test_the_api_shows_the_model_quality(api: ApiClient, store: Store) -> None:
    response = await api.admin("GET", "/v1/predictions")
    assert response.json() == {"latest": None, "runs": []}
    shoppers(store, 200)
    run_predictions(store, HORIZON, NOW - timedelta(days=1))
    report = run_predictions(store, HORIZON, NOW)
    body = (await api.admin("GET", "/v1/predictions")).json()
    assert body["latest"]["auc"] == report.auc
    assert body["runs"][0] == body["latest"]
    assert len(body["runs"]) == 2
    assert (await api.http.get("/v1/predictions")).status_code == 401
