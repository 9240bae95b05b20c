"""The deliver activity in the user's language: a stored template's languages, tracked links
in the language's own HTML, and the locale recorded on the delivery."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from activities.journey import JourneyActivities
from journeys.store import Store
from tests.activities.test_delivery import USER, activities_for, deliver_input
from tests.factories import merge_traits
from tests.receivers import HttpReceiver, Reply, SmtpReceiver

WELCOME = {
    "subject": "Welcome",
    "body": "Hello {{ user.first_name }}",
    "locales": {
        "de": {
            "subject": "Willkommen",
            "html": "<a href='https://shop.example/de'>Zum Laden</a>",
        }
    },
}


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    """A real SMTP server on loopback."""
    with SmtpReceiver() as receiver:
        yield receiver


@pytest.fixture
def activities(store: Store, smtp: SmtpReceiver) -> Iterator[JourneyActivities]:
    """The activities, for Ada (an email address and a phone number), with an SMS API."""
    merge_traits(store, USER, {"first_name": "Ada", "email": "ada@example.com"})
    merge_traits(store, USER, {"phone": "+15550100200"})
    with HttpReceiver(Reply.json({"sid": "SM1"})) as http:
        yield activities_for(store, smtp, http)


def test_a_stored_template_is_sent_in_the_users_language_with_its_links_tracked(
    activities: JourneyActivities, store: Store, smtp: SmtpReceiver
) -> None:
    store.put_template("welcome", "email", WELCOME)
    merge_traits(store, USER, {"locale": "de-AT"})
    request = deliver_input(track=True).model_copy(update={"content": None, "template": "welcome"})
    assert activities.deliver(request).status == "sent"
    [mail] = smtp.messages
    assert (mail.message["Subject"], mail.text("plain")) == ("Willkommen", "Hello Ada\n")
    # The German HTML's link became a tracked link, like the base's would.
    html = mail.text("html") or ""
    assert "https://api.shop.example/c/" in html
    assert "https://shop.example/de" not in html
    [record] = store.deliveries_for_user(USER)
    assert record.locale == "de"
    assert "locales" not in record.content
    assert record.content["subject"] == "Willkommen"


def test_a_user_without_a_language_of_the_message_gets_the_base_content(
    activities: JourneyActivities, store: Store
) -> None:
    merge_traits(store, USER, {"locale": "ja-JP"})
    content = {"body": "Hi", "locales": {"de": {"body": "Hallo"}}}
    assert activities.deliver(deliver_input("sms", content)).status == "sent"
    [record] = store.deliveries_for_user(USER)
    assert (record.locale, record.content) == (None, {"body": "Hi"})
