"""Mixpanel-compatible intake through the app in process: the request shapes Mixpanel's
libraries send, how records become stored events and profile changes, and bad input."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from api.body import BATCH_LIMIT, EVENT_LIMIT
from api.mixpanel import MIXPANEL_PROPERTIES
from journeys.store import Store
from tests.api.conftest import RecordingRouting
from tests.api.helpers import WRITE_KEY, ApiClient, basic

pytestmark = pytest.mark.store_backends("sqlite", "postgresql")

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
DOCS = Path(__file__).parents[2] / "docs" / "api.md"
TABLE_HEADER = "| Mixpanel property | Segment field |"


def event(name: str, distinct_id: Any = "u1", **properties: Any) -> dict[str, Any]:
    """A Mixpanel event record with the write key as its token."""
    return {
        "event": name,
        "properties": {"token": WRITE_KEY, "distinct_id": distinct_id, **properties},
    }


def update(distinct_id: str = "u1", **operations: Any) -> dict[str, Any]:
    """A Mixpanel profile update (`set=...` becomes `"$set": ...`, `time=` `"$time"`)."""
    return {"$token": WRITE_KEY, "$distinct_id": distinct_id} | {
        f"${name}": value for name, value in operations.items()
    }


def b64(records: Any) -> str:
    return base64.b64encode(json.dumps(records).encode()).decode()


async def post_form(api: ApiClient, path: str, body: str, **params: str) -> httpx.Response:
    """POST a url-encoded body as written (Mixpanel's Node library leaves base64 unescaped)."""
    return await api.http.post(path, content=body.encode(), headers=FORM, params=params)


async def send(api: ApiClient, path: str, records: Any, verbose: bool = True) -> httpx.Response:
    """POST records as the Python library does: form field `data` holding plain JSON."""
    data = {"data": json.dumps(records), "verbose": "1" if verbose else "0", "ip": "0"}
    return await api.http.post(path, data=data)


def refused(response: httpx.Response, status: int, *words: str) -> str:
    """The response is a refusal in Mixpanel's shape naming `words`; its message."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"status", "error"}, body
    assert body["status"] == 0, body
    message: str = body["error"]
    for word in words:
        assert word in message, message
    return message


# --- events ----------------------------------------------------------------------------------


async def test_an_event_as_the_python_library_sends_it(
    api: ApiClient, store: Store, routing: RecordingRouting
) -> None:
    record = event(
        "Added to Cart",
        time=1_741_780_800.25,
        **{"$insert_id": "ins-1", "mp_lib": "python", "$lib_version": "5.4.1"},
        total=40,
        **{"$email": "kept@example.com", "$custom": "kept too", "$os": "Linux"},
    )
    response = await send(api, "/mixpanel/track", record)
    assert response.status_code == 200
    assert response.json() == {"status": 1, "error": None}
    [stored] = store.events_for_user("u1")
    assert (stored.message_id, stored.type, stored.name) == ("ins-1", "track", "Added to Cart")
    # User-defined and unknown `$` properties stay; the envelope and context do not.
    assert stored.properties == {
        "total": 40,
        "$email": "kept@example.com",
        "$custom": "kept too",
    }
    assert stored.timestamp == datetime(2025, 3, 12, 12, 0, 0, 250000, tzinfo=UTC)
    assert routing.wakes == 1


async def test_base64_data_in_the_query_of_a_get_as_the_node_library_sends_it(
    api: ApiClient, store: Store
) -> None:
    records = event("Signed Up", distinct_id=42, time=1_741_780_800_000, plan="pro")
    response = await api.http.get("/mixpanel/track", params={"data": b64(records), "ip": "0"})
    assert (response.status_code, response.text) == (200, "1")
    [stored] = store.events_for_user("42")  # a numeric distinct id is its text
    assert stored.timestamp == datetime(2025, 3, 12, 12, 0, tzinfo=UTC)  # milliseconds
    assert stored.properties == {"plan": "pro"}
    assert len(stored.message_id) == 36  # no $insert_id: a fresh id


async def test_unescaped_base64_in_a_form_body(api: ApiClient, store: Store) -> None:
    # The Node library's batches: `data=<base64>` with '+' and '/' left as they are.
    records = [event(">>>?", n=n) for n in range(3)]
    encoded = b64(records)
    assert "+" in encoded
    assert "/" in encoded
    response = await post_form(api, "/mixpanel/track", f"data={encoded}")
    assert (response.status_code, response.text) == (200, "1")
    assert [e.properties["n"] for e in store.events_for_user("u1", newest_first=False)] == [0, 1, 2]


async def test_the_browser_librarys_batch_with_identify_merges_the_visitor(
    api: ApiClient, store: Store
) -> None:
    device = {"$device_id": "d1"}
    batch = [
        event("Viewed Product", distinct_id="$device:d1", sku="TEE", **device),
        event("$identify", distinct_id="u1", **{"$anon_distinct_id": "$device:d1"}, **device),
        event("Added to Cart", distinct_id="u1", **{"$user_id": "u1"}, **device),
    ]
    body = "data=" + quote(b64(batch), safe="")
    response = await post_form(api, "/mixpanel/track/", body, verbose="1", ip="1", _="17")
    assert response.json() == {"status": 1, "error": None}
    events = store.events_for_user("u1", newest_first=False)
    assert [e.name for e in events] == ["Viewed Product", "Added to Cart"]
    assert store.get_user("anon:d1") is None


async def test_a_page_view_is_a_segment_page(api: ApiClient, store: Store) -> None:
    record = event(
        "$mp_web_page_view",
        distinct_id="$device:d2",
        current_page_title="Checkout",
        current_url_path="/checkout",
        current_url_search="?step=2",
        utm_source="mail",
        **{"$current_url": "https://shop.example/checkout?step=2", "$referrer": "https://a.b/"},
    )
    await send(api, "/mixpanel/track", record)
    [page] = store.events_for_user("anon:d2")
    assert (page.type, page.name) == ("page", "Checkout")
    assert page.properties == {
        "title": "Checkout",
        "path": "/checkout",
        "search": "?step=2",
        "url": "https://shop.example/checkout?step=2",
        "referrer": "https://a.b/",
        "utm_source": "mail",
    }


IDENTIFIED = event("$identify", distinct_id="x", **{"$identified_id": "u3", "$anon_id": "g"})
MERGE = {"event": "$merge", "properties": {"token": WRITE_KEY, "$distinct_ids": ["u3", "o"]}}


@pytest.mark.parametrize(
    ("record", "before", "source"),
    [
        (event("$create_alias", distinct_id="$device:d3", alias="u3"), "$device:d3", "anon:d3"),
        (event("$identify", distinct_id="u3", **{"$anon_distinct_id": "g7"}), "g7", "g7"),
        (IDENTIFIED, "g", "g"),
        (MERGE, "o", "o"),
    ],
)  # fmt: skip
async def test_identity_events_merge_profiles(
    api: ApiClient, store: Store, record: dict[str, Any], before: str, source: str
) -> None:
    target = "u3"
    await send(api, "/mixpanel/track", event("Browsed", distinct_id=before))
    assert len(store.events_for_user(source)) == 1
    await send(api, "/mixpanel/import", record)
    assert [e.name for e in store.events_for_user(target)] == ["Browsed"]
    assert store.get_user(source) is None
    assert store.events_for_user(target, name=record["event"]) == []  # a merge, not an event


async def test_a_browser_switching_users_without_reset_merges_no_one(
    api: ApiClient, store: Store
) -> None:
    device = {"$device_id": "d5"}
    await send(api, "/mixpanel/track", event("Paid", distinct_id="u1", **device))
    switch = event("$identify", distinct_id="u2", **{"$anon_distinct_id": "u1"}, **device)
    await send(api, "/mixpanel/track", switch)
    assert [e.name for e in store.events_for_user("u1")] == ["Paid"]
    assert store.get_user("u2") is None


async def test_the_insert_id_deduplicates(api: ApiClient, store: Store) -> None:
    record = event("Paid", **{"$insert_id": "pay-1"})
    await send(api, "/mixpanel/track", [record, record])
    await send(api, "/mixpanel/import", record)
    assert len(store.events_for_user("u1")) == 1


async def test_routes_answer_with_and_without_a_slash_by_get_and_post(api: ApiClient) -> None:
    for path in ("track", "import", "track/", "import/"):
        data = b64(event("Seen"))
        assert (await api.http.get(f"/mixpanel/{path}", params={"data": data})).text == "1"
        assert (await api.http.post(f"/mixpanel/{path}", data={"data": data})).text == "1"
    engage = b64(update(set={"a": 1}))
    for path in ("engage", "engage/", "groups", "groups/"):
        assert (await api.http.get(f"/mixpanel/{path}", params={"data": engage})).text == "1"


async def test_a_json_body_and_import_with_the_write_key_as_api_secret(
    api: ApiClient, store: Store
) -> None:
    records = [event("Imported", time=1_600_000_000)]
    response = await api.http.post(
        "/mixpanel/import", json=records, headers=basic(WRITE_KEY), params={"verbose": "1"}
    )
    assert response.json() == {"status": 1, "error": None}
    refused(
        await api.http.post("/mixpanel/import", json=records, headers=basic("not-the-secret")),
        401,
        "secret",
    )
    assert len(store.events_for_user("u1")) == 1


# --- profiles --------------------------------------------------------------------------------


async def test_profile_operations_change_traits_and_are_recorded(
    api: ApiClient, store: Store, routing: RecordingRouting
) -> None:
    first = update(
        set={"$email": "ada@example.com", "$first_name": "Ada", "$os": "Mac", "plan": "free"},
        time=1_741_780_800,
    )
    response = await send(api, "/mixpanel/engage", first, verbose=False)
    assert response.text == "1"
    user = store.get_user("u1")
    assert user is not None
    assert user.traits == {"email": "ada@example.com", "first_name": "Ada", "plan": "free"}
    changes = [
        update(set_once={"$email": "other@example.com", "$created": "2025-01-01"}),
        update(unset=["plan", "missing"]),
        update(add={"logins": 2}),
        update(add={"logins": 1.5}),
        update(append={"tags": "a"}),
        update(union={"tags": ["a", "b", "b"]}),
        update(remove={"tags": "a"}),
        update(add={"first_name": 1}, append={"first_name": "x"}),  # wrong types: left alone
        update(add={"big": 1e308}),
        update(add={"big": 1e308}),  # infinity, which JSON cannot hold: left alone
        update(add={"big": 10**400}),  # beyond any float: left alone
    ]
    await send(api, "/mixpanel/engage", changes)
    user = store.get_user("u1")
    assert user is not None
    assert user.traits == {
        "email": "ada@example.com",
        "first_name": "Ada",
        "created_at": "2025-01-01",
        "logins": 3.5,
        "tags": ["b"],
        "big": 1e308,
    }
    events = store.events_for_user("u1", newest_first=False)
    assert [e.type for e in events] == ["identify"] * 12
    # Each identify records what it changed, so journeys see trait changes as they happen.
    assert [e.properties for e in events] == [
        {"email": "ada@example.com", "first_name": "Ada", "plan": "free"},
        {"created_at": "2025-01-01"},
        {"plan": None},
        {"logins": 2},
        {"logins": 3.5},
        {"tags": ["a"]},
        {"tags": ["a", "b"]},
        {"tags": ["b"]},
        {},
        {"big": 1e308},
        {},
        {},
    ]
    assert events[0].timestamp == datetime(2025, 3, 12, 12, 0, tzinfo=UTC)
    assert routing.wakes == 2


async def test_a_profile_update_with_the_device_merges_the_visitor(
    api: ApiClient, store: Store
) -> None:
    await send(api, "/mixpanel/track", event("Browsed", distinct_id="$device:d9"))
    await send(api, "/mixpanel/engage", update(set={"$name": "Bo"}) | {"$device_id": "d9"})
    user = store.get_user("u1")
    assert user is not None
    assert user.traits == {"name": "Bo"}
    assert [e.name for e in store.events_for_user("u1", newest_first=False)] == ["Browsed", None]
    assert store.get_user("anon:d9") is None


async def test_group_updates_are_accepted_and_not_stored(api: ApiClient, store: Store) -> None:
    group = {"$token": WRITE_KEY, "$group_key": "company", "$group_id": "acme", "$set": {"a": 1}}
    assert (await send(api, "/mixpanel/groups", group)).json() == {"status": 1, "error": None}
    assert store.unrouted_count() == 0


async def test_flags_are_none(api: ApiClient) -> None:
    response = await api.http.get("/mixpanel/flags/", params={"token": WRITE_KEY})
    assert response.json() == {"flags": {}}
    refused(await api.http.get("/mixpanel/flags", params={"token": "x"}), 401, "token")
    refused(await api.http.get("/mixpanel/flags"), 401, "missing token")


# --- bad input: refused in Mixpanel's shape, nothing stored -----------------------------------


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ("verbose=1", 400, ["missing data"]),
        ("data=%7Bnot%20json", 400, ["not valid JSON"]),
        ("data=bm90IGpzb24=", 400, ["base64 but not", "JSON"]),
        ("data=***", 400, ["neither JSON nor base64"]),
        ("data=" + quote(json.dumps([event("A"), 3])), 400, ["data[1] is not an object"]),
        ("data=%22text%22", 400, ["neither JSON nor base64"]),
        ("data=%ff", 400, ["not a valid form"]),
        ("data=", 400, ["data is empty"]),
    ],
)
async def test_malformed_data_is_refused(
    api: ApiClient, store: Store, body: str, status: int, words: list[str]
) -> None:
    refused(await post_form(api, "/mixpanel/track", body), status, *words)
    assert store.unrouted_count() == 0


async def test_bad_records_refuse_the_whole_request_naming_each(
    api: ApiClient, store: Store
) -> None:
    records = [
        event("Fine"),
        {"properties": {"token": WRITE_KEY, "distinct_id": "u1"}},
        event("No one", distinct_id=None),
        event("Late", time=True),
        event("$identify", **{"$anon_distinct_id": ["x"]}),
        event("Huge id", distinct_id=10**400),
        event("Huge time", time=10**400),
    ]
    message = refused(
        await send(api, "/mixpanel/track", records),
        400,
        "data[1].event: required",
        "data[2].userId: userId or anonymousId is required",
        "data[3].properties.time",
        "data[4].properties.$anon_distinct_id",
        "data[5].userId",
        "data[6].properties.time: is out of range",
    )
    assert "data[0]" not in message
    assert store.unrouted_count() == 0


@pytest.mark.parametrize(
    ("record", "words"),
    [
        (update(delete=""), ["data[1].$delete: deleting profiles is not supported"]),
        ({"$token": WRITE_KEY, "$distinct_id": "u1"}, ["data[1].$set: no profile operation"]),
        (update(set=[1]), ["data[1].$set: must be an object"]),
        (update(unset="plan"), ["data[1].$unset: must be a list"]),
        (update(add={"n": "1"}), ["data[1].$add.n: must be a number"]),
        (update(union={"t": "a"}), ["data[1].$union.t: must be a list"]),
        (update(set={"a": 1}, time="yesterday"), ["data[1].timestamp"]),
    ],
)
async def test_bad_profile_updates_are_refused(
    api: ApiClient, store: Store, record: dict[str, Any], words: list[str]
) -> None:
    refused(await send(api, "/mixpanel/engage", [update(set={"ok": 1}), record]), 400, *words)
    assert store.get_user("u1") is None


@pytest.mark.parametrize(
    ("path", "records", "words"),
    [
        ("track", [event("A"), {"event": "B", "properties": {"distinct_id": "u1"}}], ["missing"]),
        ("track", [event("A"), event("B", token="other-project")], ["invalid token"]),
        ("track", [{"event": "A", "properties": "u1"}], ["missing token"]),
        ("engage", [update(set={"a": 1}), {"$distinct_id": "u1", "$set": {}}], ["missing"]),
        ("engage", [update(set={"a": 1}) | {"$token": 7}], ["invalid token"]),
        ("groups", [{"$token": "nope", "$group_key": "c", "$group_id": "a"}], ["invalid"]),
    ],
)
async def test_a_missing_or_wrong_token_is_refused(
    api: ApiClient, store: Store, path: str, records: list[Any], words: list[str]
) -> None:
    refused(await send(api, f"/mixpanel/{path}", records), 401, *words)
    assert store.get_user("u1") is None


async def test_requests_and_records_over_the_limits_are_413(api: ApiClient, store: Store) -> None:
    big = event("Big", blob="x" * EVENT_LIMIT)
    refused(await send(api, "/mixpanel/track", [event("A"), big]), 413, "data[1]", "32 KB")
    many = [
        event("A", blob="x" * (EVENT_LIMIT // 2)) for _ in range(BATCH_LIMIT // EVENT_LIMIT * 2 + 2)
    ]
    refused(await post_form(api, "/mixpanel/track", "data=" + b64(many)), 413, "data", "500 KB")
    huge = "data=" + "x" * (3 * BATCH_LIMIT + 1)
    refused(await post_form(api, "/mixpanel/track", huge), 413, "over")
    assert store.unrouted_count() == 0


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_pages_of_any_origin_may_send_with_credentials(api: ApiClient, method: str) -> None:
    # mixpanel-browser sets withCredentials: browsers then refuse an answer allowing "*".
    origin = {"Origin": "https://shop.example"}
    ask = {"Access-Control-Request-Method": method, "Access-Control-Request-Headers": "x-a"}
    preflight = await api.http.options("/mixpanel/track/", headers=origin | ask)
    assert preflight.status_code == 200, preflight.text
    data = {"data": b64(event("Seen"))}
    response = await api.http.post("/mixpanel/track/", data=data, headers=origin)
    assert response.text == "1"
    for answer in (preflight, response):
        assert answer.headers["access-control-allow-origin"] == "https://shop.example"
        assert answer.headers["access-control-allow-credentials"] == "true"
        assert "origin" in answer.headers["vary"].lower()
    segment = await api.http.options("/v1/track", headers=origin | ask)
    assert segment.headers["access-control-allow-origin"] == "*"


def test_the_docs_show_the_mapping_table() -> None:
    """docs/api.md's table of reserved properties is `MIXPANEL_PROPERTIES`, row by row."""
    text = DOCS.read_text(encoding="utf-8")
    section = text.split("## Mixpanel-compatible intake", 1)[1].split("\n## ", 1)[0]
    table = section.split(TABLE_HEADER, 1)[1].split("\n\n", 1)[0]
    rows = [line.strip("|").split("|") for line in table.splitlines()[2:]]
    assert {cells[0].strip(" `"): cells[1].strip(" `") for cells in rows} == MIXPANEL_PROPERTIES
    assert len(rows) == len(MIXPANEL_PROPERTIES)
