"""schemathesis against the app's own OpenAPI document: generated requests to every operation,
with the credential each declares, never get a 5xx.

The app runs in process (ASGI) over the test's store, with a recording router in place of
Temporal (whose absence would be a deliberate 503 on `/trigger` and archive). Examples per
operation are bounded so the whole module stays within seconds, not minutes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from schemathesis.core.result import Ok

from tests.reliability.app import ADMIN, WRITE

pytestmark = pytest.mark.store_backends("sqlite", "postgresql")

EXAMPLES = 25
"""Generated requests per operation (about 40 operations)."""


def credentials(operation: Any) -> dict[str, str]:
    """The headers for the credential the operation declares (none for public ones)."""
    security = operation.definition.raw.get("security", [])
    declared = {name for option in security for name in option}
    if "managementToken" in declared:
        return ADMIN
    if declared & {"writeKeyBasic", "writeKeyBearer"}:
        return WRITE
    return {}


def _fuzz(operation: Any) -> Callable[[], None]:
    """A hypothesis test of one operation: generated requests, none answered 5xx."""
    headers = credentials(operation)

    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def no_server_error(case: Any) -> None:
        response = case.call(headers=headers)
        assert response.status_code < 500, (case.as_curl_command(), response.text[:300])

    return no_server_error


def test_generated_requests_never_get_a_server_error(app: FastAPI) -> None:
    """Every operation of the document, each with `EXAMPLES` generated requests (schemathesis's
    own pytest plugin is not used: it does not run under this pytest)."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    results = list(schema.get_all_operations())
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    assert len(operations) == len(results), "the document has operations schemathesis refuses"
    assert len(operations) >= 35
    failures: list[str] = []
    for operation in operations:
        no_server_error = _fuzz(operation)
        try:
            no_server_error()
        except AssertionError as error:  # collect every operation's, then fail once
            failures.append(f"{operation.method.upper()} {operation.path}: {error}")
    assert failures == []
