"""The OpenAPI document (served at `/openapi.json`, browsed at `/docs`).

FastAPI documents the bodies it parses itself; ours are read by `api.body` dependencies, so
their schemas are added here from each reader's `schema` model. The role each management
operation needs (`api.auth`) is added too: as `x-required-role`, and in its description.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from api.auth import RoleCheck
from api.body import BodyReader
from journeys.access import Role


def install(app: FastAPI, routers: Sequence[APIRouter]) -> None:
    """Serve the document with the request bodies of `api.body` readers filled in.

    `routers` are those included in `app` without a prefix (their routes' paths are the
    document's).
    """

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            routes = [route for router in routers for route in router.routes]
            _add_bodies(document, routes)
            _add_roles(document, routes)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override


def _add_bodies(document: dict[str, Any], routes: list[Any]) -> None:
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for route in _documented(routes):
        reader = next(
            (c for c in dependency_calls(route.dependant) if isinstance(c, BodyReader)), None
        )
        if reader is None:
            continue
        name = reader.schema.__name__
        if name not in schemas:
            schema = reader.schema.model_json_schema(
                by_alias=True, ref_template="#/components/schemas/{model}"
            )
            for def_name, definition in schema.pop("$defs", {}).items():
                schemas.setdefault(def_name, definition)
            schemas[name] = schema
        body = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}},
        }
        for method in route.methods or ():
            document["paths"][route.path_format][method.lower()]["requestBody"] = body


def _add_roles(document: dict[str, Any], routes: list[Any]) -> None:
    for route in _documented(routes):
        role = _required_role(route.dependant)
        if role is None:
            continue
        for method in route.methods or ():
            operation = document["paths"][route.path_format][method.lower()]
            operation["x-required-role"] = role.value
            above = "" if role == Role.ADMIN else " or a role that includes it"
            needs = f"Role: `{role}`{above}."
            operation["description"] = f"{operation.get('description', '')}\n\n{needs}".lstrip()
            if role != Role.VIEWER:  # every token has the viewer role
                operation["responses"]["403"] = _FORBIDDEN


_FORBIDDEN = {
    "description": "forbidden: the token's role does not include the one needed",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
}


def _documented(routes: list[Any]) -> Iterator[APIRoute]:
    return (r for r in routes if isinstance(r, APIRoute) and r.include_in_schema)


def _required_role(dependant: Dependant) -> Role | None:
    """The role a route needs: the highest its dependencies check (None: it takes no
    management token)."""
    roles = [c.role for c in dependency_calls(dependant) if isinstance(c, RoleCheck)]
    return max(roles, key=list(Role).index, default=None)


def dependency_calls(dependant: Dependant) -> Iterator[Any]:
    """Every dependency of a route (or of a dependency), however deep."""
    for dependency in dependant.dependencies:
        yield dependency.call
        yield from dependency_calls(dependency)
