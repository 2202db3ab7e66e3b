"""Recording over HTTP: the runner API and the pytest plugin given a server's http:// URL and a
write token record into the server's ledger (SQLite and PostgreSQL) through a real uvicorn
server; a batch whose answer was lost is sent again and stored once; a server that is away or
refuses the token leaves the run in its JSON files, with one warning and nothing raised; such a
run is loaded later by `testledger sync` through the server's ingest API, once, and a sync that
cannot load it (a bad token, the server still away) leaves it pending with the reason."""

from __future__ import annotations

import contextlib
import http.server
import json
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
from testledger.record import sync as sync_module
from testledger.record.http_sink import IngestClient
from testledger.record.runner import Run
from testledger.store.encoding import format_utc
from testledger.store.tables import ingest_batches, test_results, test_runs, watcher_insights
from testledger.web.app import create_app
from testledger.web.settings import WebSettings
from tests.helpers import UNUSED_PLUGINS

pytest_plugins = ["pytester"]


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
        *UNUSED_PLUGINS,
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
        *UNUSED_PLUGINS,
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


# -- testledger sync into a server ---------------------------------------------------------------


def _dead_url() -> str:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def _spool_run(url: str, results: Path, run_key: str) -> Run:
    """A run recorded while the server at ``url`` is away: it lands in its JSON files alone,
    with an observation embedded in a result and one attached later, and a retried test."""
    with api.open_ledger(url, results_dir=results) as ledger:
        run = ledger.start_run(
            branch="main", suite="synced", run_key=run_key, detect_environment=False
        )
        for i in range(25):
            run.record(tool_name="t", variation=f"v{i}", status="PASS", duration_secs=0.1 * i)
        failing = run.record(
            tool_name="chat",
            variation="edge",
            status="FAIL",
            error_type="AssertionError",
            error_message="<script>alert(1)</script>\x00",
            watcher=WatcherObservation(quality_score=3, weaknesses=["vague"]),
        )
        run.record(tool_name="chat", variation="edge", status="PASS", attempt=2)
        run.attach_watcher(failing, WatcherObservation(quality_score=2, anomalies=["loop"]))
        run.finish()
    assert run.spooled, "the run was meant to miss the server"
    return run


def _database_state(run: Run) -> dict[str, Any]:
    state: dict[str, Any] = json.loads((run.archive.folder / "run.json").read_text())["database"]
    return state


def test_a_run_spooled_while_the_server_was_away_is_synced_over_http_once(
    server: Server,
    server_ledger: api.Ledger,
    token: str,
    tmp_path: Path,
    quick_retries: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sync_module, "_HTTP_BATCH", 10)  # three result batches
    run = _spool_run(_dead_url(), tmp_path, "spooled-1")
    assert _database_state(run)["state"] != "synced"
    with api.open_ledger(server.url, results_dir=tmp_path) as ledger:
        report = api.sync(ledger)
        assert not report.failed, report.failed
        [outcome] = report.synced
        assert (outcome.run_key, outcome.results_written, outcome.status) == (
            "spooled-1",
            27,
            "finished",
        )
        assert outcome.observations_written == 2  # the embedded one and the attached one
        state = _database_state(run)
        assert (state["state"], state["run_id"]) == ("synced", outcome.run_id)
        counts = table_counts(server_ledger)
        detail = api.show_run(server_ledger, outcome.run_id)
        assert (detail.run.status, detail.run.suite, detail.run.total_tests) == (
            "finished",
            "synced",
            26,
        )
        # The run keeps the time it finished, not the time it was synced.
        spooled = json.loads((run.archive.folder / "run.json").read_text())["finished_at"]
        assert detail.run.finished_at is not None
        assert format_utc(detail.run.finished_at)[:23] == spooled[:23]
        assert (counts["test_results"], counts["watcher_insights"]) == (27, 2)
        # Nothing left to sync; replaying it anyway (--all) sends the same batches under the
        # same keys, and the server stores nothing more.
        assert api.sync(ledger).synced == []
        again = api.sync(ledger, include_synced=True)
        assert [(o.results_written, o.observations_written) for o in again.synced] == [(0, 0)]
        assert table_counts(server_ledger) == counts
    with server_ledger.engine().connect() as connection:
        message = connection.execute(
            sa.select(test_results.c.error_message)
            .where(test_results.c.attempt == 1)
            .where(test_results.c.test_id == "chat/edge")
        ).scalar_one()
    assert message == "<script>alert(1)</script>\ufffd"  # stored as text, the NUL replaced


@pytest.mark.parametrize("case", ["bad-token", "server-away"])
def test_a_sync_over_http_that_cannot_load_leaves_the_runs_pending_saying_why(
    server: Server,
    server_ledger: api.Ledger,
    token: str,
    tmp_path: Path,
    quick_retries: None,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
) -> None:
    runs = [_spool_run(_dead_url(), tmp_path, f"pending-{i}") for i in range(2)]
    if case == "bad-token":
        url = server.url
        monkeypatch.setenv(http_sink.ENV_TOKEN, "tl_not-a-token")
    else:
        url = _dead_url()
    with api.open_ledger(url, results_dir=tmp_path) as ledger:
        report = api.sync(ledger)
    assert report.synced == []
    assert [key for key, _ in report.failed] == ["pending-0", "pending-1"]
    expected = "401" if case == "bad-token" else "cannot reach"
    assert all(expected in reason for _, reason in report.failed), report.failed
    assert all(_database_state(run)["state"] != "synced" for run in runs)
    assert table_counts(server_ledger)["test_runs"] == 0
    # With the right token and the server there, the same runs load.
    monkeypatch.setenv(http_sink.ENV_TOKEN, token)
    with api.open_ledger(server.url, results_dir=tmp_path) as ledger:
        assert [o.run_key for o in api.sync(ledger).synced] == ["pending-0", "pending-1"]


def test_a_run_that_reached_the_server_in_part_is_completed_by_sync_without_doubles(
    server_ledger: api.Ledger, token: str, tmp_path: Path, quick_retries: None
) -> None:
    """The server goes away in the middle of a run: what it stored before stays once, the rest
    comes with the sync (through the server back on another port), and the run is finished."""
    settings = WebSettings(allow_writes=True)
    with Server(server_ledger, settings) as first:
        ledger = api.open_ledger(first.url, results_dir=tmp_path)
        run = ledger.start_run(
            branch="main", suite="outage", detect_environment=False, batch_size=5
        )
        for i in range(10):
            run.record(tool_name="before", variation=str(i), status="PASS")
        run.flush(wait=True)
    before = table_counts(server_ledger)["test_results"]
    assert before >= 5  # some batches reached it
    for i in range(7):
        run.record(tool_name="after", variation=str(i), status="FAIL", error_type="E")
    run.finish()
    ledger.close()
    assert run.spooled
    with Server(server_ledger, settings) as again:
        with api.open_ledger(again.url, results_dir=tmp_path) as syncing:
            report = api.sync(syncing)
    [outcome] = report.synced
    assert outcome.results_written == 17 - before
    detail = api.show_run(server_ledger, outcome.run_id)
    assert (detail.run.status, detail.run.total_tests, detail.run.tests_failed) == (
        "finished",
        17,
        7,
    )
    assert table_counts(server_ledger)["test_results"] == 17
