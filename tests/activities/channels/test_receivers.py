"""The test servers themselves (tests.receivers), as other tests rely on them."""

from __future__ import annotations

import smtplib
import threading

import httpx

from tests.receivers import HttpReceiver, ReceivedRequest, Reply, SmtpReceiver


def test_http_records_requests_exactly_and_answers_the_script_first() -> None:
    with HttpReceiver(Reply(204)) as http, httpx.Client() as client:
        http.script(Reply.json({"a": 1}, status=201, headers={"X-Id": "7"}), Reply(500))

        answers = [
            client.post(f"{http.url}/p?q=1", content=b"\x00raw", headers={"X-B": "2", "x-a": "1"}),
            client.get(f"{http.url}/p"),
            client.head(f"{http.url}/p"),
        ]

        assert [(a.status_code, a.content) for a in answers] == [
            (201, b'{"a": 1}'),
            (500, b""),
            (204, b""),
        ]
        assert answers[0].headers["X-Id"] == "7"
        first = http.requests[0]
        assert (first.method, first.path, first.body) == ("POST", "/p?q=1", b"\x00raw")
        assert [name for name, _ in first.headers][-3:] == ["X-B", "x-a", "Content-Length"]
        assert (first.header("x-b"), first.header("X-A"), first.header("X-C")) == ("2", "1", None)


def test_http_answers_with_a_function_of_the_request() -> None:
    def echo(request: ReceivedRequest) -> Reply:
        return Reply(200, body=request.path.encode())

    with HttpReceiver(echo) as http, httpx.Client() as client:
        assert client.get(f"{http.url}/hello").content == b"/hello"


def test_an_idempotent_receiver_answers_a_repeated_key_as_the_first_time() -> None:
    with HttpReceiver(Reply(200), idempotent=True) as http, httpx.Client() as client:
        http.script(Reply(201), Reply(202))

        statuses = [
            client.post(http.url, headers={"Idempotency-Key": key}).status_code
            for key in ("a", "a", "b", "a")
        ]

        assert statuses == [201, 201, 202, 201]
        assert http.unique_idempotency_keys() == ["a", "b"]
        assert [r.header("Idempotency-Key") for r in http.deliveries()] == ["a", "b"]
        assert len(http.requests) == 4


def test_a_hanging_reply_is_released_when_the_receiver_stops() -> None:
    arrived = threading.Event()
    failures: list[httpx.HTTPError] = []

    def hang(request: ReceivedRequest) -> Reply:
        arrived.set()
        return Reply(hang=True)

    def ask(url: str) -> None:
        try:
            httpx.get(url, timeout=5)
        except httpx.HTTPError as error:
            failures.append(error)

    with HttpReceiver(hang) as http:
        asking = threading.Thread(target=ask, args=(http.url,))
        asking.start()
        assert arrived.wait(timeout=2)
    asking.join(timeout=2)

    assert not asking.is_alive()
    assert [type(f) for f in failures] == [httpx.RemoteProtocolError]


def test_smtp_url_and_scripted_replies() -> None:
    with SmtpReceiver(username="a b", password="p:@/") as smtp:
        assert smtp.url == f"smtp://a%20b:p%3A%40%2F@127.0.0.1:{smtp.port}"
        smtp.reply("MAIL", "421 4.3.2 busy", times=2)

        with smtplib.SMTP("127.0.0.1", smtp.port) as client:
            client.login("a b", "p:@/")
            codes = [client.mail("x@example.com")[0] for _ in range(3)]

        assert codes == [421, 421, 250]
