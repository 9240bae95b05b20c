"""What the HTTP providers share: status classification, Retry-After, transport failures."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from activities.channels import PermanentDeliveryError, TransientDeliveryError
from activities.channels.http import HttpClient, endpoint, parse_retry_after, status_error
from tests.receivers import HttpReceiver, Reply, free_port

NOW = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("7", timedelta(seconds=7)),
        (" 120 ", timedelta(seconds=120)),
        ("0", timedelta(0)),
        ("300", timedelta(minutes=5)),
        ("301", timedelta(minutes=5)),
        ("99999999999999999999999", timedelta(minutes=5)),
        (format_datetime(NOW + timedelta(seconds=30), usegmt=True), timedelta(seconds=30)),
        ("Wed, 02 Jan 2030 03:04:35 GMT", timedelta(seconds=30)),
        (format_datetime(NOW + timedelta(hours=2), usegmt=True), timedelta(minutes=5)),
        (format_datetime(NOW - timedelta(hours=2), usegmt=True), timedelta(0)),
        (None, None),
        ("", None),
        ("soon", None),
        ("-5", None),
        ("1.5", None),
        ("٣", None),  # a digit, but not an ASCII one
        ("Wed, 32 Jan 2030 03:04:35 GMT", None),
    ],
)
def test_retry_after(value: str | None, expected: timedelta | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected


@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_2xx_is_success(status: int) -> None:
    assert status_error("sms", httpx.Response(status)) is None


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_transient_statuses(status: int) -> None:
    error = status_error("sms", httpx.Response(status, headers={"Retry-After": "7"}))

    assert isinstance(error, TransientDeliveryError)
    assert error.retry_after == timedelta(seconds=7)
    assert error.maybe_sent is False


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 410, 422])
def test_other_4xx_are_permanent(status: int) -> None:
    error = status_error("sms", httpx.Response(status))

    assert isinstance(error, PermanentDeliveryError)


def test_reasons_use_the_detail_else_the_status_phrase() -> None:
    assert str(status_error("sms", httpx.Response(404))) == "sms 404: Not Found"
    assert str(status_error("sms", httpx.Response(400), "bad number")) == "sms 400: bad number"
    assert str(status_error("sms", httpx.Response(599))) == "sms 599: no reason given"
    long = status_error("sms", httpx.Response(400), "x " * 500)
    assert long is not None
    assert len(long.reason) <= 200


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirects_are_permanent(status: int) -> None:
    error = status_error(
        "webhook", httpx.Response(status, headers={"Location": "http://10.0.0.1/"})
    )

    assert isinstance(error, PermanentDeliveryError)
    assert error.reason == f"webhook {status}: redirects are not followed (to http://10.0.0.1/)"


@pytest.mark.parametrize(
    "url", ["https://api.example.com/v1/send", "http://127.0.0.1:8080", " https://x.example "]
)
def test_endpoints(url: str) -> None:
    assert endpoint(url) == httpx.URL(url.strip())


@pytest.mark.parametrize(
    "url", ["ftp://api.example.com", "api.example.com/send", "https://", "http://[::1"]
)
def test_malformed_endpoints(url: str) -> None:
    with pytest.raises(ValueError, match="URL"):
        endpoint(url)


@pytest.fixture
def client() -> Iterator[HttpClient]:
    http = HttpClient("sms", timeout=0.3)
    yield http
    http.close()


def test_a_refused_connection_did_not_send(client: HttpClient) -> None:
    port = free_port()

    with pytest.raises(TransientDeliveryError, match=f"sms: cannot reach 127.0.0.1:{port}") as e:
        client.send(client.request("POST", f"http://127.0.0.1:{port}/", headers={}))

    assert e.value.maybe_sent is False


def test_the_next_address_is_tried_when_one_cannot_connect(client: HttpClient) -> None:
    closed = free_port()
    with HttpReceiver() as http:
        response = client.send(
            client.request("GET", f"http://127.0.0.1:{closed}/a", headers={}),
            client.request("GET", f"{http.url}/a", headers={}),
        )

        assert response.status_code == 200
        assert [r.path for r in http.requests] == ["/a"]


def test_a_connection_closed_before_the_answer_may_have_sent(client: HttpClient) -> None:
    with HttpReceiver(Reply(disconnect=True)) as http:
        with pytest.raises(TransientDeliveryError, match="it may have taken the message") as e:
            client.send(client.request("POST", http.url, headers={}, content=b"x"))

        assert e.value.maybe_sent is True
        assert len(http.requests) == 1


def test_no_answer_in_time_may_have_sent(client: HttpClient) -> None:
    with HttpReceiver(Reply(hang=True)) as http:
        with pytest.raises(TransientDeliveryError, match="no answer from") as e:
            client.send(client.request("POST", http.url, headers={}, content=b"x"))

        assert e.value.maybe_sent is True
