"""The designer's languages: locale tabs in the message form (add, edit, remove, bad tags) and
the preview in each language, against the real API on loopback."""

from __future__ import annotations

import copy
from typing import Any

from streamlit.testing.v1 import AppTest

from tests.journey_designer.conftest import LiveApi
from tests.journey_designer.documents import engagement_journey
from tests.journey_designer.helpers import (
    at_path,
    button,
    choose,
    errors,
    ok,
    open_in_editor,
    start,
    texts,
)

NEW = "nodes.reminder.content.locales<new>"
EDITOR_TABS = {"Steps", "Entry & exit", "Goal & settings", "Preview", "Test", "History", "JSON"}


def languages(app: AppTest) -> list[str]:
    """The labels of the message form's language tabs (none while it has one language)."""
    return [tab.label for tab in app.tabs if tab.label not in EDITOR_TABS]


def test_add_edit_and_remove_a_language(api: LiveApi) -> None:
    app = open_in_editor(api.store, engagement_journey())
    choose(app.selectbox(key="editor.node"), "reminder").run()
    assert languages(app) == []  # one language: no tabs

    for typed, problem in [
        ("de_CH", "write the tag with '-': 'de-CH'"),
        ("Deutsch", "not a language tag"),
        ("", "Enter a language tag"),
    ]:
        at_path(app.text_input, NEW).input(typed).run()
        button(app, "Add language").click().run()
        assert any(problem in e for e in errors(app)), errors(app)
    assert languages(app) == []

    at_path(app.text_input, NEW).input("de").run()
    button(app, "Add language").click().run()
    ok(app)
    assert languages(app) == ["Base content", "de"]
    assert not errors(app)
    subject = at_path(app.text_input, "nodes.reminder.content.locales.de.subject")
    assert subject.value == "Still there?"  # the base's words, to translate
    subject.input("Noch da?").run()
    at_path(app.text_input, NEW).input("DE").run()
    button(app, "Add language").click().run()
    assert "The message already has de." in errors(app)
    at_path(app.text_input, NEW).input("fr-CA").run()
    button(app, "Add language").click().run()
    assert languages(app) == ["Base content", "de", "fr-CA"]
    # Emptied, a field falls back to the base: a translation may change only some fields.
    at_path(app.text_area, "nodes.reminder.content.locales.fr-CA.body").input("").run()
    at_path(app.text_input, "nodes.reminder.content.locales.fr-CA.subject").input("{{ x").run()
    button(app, "Save draft").click().run()
    assert any("nodes.reminder.content.locales.fr-CA.subject" in e for e in errors(app))
    assert any("template does not parse" in e for e in errors(app))
    at_path(app.text_input, "nodes.reminder.content.locales.fr-CA.subject").input("Encore?").run()
    button(app, "Save draft").click().run()
    ok(app)
    stored = api.store.get_journey("cart-nudge")
    assert stored is not None
    assert stored.draft["nodes"]["reminder"]["content"]["locales"] == {
        "de": {"subject": "Noch da?", "body": "https://shop.example.com/cart"},
        "fr-CA": {"subject": "Encore?"},
    }

    button(app, "Remove de").click().run()
    button(app, "Remove fr-CA").click().run()
    ok(app)
    assert languages(app) == []
    button(app, "Save draft").click().run()
    stored = api.store.get_journey("cart-nudge")
    assert stored is not None
    assert "locales" not in stored.draft["nodes"]["reminder"]["content"]


def test_a_new_language_of_an_email_with_html_starts_from_its_html_too(api: LiveApi) -> None:
    document = copy.deepcopy(engagement_journey())
    document["nodes"]["reminder"]["content"]["html"] = "<p>Still there?</p>"
    app = open_in_editor(api.store, document)
    choose(app.selectbox(key="editor.node"), "reminder").run()
    at_path(app.text_input, NEW).input("de").run()
    button(app, "Add language").click().run()
    html = at_path(app.text_area, "nodes.reminder.content.locales.de.html")
    assert html.value == "<p>Still there?</p>"  # to translate with the body
    at_path(app.text_area, "nodes.reminder.content.locales.de.body").input("Noch da?").run()
    html.input("").run()  # left to the base: German users would read the English html
    button(app, "Save draft").click().run()
    assert any(
        "nodes.reminder.content.locales.de.html" in e and "translate html too" in e
        for e in errors(app)
    ), errors(app)
    at_path(app.text_area, "nodes.reminder.content.locales.de.html").input("<p>Noch da?</p>").run()
    button(app, "Save draft").click().run()
    ok(app)
    assert not errors(app)
    stored = api.store.get_journey("cart-nudge")
    assert stored is not None
    assert stored.draft["nodes"]["reminder"]["content"]["locales"]["de"] == {
        "subject": "Still there?", "body": "Noch da?", "html": "<p>Noch da?</p>"
    }  # fmt: skip


def localised_journey() -> dict[str, Any]:
    document = copy.deepcopy(engagement_journey())
    document["nodes"]["reminder"]["content"]["locales"] = {
        "de": {"subject": "Noch da, {{ user.first_name }}?"},
        "fr-CA": {"subject": "Encore là?"},
    }
    return document


def test_preview_per_language(api: LiveApi) -> None:
    api.store.save_draft("cart-nudge", localised_journey())
    app = open_in_editor(api.store, localised_journey())
    choose(app.selectbox(key="editor.preview.node"), "reminder").run()
    app.radio(key="preview:reminder:who").set_value("sample").run()
    language = app.selectbox(key="preview:reminder:locale")
    assert list(language.options) == [
        "as the user's locale picks it", "base content", "de", "fr-CA"
    ]  # fmt: skip
    for shown, subject in [
        ("de", "**Subject:** Noch da, Ada?"),
        ("fr-CA", "**Subject:** Encore là?"),
        ("base content", "**Subject:** Still there?"),
        ("as the user's locale picks it", "**Subject:** Still there?"),  # Ada has no locale
    ]:
        choose(app.selectbox(key="preview:reminder:locale"), shown).run()
        assert "**Subject:**" not in texts(app)  # the other language's preview is gone
        button(app, "Render preview").click().run()
        ok(app)
        assert subject in texts(app)

    # As picked, a real user's `locale` trait decides: de-CH gets the German content.
    api.store.update_traits("heidi", {"first_name": "Heidi", "locale": "de-CH"}, [])
    app.radio(key="preview:reminder:who").set_value("user").run()
    app.text_input(key="preview:reminder:user").input("heidi").run()
    button(app, "Render preview").click().run()
    assert "**Subject:** Noch da, Heidi?" in texts(app)


def test_analytics_show_each_language_of_a_message(api: LiveApi) -> None:
    document = localised_journey()
    api.store.save_draft(document["id"], document)
    api.store.publish(document["id"])
    for user, locale in [("greta", "de"), ("heidi", "de"), ("yui", None)]:
        api.store.begin_delivery(
            idempotency_key=user, journey_id="cart-nudge", version=1, node_id="reminder",
            user_id=user, channel="email", variant=None, content={},
        )  # fmt: skip
        api.store.claim_delivery(user, {"subject": "…"}, locale=locale)
        api.store.finish_delivery(user, "sent")
    app = ok(start("views/analytics.py"))
    assert "By language" in texts(app)
    table = app.dataframe[1].value.set_index("language")
    assert list(table.index) == ["base", "de", "fr-CA"]
    assert list(table["sent"]) == [1, 2, 0]
    assert set(table["step"]) == {"reminder"}
