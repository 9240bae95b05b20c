"""The settings page's rate limits: per channel, the most messages its provider is handed."""

from __future__ import annotations

from typing import Any

import streamlit as st

from journey_designer.api import call, needs
from journeys.access import Role
from journeys.model import CHANNELS

LABELS = {"email": "Email", "sms": "SMS", "push": "Push", "in_app": "In-app", "webhook": "Webhook"}


def rate_limits(stored: dict[str, Any]) -> None:
    """A limit per channel (empty: none), saved together."""
    st.subheader("Rate limits", anchor=False)
    st.caption(
        "The most messages a channel hands to its provider, across every worker: '20/s', "
        "'600/m' or '1000/h'. A message over the limit waits for its turn (it is never "
        "skipped); while it waits, the user's page lists it as waiting. Leave a channel empty "
        "for no limit."
    )
    current: dict[str, str] = stored.get("rate_limits") or {}
    with st.form("settings.rate_limits"):
        columns = st.columns(len(CHANNELS))
        written = {
            channel: column.text_input(
                LABELS[channel],
                value=current.get(channel, ""),
                placeholder="no limit",
                key=f"settings.rate_limits.{channel}",
            )
            for channel, column in zip(CHANNELS, columns, strict=True)
        }
        cannot = needs(Role.PUBLISHER, "changing the settings")
        if st.form_submit_button("Save rate limits", disabled=cannot is not None, help=cannot):
            limits: dict[str, str] = {
                c: text.strip() for c, text in written.items() if text.strip()
            }
            saved = call(
                lambda client: client.change_settings("rate_limits", limits),
                doing="save the rate limits",
            )
            if saved is not None:
                shown = ", ".join(f"{LABELS[c]} {r}" for c, r in saved["rate_limits"].items())
                st.success(f"Saved: {shown or 'no rate limits'}.")
