"""The message step's form: channel, content (per channel) or stored template, tracking of
opens and clicks, delivery options and ways out."""

from __future__ import annotations

from typing import Any

import streamlit as st

from journey_designer import widgets
from journey_designer.document import (
    CHANNELS,
    CONTENT_DEFAULTS,
    Path,
    parse_json_or_text,
    tracked_by_default,
)
from journey_designer.forms.common import (
    TEMPLATE_HELP,
    Catalog,
    button_fields,
    goto,
    show_json,
)
from journey_designer.forms.locales import locale_tabs
from journey_designer.widgets import Doc
from journeys.engagement import TRACKED_CHANNELS
from journeys.locales import LOCALES
from journeys.validation import CONTENT_FIELDS

IN_APP_KINDS = ("modal", "banner", "tooltip")
METHODS = ("POST", "PUT", "PATCH", "GET", "DELETE")
TRACKING: dict[str, str] = {
    "email": "Links in the email become tracked links and its HTML body gets an open pixel.",
    "sms": "Links in the text become tracked links.",
    "push": "The notification's data.url becomes a tracked link; the app reports opens.",
    "in_app": "The button's link becomes a tracked link; the app reports views and clicks.",
}
"""What tracking does to a message of each tracked channel."""


def _set_channel(doc: Doc, base: Path, channel: str) -> None:
    """Switch a message's channel, keeping the content that still applies."""
    doc.set((*base, "channel"), channel)
    if channel not in TRACKED_CHANNELS:
        doc.drop((*base, "track"))  # a webhook is never tracked; asking it to be is an error
    content = doc.get((*base, "content"))
    if isinstance(content, dict):
        # The words still apply, in every language: subject, title, body.
        found = content.get(LOCALES)
        languages = {
            tag: kept
            for tag, given in (found.items() if isinstance(found, dict) else [])
            if isinstance(given, dict) and (kept := _words(given, channel))
        }
        locales = {LOCALES: languages} if languages else {}
        doc.set(
            (*base, "content"), {**CONTENT_DEFAULTS[channel], **_words(content, channel), **locales}
        )
    elif doc.get((*base, "template")) is not None:
        doc.set((*base, "template"), "")


def _words(content: dict[str, Any], channel: str) -> dict[str, Any]:
    return {
        k: v
        for k, v in content.items()
        if k in ("subject", "title", "body") and k in CONTENT_FIELDS[channel]
    }


def _set_source(doc: Doc, base: Path, source: str, catalog: Catalog) -> None:
    channel = doc.get((*base, "channel"), "email")
    if source == "template":
        doc.drop((*base, "content"))
        ids = [t["id"] for t in catalog.templates if t.get("channel") == channel]
        doc.set((*base, "template"), ids[0] if ids else "")
    else:
        doc.drop((*base, "template"))
        doc.set((*base, "content"), dict(CONTENT_DEFAULTS.get(channel, {})))


def message_form(doc: Doc, node_id: str, catalog: Catalog) -> None:
    """Channel, content (per channel) or stored template, delivery options and ways out."""
    base: Path = ("nodes", node_id)
    message_fields_form(doc, base, catalog)
    goto(doc, (*base, "next"), "Then go to", node_id)
    goto(
        doc,
        (*base, "on_failure"),
        "If delivery fails for good, go to",
        node_id,
        help="Left at the end of the journey, a failure simply follows 'Then go to'.",
    )


def message_fields_form(doc: Doc, base: Path, catalog: Catalog) -> None:
    """What a message is, at `base` (a journey's message step, a broadcast's message):
    channel, content (per channel) or stored template, transactional, tracking."""
    channel = doc.get((*base, "channel"))
    widgets.select(
        doc,
        (*base, "channel"),
        "Channel",
        list(CHANNELS),
        labels=lambda c: CHANNELS.get(c, str(c)),
        on_select=lambda chosen: _set_channel(doc, base, chosen),
        structural=True,
    )
    source = "template" if doc.get((*base, "template")) is not None else "content"
    widgets.select(
        doc,
        (*base, "<source>"),
        "Content",
        ["content", "template"],
        labels={"content": "Write it here", "template": "Use a stored template"}.__getitem__,
        default=source,
        on_select=lambda chosen: _set_source(doc, base, chosen, catalog),
        structural=True,
    )
    if source == "template":
        ids = [t["id"] for t in catalog.templates if t.get("channel") == channel]
        if not ids:
            st.info(f"No stored {channel} templates yet (`PUT /v1/templates/{{id}}`).")
        widgets.select(doc, (*base, "template"), "Template", ids, labels=lambda t: t or "—")
    else:
        content_form(doc, (*base, "content"), str(channel))
    st.caption("See it rendered for a real user or a sample cart in the **Preview** tab.")
    widgets.checkbox(
        doc,
        (*base, "transactional"),
        "Transactional (receipts, password resets)",
        help="Transactional messages ignore quiet hours, frequency caps and unsubscribes, and "
        "are not tracked unless you turn tracking on.",
        structural=True,  # tracking's default follows it
    )
    tracking_form(doc, base)


def tracking_form(doc: Doc, base: Path) -> None:
    """Whether opens and clicks are recorded, showing the default this message has (on,
    unless it is transactional); nothing to choose for a webhook."""
    channel = doc.get((*base, "channel"))
    if channel not in TRACKED_CHANNELS:
        if channel == "webhook":
            st.caption("Webhooks are never tracked: there is nothing to open or click.")
        doc.flag((*base, "track"))
        return
    default = tracked_by_default(doc.get(base))
    widgets.checkbox(
        doc,
        (*base, "track"),
        "Track opens and clicks",
        default=default,
        help=f"{TRACKING[channel]} Unsubscribe links are never rewritten. Opens and clicks "
        "by link scanners and mail privacy proxies are recorded but never counted.",
    )
    explicit = doc.get((*base, "track"))
    st.caption(
        ("Default: on." if default else "Default for a transactional message: off.")
        + ("" if explicit is None else f" Turned {'on' if explicit else 'off'} here.")
        + " Tracked, it shows open and click rates in Analytics and journeys can wait for "
        "its opens and clicks."
    )


def _set_in_app_kind(doc: Doc, path: Path, kind: str) -> None:
    # Only tooltips point at an element: another kind keeps no anchor.
    if kind == "modal":
        doc.drop((*path, "kind"))
    else:
        doc.set((*path, "kind"), kind)
    if kind != "tooltip":
        doc.drop((*path, "anchor"))


def content_form(doc: Doc, path: Path, channel: str) -> None:
    """The content fields of a channel, and a tab per language the message is written in."""
    st.caption(TEMPLATE_HELP)
    locale_tabs(doc, path, channel, lambda: _fields(doc, path, channel))
    doc.flag_within(path)


def _fields(doc: Doc, path: Path, channel: str) -> None:
    match channel:
        case "email":
            widgets.text(doc, (*path, "subject"), "Subject", keep_empty=True)
            widgets.text(doc, (*path, "body"), "Body (plain text)", area=True, keep_empty=True)
            widgets.text(
                doc, (*path, "html"), "HTML body (optional)", area=True,
                help="Sent as the HTML alternative of the plain-text body.",
            )  # fmt: skip
        case "push":
            widgets.text(doc, (*path, "title"), "Title", keep_empty=True)
            widgets.text(doc, (*path, "body"), "Body", area=True, keep_empty=True)
            widgets.text(
                doc, (*path, "data"), "Data (optional JSON object)", area=True,
                help='Sent to the app with the notification, e.g. {"deep_link": "shop://cart"}.',
                parse=parse_json_or_text, show=show_json,
            )  # fmt: skip
        case "sms":
            widgets.text(
                doc, (*path, "body"), "Text", area=True, keep_empty=True,
                help="Keep it short (160 characters is one SMS); add how to opt out.",
            )  # fmt: skip
        case "in_app":
            widgets.select(
                doc, (*path, "kind"), "Kind", list(IN_APP_KINDS), default="modal",
                help="modal: a dialog; banner: a strip at the top; tooltip: a small hint "
                "pointing at an element of the page.",
                on_select=lambda kind: _set_in_app_kind(doc, path, kind), structural=True,
            )  # fmt: skip
            if doc.get((*path, "kind")) == "tooltip":
                widgets.text(
                    doc, (*path, "anchor"), "Points at (CSS selector, optional)",
                    placeholder="#pay-button",
                    help="The browser SDK shows the tooltip next to the first element this "
                    "selector finds, once it is on the page.",
                )  # fmt: skip
            widgets.text(doc, (*path, "title"), "Title (optional)")
            widgets.text(doc, (*path, "body"), "Body", area=True, keep_empty=True)
            button_fields(
                doc, (*path, "cta"), "Add a button (call to action)",
                lambda: {"label": "Take a look", "url": "/"},
            )  # fmt: skip
        case "webhook":
            widgets.text(doc, (*path, "url"), "URL", keep_empty=True)
            widgets.select(doc, (*path, "method"), "Method", list(METHODS), default="POST")
            widgets.text(
                doc, (*path, "headers"), "Headers (optional JSON object)", area=True,
                parse=parse_json_or_text, show=show_json,
            )  # fmt: skip
            widgets.text(
                doc, (*path, "body"), "Body (text, or a JSON object of strings)", area=True,
                parse=parse_json_or_text, show=show_json,
            )  # fmt: skip
