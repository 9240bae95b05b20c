"""Message preview: a message node rendered by the API for a real user or a sample context,
shown the way its channel shows it (an email, a notification card, an SMS bubble, an in-app
modal / banner / tooltip, a webhook request)."""

from __future__ import annotations

import json
import re
from typing import Any

import streamlit as st

from journey_designer.api import call
from journey_designer.forms.locales import tags_of
from journeys.locales import BASE, localise

SAMPLE_CONTEXT: dict[str, Any] = {
    "user": {
        "id": "sample-user",
        "first_name": "Ada",
        "email": "ada@example.com",
        "plan": "pro",
        "timezone": "Europe/London",
    },
    "entry": {
        "total_price": 129.9,
        "currency": "USD",
        "item_count": 2,
        "first_item_name": "Trail shoes",
        "cart_url": "https://shop.example.com/cart",
        "cart_id": "c-1",
    },
    "event": {"product_name": "Trail shoes", "price": 89.9, "url": "https://shop.example.com/p/1"},
}
"""A plausible storefront context, so templates render with something in them."""

_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$])")


def escape(text: Any) -> str:
    """Text shown literally inside Markdown (user content must not format or link)."""
    return _MARKDOWN.sub(r"\\\1", str(text))


def preview_panel(node: dict[str, Any], key: str) -> None:
    """Choose a user or a sample context, render the message node and show it."""
    who = st.radio(
        "Render for",
        ["user", "sample"],
        format_func={"user": "a real user (by id)", "sample": "a sample context"}.__getitem__,
        horizontal=True,
        key=f"{key}:who",
    )
    request: dict[str, Any] = {"channel": node.get("channel")}
    if node.get("template") is not None:
        request["template"] = node["template"]
    else:
        request["content"] = _in_language(node.get("content") or {}, key)
    if who == "user":
        user_id = st.text_input("User id", key=f"{key}:user", placeholder="ada")
        request["user_id"] = user_id.strip()
    else:
        raw = st.text_area(
            "Context (JSON: user, entry, event)",
            value=json.dumps(SAMPLE_CONTEXT, indent=2),
            height=200,
            key=f"{key}:context",
        )
        try:
            request["context"] = json.loads(raw)
        except ValueError as error:
            st.error(f"The context is not valid JSON: {error}")
            return
    if st.button("Render preview", key=f"{key}:render", type="primary"):
        if who == "user" and not request["user_id"]:
            st.warning("Enter a user id (or choose the sample context).")
            return
        rendered = call(lambda client: client.preview_message(request), doing="render the preview")
        st.session_state[f"{key}:rendered"] = rendered
    rendered = st.session_state.get(f"{key}:rendered")
    if isinstance(rendered, dict):
        show_message(str(node.get("channel")), rendered)


AS_PICKED = "<picked>"
"""The language choice that leaves it to the user's `locale` trait, as a delivery does."""


def _in_language(content: dict[str, Any], key: str) -> dict[str, Any]:
    """The content to render, in the language chosen (when the message has languages): as the
    user's `locale` trait picks it, the base content, or one language's."""
    tags = tags_of(content)
    if not tags:
        return content
    chosen = st.selectbox(
        "Language",
        [AS_PICKED, BASE, *tags],
        format_func=lambda tag: {
            AS_PICKED: "as the user's locale picks it", BASE: "base content"
        }.get(tag, tag),
        key=f"{key}:locale",
        on_change=lambda: st.session_state.pop(f"{key}:rendered", None),  # another language
        help="A user's `locale` trait picks the content: the exact tag, then its language "
        "(de-CH → de), else the base content.",
    )  # fmt: skip
    if chosen == AS_PICKED:
        return content
    return localise(content, None if chosen == BASE else chosen).content


def show_message(channel: str, content: dict[str, Any]) -> None:
    """Rendered content the way its channel presents it."""
    match channel:
        case "email":
            with st.container(border=True):
                st.caption(":material/mail: Email")
                st.markdown(f"**Subject:** {escape(content.get('subject', ''))}")
                st.divider()
                st.text(content.get("body", ""))
                if content.get("html"):
                    st.caption("HTML version (scripts removed):")
                    # st.html sanitises with DOMPurify: markup shows, scripts never run.
                    st.html(str(content["html"]))
        case "push":
            with st.container(border=True):
                st.caption(":material/notifications: Push notification · now")
                st.markdown(f"**{escape(content.get('title', ''))}**")
                st.markdown(escape(content.get("body", "")))
                if content.get("data"):
                    st.caption("data: " + json.dumps(content["data"]))
        case "sms":
            with st.chat_message("assistant", avatar=":material/sms:"):
                st.markdown(escape(content.get("body", "")))
            st.caption(f"SMS · {len(str(content.get('body', '')))} characters")
        case "in_app":
            _in_app(content)
        case "webhook":
            st.caption(":material/webhook: Webhook request")
            body = content.get("body")
            shown = json.dumps(body, indent=2) if isinstance(body, dict) else str(body or "")
            headers = "".join(f"{k}: {v}\n" for k, v in (content.get("headers") or {}).items())
            request = (
                f"{content.get('method', 'POST')} {content.get('url', '')}\n{headers}\n{shown}"
            )
            st.code(request, language="http")


def _in_app(content: dict[str, Any]) -> None:
    kind = content.get("kind", "modal")
    title = escape(content.get("title", ""))
    text = " — ".join(
        part for part in (f"**{title}**" if title else "", escape(content.get("body", ""))) if part
    )
    match kind:
        case "banner":
            st.info(text, icon=":material/campaign:")
            _cta(content.get("cta"))
        case "tooltip":
            _, tip = st.columns([1, 2])
            with tip, st.container(border=True):
                st.caption(":material/lightbulb: Tooltip")
                st.markdown(text)
                _cta(content.get("cta"))
        case _:
            with st.container(border=True):
                st.caption(":material/web_asset: In-app modal")
                if title:
                    st.markdown(f"### {title}")
                st.markdown(escape(content.get("body", "")))
                _cta(content.get("cta"))


def _cta(cta: Any) -> None:
    """The call-to-action button (inert here) and where it leads."""
    if isinstance(cta, dict):
        st.button(str(cta.get("label", "")), disabled=True, key=f"cta:{cta.get('url')}")
        st.caption(f"→ {escape(cta.get('url', ''))}")
