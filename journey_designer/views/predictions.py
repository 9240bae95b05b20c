"""Predictions page: how good the conversion model is, what drives its scores, how its quality
changed over past runs, and how runs happen."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import streamlit as st

from journey_designer.api import require
from journey_designer.stats import auc_reading, when
from journeys.contracts import PREDICTION_HOUR_UTC, PREDICTION_SCHEDULE_ID

HOW_RUNS_HAPPEN = (
    f"The model is trained every night at {PREDICTION_HOUR_UTC:02d}:00 UTC (the Temporal "
    f"Schedule `{PREDICTION_SCHEDULE_ID}`), or now with `journeys predict`. Each run writes two "
    "traits to every profile: `predicted_conversion` (the chance, 0 to 1, of converting "
    "within the horizon) and `preferred_channel` (the channel the user engages with most). "
    "Branch on them with conditions such as `user.predicted_conversion ≥ 0.7`."
)


def latest_run(report: dict[str, Any]) -> None:
    """The latest run: its status, quality, population and what drives the scores."""
    trained = report.get("status") == "trained"
    st.markdown(
        f"**Latest run:** {when(report.get('trained_at'))} · "
        f"{'trained' if trained else 'not enough data'} · predicts conversion within "
        f"{report.get('horizon_days', '?')} days"
    )
    auc_value = report.get("auc")
    quality = "—" if auc_value is None else f"{auc_value:.2f}"
    auc, scored, training, held_out, converters = st.columns(5)
    auc.metric(
        "Model quality (AUC)", quality,
        help="Area under the ROC curve on users held out of training.",
    )  # fmt: skip
    scored.metric("Users scored", report.get("users_scored", 0))
    training.metric("Training users", report.get("training_users", 0))
    held_out.metric("Held-out users", report.get("held_out_users", 0))
    converters.metric("Converters", report.get("converters", 0))
    if not trained:
        st.warning(
            report.get("message") or "Not enough data to train the model.",
            icon=":material/hourglass_empty:",
        )
        return
    st.info(f"AUC {quality}: {auc_reading(auc_value)}.", icon=":material/school:")
    if report.get("message"):
        st.caption(str(report["message"]))
    coefficients = report.get("coefficients") or {}
    if coefficients:
        st.subheader("What drives the score", anchor=False)
        st.caption(
            "Each feature's weight on a common scale: positive raises a user's predicted "
            "conversion, negative lowers it; the longer the bar, the stronger the pull."
        )
        drivers(coefficients)


def drivers(coefficients: dict[str, float]) -> None:
    """The coefficients as bars, strongest pull up first (green raises, red lowers)."""
    ranked = sorted(coefficients.items(), key=lambda item: float(item[1]), reverse=True)
    rows = [{"feature": name, "weight": float(weight)} for name, weight in ranked]
    st.vega_lite_chart(
        rows,
        {
            "mark": {"type": "bar", "tooltip": True},
            "encoding": {
                "y": {
                    "field": "feature", "type": "nominal", "sort": None, "title": None,
                    "axis": {"labelLimit": 320},
                },
                "x": {"field": "weight", "type": "quantitative", "title": "weight"},
                "color": {
                    "condition": {"test": "datum.weight < 0", "value": "#dc2626"},
                    "value": "#16a34a",
                },
            },
        },
    )  # fmt: skip


def history(runs: list[dict[str, Any]]) -> None:
    """The quality of past runs over time (oldest first), and every run in a table."""
    st.subheader("Past runs", anchor=False)
    measured = [
        {"trained at": datetime.fromisoformat(run["trained_at"]), "AUC": run["auc"]}
        for run in reversed(runs)
        if run.get("auc") is not None
    ]
    if len(measured) > 1:
        st.line_chart(measured, x="trained at", y="AUC", y_label="held-out AUC")
    st.dataframe(
        [
            {
                "trained at": when(run.get("trained_at")),
                "status": run.get("status"),
                "AUC": run.get("auc"),
                "users scored": run.get("users_scored"),
                "converters": run.get("converters"),
                "message": run.get("message"),
            }
            for run in runs
        ],
        hide_index=True,
        column_config={"AUC": st.column_config.NumberColumn(format="%.2f")},
    )


def main() -> None:
    """Render the page."""
    st.title("Predictions")
    found = require(lambda client: client.predictions(), doing="load the prediction runs")
    latest = found.get("latest")
    if latest is None:
        st.info(
            "No prediction run yet, so no profile has prediction traits.",
            icon=":material/model_training:",
        )
        st.markdown(HOW_RUNS_HAPPEN)
        return
    latest_run(latest)
    history(found["runs"])
    st.caption(HOW_RUNS_HAPPEN)


main()
