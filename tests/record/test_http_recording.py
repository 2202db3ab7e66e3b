"""Recording over HTTP: the runner API and the pytest plugin given a server's http:// URL and a
write token record into the server's ledger (SQLite and PostgreSQL) through a real uvicorn
server; a batch whose answer was lost is sent again and stored once; a server that is away or
refuses the token leaves the run in its JSON files, with one warning and nothing raised."""

from __future__ import annotations

import contextlib
import http.server
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import uvicorn

from testledger import api
from testledger.errors import ConfigError
from testledger.model import RunInfo, RunStatus, WatcherObservation
from testledger.record import http_sink
from testledger.record.http_sink import IngestClient
from testledger.store.tables import ingest_batches, test_results, test_runs, watcher_insights
from testledger.web.app import create_app
from testledger.web.settings import WebSettings

pytest_plugins = ["pytester"]

_UNUSED_PLUGINS = "cacheprovider randomly hypothesispytest anyio metadata pytest_jsonreport"
COMMON = tuple(f"-pno:{name}" for name in f"{_UNUSED_PLUGINS} pytest_reportlog".split())


class Server:
    """A real uvicorn server on a free port, serving the web app in a thread of this process."""

    def __init__(self, ledger: api.Ledger, settings: WebSettings) -> None:
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(create_app(ledger, settings), log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    def __enter__(self) -> Server:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self._socket.close()


@pytest.fixture
def server_ledger(db_url: str, tmp_path: Path) -> Iterator[api.Ledger]:
    """The ledger the server writes into (its own handle, as `testledger serve` has)."""
    with api.Ledger(db_url, results_dir=tmp_path / "server-results") as ledger:
        yield ledger


@pytest.fixture
def server(server_ledger: api.Ledger) -> Iterator[Server]:
    with Server(server_ledger, WebSettings(allow_writes=True)) as running:
        yield running


@pytest.fixture
def token(server_ledger: api.Ledger, monkeypatch: pytest.MonkeyPatch) -> str:
    secret = api.create_token(server_ledger, "write", "ci").secret
    monkeypatch.setenv(http_sink.ENV_TOKEN, secret)
    return secret


@pytest.fixture
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_sink, "RETRY_DELAYS", (0.01, 0.01))


def table_counts(ledger: api.Ledger) -> dict[str, int]:
    with ledger.engine().connect() as connection:
        return {
            table.name: int(
                connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            )
            for table in (test_runs, test_results, ingest_batches, watcher_insights)
        }


def test_the_runner_api_records_through_a_server(
    server: Server, server_ledger: api.Ledger, token: str, tmp_path: Path
) -> None:
    with api.open_ledger(server.url, results_dir=tmp_path / "client") as ledger:
        run = ledger.start_run(
            branch="main",
            commit="c0ffee",
            suite="http",
            detect_environment=False,
            expected_tests=3,
            batch_size=2,
        )
        run.record(tool_name="chat", variation="basic", status="PASS", duration_secs=0.5)
        failing = run.record(
            tool_name="chat",
            variation="edge",
            status="FAIL",
            error_type="AssertionError",
            error_message="wrong",
            watcher=WatcherObservation(quality_score=4, weaknesses=["off topic"]),
        )
        run.record(tool_name="search", variation="basic", status="SKIP")
        run.attach_watcher(failing, WatcherObservation(quality_score=2, anomalies=["loop"]))
        stats = run.finish()
        assert not run.spooled, run.spool_reason
        assert run.run_id is not None
    assert (stats.total_tests, stats.tests_passed, stats.tests_failed) == (3, 1, 1)
    detail = api.show_run(server_ledger, run.run_id)
    assert (detail.run.status, detail.run.branch, detail.run.commit) == (
        "finished",
        "main",
        "c0ffee",
    )
    assert [f.test_id for f in detail.failing] == ["chat/edge"]
    counts = table_counts(server_ledger)
    assert (counts["test_results"], counts["watcher_insights"]) == (3, 2)
    with server_ledger.engine().connect() as connection:
        expected, quality = connection.execute(
            sa.select(test_runs.c.expected_tests, test_results.c.watcher_quality)
            .join(test_results, test_results.c.run_id == test_runs.c.id)
            .where(test_results.c.test_id == "chat/edge")
        ).one()
    assert (expected, quality) == (3, 2)  # the observation attached last is the result's
    # The run's JSON files were written as for any run, naming the server it went to.
    assert (run.archive.folder / "results.jsonl").read_text().count("\n") >= 3
    # Reports read the database, not the server: said plainly.
    with pytest.raises(ConfigError, match="testledger server"):
        api.list_runs(api.open_ledger(server.url))


class _LosesFirstAnswer(httpx.HTTPTransport):
    """Delivers every request, but loses the answer to the first results batch (a timeout
    after the server stored it): the client must send that batch again."""

    def __init__(self) -> None:
        super().__init__()
        self.lost = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.url.path.endswith("/results") and not self.lost:
            self.lost += 1
            response.read()
            raise httpx.ReadTimeout("answer lost", request=request)
        return response


def test_a_batch_whose_answer_was_lost_is_stored_once(
    server: Server, server_ledger: api.Ledger, token: str, quick_retries: None
) -> None:
    transport = _LosesFirstAnswer()
    client = IngestClient(server.url, token, transport=transport)
    try:
        row = client.create_run(RunInfo(branch="main", suite="retry"), "retry-run")
        results: list[dict[str, Any]] = [
            {"test_id": f"t::test_{i}", "status": "PASS", "attempt": 1} for i in range(40)
        ]
        stored = client.post_results(row.id, "batch-1", results)
        stats = client.finish(row.id, RunStatus.FINISHED, None, 1.0, detect_issues=False)
    finally:
        client.close()
    assert transport.lost == 1
    assert stored == 0  # the retry found the batch stored by the lost attempt
    assert stats.total_tests == 40
    counts = table_counts(server_ledger)
    assert (counts["test_results"], counts["ingest_batches"]) == (40, 1)


def test_a_server_away_leaves_the_run_in_its_files_with_one_warning(
    tmp_path: Path, quick_retries: None, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    caplog.set_level(logging.WARNING, logger="testledger")
    with api.open_ledger(url, results_dir=tmp_path) as ledger:
        run = ledger.start_run(branch="main", detect_environment=False)
        for i in range(5):
            run.record(tool_name="t", variation=str(i), status="PASS")
        stats = run.finish()
    assert run.spooled and "cannot reach" in (run.spool_reason or "")
    assert stats.total_tests == 5  # from the JSON files
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "unavailable" in warnings[0].getMessage()


@pytest.mark.parametrize("case", ["no-token", "read-token", "read-only-server"])
def test_a_refused_run_goes_to_the_spool_saying_why(
    server_ledger: api.Ledger,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    case: str,
) -> None:
    monkeypatch.delenv(http_sink.ENV_TOKEN, raising=False)
    if case != "no-token":
        scope = "read" if case == "read-token" else "write"
        monkeypatch.setenv(http_sink.ENV_TOKEN, api.create_token(server_ledger, scope).secret)
    settings = WebSettings(allow_writes=case != "read-only-server")
    caplog.set_level(logging.WARNING, logger="testledger")
    with Server(server_ledger, settings) as server:
        with api.open_ledger(server.url, results_dir=tmp_path) as ledger:
            run = ledger.start_run(branch="main", detect_environment=False)
            run.record(tool_name="t", variation="v", status="PASS")
            run.finish()
    expected = {
        "no-token": "TESTLEDGER_TOKEN",
        "read-token": "may only read",
        "read-only-server": "--allow-writes",
    }[case]
    assert run.spooled and expected in (run.spool_reason or "")
    assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) == 1
    assert table_counts(server_ledger)["test_runs"] == 0


SUITE = """
import pytest

def test_one():
    pass

def test_two():
    assert 1 == 2

@pytest.mark.skip(reason="not today")
def test_three():
    pass

@pytest.mark.parametrize("n", [1, 2])
def test_param(n):
    pass
"""


def test_the_pytest_plugin_records_over_http(
    pytester: pytest.Pytester, server: Server, server_ledger: api.Ledger, token: str
) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest_subprocess(
        *COMMON,
        f"--ledger={server.url}",
        f"--ledger-results-dir={pytester.path / 'results'}",
        "--ledger-suite=over-http",
        "--ledger-branch=ci",
    )
    result.assert_outcomes(passed=3, failed=1, skipped=1)
    assert "recorded 5 results" in result.stdout.str()
    runs = api.list_runs(server_ledger)
    assert len(runs) == 1
    run = runs[0]
    assert (run.suite, run.branch, run.status, run.source) == (
        "over-http",
        "ci",
        "finished",
        "pytest",
    )
    assert (run.total_tests, run.tests_passed, run.tests_failed, run.tests_skipped) == (5, 3, 1, 1)
    with server_ledger.engine().connect() as connection:
        expected = connection.execute(
            sa.select(test_runs.c.expected_tests).where(test_runs.c.id == run.id)
        ).scalar_one()
    assert expected == 5
    assert [f.test_id for f in api.show_run(server_ledger, run.id).failing] == [
        "test_suite.py::test_two"
    ]


def test_the_runner_notes_the_expected_count_in_a_database(ledger: api.Ledger) -> None:
    run = ledger.start_run(branch="main", detect_environment=False, expected_tests=7)

    def expected() -> int | None:
        with ledger.engine().connect() as connection:
            value: int | None = connection.execute(
                sa.select(test_runs.c.expected_tests).where(test_runs.c.id == run.run_id)
            ).scalar_one()
        return value

    assert expected() == 7
    run.expect_tests(9)
    assert expected() == 9
    run.finish()


def test_the_plugin_notes_the_collected_count_under_xdist_too(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    """Straight into a database, with pytest-xdist's workers collecting: the run row says how
    many tests to expect (a live run's progress). SQLite only: the write is the runner's
    (tested on both databases above), what is tested here is the plugin's hook."""
    db_url = f"sqlite:///{tmp_path / 'xdist.db'}"
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest_subprocess(
        *COMMON,
        f"--ledger={db_url}",
        f"--ledger-results-dir={pytester.path / 'results'}",
        "-n",
        "2",
    )
    result.assert_outcomes(passed=3, failed=1, skipped=1)
    with api.Ledger(db_url) as ledger, ledger.engine().connect() as connection:
        expected, total = connection.execute(
            sa.select(test_runs.c.expected_tests, test_runs.c.total_tests)
        ).one()
    assert (expected, total) == (5, 5)


class _NotTestledger(http.server.BaseHTTPRequestHandler):
    """A web server that is not testledger's: 200 and a page for anything posted."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b"<html>hello</html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.parametrize("target", ["not-testledger", "bad-url"])
def test_a_ledger_url_that_is_no_testledger_server_never_raises(
    tmp_path: Path, quick_retries: None, caplog: pytest.LogCaptureFixture, target: str
) -> None:
    caplog.set_level(logging.WARNING, logger="testledger")
    with contextlib.ExitStack() as stack:
        if target == "not-testledger":
            httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotTestledger)
            threading.Thread(target=httpd.serve_forever, daemon=True).start()
            stack.callback(httpd.server_close)
            stack.callback(httpd.shutdown)
            url = f"http://127.0.0.1:{httpd.server_address[1]}"
        else:
            url = "http://127.0.0.1:99999999"
        with api.open_ledger(url, results_dir=tmp_path) as ledger:
            run = ledger.start_run(branch="main", detect_environment=False, expected_tests=1)
            run.record(tool_name="t", variation="v", status="PASS")
            stats = run.finish()
    assert run.spooled and stats.total_tests == 1
    expected = "no JSON object" if target == "not-testledger" else "99999999"
    assert expected in (run.spool_reason or "")
    assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) == 1
