"""Figures the analytics and predictions pages draw from the API's answers (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from journey_designer.document import flow_order, nodes_of, tracked
from journeys.experiments import ALPHA, Counts, look_budget, look_size, wilson_interval
from journeys.holdouts import TOO_FEW_USERS


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


def message_rows(stats: dict[str, Any], definition: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per message step: those sent, the open and click rates (of those sent; None when
    nothing was sent) and the users behind them, the deliveries skipped and failed, its channel
    and whether it is tracked (the rates first: they are what a narrow table should show)."""
    nodes = nodes_of(definition)
    return [
        {
            "step": node_id,
            **_engagement(figures),
            "skipped": int(figures.get("skipped", 0)),
            "failed": int(figures.get("failed", 0)),
            "channel": (nodes.get(node_id) or {}).get("channel"),
            "tracked": tracked(nodes.get(node_id)),
        }
        for node_id, figures in (stats.get("messages") or {}).items()
    ]


def _engagement(figures: dict[str, Any]) -> dict[str, Any]:
    """Those sent, the open and click rates (None when nothing was sent) and the users behind
    them, from the API's figures of a message (or of one of its languages)."""
    return {
        "sent": int(figures.get("sent", 0)),
        "open rate": figures.get("open_rate"),
        "click rate": figures.get("click_rate"),
        "opened": int(figures.get("opened", 0)),
        "clicked": int(figures.get("clicked", 0)),
    }


def locale_rows(stats: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per language of each message step that has languages (`base`: the base
    content): those sent in it, its open and click rates and the users behind them."""
    return [
        {"step": node_id, "language": tag, **_engagement(counts)}
        for node_id, figures in (stats.get("messages") or {}).items()
        for tag, counts in (figures.get("locales") or {}).items()
    ]


def variant_rows(experiment: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per variant: users, conversions, rate and the 95 % interval the API gives, and
    (when the API counts them) the users who clicked, the click-through rate and its 95 %
    interval; the winner (if any) marked."""
    winner = experiment.get("winner")
    rows = []
    for name, figures in (experiment.get("variants") or {}).items():
        users = int(figures.get("users", 0))
        low, high = figures.get("interval") or (0.0, 1.0)
        row = {
            "variant": f"{name} (winner)" if name == winner else name,
            "users": users,
            "conversions": int(figures.get("conversions", 0)),
            "rate": float(figures.get("rate", 0.0)),
            "95% CI low": float(low),
            "95% CI high": float(high),
        }
        if "clicks" in figures:
            clicks = int(figures["clicks"])
            # A click-through is a success like a conversion: the same interval applies.
            click_low, click_high = wilson_interval(Counts(users=users, conversions=clicks))
            row |= {
                "clicks": clicks,
                "CTR": float(figures.get("click_rate") or 0.0),
                "CTR 95% CI low": click_low,
                "CTR 95% CI high": click_high,
            }
        rows.append(row)
    return rows


@dataclass(frozen=True)
class NextLook:
    """Where an experiment's winner rule stands before its next look."""

    smallest: int
    """Users of the variant with fewest."""
    needed: int
    """Users every variant needs for the next look: min_users · 2^looks."""
    threshold: float
    """The p-value the best variant must beat the others by at that look."""

    @property
    def progress(self) -> float:
        """How far the smallest variant is toward the next look (0..1)."""
        return min(1.0, self.smallest / self.needed) if self.needed > 0 else 1.0


def next_look(experiment: dict[str, Any], min_users: int) -> NextLook:
    """The next look of a winner rule requiring `min_users` per variant, from the stats."""
    looks = int(experiment.get("looks") or 0)
    users = [int(v.get("users", 0)) for v in (experiment.get("variants") or {}).values()]
    return NextLook(
        smallest=min(users, default=0),
        needed=look_size(min_users, looks),
        threshold=look_budget(looks),
    )


def when(moment: str | None) -> str:
    """An API timestamp as `2026-05-01 03:00 UTC` (as given when it does not parse)."""
    if not moment:
        return "—"
    try:
        parsed = datetime.fromisoformat(moment)
    except ValueError:
        return moment
    return parsed.strftime("%Y-%m-%d %H:%M ") + (parsed.tzname() or "UTC")


def engaged(delivery: dict[str, Any], moment: str) -> str:
    """Whether and when a user's delivery was opened (`moment="opened_at"`) or clicked: the
    time, `no` for a sent message nobody engaged with, `—` for one that was never sent."""
    if delivery.get(moment):
        return when(delivery[moment])
    return "no" if delivery.get("status") == "sent" else "—"


def _points(rate: float) -> str:
    """A difference of rates in percentage points, one decimal: `2.1`, `-0.4`."""
    return f"{rate * 100:.1f}"


def holdout_reading(holdout: dict[str, Any]) -> str:
    """The journey's holdout comparison (the stats' `holdout`) in one plain sentence."""
    users, treated = int(holdout.get("users", 0)), int(holdout.get("treated_users", 0))
    lift, interval, p_value = holdout.get("lift"), holdout.get("interval"), holdout.get("p_value")
    if lift is None or interval is None or p_value is None:
        return (
            f"No comparison yet: {users} users held out and {treated} treated; both groups "
            "need users first."
        )
    if min(users, treated) < TOO_FEW_USERS:
        return (
            f"Too few users to tell yet: {users} held out and {treated} treated (at least "
            f"{TOO_FEW_USERS} in each before the difference means much)."
        )
    low, high = interval
    direction = "more" if lift >= 0 else "less"
    sentence = (
        f"Treated users converted {_points(abs(lift))} points {direction} than held-out users "
        f"(95 % interval {_points(low)} to {_points(high)}), p = {p_value:.2g}"
    )
    if p_value < ALPHA and low > 0:
        return f"{sentence}: the journey's messages make a difference."
    if p_value < ALPHA and high < 0:
        return f"{sentence}: the journey's messages do harm."
    return f"{sentence}: not yet distinguishable from chance."


def auc_reading(auc: float | None) -> str:
    """What a held-out AUC means, in plain words."""
    if auc is None:
        return "not measured: the run had too little data to hold users out"
    if auc < 0.55:
        verdict = "no better than a coin toss"
    elif auc < 0.65:
        verdict = "weak, a little better than a coin toss"
    elif auc < 0.75:
        verdict = "fair"
    elif auc < 0.85:
        verdict = "good"
    else:
        verdict = "very good"
    return (
        f"{verdict}: given a user who converted and one who did not, the model scores the "
        f"converter higher {auc:.0%} of the time (0.5 is a coin toss, 1.0 perfect)"
    )


def hour_of_day(hour: Any) -> str | None:
    """A `most_active_hour` trait as `19:00` (None when it is not an hour)."""
    if isinstance(hour, bool) or not isinstance(hour, int | float) or not 0 <= hour < 24:
        return None
    return f"{int(hour):02d}:00"


def percent(value: Any) -> str | None:
    """A 0..1 score as `73%` (None when it is not one)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        return None
    return f"{value:.0%}"
