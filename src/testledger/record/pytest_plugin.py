"""testledger's pytest plugin: ``pytest --ledger`` records the session as one run.

Off unless asked for (``--ledger``, ``--ledger=URL``, or ``ledger = true`` / ``ledger_url = ...``
in pytest's ini options). pytest loads this module in every session through its ``pytest11``
entry point, so at import it pulls in nothing but pytest and the standard library: SQLAlchemy,
the runner and :mod:`testledger.record.pytest_support` are imported once a session turns
recording on.

Two roles, so that pytest-xdist gives one run with every worker's results:

* measuring (every process that runs tests: the only process without xdist, each worker with
  it): CPU and memory of each test and the ``ledger`` fixture's / marker's data, put on the
  test's teardown report as the ``testledger`` attribute, which xdist ships to the controller
  with the rest of the report;
* recording (the process that is not an xdist worker): folds each test's setup / call /
  teardown reports into one result and hands it to :class:`~testledger.record.runner.Run`,
  which writes the JSON spool at once and the database in batches on a background thread.

Memory is the RSS in MB right after the test (/proc/self/statm on Linux, psutil elsewhere), or
without either the process's peak
RSS so far (``getrusage`` ``ru_maxrss``). CPU is the process's CPU time during the test over its
wall time, in percent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from testledger.model import TestResult, WatcherObservation
    from testledger.record.runner import Run

    _Build = Callable[
        [pytest.TestReport, list[pytest.TestReport]], tuple[TestResult, list[WatcherObservation]]
    ]

__all__ = ["LEDGER_FIELDS", "LedgerHandle"]

#: What ``ledger.set(...)`` and ``@pytest.mark.ledger(...)`` may set on a test's result.
LEDGER_FIELDS = frozenset(
    {
        "provider",
        "model",
        "tokens_total",
        "tokens_input",
        "tokens_output",
        "cost_usd",
        "execution_status",
        "tool_name",
        "variation",
    }
)

_LOGGER = "testledger"
_SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")


class LedgerHandle:
    """What the ``ledger`` fixture gives a test: data to store with its result.

    It works the same whether recording is on or off (off, the data is simply not stored), so
    a suite using it runs unchanged without ``--ledger``."""

    __slots__ = ("fields", "metrics", "observations")

    def __init__(self) -> None:
        self.fields: dict[str, Any] = {}
        self.metrics: dict[str, float] = {}
        self.observations: list[dict[str, Any]] = []

    def set(self, **fields: Any) -> None:
        """Set result fields: provider, model, tokens_total, tokens_input, tokens_output,
        cost_usd, execution_status, tool_name, variation."""
        check_fields(fields, "ledger.set()")
        self.fields.update(fields)

    def metric(self, name: str, value: float) -> None:
        """Record a custom number (stored in ``test_results.metrics``)."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"ledger.metric({name!r}): value must be a number, got {value!r}")
        self.metrics[str(name)] = value

    def watch(self, observation: WatcherObservation | None = None, /, **fields: Any) -> None:
        """Attach a watcher verdict: a WatcherObservation, or its fields as keywords."""
        from testledger.model import WatcherObservation, utcnow

        if observation is None:
            observation = WatcherObservation(**fields)
        elif fields:
            raise TypeError("pass either a WatcherObservation or keyword fields, not both")
        if observation.created_at is None:
            observation.created_at = utcnow()
        # As JSON: it travels to the xdist controller inside the test's report.
        self.observations.append(observation.as_json())


def check_fields(fields: Mapping[str, Any], where: str) -> None:
    unknown = sorted(set(fields) - LEDGER_FIELDS)
    if unknown:
        raise TypeError(
            f"{where}: unknown field(s) {', '.join(unknown)}; "
            f"expected some of {', '.join(sorted(LEDGER_FIELDS))}"
        )


_HANDLE = pytest.StashKey[LedgerHandle]()


@pytest.fixture
def ledger(request: pytest.FixtureRequest) -> LedgerHandle:
    """Store provider, model, tokens, cost, custom metrics and watcher verdicts with this
    test's result: ``ledger.set(...)``, ``ledger.metric(name, value)``, ``ledger.watch(...)``."""
    handle = LedgerHandle()
    request.node.stash[_HANDLE] = handle
    return handle


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
    config.pluginmanager.register(_Measure(), "testledger-measure")
    if not hasattr(config, "workerinput"):  # not a pytest-xdist worker
        config.pluginmanager.register(_Recorder(config, url), "testledger-recorder")


# -- measuring: wherever tests run -------------------------------------------------------------


class _Measure:
    """Measures each test where it runs and puts the measurements, with the fixture's and
    marker's data, on its teardown report.

    Two plain hooks, no hook wrapper: the measurement is taken when the teardown report is
    logged, which pytest does right after the teardown phase (the fixtures are gone, the
    test's memory is what is left, and it happens even when teardown raised)."""

    def __init__(self) -> None:
        from testledger.record.pytest_support import PAYLOAD_ATTR, cpu_percent, rss_reader

        self._attr = PAYLOAD_ATTR
        self._cpu_percent = cpu_percent
        self._rss, self.memory_kind = rss_reader()
        # nodeid -> (the item, wall and CPU clocks at setup, the marker's fields)
        self._started: dict[str, tuple[pytest.Item, float, float, dict[str, Any] | None]] = {}

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        # Called for every attempt (pytest-rerunfailures runs the protocol again).
        marked: dict[str, Any] | None = None
        for mark in item.iter_markers("ledger"):
            check_fields(mark.kwargs, "@pytest.mark.ledger")
            # iter_markers goes from the closest node out: the closest one wins.
            marked = {**mark.kwargs, **(marked or {})}
        self._started[item.nodeid] = (item, time.perf_counter(), time.process_time(), marked)

    def _payload(
        self, start: tuple[pytest.Item, float, float, dict[str, Any] | None]
    ) -> dict[str, Any]:
        wall, cpu = time.perf_counter(), time.process_time()
        item, start_wall, start_cpu, fields = start
        payload: dict[str, Any] = {
            "rss": self._rss(),
            "cpu": self._cpu_percent(cpu - start_cpu, wall - start_wall),
        }
        handle = item.stash.get(_HANDLE, None)
        if handle is not None:
            del item.stash[_HANDLE]  # a rerun gets a fresh fixture
            fields = {**(fields or {}), **handle.fields}
            if handle.metrics:
                payload["metrics"] = handle.metrics
            if handle.observations:
                payload["watch"] = handle.observations
        if fields:
            payload["fields"] = fields
        return payload

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # tryfirst: before xdist's worker serialises the report, and before the recorder.
        # Only a test that ran in this process: an xdist controller also sees the reports
        # of its workers' tests, which already carry their measurements.
        if report.when == "teardown":
            start = self._started.pop(report.nodeid, None)
            if start is not None:
                setattr(report, self._attr, self._payload(start))


# -- recording: the controller -----------------------------------------------------------------


class _LogCollector(logging.Handler):
    """Holds the runner's log records, so that they become one summary line instead of text
    printed wherever pytest's log capture happens to be at the time."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class _Recorder:
    def __init__(self, config: pytest.Config, url: str | None) -> None:
        self.config = config
        self.url = url
        self.run: Run | None = None
        self.recorded = 0
        self.problems: list[str] = []
        self.interrupted: str | None = None
        self.finished = False
        self._open: dict[str, list[pytest.TestReport]] = {}
        self._build: _Build | None = None
        self._passing_row: (
            Callable[[pytest.TestReport, list[pytest.TestReport]], tuple[Any, ...] | None] | None
        ) = None
        self._crashed: Callable[[pytest.TestReport], TestResult] | None = None
        self._logger = logging.getLogger(_LOGGER)
        self._collector = _LogCollector()
        self._propagate = self._logger.propagate

    # -- session ---------------------------------------------------------------------------

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self._logger.addHandler(self._collector)
        self._logger.propagate = False
        option = self.config.option
        try:
            import pytest as _pytest

            from testledger.errors import ConfigError
            from testledger.record.pytest_support import build_result, crashed_result, passing_row
            from testledger.record.runner import Ledger
            from testledger.store.engine import mask_urls_in

            try:
                ledger = Ledger(self.url, results_dir=option.testledger_results_dir)
            except ConfigError as exc:
                raise pytest.UsageError(f"testledger: {exc}") from None
            args = [mask_urls_in(str(arg)) for arg in self.config.invocation_params.args]
            self.run = ledger.start_run(
                branch=option.testledger_branch,
                commit=option.testledger_commit,
                suite=option.testledger_suite,
                run_key=option.testledger_run_key,
                source="pytest",
                watcher=getattr(option, "testledger_watcher", None),
                metadata={
                    "pytest": {
                        "version": _pytest.__version__,
                        "args": args,
                        "rootdir": str(self.config.rootpath),
                        "xdist_workers": getattr(option, "numprocesses", None),
                    }
                },
            )
        except pytest.UsageError:
            raise
        except Exception as exc:  # never fail the session over recording
            self.problems.append(f"could not start the run: {type(exc).__name__}: {exc}")
            self.problems[-1] = _mask(self.problems[-1])
            return
        self._build = build_result
        self._crashed = crashed_result
        self._passing_row = passing_row

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """The hot path: runs in the controller for every phase of every test."""
        when = report.when
        if when == "setup" or when == "call":
            opened = self._open.get(report.nodeid)
            if opened is None:
                self._open[report.nodeid] = [report]
            else:
                opened.append(report)
            return
        run, build, crashed = self.run, self._build, self._crashed
        if run is None or build is None or crashed is None:
            return
        earlier = self._open.pop(report.nodeid, None) or []
        try:
            if when == "teardown":
                row = self._passing_row(report, earlier) if self._passing_row else None
                if row is not None:  # most tests: no TestResult built
                    run.record_row(row)
                    self.recorded += 1
                    return
                result, extra = build(report, earlier)
            else:  # xdist's report for a test whose worker crashed
                result, extra = crashed(report), []
            ref = run.record(result)
            for observation in extra:
                run.attach_watcher(ref, observation)
            self.recorded += 1
        except Exception as exc:  # a result we cannot store must not stop the tests
            if len(self.problems) < 5:
                self.problems.append(f"{report.nodeid}: {type(exc).__name__}: {exc}")

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        self.interrupted = f"interrupted: {excinfo.typename}: {excinfo.value}".strip(": ")

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self._finish(exitstatus)

    def _finish(self, exitstatus: int | None) -> None:
        run = self.run
        if run is None or self.finished:
            return
        self.finished = True
        interrupted = self.interrupted
        if interrupted is None and exitstatus in (
            pytest.ExitCode.INTERRUPTED,
            pytest.ExitCode.INTERNAL_ERROR,
        ):
            interrupted = f"aborted: pytest exit status {int(exitstatus)}"
        try:
            if interrupted is not None:
                run.abort(interrupted)
            else:
                run.finish()
        except Exception as exc:
            self.problems.append(f"could not finish the run: {type(exc).__name__}: {exc}")

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        for line in self.summary_lines():
            terminalreporter.write_line(line, yellow=line.startswith("testledger: database"))

    def summary_lines(self) -> list[str]:
        lines: list[str] = []
        run = self.run
        if run is not None:
            noun = "result" if self.recorded == 1 else "results"
            if run.spooled:
                lines.append(
                    f"testledger: database {run.ledger.url} unreachable ({run.spool_reason}); "
                    f"recorded {self.recorded} {noun} (run {run.run_key}) to "
                    f"{run.archive.folder}; load it with `testledger sync`"
                )
            else:
                lines.append(
                    f"testledger: recorded {self.recorded} {noun} "
                    f"(run {run.run_id}) into {run.ledger.url}"
                )
        # Anything else the runner logged (not the outage it already said it went around).
        for record in self._collector.records:
            if record.levelno >= logging.ERROR:
                lines.append(f"testledger: {record.getMessage()}")
        lines.extend(f"testledger: {problem}" for problem in self.problems)
        return lines

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        # A session that never reached sessionfinish (an internal error) still closes its run.
        self._finish(pytest.ExitCode.INTERNAL_ERROR)
        self._logger.removeHandler(self._collector)
        self._logger.propagate = self._propagate


def _mask(text: str) -> str:
    from testledger.store.engine import mask_urls_in

    return mask_urls_in(text)
