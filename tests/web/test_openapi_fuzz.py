"""Schemathesis against the app's OpenAPI document: every read endpoint, given whatever its
schema allows (strings of any kind for run keys, issue codes, test ids and filters), answers with a
documented status and never a server error. Bounded to a few examples per endpoint so that it
takes seconds; on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from testledger import Ledger
from testledger.web.app import create_app


@pytest.fixture(scope="module")
def api_schema(scenario: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with Ledger(scenario, results_dir=tmp_path_factory.mktemp("results")) as ledger:
        app = create_app(ledger)
        # The reads only: the ingest endpoints are refused on a read-only app (their own tests
        # drive them), and the expensive analyses are left to their own tests.
        loaded = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app)
        yield loaded.include(method="GET").exclude(path_regex="^/api/v1/(ingest|regressions)")


def _operations(schema: Any) -> list[Any]:
    return [result.ok() for result in schema.get_all_operations()]


def test_read_endpoints_keep_to_their_schema(api_schema: Any) -> None:
    operations = _operations(api_schema)
    assert len(operations) >= 15
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=4,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def call(case: Any) -> None:
            case.call_and_validate()

        call()
