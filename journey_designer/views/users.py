"""Users page: a user's predictions (conversion chance, preferred channel, most active hour),
traits, recent events, journeys (with a link to each run in the Temporal Web UI), deliveries
(whether and when each was opened and clicked) and timeline (what happened to them and why,
step by step, a page at a time); the export of everything stored about them, and their erasure
(after a confirmation)."""

from __future__ import annotations

import json
from typing import Any

import streamlit as st

from api_client import ApiClient
from journey_designer.api import call, role, settings, workflow_url
from journey_designer.preview import escape
from journey_designer.stats import engaged, hour_of_day, percent
from journeys.access import Role
from journeys.settings import Settings

KEY = "users.id"
# The session state key of the timeline's page: whose timeline, and the place it starts from.
# (A comment, not a docstring: Streamlit shows a bare string of a page script on the page.)
PAGE = "users.timeline"
TIMELINE_PAGE = 100
# Privacy: the export fetched for download, the erasure awaiting confirmation, and what the
# last erasure did (shown once the user is gone), each for the user id it is about.
EXPORT = "users.export"
ERASING = "users.erasing"
ERASED = "users.erased"


def look_up(client: ApiClient, user_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The user's profile (traits, journeys, deliveries) and latest events."""
    return client.user(user_id), client.user_events(user_id, limit=50)


def predictions(traits: dict[str, Any]) -> None:
    """The traits the prediction runs and send-time optimisation write, in plain words."""
    chance = percent(traits.get("predicted_conversion"))
    channel = traits.get("preferred_channel")
    hour = hour_of_day(traits.get("most_active_hour"))
    if chance is None and channel is None and hour is None:
        st.caption(
            "No predictions for this user yet: the nightly prediction run (or "
            "`journeys predict`) writes them, and send-time optimisation learns the active hour."
        )
        return
    conversion, preferred, active = st.columns(3)
    conversion.metric(
        "Predicted conversion", chance or "—",
        help="The chance this user converts within the model's horizon (see Predictions): "
        "the `predicted_conversion` trait.",
    )  # fmt: skip
    preferred.metric(
        "Preferred channel", str(channel) if channel is not None else "—",
        help="The channel this user engages with most: the `preferred_channel` trait.",
    )  # fmt: skip
    with active:
        st.metric(
            "Most active hour", hour or "—",
            help="When this user is most active in their history, in their time zone: "
            "the `most_active_hour` trait, learnt when a delay waits for the optimal time.",
        )  # fmt: skip
        if hour is not None:
            st.caption(f"most active around {hour} (their time)")


def timeline_line(config: Settings, entry: dict[str, Any]) -> str:
    """One timeline entry as a line of Markdown: when, what kind, what happened and why, where
    in which journey, and a link to its run (or broadcast) in the Temporal Web UI."""
    parts = [f"`{_moment(entry.get('at'))}`", f"**{escape(entry.get('kind'))}**"]
    what = escape(entry.get("what"))
    parts.append(what + (f" — _{escape(entry['why'])}_" if entry.get("why") else ""))
    if entry.get("journey_id"):
        step = f" › {escape(entry['node_id'])}" if entry.get("node_id") else ""
        parts.append(f"{escape(entry['journey_id'])}{step}")
    if entry.get("workflow_id"):
        details = entry.get("details")
        # A broadcast's message has no run of the user: its link is the broadcast's workflow.
        run = "broadcast" if isinstance(details, dict) and details.get("broadcast") else "run"
        parts.append(f"[open the {run}]({workflow_url(config, entry['workflow_id'])})")
    return " · ".join(parts)


def _moment(at: str | None) -> str:
    """A timeline time to the second (steps of one run often share a minute)."""
    return (at or "").replace("T", " ")[:19] + (" UTC" if at else "")


def timeline(user_id: str, config: Settings) -> None:
    """The user's timeline, a page at a time: the first page, then earlier or later ones."""
    st.subheader("Timeline", anchor=False)
    place = st.session_state.get(PAGE)
    if not isinstance(place, dict) or place.get("user") != user_id:
        place = {"user": user_id}
    page = call(
        lambda client: client.user_timeline(
            user_id, limit=TIMELINE_PAGE, after=place.get("after"), before=place.get("before")
        ),
        doing=f"read the timeline of '{user_id}'",
    )
    if page is None:
        return
    entries = page.get("entries") or []
    if not entries:
        st.caption("Nothing happened to this user yet.")
        return
    st.caption(
        "What happened to the user and why, oldest first: their events, each journey they "
        "entered (or why not), the steps they reached, what ended each wait, their messages "
        "(why one was skipped; whether they opened it), their conversion and how each run "
        "ended. Open a run in the Temporal Web UI for its full history."
    )
    st.markdown("\n".join(f"- {timeline_line(config, entry)}" for entry in entries))
    earlier, later = st.columns(2)
    if page.get("previous") and earlier.button("Earlier", key=f"{PAGE}.earlier"):
        st.session_state[PAGE] = {"user": user_id, "before": page["previous"]}
        st.rerun()
    if page.get("next") and later.button("Later", key=f"{PAGE}.later"):
        st.session_state[PAGE] = {"user": user_id, "after": page["next"]}
        st.rerun()


def privacy(user_id: str) -> None:
    """Export everything stored about the user (as a JSON download), or erase them after a
    confirmation that says what erasing does."""
    st.subheader("Privacy", anchor=False)
    export, erase, _ = st.columns([1, 1, 3])
    if export.button("Export", icon=":material/download:", key="users.export.fetch"):
        data = call(lambda client: client.export_user(user_id), doing=f"export '{user_id}'")
        st.session_state[EXPORT] = None if data is None else {"user": user_id, "data": data}
    if erase.button("Erase…", icon=":material/delete_forever:", key="users.erase"):
        st.session_state[ERASING] = user_id
    fetched = st.session_state.get(EXPORT)
    if isinstance(fetched, dict) and fetched.get("user") == user_id:
        st.download_button(
            "Download the export",
            json.dumps(fetched["data"], indent=2),
            file_name=f"{user_id}.json",
            mime="application/json",
            key="users.export.download",
        )
    if st.session_state.get(ERASING) == user_id:
        confirm_erasure(user_id)


def confirm_erasure(user_id: str) -> None:
    """Say what erasing does; erase only on a second, explicit click."""
    with st.container(border=True):
        st.warning(
            f"Erase '{user_id}'? This is final: their profile, events, inbox and the content "
            "and addresses of their messages are deleted, and every journey they are in ends "
            "for them (reason `erased`). Counts in the statistics stay, without them. Their "
            "later events are dropped until they identify again with `context.consent: true`."
        )
        yes, no, _ = st.columns([1, 1, 4])
        if yes.button("Yes, erase", key="users.erase.yes", type="primary"):
            st.session_state[ERASING] = None
            done = call(lambda client: client.erase_user(user_id), doing=f"erase '{user_id}'")
            if done is not None:
                st.session_state[ERASED] = done
                st.session_state[EXPORT] = None
                st.rerun()
        if no.button("Cancel", key="users.erase.no"):
            st.session_state[ERASING] = None
            st.rerun()


def main() -> None:
    """Render the page."""
    st.title("Users")
    user_id = st.text_input("User id", key=KEY, placeholder="ada").strip()
    if not user_id:
        st.caption("Enter a user id to see their traits, events, journeys and messages.")
        return
    erased = st.session_state.pop(ERASED, None)
    if isinstance(erased, dict) and erased.get("user_id") == user_id:
        st.success(
            f"Erased '{user_id}': nothing about them is stored any more, and "
            f"{erased.get('runs_ended', 0)} journey run(s) ended for them.",
            icon=":material/check_circle:",
        )
        return
    found = call(lambda client: look_up(client, user_id), doing=f"look up '{user_id}'")
    if found is None:
        return
    profile, events = found
    config = settings()
    predictions(profile.get("traits") or {})
    traits, history = st.columns(2)
    with traits:
        st.subheader("Traits", anchor=False)
        st.json(profile.get("traits") or {})
    with history:
        st.subheader("Recent events", anchor=False)
        st.dataframe(
            [
                {"event": e.get("name") or e.get("type"), "at": e.get("timestamp"),
                 "properties": e.get("properties")}
                for e in events
            ],
            hide_index=True,
        )  # fmt: skip
    st.subheader("Journeys", anchor=False)
    journeys = profile.get("journeys") or []
    if journeys:
        st.dataframe(
            [
                {
                    "journey": j["journey_id"],
                    "version": j.get("version"),
                    "status": j.get("status"),
                    "current step": j.get("current_node"),
                    "entered": j.get("entered_at"),
                    "ended": j.get("ended_at"),
                    "workflow": workflow_url(config, j["workflow_id"]),
                }
                for j in journeys
            ],
            hide_index=True,
            column_config={
                "workflow": st.column_config.LinkColumn(
                    "Temporal", display_text="open the run", help="The run in the Temporal Web UI"
                )
            },
        )
    else:
        st.caption("Not in any journey yet.")
    st.subheader("Messages", anchor=False)
    deliveries = profile.get("deliveries") or []
    if deliveries:
        st.dataframe(
            [
                {
                    "at": d.get("created_at"),
                    "journey": d.get("journey_id"),
                    "step": d.get("node_id"),
                    "channel": d.get("channel"),
                    "status": d.get("status"),
                    "opened": engaged(d, "opened_at"),
                    "clicked": engaged(d, "clicked_at"),
                    "reason": d.get("reason"),
                    "variant": d.get("variant"),
                    "content": d.get("content"),
                }
                for d in deliveries
            ],
            hide_index=True,
        )
        st.caption(
            "Opened and clicked: the first open and click by the user (link scanners and mail "
            "privacy proxies left out); `no` for a message nobody opened or clicked, or one "
            "that is not tracked."
        )
    else:
        st.caption("No messages yet.")
    if role().includes(Role.ADMIN):  # erasing and exporting
        privacy(user_id)
    timeline(user_id, config)


main()
