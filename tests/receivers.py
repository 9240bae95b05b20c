"""Real servers on loopback that record what they receive and answer as told, for tests.

`SmtpReceiver` is an SMTP server (aiosmtpd): plain, STARTTLS or implicit TLS, with optional
AUTH; it keeps every message it accepted and can be told to refuse MAIL, RCPT or DATA::

    with SmtpReceiver("starttls", username="shop", password="secret") as smtp:
        provider = SmtpProvider(
            SmtpServer.from_url(smtp.url), "shop@example.com",
            ssl_context=smtp.client_ssl_context(),
        )
        provider.send(message)
        assert smtp.messages[0].message["Subject"] == "Hello"
        smtp.reply("RCPT", "550 5.1.1 mailbox unavailable")  # the next sends are refused

`HttpReceiver` is an HTTP server (http.server, one thread per connection): it keeps every
request byte for byte and answers with scripted replies, then its default::

    with HttpReceiver(Reply.json({"sid": "SM1"})) as http:
        http.script(Reply(429, {"Retry-After": "7"}))  # the first request only
        ...
        assert http.requests[0].header("Idempotency-Key") == "key-1"

Both listen on 127.0.0.1 on a free port and stop cleanly when the `with` block ends. Their TLS
certificates come from a throwaway CA (trustme); `client_ssl_context()` trusts it.
"""

from __future__ import annotations

import email.policy
import json
import socket
import ssl
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from socketserver import BaseServer
from types import TracebackType
from typing import Any, Final, Literal
from urllib.parse import parse_qsl, quote

import httpx
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from activities.channels.email import SmtpSecurity

HOST = "127.0.0.1"

SmtpCommand = Literal["MAIL", "RCPT", "DATA"]

DISCONNECT: Final = "<disconnect>"
"""A reply for `SmtpReceiver.reply`: close the connection instead of answering."""


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (it was free a moment ago): where a client
    finds its connection refused."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until_serving(
    url: str, process: subprocess.Popen[Any], log: Path, *, timeout: float = 30.0
) -> None:
    """Wait until a server that `process` started answers `url` with 200; fail with the
    process's `log` if it exits first, or after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, log.read_text()
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"{url} did not answer in {timeout:g} s"
        time.sleep(0.1)


def _server_context(ca: trustme.CA, *names: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(context)
    return context


def _client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@dataclass(frozen=True)
class ReceivedMail:
    """One message the SMTP server accepted."""

    sender: str
    """The envelope sender (MAIL FROM)."""
    recipients: tuple[str, ...]
    """The envelope recipients (RCPT TO)."""
    raw: bytes
    """The content exactly as received after DATA (dot-unstuffed)."""
    message: EmailMessage
    """`raw`, parsed (with LF line endings, as Python's email package expects)."""
    tls: bool
    """Whether the session was encrypted (STARTTLS or implicit TLS)."""
    login: str | None
    """The user the client logged in as, if it did."""

    def text(self, subtype: str = "plain") -> str | None:
        """The decoded text of the message's text/`subtype` body ("plain", "html"), with LF line
        endings (MIME text travels with CRLF); None when it has none."""
        part = self.message.get_body(preferencelist=(subtype,))
        if part is None or part.get_content_subtype() != subtype:
            return None
        return str(part.get_content()).replace("\r\n", "\n")


@dataclass
class _Scripted:
    reply: str
    times: int | None


class SmtpReceiver:
    """An SMTP server on 127.0.0.1 that accepts and keeps every message, unless told otherwise.

    `security` is "plain", "starttls" (the server then insists on STARTTLS before MAIL) or
    "tls" (implicit TLS, smtps). With `username` and `password` it offers AUTH PLAIN and LOGIN
    and accepts those credentials only; it does not insist on a login, and
    `ReceivedMail.login` tells whether the client logged in.
    """

    def __init__(
        self,
        security: SmtpSecurity = "plain",
        *,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.security = security
        self.username = username
        self.password = password
        # aiosmtpd's controller connects to its own port once started, so it cannot take 0.
        self.port = free_port()
        self.ca = trustme.CA()
        self._messages: list[ReceivedMail] = []
        self._scripted: dict[SmtpCommand, _Scripted] = {}
        self._lock = threading.Lock()
        server_context = _server_context(self.ca, HOST, "localhost")
        options: dict[str, Any] = {"authenticator": self._authenticate}
        if security == "starttls":
            options.update(tls_context=server_context, require_starttls=True)
        self._controller = Controller(
            _Handler(self),
            hostname=HOST,
            port=self.port,
            ssl_context=server_context if security == "tls" else None,
            # aiosmtpd does not see implicit TLS as TLS, so it would refuse AUTH there; with
            # STARTTLS the server insists on it before any AUTH anyway.
            auth_require_tls=False,
            **options,
        )

    @property
    def url(self) -> str:
        """The server as JOURNEYS_SMTP_URL names it, credentials included."""
        scheme = "smtps" if self.security == "tls" else "smtp"
        userinfo = ""
        if self.username is not None:
            userinfo = f"{quote(self.username, safe='')}:{quote(self.password or '', safe='')}@"
        query = "?starttls=1" if self.security == "starttls" else ""
        return f"{scheme}://{userinfo}{HOST}:{self.port}{query}"

    @property
    def messages(self) -> list[ReceivedMail]:
        """Every message accepted so far, oldest first."""
        with self._lock:
            return list(self._messages)

    def client_ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this server's certificate (for 127.0.0.1, localhost)."""
        return _client_context(self.ca)

    def reply(self, command: SmtpCommand, reply: str | None, *, times: int | None = None) -> None:
        """Answer `command` with `reply` (e.g. "550 5.1.1 mailbox unavailable") instead of
        accepting: the next `times` times, or until told otherwise. `DISCONNECT` closes the
        connection instead of answering; None goes back to accepting."""
        with self._lock:
            if reply is None:
                self._scripted.pop(command, None)
            else:
                self._scripted[command] = _Scripted(reply, times)

    def _take_reply(self, command: SmtpCommand) -> str | None:
        with self._lock:
            scripted = self._scripted.get(command)
            if scripted is None:
                return None
            if scripted.times is not None:
                scripted.times -= 1
                if scripted.times <= 0:
                    del self._scripted[command]
            return scripted.reply

    def _keep(self, mail: ReceivedMail) -> None:
        with self._lock:
            self._messages.append(mail)

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        accepted = (
            self.username is not None
            and isinstance(data, LoginPassword)
            and data.login == self.username.encode()
            and data.password == (self.password or "").encode()
        )
        return AuthResult(success=accepted, handled=False, auth_data=data)

    def __enter__(self) -> SmtpReceiver:
        self._controller.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._controller.stop()


class _Handler:
    """aiosmtpd's hooks: answer as scripted, else accept and keep the message."""

    def __init__(self, receiver: SmtpReceiver) -> None:
        self._receiver = receiver

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        scripted = self._receiver._take_reply("MAIL")
        if scripted is not None:
            return _answer(server, scripted)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        scripted = self._receiver._take_reply("RCPT")
        if scripted is not None:
            return _answer(server, scripted)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        scripted = self._receiver._take_reply("DATA")
        if scripted is not None:
            return _answer(server, scripted)
        raw = envelope.original_content or b""
        credentials = session.auth_data if session.authenticated else None
        login = credentials.login.decode() if isinstance(credentials, LoginPassword) else None
        assert server.transport is not None
        self._receiver._keep(
            ReceivedMail(
                sender=envelope.mail_from or "",
                recipients=tuple(envelope.rcpt_tos),
                raw=raw,
                # Python's email package works with "\n" line endings; SMTP sends "\r\n".
                message=message_from_bytes(
                    raw.replace(b"\r\n", b"\n"), policy=email.policy.default
                ),
                tls=server.transport.get_extra_info("ssl_object") is not None,
                login=login,
            )
        )
        return "250 Message accepted for delivery"


def _answer(server: SMTP, reply: str) -> str:
    if reply == DISCONNECT:
        assert server.transport is not None
        server.transport.close()
        return "421 closing"  # never arrives: the connection is gone
    return reply


@dataclass(frozen=True)
class ReceivedRequest:
    """One request the HTTP server received, exactly as sent."""

    method: str
    path: str
    """The request target: path and query."""
    headers: tuple[tuple[str, str], ...]
    """Every header, in order, names as sent; values read as ISO-8859-1, as http.server does
    (`value.encode("latin-1")` gives the bytes sent)."""
    body: bytes
    received_at: float = field(default_factory=time.monotonic, compare=False)
    """When the whole request had arrived, by this process's monotonic clock (seconds)."""

    def header(self, name: str) -> str | None:
        """The first value of header `name` (case-insensitive), if sent."""
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def header_map(self) -> dict[str, str]:
        """The headers by lower-case name (a repeated header keeps its last value)."""
        return {k.lower(): v for k, v in self.headers}

    def json(self) -> Any:
        """The body, parsed as JSON."""
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        """The body, parsed as an HTML form (application/x-www-form-urlencoded)."""
        return dict(parse_qsl(self.body.decode("ascii"), keep_blank_values=True))


@dataclass(frozen=True)
class Reply:
    """An answer for the HTTP server to give (Content-Length is added)."""

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    hang: bool = False
    """Never answer, until the server stops: the client times out waiting."""
    disconnect: bool = False
    """Close the connection without answering, after reading the whole request."""

    @classmethod
    def json(cls, value: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Reply:
        """An answer with `value` as its JSON body."""
        return cls(
            status,
            {"Content-Type": "application/json", **(headers or {})},
            json.dumps(value).encode(),
        )


Responder = Callable[[ReceivedRequest], Reply]
"""Decides the answer to a request."""


class HttpReceiver:
    """An HTTP/1.1 server on 127.0.0.1 that keeps every request and answers as told.

    Each request gets the next scripted reply (`script`), else `respond`: a fixed `Reply` or a
    function of the request. With `tls`, it serves HTTPS with a certificate for "localhost"
    only, so clients must connect by that name (`url` does). With `idempotent`, it behaves like
    a provider honouring `Idempotency-Key`: a request repeating a key is answered as the first
    was (`deliveries()` lists what such a provider acts on).
    """

    def __init__(
        self,
        respond: Reply | Responder = Reply(),
        *,
        tls: bool = False,
        idempotent: bool = False,
    ) -> None:
        self.respond = respond
        self.idempotent = idempotent
        self.ca = trustme.CA()
        self._requests: list[ReceivedRequest] = []
        self._script: deque[Reply] = deque()
        self._answered: dict[str, Reply] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        context = _server_context(self.ca, "localhost") if tls else None
        self._server = _HttpServer(self, context)
        # A short poll, as stopping waits for the serving loop to notice.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def port(self) -> int:
        """The port the server listens on."""
        port: int = self._server.server_address[1]
        return port

    @property
    def url(self) -> str:
        """The server's base URL, without a trailing slash."""
        if self._server.ssl_context is not None:
            return f"https://localhost:{self.port}"
        return f"http://{HOST}:{self.port}"

    @property
    def requests(self) -> list[ReceivedRequest]:
        """Every request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def deliveries(self) -> list[ReceivedRequest]:
        """The requests a provider deduplicating on `Idempotency-Key` acts on: the first of each
        key, and every request without one."""
        seen: set[str] = set()
        acted: list[ReceivedRequest] = []
        for request in self.requests:
            key = request.header("Idempotency-Key")
            if key is None or key not in seen:
                acted.append(request)
            if key is not None:
                seen.add(key)
        return acted

    def unique_idempotency_keys(self) -> list[str]:
        """The distinct `Idempotency-Key` values received, in the order first seen."""
        keys = (r.header("Idempotency-Key") for r in self.requests)
        return list(dict.fromkeys(k for k in keys if k is not None))

    def script(self, *replies: Reply) -> None:
        """Answer the next requests with `replies`, in order, before going back to `respond`."""
        with self._lock:
            self._script.extend(replies)

    def client_ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this server's certificate."""
        return _client_context(self.ca)

    def _receive(self, request: ReceivedRequest) -> Reply:
        key = request.header("Idempotency-Key") if self.idempotent else None
        with self._lock:
            self._requests.append(request)
            if key in self._answered:
                return self._answered[key]
            scripted = self._script.popleft() if self._script else None
        if scripted is not None:
            reply = scripted
        elif isinstance(self.respond, Reply):
            reply = self.respond
        else:
            reply = self.respond(request)
        # Like real providers, only an answer that took the message is replayed for its key:
        # after a 429 or 5xx the same key may be tried again.
        if key is not None and 200 <= reply.status < 300 and not (reply.hang or reply.disconnect):
            with self._lock:
                self._answered.setdefault(key, reply)
        return reply

    def __enter__(self) -> HttpReceiver:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stopping.set()  # releases hanging replies
        self._server.shutdown()
        self._server.close_connections()  # idle keep-alive connections hold a thread each
        self._server.server_close()  # joins the connection threads
        self._thread.join()


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = False  # so that server_close waits for every connection's thread

    def __init__(self, receiver: HttpReceiver, ssl_context: ssl.SSLContext | None) -> None:
        self.receiver = receiver
        self.ssl_context = ssl_context
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__((HOST, 0), _RequestHandler)

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        if self.ssl_context is not None:
            # The handshake happens on first read, in the connection's thread, so a slow or
            # failing client cannot hold up the accept loop.
            connection = self.ssl_context.wrap_socket(
                connection, server_side=True, do_handshake_on_connect=False
            )
        return connection, address

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet: clients hanging up or refusing the certificate are part of the tests."""


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle's algorithm the second waits for the
    # client's delayed ACK (~40 ms) on a kept-alive connection.
    disable_nagle_algorithm = True

    def __init__(self, request: Any, client_address: Any, server: BaseServer) -> None:
        assert isinstance(server, _HttpServer)
        self.receiver = server.receiver
        super().__init__(request, client_address, server)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if len(body) < length:
            # The client went away mid-request (a worker killed while sending): like a real
            # server, act on nothing and keep nothing of a request that never fully arrived.
            self.close_connection = True
            return
        reply = self.receiver._receive(
            ReceivedRequest(self.command, self.path, tuple(self.headers.items()), body)
        )
        if reply.hang:
            self.receiver._stopping.wait()
        if reply.hang or reply.disconnect:
            self.close_connection = True
            return
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _handle

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet."""
