"""Request bodies read by the API itself: bounded, optionally gzipped, strict JSON.

Endpoints take bodies through the `RawJson` and `JsonModel` dependencies rather than FastAPI's
body parameters, so that (1) credentials are checked before a byte of the body is read,
(2) size limits hold for chunked and compressed requests too (413, not memory exhaustion), and
(3) invalid JSON is a 400 everywhere. `api.openapi` still documents each body's schema.
"""

from __future__ import annotations

import json
import re
import zlib
from typing import Any, Generic, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from api.errors import ApiError
from journeys.validation import MAX_NESTING, format_path, too_deep

KB = 1024
EVENT_LIMIT = 32 * KB
"""Largest Segment call, and largest item of a batch."""
BATCH_LIMIT = 500 * KB
"""Largest batch request."""
DOCUMENT_LIMIT = 1024 * KB
"""Largest management request (a journey document)."""

M = TypeVar("M", bound=BaseModel)


def too_large(limit: int, what: str = "request body") -> ApiError:
    """The 413 for a body over `limit` bytes."""
    return ApiError(413, "payload_too_large", f"{what} is over {limit // KB} KB")


async def read_body(request: Request, limit: int) -> bytes:
    """The body, gunzipped when `Content-Encoding: gzip` (as Segment SDKs may send it).

    Refuses (413) a body over `limit` bytes, decompressed, as soon as that is known: from
    `Content-Length` before reading, else while streaming.
    """
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip"):
        message = f"unsupported Content-Encoding '{encoding}': send identity or gzip"
        raise ApiError(415, "unsupported_media_type", message)
    declared = request.headers.get("content-length", "")
    if encoding == "identity" and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if encoding == "gzip" else None
    chunks: list[bytes] = []
    size = 0
    async for received in request.stream():
        chunk = received
        if inflater is not None:
            try:
                # Never inflate more than the limit allows: a small gzip can expand hugely.
                chunk = inflater.decompress(received, limit + 1 - size)
            except zlib.error:
                raise ApiError(400, "invalid_body", "the body is not valid gzip") from None
            if inflater.unconsumed_tail:
                raise too_large(limit)
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    if inflater is not None and not inflater.eof:
        raise ApiError(400, "invalid_body", "the gzip body is truncated")
    return b"".join(chunks)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(raw: bytes) -> Any:
    """Strict JSON (no NaN or Infinity, which JSON columns cannot hold) nested at most
    `MAX_NESTING` levels (deeper data could be stored but never sent on to Temporal); 400
    otherwise."""
    try:
        value = json.loads(raw, parse_constant=_refuse_constant)
    except RecursionError:  # Python's parser recurses: a few KB of "[[[[" reach its limit
        raise _too_deep() from None
    except json.JSONDecodeError as error:
        where = f"line {error.lineno} column {error.colno}"
        message = f"the request body is not valid JSON: {error.msg} at {where}"
        raise ApiError(400, "invalid_json", message) from None
    except (UnicodeDecodeError, ValueError) as error:
        message = f"the request body is not valid JSON: {error}"
        raise ApiError(400, "invalid_json", message) from None
    deep = too_deep(value)
    if deep is not None:
        raise _too_deep(format_path(deep))
    # A NUL or a lone surrogate can only come in a few byte patterns (`_MAY_HOLD_UNSTORABLE`):
    # other bodies, nearly all, need no second walk.
    found = _unstorable_at(value) if _MAY_HOLD_UNSTORABLE.search(raw) else None
    if found is not None:
        # PostgreSQL text cannot hold U+0000, and no UTF-8 text a lone surrogate: such a string
        # would fail its INSERT, or its every later read (a 500 either way).
        location, what = found
        problem = {"path": format_path(location), "message": f"contains {what}"}
        message = "strings may not contain NUL characters (U+0000) or lone surrogates"
        raise ApiError(400, "invalid_json", message, [problem])
    return value


def _too_deep(path: str = "") -> ApiError:
    details = (
        [{"path": path, "message": f"nested deeper than {MAX_NESTING} levels"}] if path else []
    )
    message = f"the request body is nested deeper than {MAX_NESTING} levels"
    return ApiError(400, "invalid_json", message, details)


_MAY_HOLD_UNSTORABLE = re.compile(rb"\\u(0000|[dD][89a-fA-F])|\x00|\xed[\xa0-\xbf]")
"""Raw bytes that may decode to a NUL or a lone surrogate: an escape (valid escaped pairs match
too), a zero byte (UTF-16/32), or a surrogate written as UTF-8 bytes (not valid UTF-8, but the
parser lets it through)."""
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
"""What a decoded string may not hold: NUL, or a surrogate (the parser pairs valid ones up)."""


def _unstorable_at(value: Any) -> tuple[list[str | int], str] | None:
    """The location of the first string (value or key) holding a NUL or a lone surrogate, and
    what it holds; None when there is none."""
    stack: list[tuple[Any, list[str | int]]] = [(value, [])]
    while stack:
        item, location = stack.pop()
        if isinstance(item, str):
            if _UNSTORABLE.search(item):
                return location, _unstorable(item)
        elif isinstance(item, dict):
            for key, child in item.items():
                if _UNSTORABLE.search(key):
                    # Named as it can be shown: an answer cannot carry a lone surrogate either.
                    shown = key.encode("utf-8", "backslashreplace").decode("utf-8")
                    return [*location, shown], _unstorable(key)
                stack.append((child, [*location, key]))
        elif isinstance(item, list):
            stack.extend((child, [*location, i]) for i, child in enumerate(item))
    return None


def _unstorable(text: str) -> str:
    if "\x00" in text:
        return "a NUL character (U+0000)"
    return "a lone surrogate (U+D800 to U+DFFF), which is not a character"


class BodyReader:
    """A dependency reading the body; `schema` is what OpenAPI documents for it."""

    def __init__(self, schema: type[BaseModel], *, limit: int) -> None:
        self.schema = schema
        self.limit = limit


class RawJson(BodyReader):
    """Dependency: the body as parsed JSON, not validated (the endpoint validates it)."""

    async def __call__(self, request: Request) -> Any:
        """Read and parse the body."""
        return parse_json(await read_body(request, self.limit))


class JsonModel(BodyReader, Generic[M]):
    """Dependency: the body validated as `model`; problems are 422 like FastAPI's own."""

    def __init__(self, model: type[M], *, limit: int = DOCUMENT_LIMIT) -> None:
        super().__init__(model, limit=limit)
        self.model = model

    async def __call__(self, request: Request) -> M:
        """Read, parse and validate the body."""
        data = parse_json(await read_body(request, self.limit))
        try:
            return self.model.model_validate(data, by_alias=True, by_name=False)
        except ValidationError as error:
            errors = [{**e, "loc": ("body", *e["loc"])} for e in error.errors()]
            raise RequestValidationError(errors) from None
