"""Liquid templates over the journey namespaces, as pure functions.

Templates see `user`, `entry`, `event`, `journey` (`id`, `name`, `version`) and `variant`.
A missing variable renders empty. The environment has no loader, so `include` and `render`
cannot reach files, Liquid itself cannot call Python code, and loops and output are bounded so
a template cannot hold a worker or the API.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from liquid import BoundTemplate, Environment
from liquid.exceptions import LiquidError

from journeys.errors import JourneysError


class TemplateError(JourneysError):
    """A template failed to parse or to render."""


class _BoundedEnvironment(Environment):
    loop_iteration_limit = 10_000
    output_stream_limit = 200_000
    context_depth_limit = 30


_ENVIRONMENT = _BoundedEnvironment()
_EMPTY_CONTEXT: dict[str, Any] = {"user": {}, "entry": {}, "event": {}, "journey": {}}


def _first_line(error: LiquidError) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__


@lru_cache(maxsize=4096)
def _compile(source: str) -> BoundTemplate:
    return _ENVIRONMENT.from_string(source)


def template_problem(source: str) -> str | None:
    """Why `source` is not a usable template, or None when it is.

    It must parse, and render with every variable missing: that also catches unknown
    filters and runaway loops, which Liquid only finds when rendering.
    """
    try:
        _compile(source).render(**_EMPTY_CONTEXT)
    except LiquidError as error:
        return _first_line(error)
    return None


def render(source: str, context: dict[str, Any]) -> str:
    """Render one template string; raise `TemplateError` if it cannot be rendered."""
    try:
        return _compile(source).render(**context)
    except LiquidError as error:
        raise TemplateError(_first_line(error)) from None


def render_value(value: Any, context: dict[str, Any]) -> Any:
    """Render every string inside a value (strings, and lists and objects of them)."""
    if isinstance(value, str):
        return render(value, context)
    if isinstance(value, dict):
        return {key: render_value(item, context) for key, item in value.items()}
    if isinstance(value, list):
        return [render_value(item, context) for item in value]
    return value


def names_read(source: str) -> tuple[set[str], set[str]]:
    """The namespaces (`entry`, `user`, ...) and the filters a template that parses uses."""
    analysis = _compile(source).analyze()
    return set(analysis.globals), set(analysis.filters)


def variables_read(source: str, namespace: str) -> list[str]:
    """The variables of one namespace a template that parses reads, as written
    (`entry.cart_id`), each once, in the order they first appear."""
    found = _compile(source).analyze().globals.get(namespace, [])
    return list(dict.fromkeys(str(variable) for variable in found))
