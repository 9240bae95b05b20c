"""Settings page: what holds across every journey. Each section reads the workspace settings,
changes its own fields and writes them all back (`PUT /v1/settings` replaces the whole)."""

from __future__ import annotations

from typing import Any

import streamlit as st

from journey_designer.api import call, needs, require
from journey_designer.rate_limits import rate_limits
from journeys.access import Role
from journeys.holdouts import GLOBAL_HOLDOUT_MAX
from journeys.retention import RETENTION_DAYS, RETENTION_DAYS_MAX

CHANGING = (Role.PUBLISHER, "changing the settings")


def global_holdout(stored: dict[str, Any]) -> None:
    """The share of all users who get no marketing message from any journey."""
    st.subheader("Global holdout", anchor=False)
    st.caption(
        "A stable share of all users who get no non-transactional message from any journey "
        "(each skipped with the reason 'global holdout'; transactional messages still go): a "
        "control group for the whole programme. Users in it are left out of each journey's own "
        "holdout comparison."
    )
    current = float((stored.get("holdout") or {}).get("percent", 0))
    with st.form("settings.holdout"):
        percent = st.number_input(
            f"Percent of all users held out (0 to {GLOBAL_HOLDOUT_MAX})",
            min_value=0.0,
            max_value=float(GLOBAL_HOLDOUT_MAX),
            value=current,
            step=1.0,
        )
        cannot = needs(*CHANGING)
        if st.form_submit_button("Save", disabled=cannot is not None, help=cannot):
            holdout = {"percent": percent} if percent else None
            saved = call(
                lambda client: client.change_settings("holdout", holdout), doing="save the holdout"
            )
            if saved is not None:
                st.success(f"Saved: {percent:g}% of all users are held out.")


def event_retention(stored: dict[str, Any]) -> None:
    """How long routed events are kept."""
    st.subheader("Event retention", anchor=False)
    st.caption(
        "Events older than this are deleted every night, once they have reached their "
        "journeys. Events that a live journey or a segment still counts (an event count, with "
        "its 'within' window or without one) are kept as long as that window reads them, and "
        "so are events not yet routed."
    )
    current = int(stored.get("events_retention_days", RETENTION_DAYS))
    with st.form("settings.retention"):
        days = st.number_input(
            f"Days to keep events (1 to {RETENTION_DAYS_MAX})",
            min_value=1,
            max_value=RETENTION_DAYS_MAX,
            value=current,
            step=1,
        )
        cannot = needs(*CHANGING)
        if st.form_submit_button("Save retention", disabled=cannot is not None, help=cannot):
            saved = call(
                lambda client: client.change_settings("events_retention_days", int(days)),
                doing="save the retention",
            )
            if saved is not None:
                st.success(f"Saved: events are kept {saved['events_retention_days']} days.")


def main() -> None:
    """Render the page."""
    st.title("Settings")
    stored = require(lambda client: client.get_settings(), doing="load the settings")
    global_holdout(stored)
    rate_limits(stored)
    event_retention(stored)


main()
