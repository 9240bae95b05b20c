"""Liquid templates over the journey namespaces, as pure functions.

Templates see `user`, `entry`, `event`, `journey` (`id`, `name`, `version`) and `variant`.
A missing variable renders empty. The environment has no loader, so `include` and `render`
cannot reach files, and Liquid itself cannot call Python code.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from liquid import BoundTemplate, Environment
from liquid.exceptions import LiquidError

from journeys.errors import JourneysError


class TemplateError(JourneysError):
    """A template failed to parse or to render."""


_ENVIRONMENT = Environment()


def _first_line(error: LiquidError) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__


@lru_cache(maxsize=4096)
def _compile(source: str) -> BoundTemplate:
    return _ENVIRONMENT.from_string(source)


def syntax_error(source: str) -> str | None:
    """Why `source` does not parse as Liquid, or None when it does."""
    try:
        _compile(source)
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
