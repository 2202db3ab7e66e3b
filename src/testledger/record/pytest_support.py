"""The pytest plugin's helpers that are only needed once recording is on.

Kept out of :mod:`testledger.record.pytest_plugin` so that loading the plugin (which every pytest
session on a machine with testledger installed does) costs nothing when recording is off: a
recording session imports this module at its first test that is not a plain pass. It must not
import SQLAlchemy (the writer process does that).

The central piece is :func:`build_result`: the reports of one attempt of one test (setup, call,
teardown, as pytest logs them) folded into one :class:`~testledger.model.TestResult`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import pytest

from testledger.common.nodeids import split_nodeid
from testledger.common.text import (
    MESSAGE_LIMIT,
    OUTPUT_LIMIT,
    TRACEBACK_LIMIT,
    bounded,
    join_output,
    split_exception,
)
from testledger.model import Status, TestResult, WatcherObservation
from testledger.record.measure import stored_cpu_percent
from testledger.record.pytest_measure import PAYLOAD_ATTR

__all__ = ["build_result", "crashed_result"]


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
    tool_name, variation = split_nodeid(nodeid)
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
        cpu_percent=stored_cpu_percent(payload.get("cpu")),
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


def crashed_result(report: pytest.TestReport) -> TestResult:
    """A test whose worker died under it (pytest-xdist reports it with ``when`` ``"???"``)."""
    tool_name, variation = split_nodeid(report.nodeid)
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
