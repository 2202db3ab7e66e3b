"""testledger's pytest plugin: ``pytest --ledger`` records the session as one run.

Off unless asked for (``--ledger``, ``--ledger=URL``, or ``ledger = true`` / ``ledger_url = ...``
in pytest's ini options). pytest loads this module in every session through its ``pytest11``
entry point, so at import it pulls in nothing but pytest and the standard library.

Two roles, so that pytest-xdist gives one run with every worker's results:

* measuring (every process that runs tests: the only process without xdist, each worker with
  it): CPU and memory of each test and the ``ledger`` fixture's / marker's data, put on the
  test's teardown report, which xdist ships to the controller (see
  :mod:`testledger.record.pytest_measure`);
* recording (the process that is not an xdist worker): folds each test's setup / call /
  teardown reports into one item (a passing test: a small tuple; anything else: a
  :class:`~testledger.model.TestResult`) and hands batches of them to a writer process
  (:mod:`testledger.record.writer_client`). That process, on another core, imports SQLAlchemy,
  writes the JSON spool and the database, and finishes the run; the session itself never
  imports SQLAlchemy or the driver (bench/pytest_overhead.py: their import, their garbage and
  the database work were most of the plugin's cost per test). Should the writer die, this
  process records the rest of the run into the spool itself, with one warning line.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import pytest

from testledger.common.text import visible

# The ``ledger`` fixture is imported here for pytest to find: it looks for a plugin's fixtures
# in the plugin module.
from testledger.record.pytest_measure import (
    LEDGER_FIELDS,
    PAYLOAD_ATTR,
    LedgerHandle,
    Measure,
    WorkerMeasure,
    ledger,
)

if TYPE_CHECKING:
    from testledger.config import Settings
    from testledger.model import WatcherObservation
    from testledger.record.runner import Run
    from testledger.record.writer_client import WriterClient
    from testledger.record.writer_process import LogCollector

__all__ = ["LEDGER_FIELDS", "LedgerHandle", "ledger", "passing_compact"]

#: A batch goes to the writer when it holds this many results, or once this long has passed
#: since the last one went: a slow suite's results still reach the spool and the database
#: within a second or so, and the session's end waits for no more than one small batch.
BATCH_ITEMS = 250
BATCH_SECS = 0.5

_SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")


# -- options ----------------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("testledger", "record this session into a testledger database")
    group.addoption(
        "--ledger",
        dest="testledger_url",
        nargs="?",
        const="",
        default=None,
        metavar="URL",
        help="record the session as one run: into URL when given as --ledger=URL, else into "
        "the configured database (TESTLEDGER_DATABASE_URL, [tool.testledger], "
        ".testledger/ledger.db)",
    )
    group.addoption("--ledger-suite", dest="testledger_suite", help="the run's suite name")
    group.addoption(
        "--ledger-run-key",
        dest="testledger_run_key",
        help="idempotency key: a run recorded again under the same key is the same run",
    )
    group.addoption(
        "--ledger-branch", dest="testledger_branch", help="branch (default: CI, then git)"
    )
    group.addoption(
        "--ledger-commit", dest="testledger_commit", help="commit (default: CI, then git)"
    )
    group.addoption(
        "--ledger-results-dir",
        dest="testledger_results_dir",
        help="folder for the run's JSON files and spool (default .testledger/results)",
    )
    group.addoption(
        "--watcher",
        dest="testledger_watcher",
        metavar="NAME",
        help="watch the recorded run when it finishes (heuristic, llm, or an installed watcher)",
    )
    group.addoption(
        "--ledger-wait-detection",
        dest="testledger_wait_detection",
        action="store_true",
        help="wait for the run's issue detection before pytest exits (by default it goes on "
        "in the background after 0.1 s; the next recording or `testledger detect` completes "
        "it should it be stopped)",
    )
    parser.addini("ledger", type="bool", default=False, help="record every session (testledger)")
    parser.addini(
        "ledger_url",
        default="",
        help="database URL to record into; setting it turns recording on (testledger)",
    )


def _wanted_url(config: pytest.Config) -> tuple[bool, str | None]:
    """Whether to record, and the URL asked for (None: the configured default)."""
    cli: str | None = config.getoption("testledger_url")
    if cli is not None:
        if cli and "://" not in cli and not cli.endswith(_SQLITE_SUFFIXES):
            # argparse gives --ledger's optional value the next word: `pytest --ledger tests/`.
            raise pytest.UsageError(
                f"--ledger got {cli!r}, which is not a database URL; write the URL as "
                "--ledger=URL, or put test paths before --ledger"
            )
        return True, cli or str(config.getini("ledger_url")) or None
    ini_url = str(config.getini("ledger_url"))
    return bool(config.getini("ledger")) or bool(ini_url), ini_url or None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "ledger(**fields): store provider, model, tokens, cost, execution_status, tool_name or "
        "variation with the test's result (testledger)",
    )
    enabled, url = _wanted_url(config)
    if not enabled:
        return
    if hasattr(config, "workerinput"):  # a pytest-xdist worker: it measures, the controller records
        config.pluginmanager.register(WorkerMeasure(config), "testledger-measure")
    else:
        config.pluginmanager.register(_Recorder(config, url), "testledger-recorder")


# -- recording: the controller -----------------------------------------------------------------


def passing_compact(
    teardown: pytest.TestReport,
    earlier: Sequence[pytest.TestReport],
    attempt: int,
    payload: Mapping[str, Any] | None,
) -> tuple[Any, ...] | None:
    """The common case as a compact tuple (``writer_pipe.COMPACT_FIELDS``): a test whose setup,
    call and teardown passed, with no captured output or log and nothing from the ``ledger``
    fixture or marker. None for anything else (which becomes a full TestResult).

    The writer expands the tuple into the row ``encode_result(build_result(...)[0])`` gives (a
    test compares them): most tests of a suite take this path, and it costs the session a
    tuple instead of a result. ``payload``: the test's measurements (see PAYLOAD_ATTR)."""
    if len(earlier) != 2:
        return None
    setup, call = earlier
    # Plain attribute and __dict__ reads: hasattr() on a missing attribute raises and catches
    # AttributeError, which cost more than the rest of this function (bench/pytest_overhead.py).
    if (
        setup.when != "setup"
        or call.when != "call"
        or setup.outcome != "passed"
        or call.outcome != "passed"
        or teardown.outcome != "passed"
        or "wasxfail" in call.__dict__
        or teardown.sections
    ):
        return None
    if payload is None:
        payload = {}
    elif "fields" in payload or "metrics" in payload or "watch" in payload:
        return None
    # Summed in build_result's order: the same float.
    duration = teardown.duration + setup.duration + call.duration
    return (teardown.nodeid, attempt, duration, setup.start, payload.get("rss"), payload.get("cpu"))


class _Recorder:
    """Records the session's results; measures the tests that run in this process too (all of
    them without xdist, none in xdist's controller) itself, through a Measure it does not
    register: one hook call per report instead of two (bench/pytest_overhead.py).

    The run is finished in two steps, so that the writer's end of it (its last batch, the
    statistics, issue detection) overlaps with the end of pytest's own session: asked for as
    the session finishes (tryfirst), waited for when the summary is printed (trylast), or at
    the latest when pytest unconfigures."""

    def __init__(self, config: pytest.Config, url: str | None) -> None:
        # Measures the tests that run in this process: all of them, unless xdist runs them in
        # its workers (see pytest_sessionstart).
        self._measure: Measure | None = Measure(config)
        self.config = config
        self.url = url
        self.recorded = 0
        self.problems: list[str] = []
        self.interrupted: str | None = None
        self.finished = False
        #: How the run ends (status, notes, the session's duration), once _finish has run.
        self._ending: tuple[str, str | None, float] | None = None
        self.settings: Settings | None = None
        self.options: dict[str, Any] = {}
        #: The writer's report once the run is finished (see writer_process).
        self.summary: dict[str, Any] | None = None
        #: Set when the writer died: why, and the run this process spools into instead.
        self.writer_death: str | None = None
        #: Whether the writer was left detecting the run's issues after the session.
        self.detecting_after_exit = False
        self.fallback: Run | None = None
        self._fallback_logs: LogCollector | None = None
        self._client: WriterClient | None = None
        self._open: dict[str, list[pytest.TestReport]] = {}
        self._attempts: dict[str, int] = {}
        self._batch: list[Any] = []
        self._last_sent = time.monotonic()
        self._expected_sent = False
        #: When the session started: the run's duration is the session's, not the writer's
        #: (whose Run starts once its imports are done, with tests already running).
        self._session_clock = time.monotonic()

    @property
    def writer_pid(self) -> int | None:
        return None if self._client is None else self._client.pid

    # -- session ---------------------------------------------------------------------------

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        from testledger.common.run_keys import new_run_key
        from testledger.config import load_settings
        from testledger.errors import ConfigError

        if self.config.pluginmanager.has_plugin("dsession"):
            # pytest-xdist's controller: the workers measure their tests (WorkerMeasure).
            self._measure = None
        option = self.config.option
        watcher = getattr(option, "testledger_watcher", None)
        try:
            self.settings = load_settings(self.url, option.testledger_results_dir)
            if watcher is not None:
                # The run is watched when it finishes; a watcher that cannot work (unknown, or
                # the llm one with no endpoint or key) is refused now, before a test runs.
                from testledger.analyze.watcher import load_watcher

                load_watcher(watcher, self.settings.tool)
        except ConfigError as exc:
            raise pytest.UsageError(f"testledger: {exc}") from None
        started = datetime.now(timezone.utc)
        self._session_clock = time.monotonic()
        self.options = {
            "branch": option.testledger_branch,
            "commit": option.testledger_commit,
            "suite": option.testledger_suite,
            "run_key": option.testledger_run_key or new_run_key(started),
            "started_at": started,
            "source": "pytest",
            "watcher": watcher,
            "metadata": {
                "pytest": {
                    "version": pytest.__version__,
                    # Masked by the writer (start_run), which has the URL masking at hand.
                    "args": [str(arg) for arg in self.config.invocation_params.args],
                    "rootdir": str(self.config.rootpath),
                    "xdist_workers": getattr(option, "numprocesses", None),
                }
            },
        }
        from testledger.record.writer_client import WriterClient, WriterDied

        try:
            self._client = WriterClient(self.settings, self.options)
        except WriterDied as exc:
            self._take_over(str(exc))
        except Exception as exc:
            # No writer process here (it could not be started, or this platform's pipes do
            # not do what WriterClient needs): record in this process instead, as a runner
            # would, into the database and the spool.
            self._take_over(f"the writer process did not start: {exc}", offline=False)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if self._measure is not None:
            self._measure.collected(session.config, session.items)
        if session.items:  # under xdist the workers collect: see the hook below
            self._expect(len(session.items))

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: Sequence[str]) -> None:
        if not self._expected_sent:  # every worker collects the whole session
            self._expect(len(ids))

    def _expect(self, count: int) -> None:
        """Tell the run how many tests it will hold: a live run's progress."""
        self._expected_sent = True
        if self._client is not None:
            from testledger.record.writer_client import WriterDied

            try:
                self._client.expect(count)
            except WriterDied as exc:
                self._take_over(str(exc))
        elif self.fallback is not None:
            self.fallback.expect_tests(count)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """The hot path: runs in the controller for every phase of every test."""
        if self.settings is None:  # nothing can be recorded
            return
        when = report.when
        nodeid = report.nodeid
        if when == "setup" or when == "call":
            opened = self._open.get(nodeid)
            if opened is None:
                self._open[nodeid] = [report]
            else:
                opened.append(report)
            if when == "setup" and self._measure is not None:
                self._measure.begin(nodeid)
            return
        payload: dict[str, Any] | None = None
        if when == "teardown":
            if self._measure is not None:
                payload = self._measure.payload(nodeid)
            else:  # measured by an xdist worker
                payload = report.__dict__.get(PAYLOAD_ATTR)
        earlier = self._open.pop(nodeid, None) or []
        attempt = self._attempts.get(nodeid, 0) + 1
        self._attempts[nodeid] = attempt
        try:
            item: Any = None
            if when == "teardown":
                item = passing_compact(report, earlier, attempt, payload)
                if item is None and payload is not None:
                    # Where build_result looks for it (an xdist worker's report has it).
                    setattr(report, PAYLOAD_ATTR, payload)
            if item is None:
                item = _full_item(report, earlier, attempt)
        except Exception as exc:  # a result we cannot store must not stop the tests
            if len(self.problems) < 5:
                self.problems.append(f"{nodeid}: {type(exc).__name__}: {exc}")
            return
        self.recorded += 1
        batch = self._batch
        batch.append(item)
        if len(batch) >= BATCH_ITEMS or time.monotonic() - self._last_sent >= BATCH_SECS:
            self._send()

    def _send(self) -> None:
        batch, self._batch = self._batch, []
        self._last_sent = time.monotonic()
        if not batch:
            return
        if self._client is not None:
            from testledger.record.writer_client import WriterDied

            try:
                self._client.submit(batch)
            except WriterDied as exc:
                self._take_over(str(exc))
            return
        if self.fallback is not None:
            from testledger.record.writer_process import record_items

            record_items(self.fallback, batch, self.problems)

    def _take_over(self, reason: str, *, offline: bool = True) -> None:
        """The writer died: record what it did not acknowledge, and the rest of the run, into
        the run's spool from here (``testledger sync`` loads it later). Not ``offline``: into
        the database too, from this process (the writer never started)."""
        from testledger.record.writer_process import collect_logs, record_items, start_run

        items = self._client.unacknowledged() if self._client is not None else []
        self._client = None
        if offline:
            self.writer_death = reason
        self._fallback_logs = collect_logs()
        assert self.settings is not None
        try:
            self.fallback = start_run(
                self.settings, self.options, offline=reason if offline else None
            )
        except Exception as exc:
            self.problems.append(f"could not spool the run: {type(exc).__name__}: {exc}")
            self.settings = None  # nothing more can be recorded
            return
        record_items(self.fallback, items, self.problems)

    def _wall_clock(self) -> float:
        return time.monotonic() - self._session_clock

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        self.interrupted = f"interrupted: {excinfo.typename}: {excinfo.value}".strip(": ")

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self._finish(exitstatus)

    def _finish(self, exitstatus: int | None) -> None:
        """Send the last batch and ask the writer to finish the run (see _await_writer)."""
        if self.settings is None or self.finished:
            return
        self.finished = True
        notes = self.interrupted
        if notes is None and exitstatus in (
            pytest.ExitCode.INTERRUPTED,
            pytest.ExitCode.INTERNAL_ERROR,
        ):
            notes = f"aborted: pytest exit status {int(exitstatus)}"
        status = "finished" if notes is None else "aborted"
        self._ending = (status, notes, self._wall_clock())
        self._send()
        if self._client is not None:
            from testledger.record.writer_client import WriterDied

            try:
                self._client.finish(status, notes, self._ending[2])
            except WriterDied as exc:
                self._take_over(str(exc))
        if self.fallback is not None:
            self._finish_fallback()

    def _await_writer(self) -> None:
        """Wait for the writer to have finished the run: its summary, or, should it have died
        meanwhile, the run finished from here."""
        if self._client is None or self._ending is None or self.summary is not None:
            return
        from testledger.record.writer_client import WriterDied

        try:
            self.summary = self._client.wait_finished()
            if self.summary.get("detecting"):
                self._await_detection(self._client)
        except WriterDied as exc:
            self._take_over(str(exc))
            if self.fallback is not None:
                self._finish_fallback()

    def _await_detection(self, client: WriterClient) -> None:
        """Issue detection follows the finished run in the writer, and reads the history: the
        session waits for it DETECTION_WAIT_SECS at most (unless --ledger-wait-detection), and
        otherwise leaves the writer to finish it after pytest has exited."""
        from testledger.record.writer_client import DETECTION_WAIT_SECS

        assert self.summary is not None
        wait = None if self.config.getoption("testledger_wait_detection") else DETECTION_WAIT_SECS
        detected, errors = client.wait_detected(wait)
        self.summary["errors"] = [*self.summary.get("errors", ()), *errors]
        self.detecting_after_exit = not detected

    def _finish_fallback(self) -> None:
        from testledger.model import RunStatus

        assert self.fallback is not None and self._ending is not None
        status, notes, wall_clock = self._ending
        try:
            self.fallback.finish(RunStatus(status), notes, wall_clock_secs=wall_clock)
        except Exception as exc:
            self.problems.append(f"could not finish the run: {type(exc).__name__}: {exc}")

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        self._await_writer()
        for line, warning in self.summary_lines():
            terminalreporter.write_line(line, yellow=warning)

    def summary_lines(self) -> list[tuple[str, bool]]:
        """The lines to print, each with whether it is a warning."""
        summary = self.summary or {}
        fallback = self.fallback
        if fallback is not None:  # recorded in this process
            from testledger.record.writer_process import run_summary

            summary = {
                **run_summary(fallback),
                "errors": self._fallback_logs.messages if self._fallback_logs else [],
            }
        lines = self._where_recorded(summary, taken_over=fallback is not None)
        # Anything else the runner logged (not the outage it already said it went around).
        messages = [*summary.get("errors", ()), *self.problems, *summary.get("problems", ())]
        lines.extend((f"testledger: {message}", False) for message in messages)
        # Test ids, paths, settings and messages are data: never raw to the terminal.
        return [(visible(line), warning) for line, warning in lines]

    def _where_recorded(
        self, summary: dict[str, Any], *, taken_over: bool
    ) -> list[tuple[str, bool]]:
        """Where the session's results went: the database, the run's files (its JSON spool),
        both, or, when neither could take them, nowhere; and whether detection goes on."""
        noun = "result" if self.recorded == 1 else "results"
        files = summary.get("folder")
        failed = summary.get("files_failed")
        unwritable = f"the run's files cannot be written in {files} ({failed})"
        died = self.writer_death if taken_over else None
        if died is None and summary.get("run_key") is None:
            return []
        if died is not None or summary["spool_reason"] is not None:
            why = (
                died
                if died is not None
                else f"database {summary['url']} unreachable ({summary['spool_reason']})"
            )
            if failed is not None:
                return [
                    (
                        f"testledger: {why}, and {unwritable}: the {self.recorded} {noun} of "
                        f"run {summary['run_key']} are recorded nowhere",
                        True,
                    )
                ]
            return [
                (
                    f"testledger: {why}; recorded {self.recorded} {noun} (run "
                    f"{summary['run_key']}) to {files}; load it with `testledger sync`",
                    True,
                )
            ]
        lines = [
            (
                f"testledger: recorded {self.recorded} {noun} (run {summary['run_id']}) into "
                f"{summary['url']}",
                False,
            )
        ]
        if failed is not None:
            lines.append((f"testledger: {unwritable}: the database alone holds the run", True))
        if self.detecting_after_exit:
            lines.append(
                (
                    f"testledger: issue detection of run {summary['run_id']} goes on in the "
                    f"background (process {self.writer_pid}); should it be stopped, the "
                    "next recording or `testledger detect` completes it",
                    False,
                )
            )
        return lines

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        # A session that never reached sessionfinish (an internal error) still closes its run;
        # one that printed no summary (-p no:terminal) waits for the writer here.
        self._finish(pytest.ExitCode.INTERNAL_ERROR)
        self._await_writer()
        if self._client is not None:
            self._client.close(detach=self.detecting_after_exit)
            self._client = None


def _full_item(
    report: pytest.TestReport, earlier: list[pytest.TestReport], attempt: int
) -> tuple[Any, list[WatcherObservation]]:
    """Any test but a plain pass, as a TestResult and the watcher observations beyond its
    first; the support module (and testledger.model) are imported at the first such test."""
    from testledger.record.pytest_support import build_result, crashed_result

    if report.when == "teardown":
        result, extra = build_result(report, earlier)
    else:  # xdist's report for a test whose worker crashed
        result, extra = crashed_result(report), []
    result.attempt = attempt
    return result, extra
