"""Text messages through a Twilio-shaped API: one form POST per message."""

from __future__ import annotations

import base64
import ssl
from urllib.parse import urlencode

from activities.channels.base import Message, PermanentDeliveryError, Receipt
from activities.channels.http import TIMEOUT, HttpClient, check_status, endpoint, response_json


class SmsProvider:
    """POSTs `To`, `From` (when configured) and `Body`, form-encoded, as Twilio's Messages API
    takes them. A token `sid:secret` is sent as HTTP Basic credentials (Twilio's account SID
    and auth token), any other token as a Bearer token. Twilio's error code and message go
    into the reason."""

    name = "sms"
    honours_idempotency_key = True

    def __init__(
        self,
        url: str,
        token: str | None = None,
        sender: str | None = None,
        *,
        timeout: float = TIMEOUT,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """`sender` is the `From` number. Raise `ValueError` when `url` is not http(s)."""
        self._url = endpoint(url)
        self._sender = sender
        self._authorization: dict[str, str] = {}
        if token and ":" in token:
            self._authorization["Authorization"] = "Basic " + base64.b64encode(
                token.encode()
            ).decode("ascii")
        elif token:
            self._authorization["Authorization"] = f"Bearer {token}"
        self._http = HttpClient(self.name, timeout=timeout, verify=ssl_context or True)

    def send(self, message: Message) -> Receipt:
        """Send the message's `body` to its phone number; the receipt carries Twilio's `sid`."""
        if not message.address:
            raise PermanentDeliveryError("the user has no phone number")
        fields = {"To": message.address}
        if self._sender:
            fields["From"] = self._sender
        fields["Body"] = str(message.content.get("body", ""))
        headers = {
            **self._authorization,
            "Content-Type": "application/x-www-form-urlencoded",
            "Idempotency-Key": message.idempotency_key,
        }
        request = self._http.request(
            "POST", self._url, headers=headers, content=urlencode(fields).encode("ascii")
        )
        response = self._http.send(request)
        body = response_json(response)
        check_status(self.name, response, _detail(body))
        sid = body.get("sid")
        return Receipt(self.name, sid if isinstance(sid, str) else None)

    def close(self) -> None:
        """Close the pooled connections."""
        self._http.close()


def _detail(body: dict[str, object]) -> str | None:
    """What a Twilio error body says: `{"code": 21211, "message": "..."}`."""
    message, code = body.get("message"), body.get("code")
    if not message:
        return None
    return f"{message} (code {code})" if code else str(message)
