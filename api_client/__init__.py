"""A small client of the journeys HTTP API, for the CLI (`publish`, `demo`) and the designer.

Management calls carry `Authorization: Bearer <token>` (the admin token, or a personal token
or designer session acting under its role); signing in carries only the password; ingest calls
carry the write key as HTTP Basic username with an empty password, as Segment SDKs send it.
Every failure is an `ApiError` carrying what the API said (`{"error": {"code", "message",
"details"}}`), or an `ApiUnreachable` when no answer came back at all.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, Literal
from urllib.parse import quote, urlencode

import httpx

from journeys.errors import ConfigurationError, JourneysError
from journeys.simulation import SimulationRequest, SimulationResult

DEFAULT_TIMEOUT = 10.0


class ApiError(JourneysError):
    """The API answered with an error status."""

    def __init__(
        self, status: int, code: str, message: str, details: list[Any] | None = None
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []
        super().__init__(f"{status} {code}: {message}")

    def detail_lines(self) -> list[str]:
        """Each detail as one line: `path: message` for validation problems, else its JSON."""
        lines = []
        for detail in self.details:
            if isinstance(detail, dict) and {"path", "message"} <= detail.keys():
                lines.append(f"{detail['path'] or '$'}: {detail['message']}")
            else:
                lines.append(str(detail))
        return lines


class ApiUnreachable(JourneysError):
    """No answer from the API (connection refused, timeout, name not found)."""


def _segment(value: str) -> str:
    return quote(value, safe="")


class ApiClient:
    """Typed calls to the API at `base_url`; use as a context manager to close the connections."""

    def __init__(
        self,
        base_url: str,
        *,
        admin_token: str | None = None,
        write_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._admin_token = admin_token
        self._write_key = write_key
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout)

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    # --- management (admin token) ---------------------------------------------------------

    def list_journeys(self) -> list[dict[str, Any]]:
        """`GET /v1/journeys`: id, name, status, version, updated_at of every journey."""
        body = self._admin("GET", "/v1/journeys")
        if isinstance(body, dict):  # tolerate a wrapped list
            body = body.get("journeys", body.get("items", []))
        return list(body)

    def get_journey(self, journey_id: str) -> dict[str, Any]:
        """`GET /v1/journeys/{id}`: `{draft, status, version, published}`."""
        body: dict[str, Any] = self._admin("GET", f"/v1/journeys/{_segment(journey_id)}")
        return body

    def put_journey(self, document: dict[str, Any]) -> dict[str, Any]:
        """`PUT /v1/journeys/{id}`: save the document as the journey's draft; the journey."""
        body: dict[str, Any] = self._admin(
            "PUT", f"/v1/journeys/{_segment(str(document['id']))}", document
        )
        return body

    def validate_journey(self, document: Any, *, publish: bool = False) -> list[dict[str, str]]:
        """`POST /v1/journeys/validate`: every problem of the document (`{path, message}`).

        With `publish`, also what publishing checks: that the segments and templates it refers
        to are stored, and that each template suits its message's channel.
        """
        path = "/v1/journeys/validate" + ("?publish=true" if publish else "")
        body = self._admin("POST", path, document)
        return list(body["errors"])

    def publish(self, journey_id: str) -> int:
        """`POST /v1/journeys/{id}/publish`: publish the draft; the new version number."""
        body = self._admin("POST", f"/v1/journeys/{_segment(journey_id)}/publish")
        return int(body["version"])

    def simulate(self, journey_id: str, request: SimulationRequest) -> SimulationResult:
        """`POST /v1/journeys/{id}/simulate`: run a version or the draft for one described
        user, sending nothing; the path, its times and the rendered messages."""
        body = self._admin(
            "POST",
            f"/v1/journeys/{_segment(journey_id)}/simulate",
            request.model_dump(mode="json", exclude_defaults=True),
        )
        return SimulationResult.model_validate(body)

    def set_journey_status(
        self, journey_id: str, action: Literal["pause", "resume", "archive"]
    ) -> dict[str, Any]:
        """`POST /v1/journeys/{id}/{pause|resume|archive}`: the journey's new summary."""
        body: dict[str, Any] = self._admin("POST", f"/v1/journeys/{_segment(journey_id)}/{action}")
        return body

    def versions(self, journey_id: str) -> list[dict[str, Any]]:
        """`GET /v1/journeys/{id}/versions`: `{version, published_at}` of each, oldest first."""
        return list(self._admin("GET", f"/v1/journeys/{_segment(journey_id)}/versions"))

    def version(self, journey_id: str, version: int) -> dict[str, Any]:
        """`GET /v1/journeys/{id}/versions/{n}`: one published version with its definition."""
        body: dict[str, Any] = self._admin(
            "GET", f"/v1/journeys/{_segment(journey_id)}/versions/{version}"
        )
        return body

    def stats(self, journey_id: str) -> dict[str, Any]:
        """`GET /v1/journeys/{id}/stats`: enrollment, node, message and experiment counts."""
        body: dict[str, Any] = self._admin("GET", f"/v1/journeys/{_segment(journey_id)}/stats")
        return body

    def list_segments(self) -> list[dict[str, Any]]:
        """`GET /v1/segments`: every segment `{id, name, condition, updated_at}`."""
        return list(self._admin("GET", "/v1/segments"))

    def put_segment(self, segment: dict[str, Any]) -> dict[str, Any]:
        """`PUT /v1/segments/{id}`: create or replace a segment; the stored segment."""
        body: dict[str, Any] = self._admin(
            "PUT", f"/v1/segments/{_segment(str(segment['id']))}", segment
        )
        return body

    def segment_count(self, segment_id: str) -> int:
        """`GET /v1/segments/{id}/count`: how many users are members now."""
        body = self._admin("GET", f"/v1/segments/{_segment(segment_id)}/count")
        return int(body["members"])

    def count_condition(self, condition: Any) -> int:
        """`POST /v1/segments/count`: how many users an unsaved condition holds for now."""
        body = self._admin("POST", "/v1/segments/count", {"condition": condition})
        return int(body["members"])

    def predictions(self) -> dict[str, Any]:
        """`GET /v1/predictions`: `{latest, runs}`, the conversion model's reports (newest first;
        `latest` is null before the first run)."""
        body: dict[str, Any] = self._admin("GET", "/v1/predictions")
        return body

    def list_templates(self) -> list[dict[str, Any]]:
        """`GET /v1/templates`: every stored template `{id, channel, content, updated_at}`."""
        return list(self._admin("GET", "/v1/templates"))

    def preview_message(self, request: dict[str, Any]) -> dict[str, Any]:
        """`POST /v1/messages/preview`: a message's content rendered.

        `request` is `{channel, content | template, user_id | context}`.
        """
        body: dict[str, Any] = self._admin("POST", "/v1/messages/preview", request)
        return body

    def list_broadcasts(self) -> list[dict[str, Any]]:
        """Every broadcast with its progress, newest first."""
        listed: list[dict[str, Any]] = self._admin("GET", "/v1/broadcasts")
        return listed

    def create_broadcast(self, broadcast: dict[str, Any]) -> dict[str, Any]:
        """Send a broadcast (`POST /v1/broadcasts`); the broadcast as recorded."""
        created: dict[str, Any] = self._admin("POST", "/v1/broadcasts", broadcast)
        return created

    def cancel_broadcast(self, broadcast_id: str) -> dict[str, Any]:
        """Stop a broadcast's further sends; the broadcast as it is now."""
        path = f"/v1/broadcasts/{_segment(broadcast_id)}/cancel"
        cancelled: dict[str, Any] = self._admin("POST", path)
        return cancelled

    def get_settings(self) -> dict[str, Any]:
        """`GET /v1/settings`: the workspace settings (defaults until first set)."""
        body: dict[str, Any] = self._admin("GET", "/v1/settings")
        return body

    def put_settings(self, settings: dict[str, Any]) -> dict[str, Any]:
        """`PUT /v1/settings`: replace every workspace setting; the settings as stored."""
        body: dict[str, Any] = self._admin("PUT", "/v1/settings", settings)
        return body

    def change_settings(self, field: str, value: Any) -> dict[str, Any]:
        """Set one workspace setting (None: back to its default), the others as they are; the
        settings as stored. (`PUT /v1/settings` replaces them all, so this reads them first.)"""
        current = {k: v for k, v in self.get_settings().items() if k != field}
        return self.put_settings(current if value is None else current | {field: value})

    def user(self, user_id: str) -> dict[str, Any]:
        """`GET /v1/users/{id}`: traits, journeys and deliveries (newest first)."""
        body: dict[str, Any] = self._admin("GET", f"/v1/users/{_segment(user_id)}")
        return body

    def user_events(self, user_id: str, limit: int = 50) -> list[dict[str, Any]]:
        """`GET /v1/users/{id}/events`: the user's latest events, newest first."""
        return list(self._admin("GET", f"/v1/users/{_segment(user_id)}/events?limit={limit}"))

    def user_timeline(
        self,
        user_id: str,
        *,
        limit: int = 100,
        after: str | None = None,
        before: str | None = None,
    ) -> dict[str, Any]:
        """`GET /v1/users/{id}/timeline`: a page of what happened to the user and why, oldest
        first (`after`, `before`: a cursor of an earlier page, or an ISO 8601 time)."""
        query = {"limit": limit, "after": after, "before": before}
        given = urlencode({name: value for name, value in query.items() if value is not None})
        body: dict[str, Any] = self._admin("GET", f"/v1/users/{_segment(user_id)}/timeline?{given}")
        return body

    def export_user(self, user_id: str) -> dict[str, Any]:
        """`GET /v1/users/{id}/export`: everything stored about the user, as one document."""
        body: dict[str, Any] = self._admin("GET", f"/v1/users/{_segment(user_id)}/export")
        return body

    def erase_user(self, user_id: str) -> dict[str, Any]:
        """`DELETE /v1/users/{id}`: erase the user and end their runs (reason `erased`); how
        many runs were told to end."""
        body: dict[str, Any] = self._admin("DELETE", f"/v1/users/{_segment(user_id)}")
        return body

    def add_person(self, email: str, role: str, password: str | None) -> dict[str, Any]:
        """`POST /v1/people`: someone who may sign in to the designer (without a password,
        only through OIDC); the person as listed."""
        person = {"email": email, "role": role}
        added: dict[str, Any] = self._admin(
            "POST", "/v1/people", person if password is None else person | {"password": password}
        )
        return added

    def people(self) -> list[dict[str, Any]]:
        """`GET /v1/people`: everyone who may sign in, by email (never password hashes)."""
        return list(self._admin("GET", "/v1/people"))

    def remove_person(self, email: str) -> dict[str, Any]:
        """`DELETE /v1/people/{email}`: remove a person, ending their sessions."""
        removed: dict[str, Any] = self._admin("DELETE", f"/v1/people/{_segment(email)}")
        return removed

    def vouch(self, email: str) -> dict[str, Any]:
        """`POST /v1/sessions {"email"}`: with the admin token, a session for a member whom
        an OIDC provider signed in; `{token, expires_at, email, role}`."""
        session: dict[str, Any] = self._admin("POST", "/v1/sessions", {"email": email})
        return session

    def current_session(self) -> dict[str, Any]:
        """`GET /v1/sessions/current`: the actor and role this client's token acts as."""
        current: dict[str, Any] = self._admin("GET", "/v1/sessions/current")
        return current

    def sign_out(self) -> None:
        """`DELETE /v1/sessions/current`: end the session whose token this client holds."""
        self._admin("DELETE", "/v1/sessions/current")

    # --- sign-in (the password is the credential) -----------------------------------------

    def sign_in(
        self, email: str, password: str, *, for_address: str | None = None
    ) -> dict[str, Any]:
        """`POST /v1/sessions {"email", "password"}`: a session acting as the person;
        `{token, expires_at, email, role}`. `for_address`: the address of the person's browser,
        which a caller signing others in (the designer) passes on as X-Forwarded-For."""
        headers = None if for_address is None else {"X-Forwarded-For": for_address}
        session: dict[str, Any] = self._send(
            "POST", "/v1/sessions", {"email": email, "password": password}, headers=headers
        )
        return session

    def create_token(self, name: str, role: str, expires_in: str | None = None) -> dict[str, Any]:
        """`POST /v1/tokens`: a personal token acting under `role`, lasting `expires_in` (a
        duration; None: until revoked); `{id, name, role, token, expires_at}`, the only time
        the secret `token` is shown."""
        body = {"name": name, "role": role, "expires_in": expires_in}
        created: dict[str, Any] = self._admin("POST", "/v1/tokens", body)
        return created

    def list_tokens(self) -> list[dict[str, Any]]:
        """`GET /v1/tokens`: every token not revoked, oldest first, without secrets."""
        return list(self._admin("GET", "/v1/tokens"))

    def revoke_token(self, token_id: str) -> None:
        """`DELETE /v1/tokens/{id}`: revoke the token at once."""
        self._admin("DELETE", f"/v1/tokens/{_segment(token_id)}")

    # --- ingest (write key) ---------------------------------------------------------------

    def batch(self, messages: list[dict[str, Any]]) -> None:
        """`POST /v1/batch`: send Segment messages (track, identify, ...) in one request."""
        if self._write_key is None:
            raise ConfigurationError(
                "JOURNEYS_WRITE_KEY is not set: sending events needs the write key "
                "(`journeys up` uses dev-write-key)"
            )
        self._send(
            "POST", "/v1/batch", {"batch": messages}, auth=httpx.BasicAuth(self._write_key, "")
        )

    # --- plumbing -------------------------------------------------------------------------

    def _admin(self, method: str, path: str, body: Any = None) -> Any:
        if self._admin_token is None:
            raise ConfigurationError(
                "JOURNEYS_ADMIN_TOKEN is not set: management calls need the admin token "
                "(`journeys up` uses dev-admin-token)"
            )
        headers = {"Authorization": f"Bearer {self._admin_token}"}
        return self._send(method, path, body, headers=headers)

    def _send(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        auth: httpx.Auth | None = None,
    ) -> Any:
        try:
            response = self._http.request(
                method,
                path,
                json=body,
                headers=headers,
                auth=auth if auth is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.TransportError as error:
            raise ApiUnreachable(
                f"cannot reach the API at {self.base_url} (JOURNEYS_API_URL): "
                f"{error or type(error).__name__}"
            ) from None
        if response.is_error:
            raise _error_of(response)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise ApiError(
                response.status_code, "invalid_response", "the API answered with non-JSON"
            ) from None


def _error_of(response: httpx.Response) -> ApiError:
    """The `ApiError` an error response describes, whatever its body."""
    try:
        error = response.json()["error"]
        return ApiError(
            response.status_code,
            str(error.get("code", "error")),
            str(error.get("message", response.reason_phrase)),
            error.get("details") if isinstance(error.get("details"), list) else None,
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        text = response.text.strip()[:200] or response.reason_phrase
        return ApiError(response.status_code, "http_error", text)
