"""Email over SMTP: one connection per message, plain, STARTTLS or implicit TLS.

Only the server's answers about the message itself (MAIL, RCPT, DATA) can make a delivery fail
for good, and only with a 5xx code. A server that cannot be reached, refuses the session, TLS
or the login is a configuration or outage problem the operator can fix while the message waits,
so those are transient.
"""

from __future__ import annotations

import email.policy
import hashlib
import smtplib
import ssl
import textwrap
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Literal
from urllib.parse import parse_qsl, unquote, urlsplit

from activities.channels.base import (
    DeliveryError,
    Message,
    PermanentDeliveryError,
    Receipt,
    TransientDeliveryError,
)

TIMEOUT = 30.0
"""Seconds to wait for the server to connect or answer each command."""

SmtpSecurity = Literal["plain", "starttls", "tls"]

_DEFAULT_PORTS: dict[SmtpSecurity, int] = {"plain": 25, "starttls": 587, "tls": 465}
_FLAGS = {"": True, "1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}
# 7bit: non-ASCII text goes quoted-printable or base64, so no server needs 8BITMIME.
_POLICY = email.policy.SMTP.clone(cte_type="7bit")
_MESSAGE_STAGES = ("MAIL", "RCPT", "DATA")


@dataclass(frozen=True)
class SmtpServer:
    """Where and how to reach the SMTP server (JOURNEYS_SMTP_URL)."""

    host: str
    port: int
    security: SmtpSecurity
    username: str | None = None
    """Log in (AUTH) as this user when set."""
    password: str | None = field(default=None, repr=False)

    @classmethod
    def from_url(cls, url: str) -> SmtpServer:
        """Read `smtp://[user[:password]@]host[:port][?starttls=1]` or `smtps://...`.

        User and password are percent-decoded. Default ports: 25, 587 with STARTTLS, 465 for
        smtps. Raise `ValueError` saying what is wrong, never repeating the password.
        """
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        if scheme not in ("smtp", "smtps"):
            raise ValueError("the scheme must be smtp or smtps")
        if not parts.hostname:
            raise ValueError("a host is required")
        try:
            port = parts.port
        except ValueError:
            raise ValueError("the port must be a number from 1 to 65535") from None
        if port == 0:
            raise ValueError("the port must be a number from 1 to 65535")
        if parts.path not in ("", "/") or parts.fragment:
            raise ValueError(
                "only smtp[s]://[user:password@]host[:port][?starttls=1] is understood"
            )
        options = dict(parse_qsl(parts.query, keep_blank_values=True))
        unknown = sorted(set(options) - {"starttls"})
        if unknown:
            raise ValueError(f"unknown option {unknown[0]!r} (the one option is starttls)")
        starttls = _FLAGS.get(options.get("starttls", "0").lower())
        if starttls is None:
            raise ValueError("starttls must be 1 or 0")
        if starttls and scheme == "smtps":
            raise ValueError("smtps is TLS from the start; starttls=1 goes with smtp://")
        security: SmtpSecurity = "tls" if scheme == "smtps" else "starttls" if starttls else "plain"
        return cls(
            host=parts.hostname,
            port=port or _DEFAULT_PORTS[security],
            security=security,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password is not None else None,
        )


def mailbox(text: str) -> str:
    """`text` as an addr-spec SMTP can carry: ASCII, the domain IDNA-encoded.

    Raise `ValueError` when it is not an address, or its local part is not ASCII (that would
    need SMTPUTF8, which this provider does not speak).
    """
    if not text.strip().rpartition("@")[0].isascii():
        raise ValueError(f"{text!r} has a non-ASCII local part, which is not supported")
    try:
        address = Address(addr_spec=text.strip())
    except (ValueError, HeaderParseError):
        raise ValueError(f"{text!r} is not an email address") from None
    if not address.username or not address.domain:
        raise ValueError(f"{text!r} is not an email address")
    try:
        domain = address.domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise ValueError(f"{text!r} has an invalid domain") from None
    return Address(username=address.username, domain=domain).addr_spec


def message_id(idempotency_key: str, domain: str) -> str:
    """The Message-ID of the email sent under `idempotency_key`: the same on every retry, so
    mail systems and recipients can tell a repeat from a new message."""
    return f"<{hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]}@{domain}>"


class SmtpProvider:
    """Sends email through one SMTP server (JOURNEYS_SMTP_URL) from one sender
    (JOURNEYS_EMAIL_FROM). SMTP has no idempotency key, so a message whose connection broke
    after its content was sent may have been delivered (`maybe_sent`)."""

    name = "smtp"
    honours_idempotency_key = False

    def __init__(
        self,
        server: SmtpServer,
        sender: str,
        *,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = TIMEOUT,
    ) -> None:
        """`sender` is the From header ("Shop <shop@example.com>"); raise `ValueError` when it
        holds no email address. `ssl_context` decides which certificates are trusted (default:
        the system's)."""
        self.server = server
        self.sender = sender
        try:
            self._envelope_sender = mailbox(parseaddr(sender)[1])
        except ValueError:
            raise ValueError(f"the sender {sender!r} is not an email address") from None
        self._domain = self._envelope_sender.rpartition("@")[2]
        self._ssl_context = ssl_context or ssl.create_default_context()
        self._timeout = timeout

    def compose(self, message: Message) -> EmailMessage:
        """The email for `message`: a text part, and an HTML alternative when there is HTML.
        Raise `PermanentDeliveryError` when the recipient is not a usable address."""
        if not message.address:
            raise PermanentDeliveryError("the user has no email address")
        try:
            recipient = mailbox(message.address)
        except ValueError as error:
            raise PermanentDeliveryError(f"email address {error}") from None
        content = message.content
        mail = EmailMessage(policy=_POLICY)
        mail["From"] = self.sender
        mail["To"] = recipient
        # A header cannot hold line breaks; a template may well render some.
        mail["Subject"] = " ".join(str(content.get("subject", "")).split())
        mail["Date"] = format_datetime(datetime.now(UTC))
        mail["Message-ID"] = message_id(message.idempotency_key, self._domain)
        if message.unsubscribe_url:
            # RFC 8058: mail clients offer a one-click unsubscribe that POSTs to this URL.
            mail["List-Unsubscribe"] = f"<{message.unsubscribe_url}>"
            mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        mail.set_content(str(content.get("body", "")))
        html = content.get("html")
        if isinstance(html, str) and html.strip():
            mail.add_alternative(html, subtype="html")
        return mail

    def send(self, message: Message) -> Receipt:
        """Send `message` over a new connection; raise a `DeliveryError` when it does not go."""
        mail = self.compose(message)
        self._transmit(str(mail["To"]), mail.as_bytes())
        return Receipt(provider=self.name, provider_message_id=str(mail["Message-ID"]))

    def _transmit(self, recipient: str, data: bytes) -> None:
        server = self.server
        stage = "connect"
        try:
            smtp = self._connect()
            try:
                stage = "EHLO"
                smtp.ehlo_or_helo_if_needed()
                if server.security == "starttls":
                    stage = "STARTTLS"
                    smtp.starttls(context=self._ssl_context)
                    smtp.ehlo_or_helo_if_needed()  # TLS resets what EHLO learnt
                if server.username is not None:
                    stage = "AUTH"
                    smtp.login(server.username, server.password or "")
                stage = "MAIL"
                _expect(smtp.mail(self._envelope_sender), 250)
                stage = "RCPT"
                _expect(smtp.rcpt(recipient), 250, 251)
                stage = "DATA"
                _expect(smtp.data(data), 250)
                with suppress(smtplib.SMTPException, OSError):
                    smtp.quit()  # the message is taken; a rude goodbye changes nothing
            finally:
                smtp.close()
        except smtplib.SMTPAuthenticationError as error:
            raise TransientDeliveryError(
                f"smtp login refused ({error.smtp_code}: {_text(error.smtp_error)}); "
                "check the user and password in JOURNEYS_SMTP_URL"
            ) from error
        except smtplib.SMTPResponseException as error:
            raise _refusal(stage, error.smtp_code, error.smtp_error) from error
        except (smtplib.SMTPException, OSError) as error:
            raise self._lost(stage, error) from error

    def _connect(self) -> smtplib.SMTP:
        server = self.server
        if server.security == "tls":
            return smtplib.SMTP_SSL(
                server.host, server.port, timeout=self._timeout, context=self._ssl_context
            )
        return smtplib.SMTP(server.host, server.port, timeout=self._timeout)

    def _lost(self, stage: str, error: Exception) -> DeliveryError:
        where = f"{self.server.host}:{self.server.port}"
        cause = _text(str(error) or type(error).__name__)
        if stage == "DATA":
            # The content may have reached the server before the connection broke, and SMTP
            # has no key to deduplicate a resend: the caller decides whether to risk one.
            return TransientDeliveryError(
                f"smtp connection to {where} broke while sending the message "
                f"(it may have been delivered): {cause}",
                maybe_sent=True,
            )
        if stage == "connect":
            return TransientDeliveryError(f"smtp server {where} unreachable: {cause}")
        return TransientDeliveryError(f"smtp server {where} failed at {stage}: {cause}")

    def close(self) -> None:
        """Nothing to release: every message has its own connection."""


def _expect(reply: tuple[int, bytes], *codes: int) -> None:
    code, text = reply
    if code not in codes:
        raise smtplib.SMTPResponseException(code, text)


def _text(reply: bytes | str) -> str:
    """A server's reply fit for a reason: one line, not too long."""
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    return textwrap.shorten(text, width=200, placeholder="…")


def _refusal(stage: str, code: int, reply: bytes | str) -> DeliveryError:
    if stage not in _MESSAGE_STAGES:
        return TransientDeliveryError(f"smtp {code} at {stage}: {_text(reply)}")
    reason = f"smtp {code}: {_text(reply)}"
    if 500 <= code < 600:
        return PermanentDeliveryError(reason)
    return TransientDeliveryError(reason)
