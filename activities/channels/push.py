"""Push notifications through an FCM HTTP v1-shaped gateway: one request per device token."""

from __future__ import annotations

import hashlib
import ssl
from typing import Any

import httpx

from activities.channels.base import (
    DeliveryError,
    Message,
    PermanentDeliveryError,
    Receipt,
    TransientDeliveryError,
)
from activities.channels.http import (
    TIMEOUT,
    HttpClient,
    compact_json,
    endpoint,
    response_json,
    status_error,
)


class PushTokensUnregistered(PermanentDeliveryError):
    """No device took the notification, and the gateway no longer knows some of the tokens
    (the app was removed): `unregistered_tokens`, to remove from the profile."""

    def __init__(self, reason: str, unregistered_tokens: tuple[str, ...]) -> None:
        super().__init__(reason)
        self.unregistered_tokens = unregistered_tokens


def token_key(idempotency_key: str, token: str) -> str:
    """The idempotency key of the message for one device: stable across retries."""
    return f"{idempotency_key}:{hashlib.sha256(token.encode()).hexdigest()[:16]}"


class PushProvider:
    """POSTs `{"message": {"token", "notification": {"title", "body"}, "data"}}` per device.

    A 404, or an error body whose FCM error code is UNREGISTERED, marks the token unregistered:
    it is reported (`Receipt.unregistered_tokens`), not a failure, unless no device took the
    message (then `PushTokensUnregistered` carries them). A
    transient failure for any device fails the message after every device was tried; the retry
    sends to all again under the same per-device keys, so devices that took it are not sent
    twice by a gateway that honours `Idempotency-Key`.
    """

    name = "push"
    honours_idempotency_key = True

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        timeout: float = TIMEOUT,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """`url` is where messages are POSTed; `token` goes in `Authorization: Bearer`. Raise
        `ValueError` when `url` is not an http(s) URL."""
        self._url = endpoint(url)
        self._authorization = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = HttpClient(self.name, timeout=timeout, verify=ssl_context or True)

    def send(self, message: Message) -> Receipt:
        """Send to every device of the user; see the class for what counts as delivered."""
        if not message.push_tokens:
            raise PermanentDeliveryError("the user has no push tokens")
        names: list[str | None] = []
        unregistered: list[str] = []
        transient: TransientDeliveryError | None = None
        permanent: DeliveryError | None = None
        for token in message.push_tokens:
            try:
                response = self._http.send(self._request(message, token))
            except TransientDeliveryError as error:
                transient = transient or error
                continue
            body = response_json(response)
            fcm_error = body["error"] if isinstance(body.get("error"), dict) else {}
            if response.status_code == 404 or _unregistered(fcm_error):
                unregistered.append(token)
                continue
            failure = status_error(self.name, response, _detail(fcm_error))
            if failure is None:
                name = body.get("name")
                names.append(name if isinstance(name, str) else None)
            elif isinstance(failure, TransientDeliveryError):
                transient = transient or failure
            else:
                permanent = permanent or failure
        if transient is not None:
            raise TransientDeliveryError(
                transient.reason,
                retry_after=transient.retry_after,
                maybe_sent=transient.maybe_sent or bool(names),
            )
        if names:
            return Receipt(self.name, names[0], unregistered_tokens=tuple(unregistered))
        if not unregistered:
            assert permanent is not None  # every token failed, none transiently
            raise permanent
        reason = permanent.reason if permanent else "every push token is unregistered"
        raise PushTokensUnregistered(reason, tuple(unregistered))

    def _request(self, message: Message, token: str) -> httpx.Request:
        content = message.content
        payload: dict[str, Any] = {
            "token": token,
            "notification": {
                "title": str(content.get("title", "")),
                "body": str(content.get("body", "")),
            },
        }
        data = content.get("data")
        if isinstance(data, dict) and data:
            # FCM takes string values only.
            payload["data"] = {
                str(k): v if isinstance(v, str) else compact_json(v) for k, v in data.items()
            }
        headers = {
            **self._authorization,
            "Content-Type": "application/json",
            "Idempotency-Key": token_key(message.idempotency_key, token),
        }
        return self._http.request(
            "POST", self._url, headers=headers, content=compact_json({"message": payload}).encode()
        )

    def close(self) -> None:
        """Close the pooled connections."""
        self._http.close()


def _unregistered(fcm_error: dict[str, Any]) -> bool:
    details = fcm_error.get("details")
    return isinstance(details, list) and any(
        isinstance(d, dict) and d.get("errorCode") == "UNREGISTERED" for d in details
    )


def _detail(fcm_error: dict[str, Any]) -> str | None:
    words = [str(fcm_error[k]) for k in ("status", "message") if fcm_error.get(k)]
    return ": ".join(words) or None
