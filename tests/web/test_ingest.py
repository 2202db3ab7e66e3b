"""The HTTP ingest API on SQLite and PostgreSQL, through httpx's ASGI transport: a run created,
its results posted in batches (a retried batch stored once), observations attached, the run
finished; writes refused without a write token or without --allow-writes; bad and oversized
bodies refused with nothing written; hostile strings stored safely."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
import sqlalchemy as sa

from testledger import api
from testledger.api._ingest import _row_of_fields
from testledger.common.text import MESSAGE_LIMIT, TRACEBACK_LIMIT, bounded, bounded_id
from testledger.model import TestResult, WatcherObservation
from testledger.store.encoding import encode_result
from testledger.store.tables import ingest_batches, test_results, test_runs, watcher_insights
from testledger.web.settings import WebSettings
from tests.web.ingest_support import SyncClient, client_for

WRITES = WebSettings(allow_writes=True)
RUNS = "/api/v1/ingest/runs"


@pytest.fixture
def write_token(ledger: api.Ledger) -> str:
    return api.create_token(ledger, "write", "ci").secret


@pytest.fixture
def client(ledger: api.Ledger, write_token: str) -> Iterator[SyncClient]:
    with client_for(ledger, WRITES, write_token) as opened:
        yield opened


def counts(ledger: api.Ledger) -> dict[str, int]:
    """Rows of each table the ingest API writes."""
    with ledger.engine().connect() as connection:
        return {
            table.name: connection.execute(
                sa.select(sa.func.count()).select_from(table)
            ).scalar_one()
            for table in (test_runs, test_results, ingest_batches, watcher_insights)
        }


def results(count: int, *, start: int = 0, status: str = "PASS") -> list[dict[str, Any]]:
    return [
        {"test_id": f"tests/test_a.py::test_{i}", "status": status, "duration_secs": 0.01 * i}
        for i in range(start, start + count)
    ]


def new_run(client: SyncClient, **fields: Any) -> int:
    # As JSON with ASCII escapes, which carry any string (httpx's json= cannot carry "\ud800").
    body = json.dumps({"branch": "main", "suite": "http", **fields})
    response = client.post(RUNS, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 201, response.text
    run_id: int = response.json()["run_id"]
    return run_id


def test_a_run_recorded_in_batches_then_finished(client: SyncClient, ledger: api.Ledger) -> None:
    run_id = new_run(client, commit="abc123", run_key="ci-1", expected_tests=5)
    first = client.post(f"{RUNS}/{run_id}/results", json={"batch_key": "b1", "results": results(3)})
    assert first.status_code == 200, first.text
    assert first.json() == {
        "run_id": run_id,
        "batch_key": "b1",
        "received": 3,
        "stored": 3,
        "duplicate": False,
    }
    failing = {
        "test_id": "tests/test_a.py::test_broken",
        "status": "failed",
        "error_type": "AssertionError",
        "error_message": "assert 1 == 2",
        "watcher": {"quality_score": 3, "weaknesses": ["wrong answer"]},
    }
    second = client.post(
        f"{RUNS}/{run_id}/results",
        json={"batch_key": "b2", "results": [*results(1, start=3), failing]},
    )
    assert second.json()["stored"] == 2
    live = api.show_run(ledger, run_id).run
    assert live.status == "running"
    finish = client.post(f"{RUNS}/{run_id}/finish", json={"wall_clock_secs": 1.5})
    assert finish.status_code == 200, finish.text
    stats = finish.json()["stats"]
    assert (stats["total_tests"], stats["tests_passed"], stats["tests_failed"]) == (5, 4, 1)
    detail = api.show_run(ledger, run_id)
    assert (detail.run.status, detail.run.commit, detail.run.source) == (
        "finished",
        "abc123",
        "http",
    )
    assert [f.test_id for f in detail.failing] == ["tests/test_a.py::test_broken"]
    assert detail.run.duration_secs == 1.5
    with ledger.engine().connect() as connection:
        expected = connection.execute(
            sa.select(test_runs.c.expected_tests).where(test_runs.c.id == run_id)
        ).scalar_one()
    assert expected == 5
    assert counts(ledger)["watcher_insights"] == 1
    # Issue detection ran at finish, as for a run recorded through the runner API.
    assert api.list_issues(ledger)


def test_a_retried_batch_is_stored_once(client: SyncClient, ledger: api.Ledger) -> None:
    run_id = new_run(client)
    body = {"batch_key": "same", "results": [{**r, "attempt": 1} for r in results(50)]}
    replies = [client.post(f"{RUNS}/{run_id}/results", json=body).json() for _ in range(3)]
    assert [reply["duplicate"] for reply in replies] == [False, True, True]
    assert [reply["stored"] for reply in replies] == [50, 0, 0]
    # Another key holding the same tests and attempts (a client that lost its keys): the rows
    # already there are not written twice either (without attempt numbers they would be
    # retries, numbered 2).
    again = client.post(f"{RUNS}/{run_id}/results", json={**body, "batch_key": "other"}).json()
    assert (again["duplicate"], again["stored"]) == (False, 0)
    assert counts(ledger) == {
        "test_runs": 1,
        "test_results": 50,
        "ingest_batches": 2,
        "watcher_insights": 0,
    }
    finished = client.post(f"{RUNS}/{run_id}/finish", json={}).json()
    assert finished["stats"]["total_tests"] == 50


def test_a_run_created_again_under_its_key_is_joined(client: SyncClient) -> None:
    first = client.post(RUNS, json={"run_key": "job-42"}).json()
    second = client.post(RUNS, json={"run_key": "job-42"}).json()
    assert second["run_id"] == first["run_id"]
    assert (first["existed"], second["existed"]) == (False, True)


def test_results_without_attempts_are_numbered_as_retries(
    client: SyncClient, ledger: api.Ledger
) -> None:
    run_id = new_run(client)
    flaky = {"test_id": "t/flaky", "status": "FAIL"}
    client.post(f"{RUNS}/{run_id}/results", json={"batch_key": "1", "results": [flaky]})
    client.post(
        f"{RUNS}/{run_id}/results",
        json={"batch_key": "2", "results": [flaky, {**flaky, "status": "PASS"}]},
    )
    with ledger.engine().connect() as connection:
        attempts = connection.execute(
            sa.select(test_results.c.attempt, test_results.c.status, test_results.c.tool_name)
            .where(test_results.c.run_id == run_id)
            .order_by(test_results.c.attempt)
        ).all()
    assert [tuple(row) for row in attempts] == [
        (1, "FAIL", "t"),
        (2, "FAIL", "t"),
        (3, "PASS", "t"),
    ]
    stats = client.post(f"{RUNS}/{run_id}/finish", json={}).json()["stats"]
    assert (stats["total_tests"], stats["tests_passed"]) == (1, 1)


def test_observations_attach_to_the_latest_attempt_once(
    client: SyncClient, ledger: api.Ledger
) -> None:
    run_id = new_run(client)
    client.post(f"{RUNS}/{run_id}/results", json={"batch_key": "r", "results": results(2)})
    body = {
        "batch_key": "o1",
        "observations": [
            {"test_id": "tests/test_a.py::test_0", "quality_score": 9, "strengths": ["clear"]},
            {"test_id": "tests/test_a.py::nowhere", "quality_score": 5},
        ],
    }
    first = client.post(f"{RUNS}/{run_id}/observations", json=body).json()
    again = client.post(f"{RUNS}/{run_id}/observations", json=body).json()
    assert (first["stored"], first["duplicate"]) == (1, False)
    assert (again["stored"], again["duplicate"]) == (0, True)
    assert counts(ledger)["watcher_insights"] == 1
    bad = client.post(
        f"{RUNS}/{run_id}/observations",
        json={"observations": [{"test_id": "tests/test_a.py::test_0"}]},
    )
    assert bad.status_code == 422
    assert "quality_score" in bad.text


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        pytest.param({"results": results(1)}, "batch_key", id="no-batch-key"),
        pytest.param(
            {"batch_key": "k", "results": [{"test_id": "x", "status": "MAYBE"}]},
            "unknown test status",
            id="bad-status",
        ),
        pytest.param(
            {"batch_key": "k", "results": [*results(3), {"status": "PASS"}]},
            "test_id",
            id="one-bad-result-among-good",
        ),
        pytest.param(
            {
                "batch_key": "k",
                "results": [{"test_id": "x", "status": "PASS", "cpu_percent": 5000}],
            },
            "cpu_percent",
            id="out-of-range",
        ),
        pytest.param(
            {
                "batch_key": "k",
                "results": [{"test_id": "x", "status": "PASS", "metrics": {"a": "b"}}],
            },
            "metrics",
            id="non-numeric-metric",
        ),
        pytest.param(
            {"batch_key": "k", "results": [], "unexpected": 1}, "unexpected", id="unknown-field"
        ),
        pytest.param(
            {"batch_key": "k", "results": results(10_001)}, "10000", id="batch-too-many-results"
        ),
    ],
)
def test_a_bad_batch_is_refused_with_nothing_written(
    client: SyncClient, ledger: api.Ledger, body: dict[str, Any], fragment: str
) -> None:
    run_id = new_run(client)
    before = counts(ledger)
    response = client.post(f"{RUNS}/{run_id}/results", json=body)
    assert response.status_code == 422, response.text
    assert fragment in response.text
    assert counts(ledger) == before


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        pytest.param(b'{"batch_key": "k", "results": [', "application/json", id="truncated-json"),
        pytest.param(b"\xff\xfe not json", "application/json", id="binary"),
        pytest.param(b"[1, 2, 3]", "application/json", id="not-an-object"),
    ],
)
def test_a_malformed_body_is_refused(
    client: SyncClient, ledger: api.Ledger, content: bytes, content_type: str
) -> None:
    run_id = new_run(client)
    before = counts(ledger)
    response = client.post(
        f"{RUNS}/{run_id}/results", content=content, headers={"Content-Type": content_type}
    )
    assert 400 <= response.status_code < 500, response.text
    assert counts(ledger) == before


def test_a_body_over_the_limit_is_refused_before_it_is_read(
    ledger: api.Ledger, write_token: str
) -> None:
    small = WebSettings(allow_writes=True, max_body_bytes=20_000)
    with client_for(ledger, small, write_token) as client:
        run_id = new_run(client)
        before = counts(ledger)
        body = {"batch_key": "big", "results": results(500)}
        declared = client.post(f"{RUNS}/{run_id}/results", json=body)
        assert declared.status_code == 413
        assert "20000 bytes" in declared.json()["detail"]

        async def chunks() -> Any:  # no Content-Length: counted as it streams
            data = json.dumps(body).encode()
            for start in range(0, len(data), 4096):
                yield data[start : start + 4096]

        streamed = client.post(
            f"{RUNS}/{run_id}/results",
            content=chunks(),
            headers={"Content-Type": "application/json"},
        )
        assert streamed.status_code == 413
        assert counts(ledger) == before
        # Under the limit, the same route takes it.
        fits = client.post(
            f"{RUNS}/{run_id}/results", json={"batch_key": "ok", "results": results(5)}
        )
        assert fits.status_code == 200


def test_unknown_run_is_404(client: SyncClient) -> None:
    response = client.post(f"{RUNS}/999999/results", json={"batch_key": "k", "results": results(1)})
    assert response.status_code == 404
    assert "no run 999999" in response.json()["detail"]
    assert client.post(f"{RUNS}/999999/finish", json={}).status_code == 404


def test_hostile_strings_are_stored_bounded_and_readable(
    client: SyncClient, ledger: api.Ledger
) -> None:
    megabyte_name = "tests/test_x.py::test_" + "n" * 1_000_000
    hostile = {
        "test_id": megabyte_name,
        "status": "FAIL",
        "error_message": "nul\x00byte \x1b[31mred\x1b[0m <script>alert(1)</script>",
        "traceback": "T" * 2_000_000,
        "details": {"key\x00": "value\x00"},
        "watcher": {"quality_score": 2, "anomalies": ["nul\x00inside"]},
    }
    run_id = new_run(client, branch="feature/<b>\x00", metadata={"k": "v\x00"})
    response = client.post(
        f"{RUNS}/{run_id}/results", json={"batch_key": "hostile", "results": [hostile]}
    )
    assert response.status_code == 200, response.text
    assert response.json()["stored"] == 1
    observed = client.post(
        f"{RUNS}/{run_id}/observations",
        json={
            "observations": [{"test_id": megabyte_name, "quality_score": 4, "weaknesses": ["\x00"]}]
        },
    )
    assert observed.json()["stored"] == 1
    with ledger.engine().connect() as connection:
        row = connection.execute(
            sa.select(
                test_results.c.test_id, test_results.c.error_message, test_results.c.traceback
            )
        ).one()
    assert len(row.test_id.encode()) <= 4096
    assert row.test_id.startswith("tests/test_x.py::test_nnn")
    assert "\x00" not in row.error_message and "\x1b[31m" in row.error_message
    assert len(row.traceback) < 100_000 and "truncated" in row.traceback
    assert client.post(f"{RUNS}/{run_id}/finish", json={}).status_code == 200
    assert api.show_run(ledger, run_id).run.branch == "feature/<b>\ufffd"


def test_lone_surrogates_are_refused_over_http_and_replaced_through_the_library(
    client: SyncClient, ledger: api.Ledger
) -> None:
    """JSON's "\\ud800" is a string no database takes: the API refuses it (422, its error
    still UTF-8, without echoing the megabyte values sent); a library caller's TestResult
    holding one is stored with it replaced, as NUL is."""
    run_id = new_run(client)
    before = counts(ledger)
    body = {
        "batch_key": "s",
        "results": [{"test_id": "t::x\ud800" + "y" * 1_000_000, "status": "PASS"}],
    }
    response = client.post(
        f"{RUNS}/{run_id}/results",
        content=json.dumps(body),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert len(response.content) < 2_000
    assert response.json()["detail"][0]["loc"][:3] == ["body", "results", 0]
    assert counts(ledger) == before
    result = TestResult(
        test_id="t::x\ud800",
        tool_name="t",
        variation="x\ud800",
        status="FAIL",
        error_message="m\udfff",
        details={"k\ud800": ["v\ud800"]},
        watcher=WatcherObservation(quality_score=3, strengths=["s\ud800"]),
    )
    stored = api.ingest_results(ledger, run_id, "library", [result])
    assert stored.stored == 1
    with ledger.engine().connect() as connection:
        row = connection.execute(
            sa.select(test_results.c.test_id, test_results.c.error_message)
        ).one()
    assert (row.test_id, row.error_message) == ("t::x\ufffd", "m\ufffd")
    assert counts(ledger)["watcher_insights"] == 1


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"status": "passed"}, id="synonym"),
        pytest.param(
            {
                "status": "FAIL",
                "provider": "glm",
                "model": "glm-4.5-air",
                "execution_status": "consensus_failed",
                "duration_secs": 1.25,
                "memory_mb": 99.6,
                "cpu_percent": 12.5,
                "tokens_total": 10,
                "tokens_input": 4,
                "tokens_output": 6,
                "cost_usd": 0.001,
                "error_type": "AssertionError",
                "error_message": "m" * 20_000,
                "traceback": "t\x00b",
                "output_excerpt": "out",
                "metrics": {"latency_ms": 12.5},
                "details": {"k": ["v\x00"]},
                "started_at": datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc),
            },
            id="every-field-and-hostile",
        ),
        pytest.param(
            {"status": "ERROR", "watcher": WatcherObservation(quality_score=3, strengths=["x"])},
            id="watched",
        ),
        pytest.param({"status": "SKIP", "test_id": "t" * 10_000}, id="long-id"),
    ],
)
def test_fields_make_the_row_a_test_result_makes(fields: dict[str, Any]) -> None:
    """The server builds rows from validated fields without a TestResult for each (see
    api._ingest._row_of_fields): the same row as encode_result of the TestResult."""
    fields = {
        "test_id": "tests/t.py::test_x",
        "tool_name": "tests/t.py",
        "variation": "test_x",
    } | fields
    watcher = fields.get("watcher")
    if watcher is not None:
        watcher.created_at = datetime(2025, 1, 1, tzinfo=timezone.utc)
    result = TestResult(**fields, attempt=2)
    result.error_message = bounded(result.error_message, MESSAGE_LIMIT)
    result.traceback = bounded(result.traceback, TRACEBACK_LIMIT)
    expected = encode_result(result)
    assert _row_of_fields(fields, bounded_id(fields["test_id"]), 2, watcher) == expected
