"""SmtpProvider against a real SMTP server: plain, STARTTLS and SMTPS, with and without AUTH."""

from __future__ import annotations

import hashlib
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import pytest

from activities.channels import (
    Message,
    PermanentDeliveryError,
    SmtpProvider,
    SmtpServer,
    TransientDeliveryError,
)
from activities.channels.email import SmtpSecurity
from tests.receivers import DISCONNECT, SmtpCommand, SmtpReceiver, free_port

KEY = "journey:welcome:u1:email_1:1"
SENDER = "Shop <shop@example.com>"
USER, PASSWORD = "mailer", "p@ss:w/rd%"


def email(
    key: str = KEY,
    *,
    address: str | None = "ada@example.org",
    unsubscribe_url: str | None = None,
    **content: Any,
) -> Message:
    return Message(
        idempotency_key=key,
        user_id="u1",
        channel="email",
        content={"subject": "Welcome, Ada", "body": "Hello Ada,\nthanks for joining.", **content},
        address=address,
        unsubscribe_url=unsubscribe_url,
    )


def provider_for(receiver: SmtpReceiver, **options: Any) -> SmtpProvider:
    return SmtpProvider(
        SmtpServer.from_url(receiver.url),
        SENDER,
        ssl_context=receiver.client_ssl_context(),
        **options,
    )


def expected_message_id(key: str) -> str:
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@example.com>"


def header_lines(raw: bytes) -> list[bytes]:
    return raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    with SmtpReceiver() as receiver:
        yield receiver


def test_plain_text_and_html_with_one_click_unsubscribe(smtp: SmtpReceiver) -> None:
    message = email(
        html="<p>Hello <b>Ada</b></p>", unsubscribe_url="https://shop.example/u/abc?sig=1"
    )

    receipt = provider_for(smtp).send(message)

    [mail] = smtp.messages
    assert receipt.provider == "smtp"
    assert receipt.provider_message_id == expected_message_id(KEY)
    assert (mail.sender, mail.recipients, mail.tls, mail.login) == (
        "shop@example.com",
        ("ada@example.org",),
        False,
        None,
    )
    lines = header_lines(mail.raw)
    for line in [
        b"From: Shop <shop@example.com>",
        b"To: ada@example.org",
        b"Subject: Welcome, Ada",
        b"Message-ID: " + expected_message_id(KEY).encode(),
        b"List-Unsubscribe: <https://shop.example/u/abc?sig=1>",
        b"List-Unsubscribe-Post: List-Unsubscribe=One-Click",
        b"MIME-Version: 1.0",
    ]:
        assert line in lines
    sent_at = parsedate_to_datetime(str(mail.message["Date"]))
    assert abs(sent_at - datetime.now(UTC)) < timedelta(minutes=1)
    assert mail.message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in mail.message.iter_parts()] == [
        "text/plain",
        "text/html",
    ]
    assert mail.text() == "Hello Ada,\nthanks for joining.\n"
    assert mail.text("html") == "<p>Hello <b>Ada</b></p>\n"


def test_text_only_without_unsubscribe(smtp: SmtpReceiver) -> None:
    provider_for(smtp).send(email(html="  "))

    [mail] = smtp.messages
    assert mail.message.get_content_type() == "text/plain"
    assert mail.text() == "Hello Ada,\nthanks for joining.\n"
    assert mail.text("html") is None
    assert "List-Unsubscribe" not in mail.message
    assert "List-Unsubscribe-Post" not in mail.message


def test_non_ascii_subject_and_body_are_encoded_and_line_breaks_leave_the_subject(
    smtp: SmtpReceiver,
) -> None:
    provider_for(smtp).send(email(subject="Bienvenue,\r\n  Zoë ", body="Merci — à bientôt"))

    [mail] = smtp.messages
    assert b"Subject: Bienvenue, =?utf-8?q?Zo=C3=AB?=" in header_lines(mail.raw)
    assert mail.message["Subject"] == "Bienvenue, Zoë"
    assert mail.text() == "Merci — à bientôt\n"
    assert mail.raw.isascii()  # no 8BITMIME needed


def test_message_id_is_the_same_for_a_key_and_differs_for_another(smtp: SmtpReceiver) -> None:
    provider = provider_for(smtp)

    ids = [provider.send(email(key)).provider_message_id for key in (KEY, KEY, "other:key")]

    received = [str(mail.message["Message-ID"]) for mail in smtp.messages]
    assert ids == received
    assert ids[0] == ids[1] == expected_message_id(KEY)
    assert ids[2] == expected_message_id("other:key")
    assert provider.honours_idempotency_key is False


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_tls_with_login(security: SmtpSecurity) -> None:
    with SmtpReceiver(security, username=USER, password=PASSWORD) as receiver:
        provider = provider_for(receiver)
        assert provider.server.security == security

        provider.send(email())

        [mail] = receiver.messages
        assert (mail.tls, mail.login) == (True, USER)
        assert mail.message["To"] == "ada@example.org"


def test_starttls_server_with_an_untrusted_certificate_is_transient() -> None:
    with SmtpReceiver("starttls") as receiver:
        provider = SmtpProvider(
            SmtpServer.from_url(receiver.url), SENDER, ssl_context=ssl.create_default_context()
        )

        with pytest.raises(TransientDeliveryError, match="CERTIFICATE_VERIFY_FAILED"):
            provider.send(email())

        assert receiver.messages == []


def test_wrong_password_is_transient_and_says_to_check_the_url() -> None:
    with SmtpReceiver("tls", username=USER, password=PASSWORD) as receiver:
        server = SmtpServer.from_url(receiver.url)
        wrong = SmtpServer(server.host, server.port, "tls", USER, "guess")
        provider = SmtpProvider(wrong, SENDER, ssl_context=receiver.client_ssl_context())

        with pytest.raises(TransientDeliveryError) as caught:
            provider.send(email())

        assert caught.value.reason == (
            "smtp login refused (535: 5.7.8 Authentication credentials invalid); "
            "check the user and password in JOURNEYS_SMTP_URL"
        )
        assert caught.value.maybe_sent is False
        assert receiver.messages == []


@pytest.mark.parametrize("command", ["MAIL", "RCPT", "DATA"])
@pytest.mark.parametrize(
    ("reply", "error", "reason"),
    [
        (
            "550 5.1.1 mailbox unavailable",
            PermanentDeliveryError,
            "smtp 550: 5.1.1 mailbox unavailable",
        ),
        ("451 4.3.0 try again later", TransientDeliveryError, "smtp 451: 4.3.0 try again later"),
    ],
)
def test_refusals_of_the_message(
    smtp: SmtpReceiver, command: SmtpCommand, reply: str, error: type[Exception], reason: str
) -> None:
    smtp.reply(command, reply, times=1)
    provider = provider_for(smtp)

    with pytest.raises(error) as caught:
        provider.send(email())

    assert type(caught.value) is error
    assert str(caught.value) == reason
    assert smtp.messages == []
    provider.send(email())  # the refusal was for one attempt only
    assert len(smtp.messages) == 1


def test_connection_lost_after_the_content_may_have_delivered(smtp: SmtpReceiver) -> None:
    smtp.reply("DATA", DISCONNECT)

    with pytest.raises(TransientDeliveryError, match="may have been delivered") as caught:
        provider_for(smtp).send(email())

    assert caught.value.maybe_sent is True


def test_connection_lost_before_the_content_did_not_deliver(smtp: SmtpReceiver) -> None:
    smtp.reply("RCPT", DISCONNECT)

    with pytest.raises(TransientDeliveryError, match="failed at RCPT") as caught:
        provider_for(smtp).send(email())

    assert caught.value.maybe_sent is False


def test_nothing_listening_is_transient() -> None:
    port = free_port()
    provider = SmtpProvider(SmtpServer("127.0.0.1", port, "plain"), SENDER)

    with pytest.raises(TransientDeliveryError, match=f"smtp server 127.0.0.1:{port} unreachable"):
        provider.send(email())


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        (None, "the user has no email address"),
        ("", "the user has no email address"),
        ("ada", "email address 'ada' is not an email address"),
        ("ada@example.org\r\nBcc: eve@example.org", "is not an email address"),
        ("zoë@example.org", "has a non-ASCII local part"),
    ],
)
def test_unusable_addresses_are_permanent(
    smtp: SmtpReceiver, address: str | None, reason: str
) -> None:
    with pytest.raises(PermanentDeliveryError, match=reason):
        provider_for(smtp).send(email(address=address))


def test_an_international_domain_is_sent_in_ascii(smtp: SmtpReceiver) -> None:
    provider_for(smtp).send(email(address="ada@bücher.example"))

    [mail] = smtp.messages
    assert mail.recipients == ("ada@xn--bcher-kva.example",)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mail.example.com", SmtpServer("mail.example.com", 25, "plain")),
        ("smtp://mail.example.com:2525", SmtpServer("mail.example.com", 2525, "plain")),
        ("smtp://mail.example.com?starttls=1", SmtpServer("mail.example.com", 587, "starttls")),
        (
            "smtp://mail.example.com:25?starttls=true",
            SmtpServer("mail.example.com", 25, "starttls"),
        ),
        ("smtps://mail.example.com", SmtpServer("mail.example.com", 465, "tls")),
        (
            "SMTPS://us%40er:p%3Ass%2F@[2001:db8::1]:1465/",
            SmtpServer("2001:db8::1", 1465, "tls", "us@er", "p:ss/"),
        ),
        (
            "smtp://apikey@relay.example?starttls=0",
            SmtpServer("relay.example", 25, "plain", "apikey", None),
        ),
    ],
)
def test_smtp_urls(url: str, expected: SmtpServer) -> None:
    assert SmtpServer.from_url(url) == expected


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://mail.example.com", "the scheme must be smtp or smtps"),
        ("mail.example.com:25", "the scheme must be smtp or smtps"),
        ("smtp://", "a host is required"),
        ("smtp://user:secret@mail.example.com:port", "the port must be a number"),
        ("smtp://mail.example.com:70000", "the port must be a number"),
        ("smtp://mail.example.com:0", "the port must be a number"),
        ("smtp://mail.example.com?startls=1", "unknown option 'startls'"),
        ("smtp://mail.example.com?starttls=maybe", "starttls must be 1 or 0"),
        ("smtps://mail.example.com?starttls=1", "smtps is TLS from the start"),
        ("smtp://mail.example.com/inbox", "only smtp[s]://"),
    ],
)
def test_malformed_smtp_urls(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=r"^" + problem.replace("[", r"\[")) as caught:
        SmtpServer.from_url(url)

    assert "secret" not in str(caught.value)


def test_the_password_stays_out_of_repr() -> None:
    assert "hunter2" not in repr(SmtpServer.from_url("smtp://user:hunter2@mail.example.com"))


def test_a_sender_without_an_address_is_refused() -> None:
    with pytest.raises(ValueError, match="the sender 'Shop' is not an email address"):
        SmtpProvider(SmtpServer("mail.example.com", 25, "plain"), "Shop")
