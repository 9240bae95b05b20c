"""The OpenAPI document (served at `/openapi.json`, browsed at `/docs`).

FastAPI documents the bodies it parses itself; ours are read by `api.body` dependencies, so
their schemas are added here from each reader's `schema` model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from api.body import BodyReader


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
            _add_bodies(document, [route for router in routers for route in router.routes])
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override


def _add_bodies(document: dict[str, Any], routes: list[Any]) -> None:
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for route in routes:
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        reader = _body_reader(route.dependant)
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


def _body_reader(dependant: Dependant) -> BodyReader | None:
    for dependency in dependant.dependencies:
        if isinstance(dependency.call, BodyReader):
            return dependency.call
        found = _body_reader(dependency)
        if found is not None:
            return found
    return None
