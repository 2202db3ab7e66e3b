"""Importer for pytest-json-report files (``pytest --json-report --json-report-file=report.json``).

pytest-json-report writes one JSON document (it has no JSON Lines mode): ``created``,
``duration``, ``exitcode``, ``root``, ``environment``, ``summary``, ``collectors`` and ``tests``,
each test with its ``setup`` / ``call`` / ``teardown`` stages.

**Memory.** The standard library cannot stream a single JSON document, so :func:`parse` loads the
whole file with :func:`json.loads` (a report of N tests costs memory in proportion to N); the
:class:`TestResult` objects are still produced lazily, one at a time, from the loaded document.
For very large runs prefer pytest-reportlog (``ingest/formats/reportlog.py``), which is streamed.

Mapping of pytest outcomes:

* ``passed`` -> PASS; ``failed`` -> FAIL; ``error`` (a setup or teardown failure) -> ERROR;
  ``skipped`` -> SKIP;
* ``xfailed`` -> SKIP with ``details["xfail"] = True``: an expected failure is not a failure;
* ``xpassed`` -> PASS with ``details["xpass"] = True`` (a strict xpass is already ``failed``);
* any other outcome (pytest-rerunfailures leaves ``rerun`` on a test that passed on a rerun) is
  derived from the stages, with ``details["outcome"]`` keeping what the file said. The file keeps
  only the last attempt's stages, so reruns cannot become attempts here (reportlog can).
* a collector whose outcome is ``failed`` (a module that does not import) -> an ERROR result for
  that node; ``skipped`` (a module-level skip) -> SKIP.

``test_id`` is the node id; ``tool_name`` the part before the last ``::`` (module path and class),
``variation`` the function name with its parameters. ``duration_secs`` sums the stages.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from testledger.common.nodeids import split_nodeid
from testledger.common.text import (
    MESSAGE_LIMIT,
    TRACEBACK_LIMIT,
    bounded,
    exception_from_longrepr,
    join_output,
    split_exception,
)
from testledger.ingest._common import (
    epoch_to_utc,
    head_text,
    load_json_document,
    opt_number,
    opt_str,
)
from testledger.ingest.base import ImportFormatError, ParsedFile, RunTotals
from testledger.model import RunInfo, Status, TestResult

__all__ = ["FORMAT", "PARSE_AHEAD", "READS_FOLDERS", "SUFFIXES", "parse", "sniff"]

FORMAT = "pytest-json"
# One JSON document, loaded whole: parsing it in a second process would hold it twice.
PARSE_AHEAD = False
READS_FOLDERS = False
SUFFIXES = (".json",)

_STAGES = ("setup", "call", "teardown")

_OUTCOMES: dict[str, tuple[Status, dict[str, Any]]] = {
    "passed": (Status.PASS, {}),
    "failed": (Status.FAIL, {}),
    "error": (Status.ERROR, {}),
    "skipped": (Status.SKIP, {}),
    "xfailed": (Status.SKIP, {"xfail": True}),
    "xpassed": (Status.PASS, {"xpass": True}),
}


def sniff(path: Path, head: bytes) -> bool:
    """A JSON object whose first keys are pytest-json-report's (``exitcode``, ``root``...)."""
    text = head_text(head)
    if not text.startswith("{") or '"$report_type"' in text:
        return False
    return '"exitcode"' in text and ('"created"' in text or '"root"' in text)


def parse(path: Path) -> ParsedFile:
    """Load ``path`` (see the module's note on memory) and return its results lazily."""
    doc = load_json_document(path, "a pytest-json-report file")
    if not isinstance(doc, dict) or not (
        "tests" in doc or ("exitcode" in doc and "summary" in doc)
    ):
        raise ImportFormatError(
            path, "not a pytest-json-report file: expected an object with 'tests' and 'summary'"
        )
    tests = doc.get("tests", [])
    collectors = doc.get("collectors", [])
    if not isinstance(tests, list):
        raise ImportFormatError(path, "'tests' must be a list")
    if not isinstance(collectors, list):
        raise ImportFormatError(path, "'collectors' must be a list")
    warnings: list[str] = []
    totals = None
    if "tests" not in doc:
        # Written with --json-report-summary: the counts of a run whose tests are not listed.
        totals = _summary_totals(doc.get("summary"))
        if totals is None:
            warnings.append("the report has no 'tests' and no counts in its summary: no results")
    return ParsedFile(
        path=path,
        format=FORMAT,
        run=_run_info(doc),
        results=_results(path, tests, collectors),
        warnings=warnings,
        totals=totals,
    )


def _summary_totals(summary: object) -> RunTotals | None:
    """The run's counts from the report's ``summary`` (``passed``, ``failed``, ``error``,
    ``skipped``, ``xfailed``, ``xpassed``, ``total``), mapped as the tests' outcomes are."""
    if not isinstance(summary, dict):
        return None
    counts = {
        key: value
        for key, value in summary.items()
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0
    }
    if not counts:
        return None
    errored = counts.get("error", 0)
    failed = counts.get("failed", 0) + errored
    passed = counts.get("passed", 0) + counts.get("xpassed", 0)
    skipped = counts.get("skipped", 0) + counts.get("xfailed", 0)
    total = counts.get("total", passed + failed + skipped)
    return RunTotals(total, passed, failed, skipped, errored)


def _run_info(doc: dict[str, Any]) -> RunInfo:
    created = opt_number(doc.get("created"))
    duration = opt_number(doc.get("duration"))
    # ``created`` is stamped when the report is written, at the session's end: the session
    # started ``duration`` seconds before it.
    start = created - duration if created is not None and duration is not None else created
    metadata: dict[str, Any] = {"format": FORMAT}
    for key in ("root", "environment", "exitcode", "duration", "summary"):
        if doc.get(key) is not None:
            metadata[key] = doc[key]
    if created is not None:
        metadata["created"] = created
    return RunInfo(started_at=epoch_to_utc(start), metadata=metadata)


def _results(path: Path, tests: list[Any], collectors: list[Any]) -> Iterator[TestResult]:
    for index, collector in enumerate(collectors):
        result = _collector_result(path, index, collector)
        if result is not None:
            yield result
    for index, entry in enumerate(tests):
        yield _test_result(path, index, entry)


def _collector_result(path: Path, index: int, entry: Any) -> TestResult | None:
    if not isinstance(entry, dict):
        raise ImportFormatError(path, f"collectors[{index}]: expected an object")
    outcome = entry.get("outcome")
    if outcome not in ("failed", "skipped"):
        return None
    nodeid = opt_str(entry.get("nodeid")) or "<session>"
    tool_name, variation = split_nodeid(nodeid)
    longrepr = opt_str(entry.get("longrepr"))
    details: dict[str, Any] = {"collect": True, "outcome": outcome}
    if outcome == "skipped":
        reason = _skip_reason(longrepr)
        if reason:
            details["skip_reason"] = reason
        return TestResult(
            test_id=nodeid,
            tool_name=tool_name,
            variation=variation,
            status=Status.SKIP,
            details=details,
        )
    error_type, message = exception_from_longrepr(longrepr)
    return TestResult(
        test_id=nodeid,
        tool_name=tool_name,
        variation=variation,
        status=Status.ERROR,
        error_type=error_type or "CollectionError",
        error_message=bounded(message, MESSAGE_LIMIT),
        traceback=bounded(longrepr, TRACEBACK_LIMIT),
        details=details,
    )


def _test_result(path: Path, index: int, entry: Any) -> TestResult:
    where = f"tests[{index}]"
    if not isinstance(entry, dict):
        raise ImportFormatError(path, f"{where}: expected an object")
    nodeid = entry.get("nodeid")
    if not isinstance(nodeid, str) or not nodeid:
        raise ImportFormatError(path, f"{where}: missing 'nodeid'")
    outcome = entry.get("outcome")
    if not isinstance(outcome, str):
        raise ImportFormatError(path, f"{where} ({nodeid}): missing 'outcome'")
    stages: dict[str, dict[str, Any]] = {}
    for when in _STAGES:
        stage = entry.get(when)
        if stage is None:
            continue
        if not isinstance(stage, dict):
            raise ImportFormatError(path, f"{where} ({nodeid}): '{when}' must be an object")
        stages[when] = stage

    details: dict[str, Any] = {"outcome": outcome}
    known = _OUTCOMES.get(outcome)
    if known is not None:
        status, extra = known
        details.update(extra)
    else:
        derived = _status_from_stages(stages)
        if derived is None:
            raise ImportFormatError(path, f"{where} ({nodeid}): unknown outcome {outcome!r}")
        status = derived
        if outcome == "rerun":
            details["rerun"] = True

    durations = [opt_number(stage.get("duration")) for stage in stages.values()]
    known_durations = [d for d in durations if d is not None]
    duration = sum(known_durations) if known_durations else None

    error_type = error_message = traceback = None
    culprit = _culprit_stage(stages, status, details)
    if culprit is not None:
        longrepr = _longrepr_text(culprit.get("longrepr"))
        if status.is_failure:
            error_type, error_message = _crash(culprit, longrepr)
            traceback = bounded(longrepr, TRACEBACK_LIMIT)
        elif details.get("xfail"):
            _, xfail_message = _crash(culprit, longrepr)
            if xfail_message:
                details["xfail_message"] = bounded(xfail_message, MESSAGE_LIMIT)
        elif status is Status.SKIP:
            reason = _skip_reason(longrepr)
            if reason:
                details["skip_reason"] = reason

    if isinstance(entry.get("lineno"), int):
        details["lineno"] = entry["lineno"]
    if entry.get("metadata") is not None:
        details["metadata"] = entry["metadata"]

    tool_name, variation = split_nodeid(nodeid)
    return TestResult(
        test_id=nodeid,
        tool_name=tool_name,
        variation=variation,
        status=status,
        duration_secs=duration,
        error_type=error_type,
        error_message=bounded(error_message, MESSAGE_LIMIT),
        traceback=traceback,
        output_excerpt=join_output(_captured(stages)),
        details=details,
    )


def _status_from_stages(stages: dict[str, dict[str, Any]]) -> Status | None:
    if not stages:
        return None
    outcomes = {when: stage.get("outcome") for when, stage in stages.items()}
    if outcomes.get("setup") == "failed":
        return Status.ERROR
    if outcomes.get("call") == "failed":
        return Status.FAIL
    if outcomes.get("teardown") == "failed":
        return Status.ERROR
    if "skipped" in outcomes.values():
        return Status.SKIP
    return Status.PASS


def _culprit_stage(
    stages: dict[str, dict[str, Any]], status: Status, details: dict[str, Any]
) -> dict[str, Any] | None:
    """The stage that decided the outcome: the first failed one, or the skipped one."""
    wanted = "failed" if status.is_failure else "skipped"
    if status is Status.PASS:
        return None
    for when in _STAGES:
        stage = stages.get(when)
        if stage is not None and stage.get("outcome") == wanted:
            return stage
    if details.get("xfail"):
        return stages.get("call") or stages.get("setup")
    return None


def _longrepr_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value or None
    return str(value)


def _crash(stage: dict[str, Any], longrepr: str | None) -> tuple[str | None, str | None]:
    """(error_type, error_message) from a stage's ``crash``, its traceback and its longrepr."""
    crash = stage.get("crash")
    message = opt_str(crash.get("message")) if isinstance(crash, dict) else None
    error_type, error_message = split_exception(message)
    if error_type is None:
        traceback = stage.get("traceback")
        if isinstance(traceback, list) and traceback and isinstance(traceback[-1], dict):
            last = opt_str(traceback[-1].get("message"))
            if last and last.isidentifier():
                error_type = last
    if error_type is None or error_message is None:
        long_type, long_message = exception_from_longrepr(longrepr)
        error_type = error_type or long_type
        error_message = error_message or long_message
    if error_message is None and longrepr:
        # A failure without a crash (``[XPASS(strict)] reason``): its first line says it.
        error_message = longrepr.strip().partition("\n")[0] or None
    return error_type, error_message


def _skip_reason(longrepr: str | None) -> str | None:
    """``"('file.py', 47, 'Skipped: why')"`` -> ``"why"``; other text is returned as it is."""
    if not longrepr:
        return None
    reason = longrepr
    if longrepr.startswith("("):
        try:
            value = ast.literal_eval(longrepr)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            value = None
        if isinstance(value, tuple) and len(value) == 3 and isinstance(value[2], str):
            reason = value[2]
    return reason.removeprefix("Skipped: ").strip() or None


def _captured(stages: dict[str, dict[str, Any]]) -> Iterator[tuple[str, str]]:
    for when in _STAGES:
        stage = stages.get(when)
        if stage is None:
            continue
        for stream in ("stdout", "stderr"):
            text = stage.get(stream)
            if isinstance(text, str) and text:
                yield f"Captured {stream} {when}", text
