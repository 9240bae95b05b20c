"""Mixpanel-compatible intake: `/mixpanel/track`, `/mixpanel/import`, `/mixpanel/engage` (and
`/mixpanel/groups`, `/mixpanel/flags`), so apps instrumented with Mixpanel's libraries send to
journeys unchanged once pointed at `{api}/mixpanel`.

Each Mixpanel record becomes a Segment call (`api.ingest`) and is stored, deduplicated,
merged and routed exactly as one: an event is a `track` (`$mp_web_page_view` a `page`), a
profile update an `identify`, `$identify`, `$create_alias` and `$merge` a profile merge.
`MIXPANEL_PROPERTIES` is the one table of Mixpanel's reserved properties and where each goes.

Requests: the records (one object or a list) as JSON or base64 JSON, in the form field or query
parameter `data`, or as a JSON body; GET or POST, with or without a trailing slash (Mixpanel's
libraries use all of these). The credential is the project token inside every record, which
must be the write key. Answers are Mixpanel's: `1`, or `{"status": 1, "error": null}` when
`verbose=1`; errors `{"status": 0, "error": "..."}` with 400, 401, 413 or 415. A request is
stored all or nothing.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.routing import APIRoute

from api.body import BATCH_LIMIT, EVENT_LIMIT, parse_json, read_body, too_large
from api.deps import StateDep
from api.errors import ApiError
from api.ingest import ANONYMOUS_PREFIX, Alias, Call, accept, parse_calls
from journeys.store import NewEvent, TraitOperation
from journeys.store.records import TraitOperationKind

MIXPANEL_PROPERTIES: dict[str, str] = {
    # The envelope: read into the Segment call's own fields.
    "token": "writeKey",
    "$token": "writeKey",
    "distinct_id": "userId",
    "$distinct_id": "userId",
    "$user_id": "userId",
    "$device_id": "anonymousId",
    "$identified_id": "userId",
    "$anon_distinct_id": "previousId",
    "$anon_id": "previousId",
    "time": "timestamp",
    "$time": "timestamp",
    "$insert_id": "messageId",
    # Reserved profile properties: traits.
    "$email": "traits.email",
    "$phone": "traits.phone",
    "$first_name": "traits.first_name",
    "$last_name": "traits.last_name",
    "$name": "traits.name",
    "$created": "traits.created_at",
    "$avatar": "traits.avatar",
    "$city": "traits.city",
    "$region": "traits.region",
    "$country_code": "traits.country_code",
    "$timezone": "traits.timezone",
    "$initial_referrer": "traits.initial_referrer",
    "$initial_referring_domain": "traits.initial_referring_domain",
    # Automatic properties about the page, device and library: Segment's context.
    "$current_url": "context.page.url",
    "current_url_path": "context.page.path",
    "current_page_title": "context.page.title",
    "current_url_search": "context.page.search",
    "$referrer": "context.page.referrer",
    "$referring_domain": "context.page.referring_domain",
    "current_domain": "context.page.domain",
    "current_url_protocol": "context.page.protocol",
    "$search_engine": "context.referrer.search_engine",
    "mp_keyword": "context.referrer.keyword",
    "$os": "context.os.name",
    "$os_version": "context.os.version",
    "$browser": "context.browser.name",
    "$browser_version": "context.browser.version",
    "$device": "context.device.type",
    "$manufacturer": "context.device.manufacturer",
    "$model": "context.device.model",
    "$screen_width": "context.screen.width",
    "$screen_height": "context.screen.height",
    "$screen_dpi": "context.screen.density",
    "$app_version_string": "context.app.version",
    "$app_build_number": "context.app.build",
    "$carrier": "context.network.carrier",
    "$wifi": "context.network.wifi",
    "$ip": "context.ip",
    "$latitude": "context.location.latitude",
    "$longitude": "context.location.longitude",
    "mp_lib": "context.library.name",
    "$lib_version": "context.library.version",
    "$had_persisted_distinct_id": "context.library.persisted_id",
    "mp_sent_by_lib_version": "context.library.sent_by_version",
    "$mp_autocapture": "context.library.autocapture",
}
"""Mixpanel's reserved properties and the Segment field each becomes (docs/api.md shows the same
table). `traits.*` are renamed in profile updates and kept under their own name in events;
`context.*` are not stored, as Segment's context is not, except that a page view keeps its
`context.page.*` fields as its properties; envelope fields are read, not stored. Any other
property, `$`-prefixed or not, is kept as it is."""

DEVICE_PREFIX = "$device:"
"""Marks a distinct id made up by a Mixpanel library for a visitor: an anonymous id."""
PAGE_VIEW = "$mp_web_page_view"
REQUEST_LIMIT = 3 * BATCH_LIMIT
"""Largest request body: form encoding inflates `data` (up to `BATCH_LIMIT` once decoded)."""
MS_SINCE = 10**11
"""A `time` at least this large is in milliseconds (as seconds it would be after year 5000)."""
SHOWN_PROBLEMS = 10
"""Problems named in a refusal; the rest are counted."""
MAX_ID = 200
"""Longest id or name, as Segment calls take them."""
OPERATIONS = ("$set", "$set_once", "$add", "$append", "$union", "$remove", "$unset")
"""Profile operations, in the order applied when a record holds several."""
_KINDS: dict[str, TraitOperationKind] = {
    "$set_once": "set_once",
    "$add": "add",
    "$append": "append",
    "$union": "union",
    "$remove": "remove",
    "$unset": "unset",
}


class MixpanelRoute(APIRoute):
    """A route that answers refusals in Mixpanel's shape rather than the API's."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The handler, with `ApiError`s answered `{"status": 0, "error": message}`."""
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except ApiError as error:
                return JSONResponse({"status": 0, "error": error.message}, error.status)

        return answer


router = APIRouter(prefix="/mixpanel", tags=["mixpanel"], route_class=MixpanelRoute)


def _bad(message: str) -> ApiError:
    return ApiError(400, "invalid_data", message)


@dataclass(frozen=True)
class Intake:
    """What one request carried: its records (objects, within the size limits, each with the
    write key as its token) and whether the answer is verbose."""

    records: list[dict[str, Any]]
    verbose: bool


async def _intake(
    request: Request, secret: str | None, token_of: Callable[[dict[str, Any]], Any]
) -> Intake:
    """The request's records; 400, 401, 413 or 415 otherwise. `token_of` finds a record's
    token; every one must be `secret`."""
    body = await read_body(request, REQUEST_LIMIT)
    fields: dict[str, str] = {}
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        data = body
    else:
        fields = _form(body)
        found = fields.get("data", request.query_params.get("data"))
        if found is None:
            raise _bad("missing data: send the records in the form field or query parameter 'data'")
        data = _decoded(found)
    if len(data) > BATCH_LIMIT:
        raise too_large(BATCH_LIMIT, "data")
    records = _records(parse_json(data))
    tokens = [token_of(record) for record in records]
    if any(token is None for token in tokens):
        raise ApiError(401, "unauthorized", "missing token: every record needs the project token")
    if not all(_is_write_key(token, secret) for token in tokens):
        raise ApiError(401, "unauthorized", "invalid token: the project token is the write key")
    verbose = fields.get("verbose", request.query_params.get("verbose")) == "1"
    return Intake(records, verbose)


def _form(body: bytes) -> dict[str, str]:
    """A url-encoded body's fields (the first of each name)."""
    try:
        pairs = parse_qsl(body.decode(), keep_blank_values=True, errors="strict", max_num_fields=50)
    except (UnicodeDecodeError, ValueError) as error:
        raise _bad(f"the body is not a valid form: {error}") from None
    fields: dict[str, str] = {}
    for name, value in pairs:
        fields.setdefault(name, value)
    return fields


def _decoded(data: str) -> bytes:
    """`data` as JSON bytes: given as JSON, or as base64 (standard or URL-safe) of it."""
    text = data.strip()
    if not text:
        raise _bad("data is empty")
    if text[:1] in ("{", "["):
        return text.encode()
    # A '+' of base64 sent unescaped in a form (as Mixpanel's Node library does) reads as ' '.
    text = text.replace(" ", "+").replace("-", "+").replace("_", "/")
    try:
        decoded = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise _bad("data is neither JSON nor base64-encoded JSON") from None
    if decoded.lstrip()[:1] not in (b"{", b"["):
        raise _bad("data is base64 but not of a JSON object or list")
    return decoded


def _records(value: Any) -> list[dict[str, Any]]:
    """The records of parsed `data`: one object or a list of them, none over `EVENT_LIMIT`."""
    records = value if isinstance(value, list) else [value]
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise _bad(f"data[{index}] is not an object: send an object or a list of objects")
        size = len(json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode())
        if size > EVENT_LIMIT:
            raise too_large(EVENT_LIMIT, f"data[{index}]")
    return records


def _is_write_key(token: Any, secret: str | None) -> bool:
    if not isinstance(token, str) or not secret:
        return False
    # Constant time, so response timing does not reveal how much of a guess was right.
    return hmac.compare_digest(token.encode(), secret.encode())


def _event_token(record: dict[str, Any]) -> Any:
    properties = record.get("properties")
    return properties.get("token") if isinstance(properties, dict) else None


def _profile_token(record: dict[str, Any]) -> Any:
    return record.get("$token")


def _answer(verbose: bool) -> Response:
    if verbose:
        return JSONResponse({"status": 1, "error": None})
    return PlainTextResponse("1")


# --- records as Segment calls ----------------------------------------------------------------


class _Problems:
    """Problems found in a request's records, refused together (400) once all are read."""

    def __init__(self) -> None:
        self.found: list[str] = []

    def add(self, index: int, field: str, message: str) -> None:
        self.found.append(f"data[{index}].{field}: {message}")

    def raise_any(self) -> None:
        if self.found:
            shown = "; ".join(self.found[:SHOWN_PROBLEMS])
            more = len(self.found) - SHOWN_PROBLEMS
            raise _bad(shown + (f"; and {more} more" if more > 0 else ""))


def _id(value: Any) -> Any:
    """An id as sent: numbers as their text, null and "" as None (other values are left for
    Segment's validation to refuse)."""
    if value == "" or value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else str(value)
    return value


def _profile_key(distinct_id: str) -> str:
    """The profile a distinct id names: `$device:X` is the anonymous `anon:X`."""
    if distinct_id.startswith(DEVICE_PREFIX):
        return ANONYMOUS_PREFIX + distinct_id.removeprefix(DEVICE_PREFIX)
    return distinct_id


def _identity(fields: dict[str, Any], distinct_field: str) -> dict[str, Any]:
    """`userId` and `anonymousId` from a record's `distinct_id` (or `$distinct_id`),
    `$user_id` and `$device_id`."""
    distinct = _id(fields.get(distinct_field))
    user, device = _id(fields.get("$user_id")), _id(fields.get("$device_id"))
    if isinstance(distinct, str) and distinct.startswith(DEVICE_PREFIX):
        device = distinct.removeprefix(DEVICE_PREFIX)
    elif distinct is not None:
        user = distinct
    return {"userId": user, "anonymousId": device}


def _timestamp(value: Any) -> Any:
    """A Mixpanel time (seconds or milliseconds since the epoch) as a datetime; text is left to
    Segment's reading (ISO 8601); raises ValueError for anything else."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be seconds or milliseconds since 1970")
    try:
        return datetime.fromtimestamp(value / 1000 if abs(value) >= MS_SINCE else value, UTC)
    except (OverflowError, OSError, ValueError):
        raise ValueError("is out of range") from None


def _kept(properties: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """An event's properties as stored (reserved ones left out, see `MIXPANEL_PROPERTIES`),
    and its page fields (`context.page.*`)."""
    kept: dict[str, Any] = {}
    page: dict[str, Any] = {}
    for name, value in properties.items():
        target = MIXPANEL_PROPERTIES.get(name)
        if target is None or target.startswith("traits."):
            kept[name] = value
        elif target.startswith("context.page."):
            page[target.removeprefix("context.page.")] = value
    return kept, page


def _trait(name: str) -> str | None:
    """The trait a profile property sets; None for context, which profiles do not keep."""
    target = MIXPANEL_PROPERTIES.get(name)
    if target is None:
        return name
    return target.removeprefix("traits.") if target.startswith("traits.") else None


def _parsed(call: dict[str, Any], kind: str, index: int, problems: _Problems) -> Call | None:
    """The Segment call as stored, or None with its problems noted."""
    try:
        [parsed] = parse_calls([call], kind, ["data", index])
    except ApiError as error:
        problems.found += [f"{p['path']}: {p['message']}" for p in error.details]
        return None
    return parsed


def _event_call(record: dict[str, Any], index: int, problems: _Problems) -> Call | None:
    """One `/track` or `/import` record as a Segment call (or a merge)."""
    event, properties = record.get("event"), record.get("properties") or {}
    if not isinstance(event, str) or not event:
        problems.add(index, "event", "required: the event name")
        return None
    if event in ("$identify", "$create_alias", "$merge"):
        return _merge(event, properties, index, problems)
    try:
        timestamp = _timestamp(properties.get("time"))
    except ValueError as error:
        problems.add(index, "properties.time", str(error))
        return None
    kept, page = _kept(properties)
    call = {
        **_identity(properties, "distinct_id"),
        "timestamp": timestamp,
        "messageId": _id(properties.get("$insert_id")),
    }
    if event == PAGE_VIEW:
        # A page view's properties are Segment's page properties (url, path, title...); its
        # name, the title, is cut to the length names may have, the whole in the properties.
        title = page.get("title")
        name = title[:MAX_ID] if isinstance(title, str) and title else None
        call.update(name=name, properties={**page, **kept})
        return _parsed(call, "page", index, problems)
    call.update(event=event, properties=kept)
    return _parsed(call, "track", index, problems)


def _merge(event: str, properties: dict[str, Any], index: int, problems: _Problems) -> Call | None:
    """`$identify` (`$anon_distinct_id` or `$anon_id` becomes `distinct_id` or
    `$identified_id`), `$create_alias` (`distinct_id` becomes `alias`) or `$merge` (the second
    of `$distinct_ids` becomes the first) as a merge of one profile into another."""
    get = properties.get
    if event == "$merge":
        ids = get("$distinct_ids")
        pair = [_id(i) for i in ids] if isinstance(ids, list) and len(ids) == 2 else [None, None]
        field, source, target = "properties.$distinct_ids", pair[1], pair[0]
    elif event == "$identify":
        field = "properties.$anon_distinct_id"
        source = _id(get("$anon_distinct_id", get("$anon_id")))
        target = _id(get("$identified_id", get("distinct_id")))
        switched = isinstance(source, str) and not source.startswith(DEVICE_PREFIX)
        if switched and get("$device_id") is not None:
            # A library that names visitors by device (mixpanel-browser) names a previous user
            # here: someone signed in as another user without reset(). Two users never merge.
            return None
    else:
        field, source, target = "properties.alias", _id(get("distinct_id")), _id(get("alias"))
    if (
        not (isinstance(source, str) and isinstance(target, str))
        or max(map(len, (source, target))) > MAX_ID
    ):
        problems.add(index, field, f"{event} needs the two distinct ids it merges")
        return None
    return Alias(source=_profile_key(source), target=_profile_key(target))


def _profile_call(record: dict[str, Any], index: int, problems: _Problems) -> Call | None:
    """One `/engage` record as a Segment `identify` whose traits are `$set`, with the other
    operations applied by the store against the traits the profile has then."""
    if "$delete" in record:
        problems.add(index, "$delete", "deleting profiles is not supported")
        return None
    present = [name for name in OPERATIONS if name in record]
    if not present:
        problems.add(index, "$set", "no profile operation: send one of " + ", ".join(OPERATIONS))
        return None
    traits: dict[str, Any] = {}
    operations: list[TraitOperation] = []
    for name in present:
        values = _operand(name, record[name], index, problems)
        if values is None:
            continue
        if name == "$set":
            traits = values
        else:
            operations.append(TraitOperation(kind=_KINDS[name], values=values))
    try:
        timestamp = _timestamp(record.get("$time"))
    except ValueError as error:
        problems.add(index, "$time", str(error))
        return None
    call = {**_identity(record, "$distinct_id"), "traits": traits, "timestamp": timestamp}
    parsed = _parsed(call, "identify", index, problems)
    if isinstance(parsed, NewEvent) and operations:
        return replace(parsed, operations=tuple(operations))
    return parsed


def _operand(name: str, value: Any, index: int, problems: _Problems) -> dict[str, Any] | None:
    """An operation's traits and operands, reserved names mapped (`$email` is `email`) and
    context dropped; None with a problem noted when it has the wrong shape."""
    if name == "$unset":
        if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
            problems.add(index, name, "must be a list of property names")
            return None
        value = dict.fromkeys(value)
    if not isinstance(value, dict):
        problems.add(index, name, "must be an object of properties")
        return None
    operands: dict[str, Any] = {}
    for key, operand in value.items():
        if name == "$add" and (isinstance(operand, bool) or not isinstance(operand, int | float)):
            problems.add(index, f"{name}.{key}", "must be a number")
        elif name == "$union" and not isinstance(operand, list):
            problems.add(index, f"{name}.{key}", "must be a list")
        elif (trait := _trait(key)) is not None:
            operands[trait] = operand
    return operands


def _calls(
    records: Sequence[dict[str, Any]],
    convert: Callable[[dict[str, Any], int, _Problems], Call | None],
) -> list[Call]:
    """Every record as a call, or a 400 naming the problems of every record."""
    problems = _Problems()
    calls = [convert(record, index, problems) for index, record in enumerate(records)]
    problems.raise_any()
    return [call for call in calls if call is not None]


# --- endpoints -------------------------------------------------------------------------------


async def track(request: Request, state: StateDep) -> Response:
    """Mixpanel `track`: events, stored as Segment `track` and `page` calls."""
    intake = await _intake(request, state.settings.write_key, _event_token)
    await accept(_calls(intake.records, _event_call), state)
    return _answer(intake.verbose)


async def import_events(request: Request, state: StateDep) -> Response:
    """Mixpanel `import`: events as `track` takes them; HTTP Basic, when sent, must carry the
    write key as the username (what Mixpanel's libraries send as the API secret)."""
    _check_basic(request, state.settings.write_key)
    return await track(request, state)


def _check_basic(request: Request, secret: str | None) -> None:
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return
    try:
        username, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise ApiError(401, "unauthorized", "invalid HTTP Basic credentials") from None
    if password or not _is_write_key(username, secret):
        raise ApiError(401, "unauthorized", "invalid API secret: send the write key, no password")


async def engage(request: Request, state: StateDep) -> Response:
    """Mixpanel `engage`: profile updates, stored as Segment `identify` calls."""
    intake = await _intake(request, state.settings.write_key, _profile_token)
    await accept(_calls(intake.records, _profile_call), state)
    return _answer(intake.verbose)


async def groups(request: Request, state: StateDep) -> Response:
    """Mixpanel `groups`: group profile updates, checked and not stored (like Segment's
    `group`), since journeys have no group profiles."""
    intake = await _intake(request, state.settings.write_key, _profile_token)
    return _answer(intake.verbose)


@router.get("/flags", summary="Mixpanel feature flags: none")
@router.get("/flags/", include_in_schema=False)
async def flags(request: Request, state: StateDep) -> Response:
    """Mixpanel's feature flags (mixpanel-browser asks when its `flags` option is on): journeys
    has none, so the library falls back to each flag's default."""
    token = request.query_params.get("token")
    if token is None:
        raise ApiError(401, "unauthorized", "missing token: send the project token as ?token=")
    if not _is_write_key(token, state.settings.write_key):
        raise ApiError(401, "unauthorized", "invalid token: the project token is the write key")
    return JSONResponse({"flags": {}})


_FORM_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": ["data"],
                    "properties": {
                        "data": {"type": "string", "description": "JSON or base64 JSON records"},
                        "verbose": {"type": "string", "enum": ["0", "1"]},
                    },
                }
            },
            "application/json": {
                "schema": {"oneOf": [{"type": "object"}, {"type": "array", "items": {}}]}
            },
        },
    }
}
_DATA_QUERY = {
    "parameters": [
        {"name": "data", "in": "query", "required": True, "schema": {"type": "string"}},
        {"name": "verbose", "in": "query", "schema": {"type": "string", "enum": ["0", "1"]}},
    ]
}


def _register(name: str, endpoint: Callable[..., Coroutine[Any, Any, Response]]) -> None:
    """POST and GET at `/mixpanel/{name}` and `/mixpanel/{name}/` (only the first documented)."""
    summary = f"Mixpanel {name}"
    path = f"/{name}"
    router.post(path, summary=summary, openapi_extra=_FORM_BODY)(endpoint)
    router.get(path, summary=summary, openapi_extra=_DATA_QUERY)(endpoint)
    router.api_route(f"{path}/", methods=["GET", "POST"], include_in_schema=False)(endpoint)


for _name, _endpoint in (
    ("track", track),
    ("import", import_events),
    ("engage", engage),
    ("groups", groups),
):
    _register(_name, _endpoint)
