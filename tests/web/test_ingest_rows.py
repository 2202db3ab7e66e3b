"""The ingest API's compact batch form (column names once, each result a list of values) on
SQLite and PostgreSQL: stored as the object form stores the same results, once under its
batch key, every bad value refused (422, naming its row and column) with nothing written; and
the HTTP sink sends it, falling back to the object form on a server without it."""

from __future__ import annotations

import contextlib
import json
import math
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import uvicorn
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.responses import JSONResponse

from testledger import api
from testledger.api._ingest_rows import _CHECKS, _PLAIN, decode_rows
from testledger.errors import DatabaseUnavailable
from testledger.model import RunInfo, TestResult, WatcherObservation
from testledger.record.http_sink import (
    ROW_BATCH_COLUMNS,
    IngestClient,
    rows_as_results,
    rows_compact,
)
from testledger.store.encoding import ROW_COLUMNS, encode_result
from testledger.store.tables import test_results
from testledger.web.settings import WebSettings
from tests.web.ingest_support import SyncClient, client_for, ingest_app
from tests.web.test_ingest import RUNS, counts, new_run

WRITES = WebSettings(allow_writes=True)
#: The stored columns compared between the two forms (not the row's id, run or insertion time).
COMPARED = [test_results.c[name] for name in ("test_id", *ROW_COLUMNS[1:])]


@pytest.fixture
def client(ledger: api.Ledger) -> Iterator[SyncClient]:
    token = api.create_token(ledger, "write", "ci").secret
    with client_for(ledger, WRITES, token) as opened:
        yield opened


def sample_results() -> list[TestResult]:
    """Results using every column, hostile texts among them."""
    return [
        TestResult(
            test_id="tests/test_a.py::test_full[x]",
            tool_name="tests/test_a.py",
            variation="test_full[x]",
            status="FAIL",
            provider="glm",
            model="glm-4.5-air",
            execution_status="consensus_failed",
            duration_secs=1.25,
            memory_mb=99,
            cpu_percent=12.5,
            tokens_total=10,
            tokens_input=4,
            tokens_output=6,
            cost_usd=0.001,
            error_type="AssertionError",
            error_message="<script>alert(1)</script> \x1b[31m" + "m" * 20_000,
            traceback="t\x00b",
            output_excerpt="out",
            metrics={"latency_ms": 12.5},
            details={"k": ["v\x00"], "note": "caf\u00e9"},
            watcher=WatcherObservation(quality_score=3, strengths=["clear"]),
        ),
        TestResult(test_id="calc/div", tool_name="calc", variation="div", status="PASS"),
        TestResult(test_id="calc/div", tool_name="calc", variation="div", status="PASS", attempt=2),
    ]


def stored(ledger: api.Ledger, run_id: int) -> list[tuple[Any, ...]]:
    with ledger.engine().connect() as connection:
        rows = connection.execute(
            sa.select(*COMPARED)
            .where(test_results.c.run_id == run_id)
            .order_by(test_results.c.test_id, test_results.c.attempt)
        ).all()
    # The observation's JSON holds the time it was stored: compared without it.
    return [tuple(_without_created(value) for value in row) for row in rows]


def _without_created(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("{"):
        value = json.loads(value)
    if isinstance(value, dict) and "quality_score" in value:
        return {k: v for k, v in value.items() if k != "created_at"}
    return value


def post_json(client: SyncClient, run_id: int, content: Any) -> httpx.Response:
    """POST ``content`` (JSON text, as sent: not re-encoded) as a run's compact batch."""
    return client.post(
        f"{RUNS}/{run_id}/result-rows",
        content=content,
        headers={"Content-Type": "application/json"},
    )


def compact_body(batch_key: str, results: list[TestResult]) -> dict[str, Any]:
    return {
        "batch_key": batch_key,
        "columns": ROW_BATCH_COLUMNS,
        "rows": [list(row) for row in rows_compact([encode_result(r) for r in results])],
    }


def test_compact_batches_store_what_the_object_form_stores(
    client: SyncClient, ledger: api.Ledger
) -> None:
    compact_run, object_run = new_run(client, run_key="compact"), new_run(client, run_key="obj")
    body = compact_body("b1", sample_results())
    replies = [client.post(f"{RUNS}/{compact_run}/result-rows", json=body) for _ in range(2)]
    assert [r.status_code for r in replies] == [200, 200], replies[0].text
    assert [(r.json()["stored"], r.json()["duplicate"]) for r in replies] == [(3, False), (0, True)]
    objects = rows_as_results([encode_result(r) for r in sample_results()])
    reply = client.post(
        f"{RUNS}/{object_run}/results", json={"batch_key": "b1", "results": objects}
    )
    assert reply.status_code == 200, reply.text
    compact, as_objects = stored(ledger, compact_run), stored(ledger, object_run)
    assert len(compact) == len(as_objects) == 3
    for row, expected in zip(compact, as_objects, strict=True):
        differing = [c.name for c, x, y in zip(COMPARED, row, expected, strict=True) if x != y]
        assert not differing, (row[0], differing)
    assert "\x00" not in json.dumps(compact, default=str)  # NUL replaced, as the recorders do
    assert counts(ledger)["watcher_insights"] == 2


def test_short_column_lists_default_names_and_number_attempts(
    client: SyncClient, ledger: api.Ledger
) -> None:
    run_id = new_run(client)
    for key in ("1", "2"):
        body = {
            "batch_key": key,
            "columns": ["status", "test_id", "metrics", "details"],
            "rows": [
                ["failed", "t/flaky", '{"latency_ms": 5}', {}],
                ["PASS", "tests/x.py::test_y", None, '{"why": "\\u0000"}'],
            ],
        }
        reply = client.post(f"{RUNS}/{run_id}/result-rows", json=body)
        assert reply.status_code == 200, reply.text
    with ledger.engine().connect() as connection:
        rows = connection.execute(
            sa.select(
                test_results.c.test_id,
                test_results.c.attempt,
                test_results.c.tool_name,
                test_results.c.variation,
                test_results.c.status,
                test_results.c.details,
            )
            .where(test_results.c.run_id == run_id)
            .order_by(test_results.c.test_id, test_results.c.attempt)
        ).all()
    assert [tuple(row[:5]) for row in rows] == [
        ("t/flaky", 1, "t", "flaky", "FAIL"),
        ("t/flaky", 2, "t", "flaky", "FAIL"),
        ("tests/x.py::test_y", 1, "tests/x.py", "test_y", "PASS"),
        ("tests/x.py::test_y", 2, "tests/x.py", "test_y", "PASS"),
    ]
    details = rows[2].details
    details = json.loads(details) if isinstance(details, str) else details
    assert details["why"] == "\ufffd"


GOOD = ["t/x", "PASS"]


@pytest.mark.parametrize(
    ("columns", "rows", "fragment"),
    [
        pytest.param(["test_id", "colour"], [["t/x", "red"]], "unknown column 'colour'", id="col"),
        pytest.param(["test_id", "test_id", "status"], [], "named twice", id="twice"),
        pytest.param(["test_id", "model"], [["t/x", "m"]], "include status", id="no-status"),
        pytest.param(["test_id", "status"], [GOOD, ["t/y"]], "row 1: must be a list of 2", id="w"),
        pytest.param(["test_id", "status"], [GOOD, ["t/y", "MAYBE"]], "row 1, column 'status'"),
        pytest.param(["test_id", "status"], [[None, "PASS"]], "must not be null", id="null-id"),
        pytest.param(["test_id", "status"], [["", "PASS"]], "non-empty", id="empty-id"),
        pytest.param(["test_id", "status"], [[7, "PASS"]], "column 'test_id'", id="int-id"),
        pytest.param(["test_id", "status", "attempt"], [[*GOOD, 0]], "'attempt'"),
        pytest.param(["test_id", "status", "attempt"], [[*GOOD, True]], "integer", id="bool"),
        pytest.param(["test_id", "status", "attempt"], [[*GOOD, 1.5]], "integer", id="float"),
        pytest.param(["test_id", "status", "cpu_percent"], [[*GOOD, 5000]], "cpu_percent"),
        pytest.param(["test_id", "status", "duration_secs"], [[*GOOD, -1.0]], "duration_secs"),
        pytest.param(["test_id", "status", "duration_secs"], [[*GOOD, "1"]], "a number"),
        pytest.param(["test_id", "status", "model"], [[*GOOD, "m" * 5000]], "longer than"),
        pytest.param(["test_id", "status", "metrics"], [[*GOOD, {"a": "b"}]], "finite number"),
        pytest.param(["test_id", "status", "metrics"], [[*GOOD, '{"a": NaN}']], "NaN"),
        pytest.param(["test_id", "status", "metrics"], [[*GOOD, "{oops"]], "no JSON text"),
        pytest.param(["test_id", "status", "details"], [[*GOOD, "[1, 2]"]], "JSON object"),
        pytest.param(["test_id", "status", "details"], [[*GOOD, 3]], "JSON object", id="d-int"),
        pytest.param(["test_id", "status", "started_at"], [[*GOOD, "yesterday"]], "ISO-8601"),
        pytest.param(["test_id", "status", "watcher"], [[*GOOD, {"quality_score": 11}]], "watch"),
        pytest.param(["test_id", "status", "watcher"], [[*GOOD, "{}"]], "'watcher'", id="w-err"),
        pytest.param(["test_id", "status"], [GOOD] * 10_001, "10000", id="too-many-rows"),
    ],
)
def test_a_bad_compact_batch_is_refused_with_nothing_written(
    client: SyncClient, ledger: api.Ledger, columns: list[str], rows: list[Any], fragment: str
) -> None:
    run_id = new_run(client)
    before = counts(ledger)
    content = json.dumps({"batch_key": "k", "columns": columns, "rows": rows})
    response = post_json(client, run_id, content)
    assert response.status_code == 422, response.text
    assert fragment in response.text
    assert len(response.content) < 20_000  # a megabyte value is never echoed back
    assert counts(ledger) == before


def test_nan_among_the_values_is_refused(client: SyncClient, ledger: api.Ledger) -> None:
    """Python's JSON reader takes NaN and Infinity; no database's JSON does."""
    run_id = new_run(client)
    before = counts(ledger)
    for value in ("NaN", "Infinity", "-Infinity"):
        content = (
            '{"batch_key": "k", "columns": ["test_id", "status", "cost_usd"], '
            f'"rows": [["t/x", "PASS", {value}]]}}'
        )
        response = post_json(client, run_id, content)
        assert response.status_code == 422, response.text
    assert counts(ledger) == before


def test_a_lone_surrogate_is_refused(client: SyncClient, ledger: api.Ledger) -> None:
    """No UTF-8 can carry "\\ud800": refused over HTTP (422), as in the object form."""
    run_id = new_run(client)
    before = counts(ledger)
    content = '{"batch_key": "k", "columns": ["test_id", "status"], "rows": [["t\\ud800", "PASS"]]}'
    response = post_json(client, run_id, content)
    assert response.status_code == 422, response.text
    assert counts(ledger) == before


def test_the_compact_form_is_documented(client: SyncClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert "/api/v1/ingest/runs/{run_id}/result-rows" in paths
    assert "/api/v1/ingest/runs/{run_id}/results" in paths  # the object form stays


def test_the_sink_and_the_library_name_the_same_columns() -> None:
    assert tuple(ROW_BATCH_COLUMNS) == api.ROW_BATCH_COLUMNS


_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.dictionaries(st.text(max_size=5), st.floats(allow_nan=True), max_size=3),
    st.lists(st.integers(), max_size=3),
)


_GOOD_VALUES = st.one_of(
    st.sampled_from(["PASS", "failed", "t/x", "a::b", '{"m": 1}', "{}", "2025-01-02T03:04:05Z"]),
    st.integers(min_value=0, max_value=100),
    st.floats(min_value=0, max_value=100),
)


@settings(max_examples=300, deadline=None)
@given(data=st.data(), columns=st.lists(st.sampled_from(api.ROW_BATCH_COLUMNS), unique=True))
def test_decoding_any_values_refuses_or_gives_whole_rows(
    data: st.DataObject, columns: list[str]
) -> None:
    """A parser fed anything (rows mostly of the right width, values plausible or not): a
    ValueError saying where, or rows of every stored column whose numbers are finite."""
    columns = ["test_id", "status", *[c for c in columns if c not in ("test_id", "status")]]
    row = st.lists(st.one_of(_VALUES, _GOOD_VALUES), min_size=len(columns), max_size=len(columns))
    odd = st.lists(_VALUES, max_size=len(columns) + 1)
    rows = data.draw(st.lists(st.one_of(row, row, row, odd), max_size=4))
    try:
        found = decode_rows(columns, rows)
    except ValueError as exc:
        assert str(exc).startswith(("row ", "unknown column", "a column", "the columns"))
        return
    decoded, attempts, watchers = found.rows, found.attempts, found.watchers
    assert len(decoded) == len(attempts) == len(watchers) == len(rows)
    for row in decoded:
        assert len(row) == len(ROW_COLUMNS)
        assert row[0] and isinstance(row[0], str)
        assert all(not (isinstance(v, float) and not math.isfinite(v)) for v in row)


@contextlib.contextmanager
def serving(app: Any) -> Iterator[str]:
    """``app`` served by a real uvicorn server in a thread: its URL."""
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{listening.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        listening.close()


def test_the_sink_falls_back_to_result_objects_on_an_older_server(ledger: api.Ledger) -> None:
    """A server without the compact route (an older testledger) answers 404 "Not Found": the
    batch goes again as result objects, under the same key, and later ones go so at once."""
    current = ingest_app(ledger, WRITES)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].endswith("/result-rows"):
            # What FastAPI answers for a route it does not have.
            await JSONResponse({"detail": "Not Found"}, status_code=404)(scope, receive, send)
        else:
            await current(scope, receive, send)

    token = api.create_token(ledger, "write", "old").secret
    run = api.ingest_start_run(ledger, RunInfo(branch="main", suite="s"))
    rows = [encode_result(r) for r in sample_results()]
    with serving(app) as url:
        sink = IngestClient(url, token, retry_delays=())
        try:
            assert sink.post_rows(run.run_id, "k1", rows) == 3
            assert not sink._compact  # fell back, and stays so
            assert sink.post_rows(run.run_id, "k1", rows) == 0  # the same key: stored once
            assert sink.post_rows(run.run_id, "k2", rows[:1]) == 0  # already there
        finally:
            sink.close()
    assert counts(ledger)["test_results"] == 3
    assert counts(ledger)["watcher_insights"] == 1


def test_an_unknown_run_is_no_reason_to_fall_back(ledger: api.Ledger) -> None:
    """The ingest API's own 404 (no such run) is a refusal, not an older server."""
    token = api.create_token(ledger, "write", "new").secret
    with serving(ingest_app(ledger, WRITES)) as url:
        sink = IngestClient(url, token, retry_delays=())
        try:
            with pytest.raises(DatabaseUnavailable, match="404"):
                sink.post_rows(999, "k1", [encode_result(sample_results()[1])])
            assert sink._compact
        finally:
            sink.close()


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from(sorted(_PLAIN)),
    values=st.lists(
        st.one_of(
            _VALUES,
            st.sampled_from(["PASS", "passed", "", "x" * 5000, 2**31 - 1, 2**31, 0, 1, -0.0]),
        ),
        max_size=6,
    ),
)
def test_a_column_passed_whole_is_one_each_value_passes_unchanged(
    name: str, values: list[Any]
) -> None:
    """The whole-column check (the fast path) never lets through a value the value-by-value
    check would refuse or change."""
    column = tuple(values)
    if not _PLAIN[name](column):
        return
    for value in column:
        if value is None:
            assert name not in ("test_id", "status")
        else:
            assert _CHECKS[name](value) == value


def test_a_compact_body_over_the_limit_is_refused_as_it_streams(ledger: api.Ledger) -> None:
    token = api.create_token(ledger, "write", "ci").secret
    small = WebSettings(allow_writes=True, max_body_bytes=20_000)
    with client_for(ledger, small, token) as client:
        run_id = new_run(client)
        before = counts(ledger)
        body = {"batch_key": "big", "columns": ["test_id", "status"], "rows": [GOOD] * 5000}

        async def chunks() -> Any:  # no Content-Length: counted as it streams
            data = json.dumps(body).encode()
            for start in range(0, len(data), 4096):
                yield data[start : start + 4096]

        streamed = post_json(client, run_id, chunks())
        assert streamed.status_code == 413, streamed.text
        assert counts(ledger) == before
        fits = client.post(f"{RUNS}/{run_id}/result-rows", json={**body, "rows": [GOOD]})
        assert fits.status_code == 200, fits.text


def test_the_compact_route_needs_a_write_token(ledger: api.Ledger) -> None:
    read = api.create_token(ledger, "read", "reader").secret
    body = {"batch_key": "k", "columns": ["test_id", "status"], "rows": [GOOD]}
    for token in (None, read):
        with client_for(ledger, WRITES, token) as client:
            response = client.post(f"{RUNS}/1/result-rows", json=body)
            assert response.status_code in (401, 403), response.text
    assert counts(ledger)["test_results"] == 0
