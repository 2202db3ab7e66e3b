"""The measuring side of testledger's pytest plugin, in every process that runs tests (the
only process without pytest-xdist, each worker with it): CPU and memory of each test, and the
``ledger`` fixture's and marker's data, put on the test's teardown report as its ``testledger``
attribute (PAYLOAD_ATTR), which xdist ships to the controller with the rest of the report.

Memory is the RSS in MB right after the test (/proc/self/statm on Linux, psutil elsewhere), or
without either the process's peak RSS so far (``getrusage`` ``ru_maxrss``). CPU is the process's
CPU time over wall time, in percent, from the end of the test's setup (its setup report) to the
end of its teardown: the test's own work, fixtures torn down included.

Standard library and pytest only, as the plugin module: pytest imports both in every session.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from time import perf_counter, process_time
from typing import TYPE_CHECKING, Any

import pytest

from testledger.record.measure import cpu_percent, rss_reader

if TYPE_CHECKING:
    from testledger.model import WatcherObservation

__all__ = [
    "LEDGER_FIELDS",
    "PAYLOAD_ATTR",
    "InvalidMarkers",
    "LedgerHandle",
    "Measure",
    "WorkerMeasure",
    "check_fields",
    "ledger",
]

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

#: The attribute of a teardown report that carries what the measuring side knows about the test
#: (RSS, CPU, the ``ledger`` fixture's and marker's data). An attribute rather than a
#: ``user_properties`` entry: pytest serialises every report attribute for pytest-xdist
#: (``_report_to_json`` copies ``report.__dict__``), while ``user_properties`` would also be
#: written into every ``--junitxml`` testcase as a ``<property>`` holding a JSON blob.
PAYLOAD_ATTR = "testledger"


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


#: Where the measuring side keeps the ``ledger`` fixture's handles (nodeid -> handle); absent
#: when recording is off (the fixture's data is then not kept).
_HANDLES = pytest.StashKey[dict[str, LedgerHandle]]()


@pytest.fixture
def ledger(request: pytest.FixtureRequest) -> LedgerHandle:
    """Store provider, model, tokens, cost, custom metrics and watcher verdicts with this
    test's result: ``ledger.set(...)``, ``ledger.metric(name, value)``, ``ledger.watch(...)``."""
    handle = LedgerHandle()
    handles = request.config.stash.get(_HANDLES, None)
    if handles is not None:
        handles[request.node.nodeid] = handle
    return handle


class Measure:
    """Measures each test where it runs: RSS and CPU, with the fixture's and marker's data, as
    the payload its teardown report carries (PAYLOAD_ATTR).

    Taken when reports are logged, which pytest does right after each phase: CPU and wall
    clocks from the setup report (the test's fixtures are ready) to the teardown report (they
    are gone, and the test's memory is what is left; it happens even when teardown raised).
    No ``pytest_runtest_setup`` hook: one more hook call and item lookup per test was the
    largest part of the plugin's cost (bench/pytest_overhead.py)."""

    def __init__(self, config: pytest.Config) -> None:
        self._rss, self.memory_kind = rss_reader()
        #: nodeid -> wall and CPU clocks when its setup report was logged.
        self._started: dict[str, tuple[float, float]] = {}
        #: nodeid -> the ``ledger`` markers' fields, for the tests that have any.
        self._marked: dict[str, dict[str, Any]] = {}
        #: nodeid -> the ``ledger`` fixture's handle, while its test runs.
        self.handles: dict[str, LedgerHandle] = {}
        config.stash[_HANDLES] = self.handles

    def collected(self, config: pytest.Config, items: Sequence[pytest.Item]) -> None:
        """Read every test's ``ledger`` markers once, at collection. A test whose markers set an
        unknown field errors at its setup, as it would if the marker were read there."""
        invalid: dict[str, str] = {}
        # Whether a node or a parent of it carries a ledger marker, per parent node (id): the
        # parents are shared by many tests, so each is looked at once, and most tests are
        # spared iter_markers' generator walk (bench/pytest_overhead.py).
        parents: dict[int, bool] = {}

        def carries(node: pytest.Item | pytest.Collector) -> bool:
            for mark in node.own_markers:
                if mark.name == "ledger":
                    return True
            parent = node.parent
            if parent is None:
                return False
            known = parents.get(id(parent))
            if known is None:
                known = parents[id(parent)] = carries(parent)
            return known

        for item in items:
            if not carries(item):
                continue
            marked: dict[str, Any] = {}
            for mark in item.iter_markers("ledger"):
                try:
                    check_fields(mark.kwargs, "@pytest.mark.ledger")
                except TypeError as exc:
                    invalid[item.nodeid] = str(exc)
                    continue
                # iter_markers goes from the closest node out: the closest one wins.
                marked = {**mark.kwargs, **marked}
            if marked:
                self._marked[item.nodeid] = marked
        if invalid:
            config.pluginmanager.register(InvalidMarkers(invalid), "testledger-invalid-markers")

    def begin(self, nodeid: str) -> None:
        """At a test's setup report (every attempt: pytest-rerunfailures runs it again)."""
        self._started[nodeid] = (perf_counter(), process_time())

    def payload(self, nodeid: str) -> dict[str, Any] | None:
        """What is known of the test that has just torn down, if it ran in this process: RSS
        and CPU, and the marker's and fixture's data (see PAYLOAD_ATTR)."""
        start = self._started.pop(nodeid, None)
        if start is None:
            return None
        wall, cpu = perf_counter(), process_time()
        payload: dict[str, Any] = {
            "rss": self._rss(),
            "cpu": cpu_percent(cpu - start[1], wall - start[0]),
        }
        if self._marked or self.handles:
            self._add_fields(nodeid, payload)
        return payload

    def _add_fields(self, nodeid: str, payload: dict[str, Any]) -> None:
        """The marker's and the fixture's data, for a test that has either."""
        fields = self._marked.get(nodeid)
        # A rerun gets a fresh fixture, hence pop.
        handle = self.handles.pop(nodeid, None)
        if handle is not None:
            fields = {**(fields or {}), **handle.fields}
            if handle.metrics:
                payload["metrics"] = handle.metrics
            if handle.observations:
                payload["watch"] = handle.observations
        if fields:
            payload["fields"] = fields


class InvalidMarkers:
    """Fails the setup of the tests whose ``ledger`` markers set unknown fields (registered only
    when there are any, so that no other test pays for a setup hook)."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        error = self.errors.get(item.nodeid)
        if error is not None:
            raise TypeError(error)


class WorkerMeasure(Measure):
    """Measure as a plugin of its own, in a pytest-xdist worker (whose controller records)."""

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.collected(session.config, session.items)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # tryfirst: before xdist's worker serialises the report.
        if report.when == "setup":
            self.begin(report.nodeid)
        elif report.when == "teardown":
            payload = self.payload(report.nodeid)
            if payload is not None:
                setattr(report, PAYLOAD_ATTR, payload)
