"""Localised messages over HTTP and through real runs: a journey published with `locales`, run
on the time-skipping server and delivered by real SMTP in each user's language; the stats per
locale; the preview in the user's language; bad locales refused with located errors."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from activities.channels import build_channels, closing_channels
from journeys.model import Journey
from journeys.settings import Settings
from journeys.store import Store
from journeys.tracking import open_token
from tests.api.helpers import UNSUBSCRIBE_SECRET, ApiClient, assert_error
from tests.api.test_engagement import A_WHILE_AGO, pixel
from tests.factories import merge_traits
from tests.receivers import SmtpReceiver
from tests.workflows.helpers import start
from worker.main import build_worker

pytestmark = pytest.mark.store_backends("sqlite", "postgresql")

WELCOME: dict[str, Any] = {
    "id": "welcome",
    "name": "Welcome",
    "entry": {"event": "Signed Up"},
    "start": "hello",
    "nodes": {
        "hello": {
            "type": "message",
            "channel": "email",
            "content": {
                "subject": "Welcome, {{ user.first_name }}",
                "body": "Your account is ready: https://shop.example/account",
                "locales": {
                    "de": {"subject": "Willkommen, {{ user.first_name }}"},
                    "fr-CA": {"subject": "Bienvenue, {{ user.first_name }}", "body": "Prêt."},
                },
            },
            "next": "bye",
        },
        "bye": {"type": "message", "channel": "sms", "content": {"body": "Bye"}},
    },
}
USERS = {"greta": "de", "heidi": "de_CH", "yui": "ja"}
"""A German, a Swiss-German (as a POSIX locale) and a Japanese user."""


async def test_each_user_gets_the_content_of_their_language(
    api: ApiClient,
    store: Store,
    time_skipping: WorkflowEnvironment,
    task_queue: str,
    executor: ThreadPoolExecutor,
) -> None:
    assert (await api.admin("PUT", "/v1/journeys/welcome", WELCOME)).status_code == 200
    assert (await api.admin("POST", "/v1/journeys/welcome/publish")).status_code == 200
    stats = (await api.admin("GET", "/v1/journeys/welcome/stats")).json()["messages"]
    nothing = {"sent": 0, "opened": 0, "clicked": 0, "open_rate": None, "click_rate": None}
    assert stats["hello"]["locales"] == {"base": nothing, "de": nothing, "fr-CA": nothing}
    assert "locales" not in stats["bye"]  # no languages: no breakdown

    journey = Journey.model_validate(WELCOME)
    for user, locale in USERS.items():
        merge_traits(store, user, {"first_name": user.title(), "email": f"{user}@example.com"})
        merge_traits(store, user, {"locale": locale, "phone": "+15550100200"})
    with SmtpReceiver() as smtp:
        settings = Settings(smtp_url=smtp.url, email_from="shop@example.com")
        with closing_channels(build_channels(settings)) as channels:
            worker = build_worker(
                time_skipping.client, store, task_queue, executor, channels=channels
            )
            async with worker:
                for user in USERS:
                    handle = await start(time_skipping, task_queue, journey, user)
                    assert (await handle.result()).path == ["hello", "bye"]
    subjects = {mail.message["To"]: mail.message["Subject"] for mail in smtp.messages}
    assert subjects == {
        "greta@example.com": "Willkommen, Greta",
        "heidi@example.com": "Willkommen, Heidi",
        "yui@example.com": "Welcome, Yui",
    }
    # The German content gives only the subject: the body is the base's.
    assert {mail.text() for mail in smtp.messages} == {
        "Your account is ready: https://shop.example/account\n"
    }
    used = {
        d.user_id: (d.locale, d.content["subject"])
        for user in USERS
        for d in store.deliveries_for_user(user)
        if d.node_id == "hello"
    }
    assert used == {
        "greta": ("de", "Willkommen, Greta"),
        "heidi": ("de", "Willkommen, Heidi"),
        "yui": (None, "Welcome, Yui"),
    }
    assert {d.locale for d in store.deliveries_for_user("greta") if d.node_id == "bye"} == {None}
    shown = (await api.admin("GET", "/v1/users/heidi")).json()["deliveries"]
    assert {d["node_id"]: d["locale"] for d in shown} == {"hello": "de", "bye": None}

    [greta] = [d for d in store.deliveries_for_user("greta") if d.node_id == "hello"]
    assert greta.id is not None
    with store._write() as session:  # sent a while ago: an open at once looks like a scanner
        greta.sent_at = A_WHILE_AGO
        session.add(greta)
    await pixel(api, open_token(UNSUBSCRIBE_SECRET, greta.id))
    stats = (await api.admin("GET", "/v1/journeys/welcome/stats")).json()["messages"]
    assert stats["hello"]["sent"] == 3
    assert stats["hello"]["locales"] == {
        "base": {"sent": 1, "opened": 0, "clicked": 0, "open_rate": 0.0, "click_rate": 0.0},
        "de": {"sent": 2, "opened": 1, "clicked": 0, "open_rate": 0.5, "click_rate": 0.0},
        "fr-CA": nothing,
    }


async def test_stats_keep_the_locales_an_earlier_version_sent(api: ApiClient, store: Store) -> None:
    plain = {**WELCOME, "nodes": {**WELCOME["nodes"], "hello": {**WELCOME["nodes"]["hello"]}}}
    plain["nodes"]["hello"]["content"] = {"subject": "Hi", "body": "B"}
    await api.admin("PUT", "/v1/journeys/welcome", plain)
    await api.admin("POST", "/v1/journeys/welcome/publish")
    store.begin_delivery(
        idempotency_key="k1", journey_id="welcome", version=1, node_id="hello",
        user_id="greta", channel="email", variant=None, content={},
    )  # fmt: skip
    store.claim_delivery("k1", {"subject": "Hallo"}, locale="de")
    store.finish_delivery("k1", "sent")
    stats = (await api.admin("GET", "/v1/journeys/welcome/stats")).json()["messages"]
    assert stats["hello"]["locales"] == {
        "base": {"sent": 0, "opened": 0, "clicked": 0, "open_rate": None, "click_rate": None},
        "de": {"sent": 1, "opened": 0, "clicked": 0, "open_rate": 0.0, "click_rate": 0.0},
    }


async def test_the_preview_renders_the_users_language(api: ApiClient, store: Store) -> None:
    merge_traits(store, "heidi", {"first_name": "Heidi", "locale": "de-CH"})
    content = WELCOME["nodes"]["hello"]["content"]
    request = {"channel": "email", "content": content}
    asked: list[tuple[dict[str, Any], str]] = [
        ({"user_id": "heidi"}, "Willkommen, Heidi"),
        ({"context": {"user": {"first_name": "Ann", "locale": "fr-CA"}}}, "Bienvenue, Ann"),
        ({"context": {"user": {"first_name": "Yui", "locale": "ja"}}}, "Welcome, Yui"),
    ]
    for who, subject in asked:
        response = await api.admin("POST", "/v1/messages/preview", {**request, **who})
        assert response.status_code == 200, response.text
        rendered = response.json()
        assert rendered["subject"] == subject
        assert "locales" not in rendered


def localised(locales: Any) -> dict[str, Any]:
    """`WELCOME` with these `locales` in its email's content."""
    hello = WELCOME["nodes"]["hello"]
    content = {**hello["content"], "locales": locales}
    return {**WELCOME, "nodes": {**WELCOME["nodes"], "hello": {**hello, "content": content}}}


@pytest.mark.parametrize(
    ("locales", "path", "message"),
    [
        ({"de_CH": {"subject": "S"}}, "nodes.hello.content.locales.de_CH", "'de-CH'"),
        ({"deutsch": {"subject": "S"}}, "nodes.hello.content.locales.deutsch", "language tag"),
        ({"de": {"subjekt": "S"}}, "nodes.hello.content.locales.de.subjekt", "unknown field"),
        (
            {"de": {"body": "{% if %}"}},
            "nodes.hello.content.locales.de.body",
            "template does not parse",
        ),
    ],
)
async def test_bad_locales_are_refused_where_they_are(
    api: ApiClient, locales: Any, path: str, message: str
) -> None:
    response = await api.admin("PUT", "/v1/journeys/welcome", localised(locales))
    error = assert_error(response, 422, "invalid_journey")
    assert [d["path"] for d in error["details"]] == [path]
    assert message in error["details"][0]["message"]
    checked = (await api.admin("POST", "/v1/journeys/validate", localised(locales))).json()
    assert [e["path"] for e in checked["errors"]] == [path]


async def test_a_language_that_leaves_the_html_to_the_base_is_refused(api: ApiClient) -> None:
    journey = localised({"de": {"subject": "Hallo", "body": "Hallo"}})
    journey["nodes"]["hello"]["content"]["html"] = "<p>Your account is ready</p>"
    error = assert_error(
        await api.admin("PUT", "/v1/journeys/welcome", journey), 422, "invalid_journey"
    )
    assert [d["path"] for d in error["details"]] == ["nodes.hello.content.locales.de.html"]
    assert "translate html too" in error["details"][0]["message"]


async def test_a_template_with_a_bad_locale_is_refused(api: ApiClient) -> None:
    template = {
        "channel": "sms",
        "content": {"body": "Hi", "locales": {"de": {"body": "{{ user.x | nope }}"}}},
    }
    error = assert_error(
        await api.admin("PUT", "/v1/templates/hi", template), 422, "validation_error"
    )
    [detail] = error["details"]
    assert detail["path"] == "content.locales.de.body"
    assert "template does not parse" in detail["message"]


async def test_a_template_whose_language_leaves_the_html_to_the_base_is_refused(
    api: ApiClient,
) -> None:
    content = {"subject": "Hi", "body": "Hi", "html": "<p>Hi</p>"}
    german = {"body": "Hallo"}
    template = {"channel": "email", "content": {**content, "locales": {"de": german}}}
    error = assert_error(
        await api.admin("PUT", "/v1/templates/hi", template), 422, "validation_error"
    )
    [detail] = error["details"]
    assert detail["path"] == "content.locales.de.html"
    assert "translate html too" in detail["message"]
    assert (await api.admin("GET", "/v1/templates/hi")).status_code == 404
    german["html"] = "<p>Hallo</p>"
    assert (await api.admin("PUT", "/v1/templates/hi", template)).status_code == 200


async def test_a_stored_template_renders_in_the_users_language(api: ApiClient) -> None:
    template = {
        "channel": "sms",
        "content": {"body": "Hi {{ user.first_name }}", "locales": {"pt-BR": {"body": "Olá"}}},
    }
    assert (await api.admin("PUT", "/v1/templates/hi", template)).status_code == 200
    for locale, body in [("pt_BR", "Olá"), ("pt-PT", "Hi Rui"), (None, "Hi Rui")]:
        user = {"first_name": "Rui", **({"locale": locale} if locale else {})}
        response = await api.admin("POST", "/v1/templates/hi/preview", {"context": {"user": user}})
        assert response.json() == {"body": body}
