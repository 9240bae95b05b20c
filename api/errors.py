"""Every error the API answers, in one shape: `{"error": {"code", "message", "details"}}`.

Domain errors (`journeys.errors`), routing errors, template errors, FastAPI's own request
validation errors, unknown routes and unexpected exceptions all go through `install`, so no
response leaves the API in another shape. This is the only place errors become statuses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from journeys.errors import Conflict, InvalidJourney, NotFound
from journeys.model import MODEL_TAGS
from journeys.routing import NoLiveJourney, RoutingUnavailable
from journeys.templates import TemplateError
from journeys.validation import Problem, format_path

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
    503: "unavailable",
}


class ApiError(Exception):
    """An error answered as is: HTTP status, machine-readable code, message and details."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Iterable[Any] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = list(details)
        self.headers = dict(headers or {})


class ErrorDetail(BaseModel):
    """What went wrong: `code` for programs, `message` for people, `details` (e.g. problems)."""

    code: str
    message: str
    details: list[Any] = Field(default_factory=list)


class ErrorBody(BaseModel):
    """The body of every error response."""

    error: ErrorDetail


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` documenting these statuses with the error body."""
    return {
        status: {"model": ErrorBody, "description": _CODES.get(status, "error").replace("_", " ")}
        for status in statuses
    }


def problems_from_errors(errors: Iterable[Mapping[str, Any]], prefix: str = "") -> list[Problem]:
    """Pydantic errors as problems located in the journey format's path notation.

    The leading "body" of request validation errors goes; query and path parameters keep
    their source ("query.limit"). Pydantic's discriminator tags are dropped from paths.
    """
    problems = []
    for error in errors:
        location = [
            part for part in error.get("loc", ()) if part not in MODEL_TAGS and part != "[key]"
        ]
        if location[:1] == ["body"]:
            location = location[1:]
        path = format_path([*([prefix] if prefix else []), *location])
        problems.append(Problem(path=path, message=_message(error)))
    return problems


def _message(error: Mapping[str, Any]) -> str:
    kind = error.get("type")
    if kind == "missing":
        return "required field missing"
    if kind == "extra_forbidden":
        return "unknown field"
    return str(error.get("msg", "invalid")).removeprefix("Value error, ")


def problems_error(code: str, message: str, problems: Iterable[Problem]) -> ApiError:
    """A 422 listing problems as `{path, message}` details."""
    return ApiError(422, code, message, [p.model_dump() for p in problems])


def _as_api_error(request: Request, exc: Exception) -> ApiError:
    match exc:
        case ApiError():
            return exc
        case RequestValidationError():
            errors = exc.errors()
            if any(error.get("type") == "json_invalid" for error in errors):
                return ApiError(400, "invalid_json", "the request body is not valid JSON")
            problems = problems_from_errors(errors)
            return problems_error("validation_error", "the request is invalid", problems)
        case StarletteHTTPException(status_code=404):
            # Explicit not-founds are domain errors; this is the router finding no route.
            message = f"no such endpoint: {request.method} {request.url.path}"
            return ApiError(404, "not_found", message)
        case StarletteHTTPException():
            code = _CODES.get(exc.status_code, f"http_{exc.status_code}")
            return ApiError(exc.status_code, code, str(exc.detail), headers=exc.headers)
        case InvalidJourney():
            return problems_error("invalid_journey", "the journey is invalid", exc.problems)
        case NoLiveJourney():
            return ApiError(404, "no_live_journey", str(exc))
        case NotFound():
            return ApiError(404, "not_found", str(exc))
        case Conflict():
            return ApiError(409, "conflict", str(exc))
        case TemplateError():
            return ApiError(422, "render_error", f"the template does not render: {exc}")
        case RoutingUnavailable():
            message = f"Temporal is unavailable, retry later: {exc}".removesuffix(": ")
            return ApiError(503, "temporal_unavailable", message)
    # Details of unexpected errors stay in the server log, not in responses.
    return ApiError(500, "internal_error", "internal error")


async def _handle(request: Request, exc: Exception) -> JSONResponse:
    error = _as_api_error(request, exc)
    detail = ErrorDetail(code=error.code, message=error.message, details=error.details)
    body = ErrorBody(error=detail)
    return JSONResponse(body.model_dump(mode="json"), error.status, headers=error.headers)


def install(app: FastAPI) -> None:
    """Answer every error of `app` in the error shape."""
    for kind in (
        ApiError,
        RequestValidationError,
        StarletteHTTPException,
        InvalidJourney,
        NotFound,
        Conflict,
        TemplateError,
        RoutingUnavailable,
        Exception,
    ):
        app.add_exception_handler(kind, _handle)
