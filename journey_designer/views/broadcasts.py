"""Broadcasts page: send one message to every member of a segment, now or at a set time, at a
chosen pace, optionally within members' quiet hours; follow each broadcast's progress and
cancel one that is still going."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import streamlit as st

from journey_designer import widgets
from journey_designer.api import call, needs, require, role, settings, workflow_url
from journey_designer.document import CONTENT_DEFAULTS, SLUG
from journey_designer.forms.journey import quiet_hours_form
from journey_designer.forms.messages import message_fields_form
from journey_designer.state import catalog
from journey_designer.widgets import Doc
from journeys.access import Role

BROADCAST = Doc("broadcast")
"""The broadcast being written (`{id, segment, message, rate}`)."""
WHEN = "broadcasts.when"
DAY = "broadcasts.day"
HOUR = "broadcasts.time"
SENT = "broadcasts.sent"
FINAL = ("completed", "cancelled")
STATUS_ICONS = {"scheduled": "🕒", "sending": "📤", "completed": "✅", "cancelled": "⛔"}


def fresh(segment: str) -> dict[str, Any]:
    """A new broadcast: an email to `segment`, at 50 per second."""
    return {
        "id": "",
        "segment": segment,
        "message": {"channel": "email", "content": dict(CONTENT_DEFAULTS["email"])},
        "rate": "50/s",
    }


def send() -> None:
    """Send the broadcast as written (its problems show beside its fields when refused)."""
    broadcast = {k: v for k, v in BROADCAST.value.items() if v not in ("", None)}
    if not SLUG.match(str(broadcast.get("id", ""))):
        st.error("The id must be lower-case letters, digits and dashes (at most 64).")
        return
    if st.session_state.get(WHEN) == "later":
        day: date = st.session_state[DAY]
        moment: time = st.session_state[HOUR]
        broadcast["at"] = datetime.combine(day, moment, tzinfo=UTC).isoformat()
    BROADCAST.set_problems([])
    created = call(
        lambda client: client.create_broadcast(broadcast),
        doing="send the broadcast",
        problems_to=BROADCAST,
    )
    if created is None:
        return
    # A fresh form and the list with the new broadcast: drawn again, the message kept.
    BROADCAST.load(fresh(str(broadcast["segment"])))
    st.session_state[SENT] = f"Broadcast '{created['id']}' {created['status']}."
    st.rerun()


def progress_of(broadcast: dict[str, Any]) -> None:
    """One broadcast: status, counts, a progress bar while it sends, and a cancel button."""
    config = settings()
    icon = STATUS_ICONS.get(broadcast["status"], "")
    when = f" · at {broadcast['at']}" if broadcast.get("at") else ""
    rate = f" · {broadcast['rate']}" if broadcast.get("rate") else ""
    st.markdown(
        f"**{broadcast['id']}** {icon} {broadcast['status']} · segment `{broadcast['segment']}` "
        f"· {broadcast['message']['channel']}{rate}{when}"
    )
    columns = st.columns(5)
    for column, field in zip(
        columns, ("targeted", "sent", "skipped", "failed", "pending"), strict=True
    ):
        column.metric(field.capitalize(), broadcast[field])
    done = broadcast["sent"] + broadcast["skipped"] + broadcast["failed"]
    if broadcast["status"] == "sending" and broadcast["targeted"]:
        share = min(done / broadcast["targeted"], 1.0)
        st.progress(share, text=f"{done} of {broadcast['targeted']} members taken so far")
    links, cancel = st.columns([3, 1])
    with links:
        st.link_button(
            "Open in the Temporal Web UI",
            workflow_url(config, broadcast["workflow_id"]),
            icon=":material/open_in_new:",
        )
    with cancel:
        if broadcast["status"] not in FINAL and role().includes(Role.PUBLISHER) and st.button(
            "Cancel", key=f"broadcasts.cancel.{broadcast['id']}", icon=":material/cancel:",
            help="Stop further sends; what was sent stays sent.",
        ):  # fmt: skip
            stopped = call(
                lambda client: client.cancel_broadcast(broadcast["id"]),
                doing=f"cancel '{broadcast['id']}'",
            )
            if stopped is not None:
                st.success(f"Broadcast '{broadcast['id']}' cancelled.")


def compose(segments: dict[str, str]) -> None:
    """The form of a new broadcast."""
    if not BROADCAST.loaded:
        BROADCAST.load(fresh(next(iter(segments))))
    ident, segment = st.columns(2)
    with ident:
        widgets.text(
            BROADCAST, ("id",), "Id", keep_empty=True, placeholder="spring-sale",
            help="Lower-case letters, digits and dashes; each id sends once.",
        )  # fmt: skip
    with segment:
        widgets.select(
            BROADCAST, ("segment",), "Segment", list(segments),
            labels=lambda s: f"{segments.get(s, s)} ({s})",
            help="Its members when the broadcast sends, each messaged once.",
        )  # fmt: skip
    message_fields_form(BROADCAST, ("message",), catalog())
    when, rate = st.columns(2)
    with when:
        later = st.radio(
            "Send", ["now", "later"], key=WHEN, horizontal=True,
            format_func={"now": "Now", "later": "At a set time (UTC)"}.__getitem__,
        )  # fmt: skip
        if later == "later":
            # The API takes a time up to 366 days ahead (UTC days: the time is UTC too).
            today = datetime.now(UTC).date()
            st.date_input("Day", key=DAY, min_value=today, max_value=today + timedelta(days=366))
            st.time_input("Time (UTC)", key=HOUR, value=time(9, 0))
    with rate:
        widgets.text(
            BROADCAST, ("rate",), "Pace (optional)", placeholder="50/s",
            help="At most this many messages per second (/s), minute (/m) or hour (/h); the "
            "channels' rate limits (Settings) hold too.",
        )  # fmt: skip
    quiet_hours_form(BROADCAST, ("quiet_hours",))
    BROADCAST.flag_within(())
    if st.button(
        "Send broadcast", icon=":material/campaign:", type="primary", key="broadcasts.send"
    ):
        send()


def main() -> None:
    """Render the page."""
    st.title("Broadcasts")
    st.caption(
        "A broadcast sends one message to every member of a segment, once each, through the "
        "same checks as journey messages: frequency caps, unsubscribes, holdouts, rate limits "
        "and tracking."
    )
    if SENT in st.session_state:
        st.success(st.session_state.pop(SENT))
    listed = require(lambda client: client.list_segments(), doing="list the segments")
    segments = {s["id"]: s["name"] for s in listed}
    if cannot := needs(Role.PUBLISHER, "sending a broadcast"):
        st.caption(f"{cannot.capitalize()}.")
    else:
        with st.expander("New broadcast", expanded=True, icon=":material/add:"):
            if segments:
                compose(segments)
            else:
                st.info("Make a segment first (Segments page): a broadcast goes to its members.")
    st.subheader("Broadcasts")
    broadcasts = require(lambda client: client.list_broadcasts(), doing="list the broadcasts")
    if not broadcasts:
        st.caption("No broadcast yet.")
    for broadcast in broadcasts:
        with st.container(border=True):
            progress_of(broadcast)


main()
