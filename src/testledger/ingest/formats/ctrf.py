"""Importer for CTRF reports (Common Test Report Format, https://ctrf.io): one JSON document.

Shape: ``{"reportFormat": "CTRF", "results": {"tool": {...}, "summary": {...}, "tests": [...],
"environment": {...}}}``; each test has ``name``, ``status`` (passed / failed / skipped / pending /
other), ``duration`` in milliseconds, and optionally ``message``, ``trace``, ``suite``,
``filePath``, ``start`` / ``stop`` (ms epoch), ``retries``, ``retryAttempts[]``, ``flaky``.

**Memory.** The document is loaded whole with :func:`json.loads` (the standard library has no
streaming JSON parser); results are produced lazily from it.

Mapping:

* passed -> PASS, failed -> FAIL, skipped -> SKIP; pending -> SKIP and ``other`` -> SKIP, with
  ``details["ctrf_status"]`` (and ``details["raw_status"]`` when the file gives ``rawStatus``):
  ``other`` is a test that did not finish normally (Playwright's ``interrupted``), not a verdict.
* ``test_id`` is ``"<suite or filePath>::<name>"`` (just the name when neither is given);
  ``tool_name`` the suite (or file path, or the tool's name), ``variation`` the name.
* Retries: ``retryAttempts`` (or the older ``attempts``) become attempts 1..n of the test, the
  final status last. When the list already holds the final run (``retries + 1`` entries, as in
  the CTRF spec's example) its last entry takes the test's own status; when it holds only the
  failed runs, the test itself is appended as the last attempt. A test without retries has
  ``attempt`` None (the recorder numbers repeats).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from testledger.common.text import (
    MESSAGE_LIMIT,
    OUTPUT_LIMIT,
    TRACEBACK_LIMIT,
    bounded,
    join_output,
    split_exception,
)
from testledger.ingest._common import (
    epoch_ms_to_utc,
    head_text,
    load_json_document,
    opt_number,
    opt_str,
)
from testledger.ingest.base import ImportFormatError, ParsedFile
from testledger.model import RunInfo, Status, TestResult

__all__ = ["FORMAT", "PARSE_AHEAD", "READS_FOLDERS", "SUFFIXES", "parse", "sniff"]

FORMAT = "ctrf"
# One JSON document, loaded whole: parsing it in a second process would hold it twice.
PARSE_AHEAD = False
READS_FOLDERS = False
SUFFIXES = (".json",)

_STATUSES: dict[str, Status] = {
    "passed": Status.PASS,
    "failed": Status.FAIL,
    "skipped": Status.SKIP,
    "pending": Status.SKIP,
    "other": Status.SKIP,
}

_SNIFF_RESULTS = re.compile(r'"results"\s*:\s*\{\s*"(?:tool|summary|tests)"')


def sniff(path: Path, head: bytes) -> bool:
    """``"reportFormat": "CTRF"``, or an object opening with ``"results": {"tool"...``."""
    text = head_text(head)
    if not text.startswith("{"):
        return False
    if re.search(r'"reportFormat"\s*:\s*"CTRF"', text):
        return True
    return _SNIFF_RESULTS.search(text) is not None


def parse(path: Path) -> ParsedFile:
    """Load the report and return its results lazily."""
    doc = load_json_document(path, "a CTRF report")
    results = doc.get("results") if isinstance(doc, dict) else None
    if not isinstance(results, dict) or not isinstance(results.get("tests"), list):
        raise ImportFormatError(
            path, "not a CTRF report: expected an object with 'results.tests' (a list)"
        )
    tool = results.get("tool")
    tool_name = opt_str(tool.get("name")) if isinstance(tool, dict) else None
    return ParsedFile(
        path=path,
        format=FORMAT,
        run=_run_info(doc, results),
        results=_results(path, results["tests"], tool_name or "ctrf"),
    )


def _run_info(doc: dict[str, Any], results: dict[str, Any]) -> RunInfo:
    summary = results.get("summary")
    summary = summary if isinstance(summary, dict) else {}
    environment = results.get("environment")
    environment = environment if isinstance(environment, dict) else {}
    metadata: dict[str, Any] = {"format": FORMAT}
    for key in ("reportFormat", "specVersion", "reportId", "timestamp", "generatedBy"):
        if doc.get(key) is not None:
            metadata[key] = doc[key]
    if results.get("tool") is not None:
        metadata["tool"] = results["tool"]
    if summary:
        metadata["summary"] = summary
    if environment:
        metadata["environment"] = environment
    if isinstance(results.get("extra"), dict):
        metadata["extra"] = results["extra"]
    run = RunInfo(started_at=epoch_ms_to_utc(summary.get("start")), metadata=metadata)
    # What the file says of its build; the import command's options and git still win.
    branch = opt_str(environment.get("branchName"))
    if branch:
        run.branch = branch
    run.commit = opt_str(environment.get("commit"))
    run.ci_job_url = opt_str(environment.get("buildUrl"))
    return run


def _results(path: Path, tests: list[Any], tool_name: str) -> Iterator[TestResult]:
    for index, entry in enumerate(tests):
        yield from _test_results(path, index, entry, tool_name)


def _status(path: Path, where: str, value: Any) -> tuple[Status, dict[str, Any]]:
    if not isinstance(value, str) or value.strip().lower() not in _STATUSES:
        raise ImportFormatError(path, f"{where}: unknown status {value!r}")
    key = value.strip().lower()
    details: dict[str, Any] = {}
    if key in ("pending", "other"):
        details["ctrf_status"] = key
    return _STATUSES[key], details


def _suite(value: Any) -> str | None:
    if isinstance(value, list):
        parts = [part for part in value if isinstance(part, str) and part]
        return " > ".join(parts) or None
    return opt_str(value)


def _test_results(path: Path, index: int, entry: Any, tool_name: str) -> Iterator[TestResult]:
    where = f"results.tests[{index}]"
    if not isinstance(entry, dict):
        raise ImportFormatError(path, f"{where}: expected an object")
    name = opt_str(entry.get("name"))
    if name is None:
        raise ImportFormatError(path, f"{where}: missing 'name'")
    where = f"{where} ({name})"
    final_status, final_details = _status(path, where, entry.get("status"))
    suite = _suite(entry.get("suite"))
    file_path = opt_str(entry.get("filePath"))
    prefix = suite or file_path
    test_id = f"{prefix}::{name}" if prefix else name
    base_details: dict[str, Any] = {}
    for key in ("filePath", "line", "tags", "type", "browser", "device", "parameters", "extra"):
        if entry.get(key) not in (None, "", [], {}):
            base_details[key] = entry[key]
    if suite:
        base_details["suite"] = suite
    raw_status = opt_str(entry.get("rawStatus"))
    if raw_status:
        final_details["raw_status"] = raw_status
    if entry.get("flaky") is True or entry.get("flake") is True:
        final_details["flaky"] = True

    attempts = entry.get("retryAttempts")
    if attempts is None:
        attempts = entry.get("attempts")
    if attempts is None:
        attempts = []
    if not isinstance(attempts, list) or not all(isinstance(a, dict) for a in attempts):
        raise ImportFormatError(path, f"{where}: 'retryAttempts' must be a list of objects")
    retries = entry.get("retries", entry.get("retry"))
    retries = retries if isinstance(retries, int) and not isinstance(retries, bool) else None
    runs: list[dict[str, Any]] = sorted(attempts, key=_attempt_key)
    final_included = bool(runs) and (
        len(runs) == retries + 1
        if retries is not None
        else opt_str(runs[-1].get("status")) == entry.get("status")
    )
    if not final_included:
        runs.append(entry)
    numbered = len(runs) > 1
    for number, run in enumerate(runs, start=1):
        last = number == len(runs)
        if last:
            status, details = final_status, dict(final_details)
        else:
            status, details = _status(path, f"{where} attempt {number}", run.get("status"))
        details.update(base_details)
        message = opt_str(run.get("message")) or (opt_str(entry.get("message")) if last else None)
        trace = opt_str(run.get("trace")) or (opt_str(entry.get("trace")) if last else None)
        error_type, error_message = split_exception(message) if status.is_failure else (None, None)
        if message and not status.is_failure:
            details["message"] = bounded(message, MESSAGE_LIMIT)
        duration_ms = opt_number(run.get("duration"))
        yield TestResult(
            test_id=test_id,
            tool_name=prefix or tool_name,
            variation=name,
            status=status,
            duration_secs=duration_ms / 1000.0 if duration_ms is not None else None,
            error_type=error_type,
            error_message=bounded(error_message, MESSAGE_LIMIT),
            traceback=bounded(trace, TRACEBACK_LIMIT) if status.is_failure else None,
            output_excerpt=join_output(_output(run), OUTPUT_LIMIT),
            details=details,
            attempt=number if numbered else None,
            started_at=epoch_ms_to_utc(run.get("start")),
        )


def _attempt_key(attempt: dict[str, Any]) -> float:
    number = opt_number(attempt.get("attempt"))
    return number if number is not None else 0.0


def _output(run: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for stream in ("stdout", "stderr"):
        value = run.get(stream)
        if isinstance(value, list):
            text = "\n".join(str(line) for line in value)
        else:
            text = opt_str(value) or ""
        if text:
            yield stream, text
