"""A message's languages: the base content and one tab per locale of its `locales`, where the
fields a language changes are written (those left empty are the base's), and a way to add a
language by its tag or remove one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from journey_designer import widgets
from journey_designer.document import Path, parse_json_or_text
from journey_designer.forms.common import button_fields, show_json
from journey_designer.widgets import Doc
from journeys.locales import LOCALES, TOGETHER, tag_problem
from journeys.validation import REQUIRED_CONTENT, format_path

TRANSLATED: dict[str, tuple[tuple[str, str], ...]] = {
    "email": (("subject", "Subject"), ("body", "Body (plain text)"), ("html", "HTML body")),
    "push": (("title", "Title"), ("body", "Body"), ("data", "Data (JSON object)")),
    "sms": (("body", "Text"),),
    "in_app": (("title", "Title"), ("body", "Body")),
    "webhook": (
        ("url", "URL"),
        ("headers", "Headers (JSON object)"),
        ("body", "Body (text, or a JSON object of strings)"),
    ),
}
"""The fields a language may change, per channel (an in-app button too), with their labels."""
_JSON = {"data", "headers"}
_AREAS = {"body", "html", "data", "headers"}
TAG_HELP = (
    "A language tag: de, de-CH, fr-CA, pt-BR, zh-Hant-TW. A user's `locale` trait picks the "
    "content: the exact tag, then its language (de-CH → de), else the base content."
)


def tags_of(content: Any) -> list[str]:
    """The locale tags of a content, as written."""
    found = content.get(LOCALES) if isinstance(content, dict) else None
    return list(found) if isinstance(found, dict) else []


def locale_tabs(doc: Doc, path: Path, channel: str, base_fields: Callable[[], None]) -> None:
    """The base content (drawn by `base_fields`) and, once the message has languages, a tab
    for it and one per language; then a field adding a language."""
    tags = tags_of(doc.get(path))
    if not tags:
        base_fields()
    else:
        tabs = st.tabs(["Base content", *tags])
        with tabs[0]:
            base_fields()
        for tab, tag in zip(tabs[1:], tags, strict=True):
            with tab:
                _locale_fields(doc, path, channel, tag)
    _add_locale(doc, path, channel)


def _locale_fields(doc: Doc, path: Path, channel: str, tag: str) -> None:
    base = doc.get(path) or {}
    at: Path = (*path, LOCALES, tag)
    st.caption(f"What users whose locale is {tag} get. A field left empty is the base's.")
    for name, label in TRANSLATED.get(channel, ()):
        parsed = name in _JSON or (channel == "webhook" and name == "body")
        shown = show_json(base[name]) if name in base else ""
        widgets.text(
            doc, (*at, name), label, area=name in _AREAS,
            placeholder=shown[:200] or None,
            parse=parse_json_or_text if parsed else None,
            show=show_json if parsed else str,
        )  # fmt: skip
    cta = base.get("cta")
    if channel == "in_app" and isinstance(cta, dict):
        button_fields(doc, (*at, "cta"), "Translate the button", lambda: dict(cta))
    widgets.edit_button(
        doc, f"Remove {tag}", f"remove:{format_path(at)}",
        lambda: _remove_locale(doc, path, tag), icon=":material/delete:",
    )  # fmt: skip
    doc.flag_within(at)


def _remove_locale(doc: Doc, path: Path, tag: str) -> None:
    doc.drop((*path, LOCALES, tag))
    if not doc.get((*path, LOCALES)):
        doc.drop((*path, LOCALES))


def _problem_key(doc: Doc, path: Path) -> str:
    # Not the revision's key: the problem must outlive the rebuild an added language causes.
    return f"{doc.name}:{format_path(path)}:new-locale-problem"


def _add_locale(doc: Doc, path: Path, channel: str) -> None:
    key = doc.key((*path, LOCALES), "<new>")
    name, add = st.columns([3, 1], vertical_alignment="bottom")
    with name:
        st.text_input("Add a language", key=key, placeholder="de, fr-CA, pt-BR", help=TAG_HELP)
    with add:
        st.button(
            "Add language", key=doc.key((*path, LOCALES), "#add"), icon=":material/translate:",
            on_click=_added, args=(doc, path, channel, key),
        )  # fmt: skip
    problem = st.session_state.get(_problem_key(doc, path))
    if problem:
        st.error(problem, icon=":material/warning:")


def _added(doc: Doc, path: Path, channel: str, key: str) -> None:
    """Add the language typed, starting from the base's required fields and those translated
    with them (to translate), or say why it cannot be added."""
    tag = str(st.session_state.get(key) or "").strip()
    existing = {t.lower(): t for t in tags_of(doc.get(path))}
    if not tag:
        problem: str | None = "Enter a language tag, e.g. de or fr-CA."
    elif tag.lower() in existing:
        problem = f"The message already has {existing[tag.lower()]}."
    else:
        problem = tag_problem(tag)
    st.session_state[_problem_key(doc, path)] = problem
    if problem is not None:
        return
    base = doc.get(path) or {}
    # An email's html says what its body says: seeded too, so neither stays the base's.
    together = (name for pair in TOGETHER.get(channel, ()) for name in pair)
    names = dict.fromkeys([*REQUIRED_CONTENT[channel], *together])
    starter = {n: base[n] for n in names if isinstance(base.get(n), str)}
    doc.set((*path, LOCALES), {**(doc.get((*path, LOCALES)) or {}), tag: starter})
    doc.bump()
