"""Figures the analytics page computes from the API's journey stats (pure)."""

from __future__ import annotations

import math
from typing import Any

from journey_designer.document import flow_order, nodes_of

Z_95 = 1.959964
"""The normal quantile of a two-sided 95 % interval."""


def wilson(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a conversion rate (95 % by default); (0, 0) without data.

    Unlike the normal approximation it stays inside [0, 1] and behaves for small counts and
    rates near 0 or 1, which is where young experiments live.
    """
    if trials <= 0:
        return 0.0, 0.0
    rate = successes / trials
    denominator = 1 + z * z / trials
    centre = (rate + z * z / (2 * trials)) / denominator
    margin = z * math.sqrt(rate * (1 - rate) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - margin), min(1.0, centre + margin)


def funnel(document: dict[str, Any], stats: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per node in the order users meet them: `{step, node, type, reached, waiting}`."""
    nodes = nodes_of(document)
    counts = stats.get("nodes") or {}
    return [
        {
            "step": f"{i + 1:02d} {node_id}",
            "node": node_id,
            "type": nodes[node_id].get("type"),
            "reached": int(counts.get(node_id, {}).get("reached", 0)),
            "waiting": int(counts.get(node_id, {}).get("waiting", 0)),
        }
        for i, node_id in enumerate(flow_order(document))
    ]


def variant_rows(experiment: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per variant: users, conversions, rate and its 95 % interval."""
    rows = []
    for name, figures in (experiment.get("variants") or {}).items():
        users, conversions = int(figures.get("users", 0)), int(figures.get("conversions", 0))
        low, high = wilson(conversions, users)
        rows.append(
            {
                "variant": name,
                "users": users,
                "conversions": conversions,
                "rate": float(figures.get("rate", conversions / users if users else 0.0)),
                "95% CI low": low,
                "95% CI high": high,
            }
        )
    return rows
