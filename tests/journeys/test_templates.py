"""Liquid templates over the journey namespaces: rendering, defaults, syntax errors, sandboxing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from journeys.errors import JourneysError
from journeys.templates import TemplateError, render, render_value, template_problem

CONTEXT: dict[str, Any] = {
    "user": {
        "id": "u-1",
        "first_name": "Ada",
        "last_name": "",
        "plan": "pro",
        "address": {"city": "London"},
        "tags": ["beta", "vip"],
        "credits": 3,
    },
    "entry": {"total_price": 149.5, "items": [{"name": "Lamp", "qty": 2}], "coupon": None},
    "event": {"product_name": "Desk Lamp", "url": "https://shop.example.com/p/1?a=1&b=2"},
    "journey": {"id": "abandoned-cart", "name": "Abandoned cart", "version": 4},
    "variant": "urgency",
}


@pytest.mark.parametrize(
    ("source", "text"),
    [
        ("Hello", "Hello"),
        ("", ""),
        ("Hi {{ user.first_name }}", "Hi Ada"),
        ("{{ user.address.city }}", "London"),
        ("{{ user['first_name'] }}", "Ada"),
        ("{{ user.tags[1] }}", "vip"),
        ("{{ user.tags.first }}/{{ user.tags.last }}/{{ user.tags.size }}", "beta/vip/2"),
        ("{{ entry.total_price }}", "149.5"),
        ("{{ entry.items[0].name }} x{{ entry.items[0].qty }}", "Lamp x2"),
        ("{{ event.product_name }}", "Desk Lamp"),
        (
            "{{ journey.id }} {{ journey.name }} v{{ journey.version }}",
            "abandoned-cart Abandoned cart v4",
        ),
        ("{{ variant }}", "urgency"),
        ("{{ user.first_name | upcase }}", "ADA"),
        ("{{ user.credits | plus: 2 }}", "5"),
        ("{{ entry.total_price | times: 0.8 | round: 2 }}", "119.6"),
        ("{{ user.tags | join: ', ' }}", "beta, vip"),
        ("{% if user.plan == 'pro' %}Pro{% else %}Free{% endif %}", "Pro"),
        ('{% if variant == "urgency" %}Hurry{% endif %}', "Hurry"),
        ("{% for t in user.tags %}[{{ t }}]{% endfor %}", "[beta][vip]"),
        ("{{ event.url }}", "https://shop.example.com/p/1?a=1&b=2"),
        ("{{ event.product_name | escape }}", "Desk Lamp"),
        ("{{ '<b>' | escape }}", "&lt;b&gt;"),
    ],
)
def test_render(source: str, text: str) -> None:
    assert render(source, CONTEXT) == text


@pytest.mark.parametrize(
    ("source", "text"),
    [
        ('{{ user.first_name | default: "there" }}', "Ada"),
        ('{{ user.nickname | default: "there" }}', "there"),
        ('{{ user.last_name | default: "there" }}', "there"),
        ("{{ entry.coupon | default: 'none' }}", "none"),
        ("{{ user.missing.deeper | default: 'friend' }}", "friend"),
        ("{{ nobody.at.all | default: 'friend' }}", "friend"),
        ("Hi {{ user.nickname | default: user.first_name }}", "Hi Ada"),
    ],
)
def test_default_filter(source: str, text: str) -> None:
    assert render(source, CONTEXT) == text


@pytest.mark.parametrize(
    ("source", "text"),
    [
        ("[{{ user.nickname }}]", "[]"),
        ("[{{ user.address.zip }}]", "[]"),
        ("[{{ user.missing.deeper.still }}]", "[]"),
        ("[{{ entry.coupon }}]", "[]"),
        ("[{{ entry.items[5].name }}]", "[]"),
        ("[{{ unknown_namespace }}]", "[]"),
        ("[{{ event.product_name }}]", "[Desk Lamp]"),
        ("{% if user.nickname %}yes{% else %}no{% endif %}", "no"),
        ("[{% for x in user.nothing %}{{ x }}{% endfor %}]", "[]"),
    ],
)
def test_missing_variable_renders_empty(source: str, text: str) -> None:
    assert render(source, CONTEXT) == text


def test_render_with_empty_namespaces() -> None:
    assert render('Hi {{ user.first_name | default: "there" }}', {}) == "Hi there"
    assert render("{{ event.product_name }}", {"user": {}, "entry": {}, "event": {}}) == ""


@pytest.mark.parametrize(
    "source",
    [
        "plain text",
        "{{ user.first_name }}",
        '{{ user.first_name | default: "there" }}',
        "{% if user.vip %}VIP{% endif %}",
        "{% for i in user.tags %}{{ i }}{% endfor %}",
        "{% raw %}{{ not parsed }}{% endraw %}",
    ],
)
def test_template_problem_none_for_valid(source: str) -> None:
    assert template_problem(source) is None


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("Hi {{ user.first_name ", "expected '}}', found end of file"),
        ("{{ }}", "expected a primitive expression"),
        ("{% if user.vip %}VIP", "expected tag endif"),
        ("{% endif %}", "unexpected tag 'endif'"),
        ("{% nosuchtag %}", "unexpected tag 'nosuchtag'"),
        ("{% if %}yes{% endif %}", "missing expression"),
        ("{% for %}{% endfor %}", "missing expression"),
        ("{{ x | no_such_filter }}", "unknown filter 'no_such_filter'"),  # found by rendering
        ("{% for i in (1..100000000) %}{% endfor %}", "loop iteration limit reached"),
        (
            "{% for i in (1..9000) %}{{ 'x' | append: 'yyyyyyyyyyyyyyyyyyyyyyyy' }}{% endfor %}",
            "output stream limit reached",
        ),
    ],
)
def test_template_problem_message(source: str, message: str) -> None:
    error = template_problem(source)
    assert error is not None
    assert error
    assert "\n" not in error  # one line, to fit a validation problem
    assert message in error


@pytest.mark.parametrize(
    "source",
    ["{{ user.first_name ", "{% if x %}", "{% nosuchtag %}"],
)
def test_render_of_bad_syntax_raises(source: str) -> None:
    with pytest.raises(TemplateError) as raised:
        render(source, CONTEXT)
    assert str(raised.value) == template_problem(source)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{{ user.first_name | no_such_filter }}", "unknown filter 'no_such_filter'"),
        ("{{ 1 | divided_by: 0 }}", "divided_by"),
    ],
)
def test_render_errors_raise_template_error(source: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        render(source, CONTEXT)


def test_template_error_is_a_journeys_error() -> None:
    assert issubclass(TemplateError, JourneysError)


@pytest.mark.parametrize(
    "source",
    [
        "{% include 'secrets' %}",
        "{% include '/etc/passwd' %}",
        "{% include '../../pyproject.toml' %}",
        "{% render 'snippet' %}",
        "{% render 'snippet' with user %}",
    ],
)
def test_include_and_render_cannot_reach_files(source: str) -> None:
    assert template_problem(source) is not None  # they parse, but there is nothing to load
    with pytest.raises(TemplateError):
        render(source, CONTEXT)


def test_include_cannot_read_a_file_next_to_the_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "snippet.liquid").write_text("SECRET")
    (tmp_path / "snippet").write_text("SECRET")
    monkeypatch.chdir(tmp_path)
    for source in ("{% include 'snippet' %}", "{% include 'snippet.liquid' %}"):
        with pytest.raises(TemplateError):
            render(source, CONTEXT)


def test_templates_cannot_call_python() -> None:
    context = {**CONTEXT, "user": {"name": "ada", "greet": lambda: "called"}}
    assert render("{{ user.name.upper }}", context) == ""
    assert render("{{ user.__class__ }}", context) == ""


@pytest.mark.parametrize(
    ("value", "rendered"),
    [
        ("Hi {{ user.first_name }}", "Hi Ada"),
        (42, 42),
        (1.5, 1.5),
        (True, True),
        (None, None),
        ([], []),
        ({}, {}),
        (
            {"title": "{{ event.product_name }}", "body": "Hi {{ user.first_name }}", "badge": 1},
            {"title": "Desk Lamp", "body": "Hi Ada", "badge": 1},
        ),
        (
            {"data": {"deep_link": "shop://cart/{{ user.id }}", "flags": [True, "{{ variant }}"]}},
            {"data": {"deep_link": "shop://cart/u-1", "flags": [True, "urgency"]}},
        ),
        (
            ["{{ user.tags[0] }}", ["{{ journey.version }}", 7], {"k": "{{ user.missing }}"}],
            ["beta", ["4", 7], {"k": ""}],
        ),
        (
            {"{{ user.id }}": "keys are not templates"},
            {"{{ user.id }}": "keys are not templates"},
        ),
    ],
)
def test_render_value(value: Any, rendered: Any) -> None:
    assert render_value(value, CONTEXT) == rendered


def test_render_value_does_not_change_its_input() -> None:
    value = {"body": ["{{ user.first_name }}"]}
    render_value(value, CONTEXT)
    assert value == {"body": ["{{ user.first_name }}"]}


def test_render_value_raises_for_a_nested_bad_template() -> None:
    with pytest.raises(TemplateError):
        render_value({"data": ["ok", "{{ user.first_name | no_such_filter }}"]}, CONTEXT)
