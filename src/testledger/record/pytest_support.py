"""The pytest plugin's helpers that are only needed once recording is on.

Kept out of :mod:`testledger.record.pytest_plugin` so that loading the plugin (which every pytest
session on a machine with testledger installed does) costs nothing when recording is off: this
module, and the runner behind it, are imported when a session asks for ``--ledger``.

The central piece is :func:`build_result`: the reports of one attempt of one test (setup, call,
teardown, as pytest logs them) folded into one :class:`~testledger.model.TestResult`.
"""

from __future__ import annotations

import os
import resource
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

import pytest

from testledger.ingest._common import (
    MESSAGE_LIMIT,
    OUTPUT_LIMIT,
    TRACEBACK_LIMIT,
    bounded,
    join_output,
    split_exception,
)
from testledger.model import Status, TestResult, WatcherObservation
from testledger.store.types import format_utc

__all__ = [
    "PAYLOAD_ATTR",
    "build_result",
    "cpu_percent",
    "crashed_result",
    "passing_row",
    "rss_reader",
    "split_test_id",
]

#: The attribute of a teardown report that carries what the measuring side knows about the test
#: (RSS, CPU, the ``ledger`` fixture's and marker's data). An attribute rather than a
#: ``user_properties`` entry: pytest serialises every report attribute for pytest-xdist
#: (``_report_to_json`` copies ``report.__dict__``), while ``user_properties`` would also be
#: written into every ``--junitxml`` testcase as a ``<property>`` holding a JSON blob.
PAYLOAD_ATTR = "testledger"

#: ``test_results.cpu_percent`` is NUMERIC(5, 2); a test running several threads can exceed 100%.
_CPU_MAX = 999.99


def rss_reader() -> tuple[Callable[[], float], str]:
    """A function giving the process's memory in MB, and what it measures.

    The RSS right after the test: from /proc/self/statm on Linux, else psutil when installed;
    otherwise
    ``getrusage`` peak RSS (ru_maxrss: the high-water mark so far, which never goes down, so it
    shows growth but not release)."""
    if sys.platform.startswith("linux"):
        try:
            # What psutil reads, without its per-call wrappers: psutil's memory_info() was the
            # largest single cost per test (cProfile, bench/pytest_overhead.py). The file is
            # kept open and re-read from offset 0.
            fd = os.open("/proc/self/statm", os.O_RDONLY)
        except OSError:
            pass
        else:
            page_mb = os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)

            def statm() -> float:
                return int(os.pread(fd, 128, 0).split()[1]) * page_mb

            return statm, "rss"
    try:
        # No stubs are required: psutil is optional, and the only call used is typed here.
        import psutil  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        # ru_maxrss is KiB on Linux, bytes on macOS.
        scale = 1 / (1024 * 1024) if sys.platform == "darwin" else 1 / 1024

        def peak() -> float:
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale

        return peak, "peak-rss"
    memory_info = psutil.Process().memory_info

    def rss() -> float:
        return float(memory_info().rss) / (1024 * 1024)

    return rss, "rss"


def cpu_percent(cpu_secs: float, wall_secs: float) -> float | None:
    """Process CPU time over wall time, in percent (every thread of the process counts)."""
    if wall_secs <= 0:
        return None
    return round(min(cpu_secs / wall_secs * 100.0, _CPU_MAX), 2)


def split_test_id(nodeid: str) -> tuple[str, str]:
    """``path::Class::test_f[param]`` -> (``path::Class``, ``test_f[param]``)."""
    tool, sep, variation = nodeid.rpartition("::")
    if not sep:
        return nodeid, nodeid
    return tool, variation


def _rerun(report: pytest.TestReport | None) -> bool:
    # pytest-rerunfailures relabels a failed phase of an attempt it will repeat as "rerun".
    return report is not None and report.outcome == "rerun"  # type: ignore[comparison-overlap]


def _failed(report: pytest.TestReport | None) -> bool:
    return report is not None and (report.failed or _rerun(report))


def _skip_reason(report: pytest.TestReport) -> str | None:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        reason = str(longrepr[2])
        return reason.removeprefix("Skipped: ")
    return None


def _classify(
    setup: pytest.TestReport | None,
    call: pytest.TestReport | None,
    teardown: pytest.TestReport,
    details: dict[str, Any],
) -> tuple[Status, pytest.TestReport | None]:
    """The attempt's status and the report whose failure explains it."""
    if _failed(setup):
        details["phase"] = "setup"
        return Status.ERROR, setup
    status = Status.PASS
    failing: pytest.TestReport | None = None
    if setup is not None and setup.skipped:
        status = Status.SKIP
        if hasattr(setup, "wasxfail"):  # xfail(run=False)
            details["xfail"] = setup.wasxfail
        else:
            details["skip_reason"] = _skip_reason(setup)
    elif call is not None:
        if hasattr(call, "wasxfail"):
            if call.skipped:
                status = Status.SKIP
                details["xfail"] = call.wasxfail
            elif call.passed:
                details["xpass"] = True
            else:
                status, failing = Status.FAIL, call
        elif call.skipped:
            status = Status.SKIP
            details["skip_reason"] = _skip_reason(call)
        elif _failed(call):
            status, failing = Status.FAIL, call
            if isinstance(call.longrepr, str) and call.longrepr.startswith("[XPASS(strict)]"):
                details["xpass"] = "strict"
    if _failed(teardown):
        if failing is None:
            details["phase"] = "teardown"
            return Status.ERROR, teardown
        # The test failed and its teardown broke too: the failure is the result, the
        # teardown's error is kept beside it.
        details["teardown_error"] = _crash_message(teardown)
    return status, failing


def _crash_message(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return str(crash.message)
    return str(report.longrepr)


def _last_entry_type(longrepr: Any) -> str | None:
    entries = getattr(getattr(longrepr, "reprtraceback", None), "reprentries", None)
    location = getattr(entries[-1], "reprfileloc", None) if entries else None
    name = getattr(location, "message", None)
    return name if isinstance(name, str) and name.isidentifier() else None


def _error_fields(report: pytest.TestReport) -> dict[str, Any]:
    longrepr = report.longrepr
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None:
        error_type, message = split_exception(crash.message)
        if error_type is None:
            # A rewritten assert's crash message is the bare "assert 1 == 2"; the exception's
            # type is what the traceback's last entry names ("test_a.py:10: AssertionError").
            error_type = _last_entry_type(longrepr)
    else:
        error_type, message = None, str(longrepr) if longrepr is not None else None
    return {
        "error_type": error_type,
        "error_message": bounded(message, MESSAGE_LIMIT),
        "traceback": bounded(report.longreprtext, TRACEBACK_LIMIT) if longrepr else None,
    }


def build_result(
    teardown: pytest.TestReport, earlier: Sequence[pytest.TestReport]
) -> tuple[TestResult, list[WatcherObservation]]:
    """One attempt of one test as a result, plus the watcher observations beyond its first
    (the first rides on the result; the others are attached to it)."""
    setup = call = None
    duration = teardown.duration
    for report in earlier:
        duration += report.duration
        if report.when == "setup":
            setup = report
        elif report.when == "call":
            call = report
    details: dict[str, Any] = {}
    if (
        setup is not None
        and call is not None
        and setup.passed
        and call.passed
        and teardown.passed
        and not hasattr(call, "wasxfail")
    ):
        # The common case, decided without the general classification.
        status, failing = Status.PASS, None
    else:
        status, failing = _classify(setup, call, teardown, details)

    nodeid = teardown.nodeid
    tool_name, variation = split_test_id(nodeid)
    start = setup.start if setup is not None else teardown.start
    payload: dict[str, Any] = getattr(teardown, PAYLOAD_ATTR, None) or {}
    rss = payload.get("rss")
    result = TestResult(
        test_id=nodeid,
        tool_name=tool_name,
        variation=variation,
        status=status,
        duration_secs=duration,
        memory_mb=None if rss is None else round(rss),
        cpu_percent=payload.get("cpu"),
        started_at=datetime.fromtimestamp(start, timezone.utc),
        details=details,
    )
    out, err = teardown.capstdout, teardown.capstderr
    if out or err:
        result.output_excerpt = join_output((("stdout", out), ("stderr", err)), OUTPUT_LIMIT)
    if failing is not None:
        for name, value in _error_fields(failing).items():
            setattr(result, name, value)

    fields = payload.get("fields")
    if fields:
        for name, value in fields.items():
            setattr(result, name, value)
    metrics = payload.get("metrics")
    if metrics:
        result.metrics = dict(metrics)
    extra: list[WatcherObservation] = []
    watched = payload.get("watch")
    if watched:
        observations = [WatcherObservation.from_json(data) for data in watched]
        result.watcher = observations[0]
        extra = observations[1:]
    return result, extra


def passing_row(
    teardown: pytest.TestReport, earlier: Sequence[pytest.TestReport]
) -> tuple[Any, ...] | None:
    """The common case without a TestResult: a test whose setup, call and teardown passed,
    with no captured output and nothing from the ``ledger`` fixture or marker, as the row of
    ``ROW_COLUMNS`` that ``encode_result(build_result(...)[0])`` gives (attempt None, for
    :meth:`~testledger.record.runner.Run.record_row` to number). None for anything else.

    Most tests of a suite take this path: it skips building and encoding a TestResult
    (bench/pytest_overhead.py; a test compares it with the general path)."""
    if len(earlier) != 2:
        return None
    setup, call = earlier
    if (
        setup.when != "setup"
        or call.when != "call"
        or not (setup.passed and call.passed and teardown.passed)
        or hasattr(call, "wasxfail")
        or teardown.capstdout
        or teardown.capstderr
    ):
        return None
    payload: dict[str, Any] = getattr(teardown, PAYLOAD_ATTR, None) or {}
    if payload.get("fields") or payload.get("metrics") or payload.get("watch"):
        return None
    duration = teardown.duration
    for report in earlier:  # summed in build_result's order: the same float
        duration += report.duration
    nodeid = teardown.nodeid
    tool_name, variation = split_test_id(nodeid)
    rss = payload.get("rss")
    started = format_utc(datetime.fromtimestamp(setup.start, timezone.utc))
    return (
        nodeid,
        None,  # attempt
        tool_name,
        variation,
        None,  # provider
        None,  # model
        _PASS,
        None,  # execution_status
        duration,
        None if rss is None else round(rss),
        payload.get("cpu"),
        None,  # tokens_total
        None,  # tokens_input
        None,  # tokens_output
        None,  # cost_usd
        None,  # watcher_quality
        None,  # watcher_observations
        None,  # error_type
        None,  # error_message
        None,  # traceback
        None,  # output_excerpt
        None,  # metrics (none: stored as NULL, as encode_result stores {})
        None,  # details (likewise)
        started,
    )


_PASS = Status.PASS.value


def crashed_result(report: pytest.TestReport) -> TestResult:
    """A test whose worker died under it (pytest-xdist reports it with ``when`` ``"???"``)."""
    tool_name, variation = split_test_id(report.nodeid)
    fields = _error_fields(report)
    return TestResult(
        test_id=report.nodeid,
        tool_name=tool_name,
        variation=variation,
        status=Status.ERROR,
        duration_secs=report.duration or None,
        details={"phase": str(report.when), "crashed": True},
        **fields,
    )
