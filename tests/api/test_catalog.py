"""Segments, templates and workspace settings."""

from __future__ import annotations

import pytest

from journeys.store import Store
from tests.api.helpers import ApiClient, assert_error, paths_of
from tests.factories import merge_traits

VIPS = {
    "id": "vips",
    "name": "VIPs",
    "condition": {
        "all": [
            {"field": "user.plan", "op": "eq", "value": "pro"},
            {"not": {"field": "user.churned", "op": "exists"}},
        ]
    },
}


async def test_segment_crud(api: ApiClient, store: Store) -> None:
    response = await api.admin("PUT", "/v1/segments/vips", VIPS)
    assert response.status_code == 200
    body = response.json()
    assert {key: body[key] for key in ("id", "name", "condition")} == VIPS
    stored = store.get_segment("vips")
    assert stored is not None
    assert stored.condition == VIPS["condition"]  # stored as written
    assert (await api.admin("GET", "/v1/segments/vips")).json() == body
    without_id = {"name": "VIPs", "condition": VIPS["condition"]}
    assert (await api.admin("PUT", "/v1/segments/vips-2", without_id)).status_code == 200
    listed = (await api.admin("GET", "/v1/segments")).json()
    assert [segment["id"] for segment in listed] == ["vips", "vips-2"]
    response = await api.admin("DELETE", "/v1/segments/vips")
    assert response.status_code == 204
    assert_error(await api.admin("GET", "/v1/segments/vips"), 404, "not_found")
    assert_error(await api.admin("DELETE", "/v1/segments/vips"), 404, "not_found")
    assert_error(await api.admin("GET", "/v1/segments/vips/count"), 404, "not_found")


async def test_segment_condition_problems_are_located(api: ApiClient, store: Store) -> None:
    body = {
        "name": "Bad",
        "condition": {
            "any": [
                {"field": "user.plan", "op": "equals", "value": "pro"},
                {"field": "plan", "op": "eq", "value": 1},
                {"event_count": {"event": "Viewed", "within": "forever"}, "op": "gt", "value": 1},
            ]
        },
    }
    error = assert_error(await api.admin("PUT", "/v1/segments/bad", body), 422, "validation_error")
    assert paths_of(error) == [
        "condition.any[0].op",
        "condition.any[1].field",
        "condition.any[2].event_count.within",
    ]
    assert "bad field 'plan'" in error["details"][1]["message"]
    error = assert_error(
        await api.admin("PUT", "/v1/segments/bad", {"name": "x", "condition": {"nope": 1}}),
        422,
        "validation_error",
    )
    assert paths_of(error) == ["condition"]
    error = assert_error(await api.admin("PUT", "/v1/segments/bad", {}), 422, "validation_error")
    assert paths_of(error) == ["name", "condition"]
    assert store.list_segments() == []


async def test_segment_ids(api: ApiClient) -> None:
    without_id = {"name": "VIPs", "condition": VIPS["condition"]}
    assert_error(await api.admin("PUT", "/v1/segments/other", VIPS), 400, "id_mismatch")
    error = assert_error(
        await api.admin("PUT", "/v1/segments/Not_A_Slug", without_id),
        422,
        "validation_error",
    )
    assert paths_of(error) == ["path.segment_id"]


async def test_an_unsaved_condition_is_counted(api: ApiClient, store: Store) -> None:
    merge_traits(store, "u1", {"plan": "pro"})
    merge_traits(store, "u2", {"plan": "free"})
    await api.admin("PUT", "/v1/segments/vips", VIPS)
    body = {
        "condition": {"any": [{"segment": "vips"}, {"field": "user.id", "op": "eq", "value": "u2"}]}
    }
    response = await api.admin("POST", "/v1/segments/count", body)
    assert response.json() == {"members": 2}
    bad = {"condition": {"field": "user.plan", "op": "is", "value": 1}}
    assert_error(await api.admin("POST", "/v1/segments/count", bad), 422, "validation_error")


async def test_segment_count_evaluates_every_user(api: ApiClient, store: Store) -> None:
    merge_traits(store, "u1", {"plan": "pro"})
    merge_traits(store, "u2", {"plan": "pro", "churned": True})
    merge_traits(store, "u3", {"plan": "free"})
    for index in range(4, 9):  # users seen only through events count too
        await api.ingest("/v1/identify", {"userId": f"u{index}", "traits": {"plan": "pro"}})
    await api.ingest("/v1/track", {"userId": "u9", "event": "Viewed"})
    await api.admin("PUT", "/v1/segments/vips", VIPS)
    response = await api.admin("GET", "/v1/segments/vips/count")
    assert response.status_code == 200
    assert response.json() == {"members": 6}
    # Segments and event counts inside conditions are answered from the store.
    nested = {
        "name": "Active VIPs",
        "condition": {
            "all": [
                {"segment": "vips"},
                {"event_count": {"event": "*"}, "op": "gte", "value": 1},
            ]
        },
    }
    await api.admin("PUT", "/v1/segments/active-vips", nested)
    assert (await api.admin("GET", "/v1/segments/active-vips/count")).json() == {"members": 5}
    looping = {"name": "Loop", "condition": {"any": [{"segment": "loop"}]}}
    await api.admin("PUT", "/v1/segments/loop", looping)
    assert (await api.admin("GET", "/v1/segments/loop/count")).json() == {"members": 0}


EMAIL = {
    "id": "welcome",
    "channel": "email",
    "content": {
        "subject": "Hi {{ user.first_name | default: 'there' }}",
        "body": "Use {{ entry.code }} in {{ journey.name }} ({{ variant }}), {{ user.id }}",
    },
}


async def test_template_crud(api: ApiClient, store: Store) -> None:
    response = await api.admin("PUT", "/v1/templates/welcome", EMAIL)
    assert response.status_code == 200
    body = response.json()
    assert {key: body[key] for key in ("id", "channel", "content")} == EMAIL
    assert (await api.admin("GET", "/v1/templates/welcome")).json() == body
    assert [t["id"] for t in (await api.admin("GET", "/v1/templates")).json()] == ["welcome"]
    assert (await api.admin("DELETE", "/v1/templates/welcome")).status_code == 204
    assert_error(await api.admin("GET", "/v1/templates/welcome"), 404, "not_found")
    assert_error(await api.admin("DELETE", "/v1/templates/welcome"), 404, "not_found")
    assert store.list_templates() == []


async def test_template_problems(api: ApiClient, store: Store) -> None:
    bad = {"channel": "email", "content": {"subject": "{{ user.name", "colour": "red"}}
    error = assert_error(await api.admin("PUT", "/v1/templates/t", bad), 422, "validation_error")
    assert paths_of(error) == ["content.body", "content.subject", "content.colour"]
    error = assert_error(
        await api.admin("PUT", "/v1/templates/t", {"channel": "fax", "content": {}}),
        422,
        "validation_error",
    )
    assert paths_of(error) == ["channel"]
    assert_error(await api.admin("PUT", "/v1/templates/other", EMAIL), 400, "id_mismatch")
    assert store.list_templates() == []


async def test_template_preview_for_a_user_or_a_context(api: ApiClient, store: Store) -> None:
    await api.admin("PUT", "/v1/templates/welcome", EMAIL)
    merge_traits(store, "u1", {"first_name": "Ada"})
    response = await api.admin("POST", "/v1/templates/welcome/preview", {"user_id": "u1"})
    assert response.status_code == 200
    assert response.json() == {"subject": "Hi Ada", "body": "Use  in  (), u1"}
    context = {
        "user": {"first_name": "Grace"},
        "entry": {"code": "SAVE20"},
        "journey": {"name": "Cart"},
        "variant": "urgency",
    }
    response = await api.admin("POST", "/v1/templates/welcome/preview", {"context": context})
    assert response.json() == {"subject": "Hi Grace", "body": "Use SAVE20 in Cart (urgency), "}
    both = {"user_id": "u1", "context": {"entry": {"code": "X"}}}
    response = await api.admin("POST", "/v1/templates/welcome/preview", both)
    assert response.json() == {"subject": "Hi Ada", "body": "Use X in  (), u1"}
    response = await api.admin("POST", "/v1/templates/welcome/preview", {})
    assert response.json() == {"subject": "Hi there", "body": "Use  in  (), "}


async def test_template_preview_errors(api: ApiClient, store: Store) -> None:
    response = await api.admin("POST", "/v1/templates/none/preview", {"user_id": "u1"})
    assert_error(response, 404, "not_found")
    loop = {"channel": "sms", "content": {"body": "{% for i in (1..user.n) %}x{% endfor %}"}}
    await api.admin("PUT", "/v1/templates/loop", loop)
    response = await api.admin("POST", "/v1/templates/loop/preview", {"user_id": "nobody"})
    assert_error(response, 404, "not_found")
    response = await api.admin(
        "POST", "/v1/templates/loop/preview", {"context": {"user": {"n": 100_000}}}
    )
    error = assert_error(response, 422, "render_error")
    assert "loop" in error["message"]
    response = await api.admin("POST", "/v1/templates/loop/preview", {"context": {"other": {}}})
    error = assert_error(response, 422, "validation_error")
    assert paths_of(error) == ["context.other"]


async def test_message_preview_renders_inline_content_or_a_template(
    api: ApiClient, store: Store
) -> None:
    merge_traits(store, "u1", {"first_name": "Ada"})
    inline = {
        "channel": "email",
        "content": {"subject": "Hi {{ user.first_name }}", "body": "Bye: {{ unsubscribe_url }}"},
        "user_id": "u1",
    }
    response = await api.admin("POST", "/v1/messages/preview", inline)
    assert response.status_code == 200
    rendered = response.json()
    assert rendered["subject"] == "Hi Ada"
    assert rendered["body"].startswith("Bye: http://localhost:8000/unsubscribe?token=")
    push = {"channel": "push", "content": {"title": "{{ entry.sku }}", "body": "b"}}
    response = await api.admin(
        "POST", "/v1/messages/preview", {**push, "context": {"entry": {"sku": "A-1"}}}
    )
    assert response.json() == {"title": "A-1", "body": "b"}
    await api.admin("PUT", "/v1/templates/welcome", EMAIL)
    response = await api.admin(
        "POST", "/v1/messages/preview", {"channel": "email", "template": "welcome", "user_id": "u1"}
    )
    assert response.json()["subject"] == "Hi Ada"


async def test_message_preview_errors(api: ApiClient, store: Store) -> None:
    await api.admin("PUT", "/v1/templates/welcome", EMAIL)
    cases = [
        ({"channel": "sms", "template": "welcome"}, 400, "invalid_request"),
        ({"channel": "sms"}, 400, "invalid_request"),
        ({"channel": "sms", "content": {}, "template": "welcome"}, 400, "invalid_request"),
        ({"channel": "email", "template": "none"}, 404, "not_found"),
        ({"channel": "push", "content": {"title": "t"}}, 422, "validation_error"),
        ({"channel": "fax", "content": {}}, 422, "validation_error"),
    ]
    for body, status, code in cases:
        assert_error(await api.admin("POST", "/v1/messages/preview", body), status, code)


DEFAULT_SETTINGS = {
    "frequency_caps": [],
    "timezone": "UTC",
    "rate_limits": {},
    "events_retention_days": 400,
}


async def test_settings_defaults_and_replace(api: ApiClient, store: Store) -> None:
    response = await api.admin("GET", "/v1/settings")
    assert response.status_code == 200
    assert response.json() == DEFAULT_SETTINGS
    settings = {
        "frequency_caps": [{"max": 3, "per": "1d", "channel": "push"}, {"max": 10, "per": "P7D"}],
        "timezone": "Europe/Paris",
        "rate_limits": {"sms": "10/s", "email": "600/m", "push": "5000/h"},
        "events_retention_days": 90,
    }
    response = await api.admin("PUT", "/v1/settings", settings)
    assert response.status_code == 200
    assert response.json() == settings
    assert (await api.admin("GET", "/v1/settings")).json() == settings
    assert store.get_settings()["timezone"] == "Europe/Paris"
    # Replace: what is left out returns to its default.
    response = await api.admin("PUT", "/v1/settings", {"timezone": "UTC"})
    assert response.json() == DEFAULT_SETTINGS
    # Rates are kept as written, spaces aside.
    response = await api.admin("PUT", "/v1/settings", {"rate_limits": {"sms": " 20 / s "}})
    assert response.json()["rate_limits"] == {"sms": "20/s"}


@pytest.mark.parametrize(
    ("body", "paths"),
    [
        ({"timezone": "Mars/Olympus"}, ["timezone"]),
        ({"frequency_caps": [{"max": 0, "per": "1d"}]}, ["frequency_caps[0].max"]),
        ({"frequency_caps": [{"max": 3, "per": "soon"}]}, ["frequency_caps[0].per"]),
        (
            {"frequency_caps": [{"max": 3, "per": "1d", "channel": "fax"}]},
            ["frequency_caps[0].channel"],
        ),
        ({"frequency_caps": [{"max": 3}]}, ["frequency_caps[0].per"]),
        ({"quiet": True}, ["quiet"]),
        ({"rate_limits": {"sms": "fast"}}, ["rate_limits.sms"]),
        ({"rate_limits": {"sms": "0/s"}}, ["rate_limits.sms"]),
        ({"rate_limits": {"email": "-5/s"}}, ["rate_limits.email"]),
        ({"rate_limits": {"email": "5/d"}}, ["rate_limits.email"]),
        ({"rate_limits": {"sms": 20}}, ["rate_limits.sms"]),
        ({"rate_limits": {"fax": "10/s"}}, ["rate_limits.fax"]),
        ({"rate_limits": "10/s"}, ["rate_limits"]),
        ({"events_retention_days": 0}, ["events_retention_days"]),
        ({"events_retention_days": -30}, ["events_retention_days"]),
        ({"events_retention_days": 3651}, ["events_retention_days"]),
        ({"events_retention_days": "400"}, ["events_retention_days"]),
        ({"events_retention_days": 30.5}, ["events_retention_days"]),
        ({"events_retention_days": None}, ["events_retention_days"]),
        ({"events_retention_days": True}, ["events_retention_days"]),
    ],
)
async def test_invalid_settings_are_422(
    api: ApiClient, store: Store, body: dict[str, object], paths: list[str]
) -> None:
    error = assert_error(await api.admin("PUT", "/v1/settings", body), 422, "validation_error")
    assert paths_of(error) == paths
    assert store.get_settings() == {}


async def test_a_rate_limit_that_does_not_parse_says_how_to_write_one(api: ApiClient) -> None:
    body = {"rate_limits": {"sms": "fast"}}
    error = assert_error(await api.admin("PUT", "/v1/settings", body), 422, "validation_error")
    [detail] = error["details"]
    assert detail["path"] == "rate_limits.sms"
    assert "bad rate 'fast': use <count>/<s, m or h>, e.g. '20/s'" in detail["message"]
