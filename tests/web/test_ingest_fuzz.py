"""Schemathesis against the ingest endpoints of the OpenAPI document, writes allowed and a write
token sent: whatever their schema allows (and bodies it does not), no server error. Bounded
to a few examples per endpoint; on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from testledger import api
from testledger.model import RunInfo
from testledger.web.settings import WebSettings
from tests.web.ingest_support import ingest_app


def test_ingest_endpoints_never_fail_on_the_server(ledger: api.Ledger) -> None:
    token = api.create_token(ledger, "write").secret
    run = api.ingest_start_run(ledger, RunInfo(branch="main"))
    app = ingest_app(ledger, WebSettings(allow_writes=True))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app).include(
        path_regex="^/api/v1/ingest/"
    )
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 7
    headers = {"Authorization": f"Bearer {token}"}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=10,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def call(case: Any) -> None:
            if "run_id" in (case.path_parameters or {}):
                case.path_parameters["run_id"] = run.run_id  # a run that exists, mostly
            case.call_and_validate(headers=headers, checks=[not_a_server_error])

        call()
