"""Localised content: tags, picking a locale from the `locale` trait, and validating and
trial-rendering each locale like the base content."""

from __future__ import annotations

from typing import Any

import pytest

from journeys.locales import Localised, for_user, localise, pick, tag_of, tag_problem
from journeys.validation import check_content, validate
from tests.journeys.test_validation import Edit, Expected, assert_problems, changed, message

TAGS = ["de", "de-AT", "fr-CA", "pt-BR", "zh-Hant", "es-419"]


@pytest.mark.parametrize(
    ("wanted", "picked"),
    [
        ("de", "de"),
        ("de-CH", "de"),  # the language, when the region has no content of its own
        ("de-AT", "de-AT"),
        ("de_AT", "de-AT"),  # the POSIX way of writing it
        ("de_AT.UTF-8", "de-AT"),
        ("DE-at", "de-AT"),  # tags ignore case
        ("  de ", "de"),
        ("fr-CA", "fr-CA"),
        ("fr", None),  # a language does not pick one of its regions
        ("fr-FR", None),
        ("pt-BR", "pt-BR"),
        ("pt-PT", None),
        ("zh-Hant-TW", "zh-Hant"),  # ever shorter prefixes: zh-Hant-TW, zh-Hant, zh
        ("zh-Hans-CN", None),
        ("es-419", "es-419"),
        ("es-MX", None),
        ("ja", None),
        ("", None),
        ("not a tag", None),
        (None, None),
        (42, None),
        (["de"], None),
    ],
)
def test_pick(wanted: Any, picked: str | None) -> None:
    assert pick(TAGS, wanted) == picked


def test_pick_answers_the_tag_as_written() -> None:
    assert pick(["DE", "Fr-ca"], "de-CH") == "DE"
    assert pick(["DE", "Fr-ca"], "fr_CA") == "Fr-ca"


@pytest.mark.parametrize(
    ("value", "tag"),
    [("de_CH", "de-ch"), ("ca_ES@valencia", "ca-es"), ("en-GB", "en-gb"), ("english", None)],
)
def test_tag_of_a_trait(value: str, tag: str | None) -> None:
    assert tag_of(value) == tag


@pytest.mark.parametrize(
    "tag", ["de", "de-CH", "pt-BR", "zh-Hant-TW", "es-419", "sl-rozaj", "de-CH-1901", "EN-gb"]
)
def test_good_tags(tag: str) -> None:
    assert tag_problem(tag) is None


@pytest.mark.parametrize(
    ("tag", "problem"),
    [
        ("de_CH", "write the tag with '-': 'de-CH'"),
        ("german", "not a language tag"),
        ("base", "not a language tag"),  # stats name the base content so
        ("d", "not a language tag"),
        ("de-", "not a language tag"),
        ("de CH", "not a language tag"),
        ("de-Switzerland", "not a language tag"),
        ("", "not a language tag"),
    ],
)
def test_bad_tags(tag: str, problem: str) -> None:
    assert problem in (tag_problem(tag) or "")


CONTENT: dict[str, Any] = {
    "subject": "Your cart",
    "body": "Come back",
    "html": "<a href='https://shop.example.com'>Shop</a>",
    "locales": {"de": {"subject": "Ihr Warenkorb", "body": "Kommen Sie zurück"}},
}


def test_localise_replaces_the_fields_a_locale_gives_and_keeps_the_others() -> None:
    german = localise(CONTENT, "de-CH")
    assert german == Localised(
        {
            "subject": "Ihr Warenkorb",
            "body": "Kommen Sie zurück",
            "html": "<a href='https://shop.example.com'>Shop</a>",
        },
        "de",
    )
    assert localise(CONTENT, "ja") == Localised(
        {"subject": "Your cart", "body": "Come back", "html": CONTENT["html"]}, None
    )
    assert for_user(CONTENT, {"locale": "de"}).locale == "de"
    assert for_user(CONTENT, {}).locale is None


def test_localise_tolerates_what_validation_refuses() -> None:
    assert localise({"body": "B", "locales": "de"}, "de") == Localised({"body": "B"})
    assert localise({"body": "B", "locales": {"de": "x"}}, "de") == Localised({"body": "B"})
    nested = {"body": "B", "locales": {"de": {"body": "D", "locales": {"de": {}}}}}
    assert localise(nested, "de") == Localised({"body": "D"}, "de")


def localised(channel: str, locales: Any, **base: Any) -> list[Edit]:
    """A message of `channel` with base content `base` (a minimal one when not given)."""
    minimal = {
        "email": {"subject": "S", "body": "B"},
        "push": {"title": "T", "body": "B"},
        "sms": {"body": "B"},
        "in_app": {"body": "B"},
        "webhook": {"url": "https://crm.example.com/hook"},
    }
    return message(channel, {**(base or minimal[channel]), "locales": locales})


@pytest.mark.parametrize(
    ("channel", "locales"),
    [
        ("email", {"de": {"subject": "S"}, "de-CH": {"body": "B"}, "zh-Hant-TW": {"html": "x"}}),
        ("push", {"fr-CA": {"title": "T", "data": {"url": "app://fr"}}}),
        ("sms", {"pt-BR": {"body": "Olá {{ user.first_name }}"}}),
        ("in_app", {"de": {"title": "T", "cta": {"label": "Los", "url": "/de"}}}),
        ("webhook", {"de": {"url": "https://crm.example.com/de", "body": {"lang": "de"}}}),
    ],
)
def test_localised_content_per_channel_is_valid(channel: str, locales: Any) -> None:
    assert validate(changed(*localised(channel, locales))) == []


LOC = "nodes.email.content.locales"


@pytest.mark.parametrize(
    ("edits", "expected"),
    [
        pytest.param(
            localised("email", {"de_CH": {"subject": "S"}}),
            [(f"{LOC}.de_CH", "write the tag with '-': 'de-CH'")],
            id="posix-tag",
        ),
        pytest.param(
            localised("email", {"german": {"subject": "S"}, "de": {"subject": "S"}}),
            [(f"{LOC}.german", "not a language tag")],
            id="bad-tag",
        ),
        pytest.param(
            localised("email", {"de": {"subject": "S"}, "DE": {"body": "B"}}),
            [(f"{LOC}.DE", "the same tag as 'de' (tags ignore case)")],
            id="same-tag-twice",
        ),
        pytest.param(
            localised("email", {"de": {"subject": "S", "subjcet": "T"}}),
            [(f"{LOC}.de.subjcet", "unknown field for email messages (known: subject")],
            id="unknown-field",
        ),
        pytest.param(
            localised("email", {"de": {"subject": "S", "locales": {"de-CH": {"body": "B"}}}}),
            [(f"{LOC}.de.locales", "unknown field")],
            id="nested-locales",
        ),
        pytest.param(
            localised("email", {"de": {"subject": "Hallo {{ user.name | nope }}"}}),
            [(f"{LOC}.de.subject", "template does not parse")],
            id="template-does-not-render",
        ),
        pytest.param(
            localised("webhook", {"de": {"body": {"n": "{% for x in y %}"}}}),
            [(f"{LOC}.de.body.n", "template does not parse")],
            id="template-inside-an-object",
        ),
        pytest.param(
            localised("email", {"de": {"subject": "  "}}),
            [(f"{LOC}.de.subject", "required for email messages")],
            id="blank-required-field",
        ),
        pytest.param(
            localised("push", {"de": {"data": "app://x"}}),
            [(f"{LOC}.de.data", "must be an object")],
            id="bad-shape",
        ),
        pytest.param(
            localised("in_app", {"de": {"anchor": "#pay"}}),
            [(f"{LOC}.de.anchor", "only tooltips are anchored")],
            id="anchor-without-tooltip",
        ),
        pytest.param(
            localised("in_app", {"de": {"kind": "banner"}}, body="B", kind="tooltip", anchor="#p"),
            [(f"{LOC}.de.kind", "only tooltips are anchored")],
            id="kind-drops-the-tooltip",
        ),
        pytest.param(
            localised("email", {"de": {"body": "Hallo"}}, subject="S", body="Hi", html="<p>Hi"),
            [(f"{LOC}.de.html", "translate html too: this language changes body")],
            id="body-without-html",
        ),
        pytest.param(
            localised("email", {"fr": {"html": "<p>Salut"}}, subject="S", body="Hi", html="<p>"),
            [(f"{LOC}.fr.body", "translate body too: this language changes html")],
            id="html-without-body",
        ),
        pytest.param(
            localised("sms", {"de": {}}),
            [(f"{LOC}.de", "must be an object of the content fields")],
            id="empty-locale",
        ),
        pytest.param(
            localised("sms", {"de": "Hallo"}),
            [(f"{LOC}.de", "must be an object of the content fields")],
            id="locale-not-an-object",
        ),
        pytest.param(
            localised("sms", {}),
            [(LOC, "must be an object of contents by language tag")],
            id="no-locale",
        ),
        pytest.param(
            localised("sms", ["de"]),
            [(LOC, "must be an object of contents by language tag")],
            id="locales-a-list",
        ),
    ],
)
def test_bad_locales(edits: list[Edit], expected: Expected) -> None:
    assert_problems(validate(changed(*edits)), expected)


@pytest.mark.parametrize(
    "locales",
    [
        {"de": {"subject": "Hallo"}},  # the words of neither: both the base's
        {"de": {"body": "Hallo", "html": "<p>Hallo</p>"}},
    ],
)
def test_a_language_of_an_email_with_html_translates_body_and_html_together(
    locales: Any,
) -> None:
    edits = localised("email", locales, subject="S", body="Hi", html="<p>Hi</p>")
    assert validate(changed(*edits)) == []


def test_a_template_is_checked_per_locale_too() -> None:
    content = {"body": "B", "locales": {"fr": {"body": "{{ x | bogus }}"}}}
    assert_problems(
        check_content("content", "sms", content),
        [("content.locales.fr.body", "template does not parse")],
    )
