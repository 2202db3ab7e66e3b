"""Importer for an Allure results folder (``pytest --alluredir=DIR``, allure-java, allure-js...).

``parse(path)`` takes the directory. Each ``*-result.json`` is one run of one test; the
``*-container.json`` files (fixtures) and the attachments are skipped. Several results with the
same ``historyId`` are retries of one test (allure-pytest with pytest-rerunfailures writes one
file per run): they are ordered by ``start`` and numbered as attempts 1..n. A test that ran once
has ``attempt`` None (the recorder numbers repeats).

Memory: :func:`parse` reads every result file once to index it (file name, identity, start: a
few dozen bytes per result) and works out the run's start; the results iterator then reads the
files again, one at a time, in attempt order.

Mapping: passed -> PASS, failed -> FAIL (an assertion failed), broken -> ERROR (any other
exception), skipped -> SKIP, unknown -> SKIP with ``details["allure_status"] = "unknown"``.
``test_id`` is ``fullName`` (or ``historyId``, or ``name``) with the parameters appended as
``[name=value, ...]``, as allure-pytest gives every parameter set the same ``fullName``;
``tool_name`` comes from the ``testClass`` label, else the part of ``fullName`` before ``#``, else
the ``package`` / ``suite`` labels; ``variation`` is the name, with the parameter values appended
when the name does not already carry them. ``statusDetails`` gives the message and the trace,
``start`` / ``stop`` (ms epoch) the duration, the labels ``details["labels"]``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testledger.common.text import MESSAGE_LIMIT, TRACEBACK_LIMIT, bounded, split_exception
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

FORMAT = "allure"
# The usual source is a results folder (one small *-result.json per test): nothing to parse ahead.
PARSE_AHEAD = False
READS_FOLDERS = True
SUFFIXES = (".json",)

_RESULT_SUFFIX = "-result.json"

_STATUSES: dict[str, Status] = {
    "passed": Status.PASS,
    "failed": Status.FAIL,
    "broken": Status.ERROR,
    "skipped": Status.SKIP,
    "unknown": Status.SKIP,
}

_LABELS_KEPT = (
    "suite",
    "parentSuite",
    "subSuite",
    "package",
    "testClass",
    "testMethod",
    "host",
    "thread",
    "framework",
    "language",
    "feature",
    "story",
    "epic",
    "severity",
    "tag",
    "owner",
)


def sniff(path: Path, head: bytes) -> bool:
    """A directory holding at least one ``*-result.json``, or one such file itself."""
    if path.is_dir():
        return any(_result_files(path))
    text = head_text(head)
    return (
        path.name.endswith(_RESULT_SUFFIX)
        and text.startswith("{")
        and '"uuid"' in text
        and '"status"' in text
    )


def _result_files(path: Path) -> Iterator[Path]:
    return (p for p in path.iterdir() if p.name.endswith(_RESULT_SUFFIX) and p.is_file())


@dataclass(slots=True, frozen=True)
class _Entry:
    """The index of one result file: enough to group and order it without keeping it."""

    file: Path
    group: str
    start: float


def parse(path: Path) -> ParsedFile:
    """Index the folder's result files (or the one result file given) and stream the results."""
    if path.is_dir():
        files = sorted(_result_files(path))
        if not files:
            raise ImportFormatError(path, "not an Allure results folder: no *-result.json in it")
    elif path.is_file():
        files = [path]
    else:
        raise ImportFormatError(path, "no such file or directory")
    entries: list[_Entry] = []
    hosts: set[str] = set()
    for file in files:
        doc = _load(file)
        start = opt_number(doc.get("start"))
        entries.append(_Entry(file=file, group=_group_key(doc), start=start or 0.0))
        host = _labels(doc).get("host")
        if host:
            hosts.add(host[0])
    starts = [entry.start for entry in entries if entry.start > 0]
    run = RunInfo(
        started_at=epoch_ms_to_utc(min(starts)) if starts else None,
        host=hosts.pop() if len(hosts) == 1 else None,
        metadata={"format": FORMAT, "result_files": len(entries)},
    )
    return ParsedFile(path=path, format=FORMAT, run=run, results=_results(entries))


def _load(file: Path) -> dict[str, Any]:
    doc = load_json_document(file, "an Allure result")
    if not isinstance(doc, dict):
        raise ImportFormatError(file, "not an Allure result: expected a JSON object")
    if not isinstance(doc.get("status"), str) and "status" in doc:
        raise ImportFormatError(file, "not an Allure result: 'status' must be a string")
    if not (opt_str(doc.get("name")) or opt_str(doc.get("fullName"))):
        raise ImportFormatError(file, "not an Allure result: no 'name' nor 'fullName'")
    return doc


def _group_key(doc: dict[str, Any]) -> str:
    history = opt_str(doc.get("historyId"))
    return f"history:{history}" if history else f"id:{_test_id(doc)}"


def _results(entries: list[_Entry]) -> Iterator[TestResult]:
    groups: dict[str, list[_Entry]] = {}
    for entry in entries:
        groups.setdefault(entry.group, []).append(entry)
    # Tests in the order they started; the attempts of one test by their start.
    ordered = sorted(groups.values(), key=lambda group: min(e.start for e in group))
    for group in ordered:
        group.sort(key=lambda e: (e.start, e.file.name))
        numbered = len(group) > 1
        for number, entry in enumerate(group, start=1):
            yield _result(entry.file, _load(entry.file), number if numbered else None)


def _labels(doc: dict[str, Any]) -> dict[str, list[str]]:
    labels: dict[str, list[str]] = {}
    raw = doc.get("labels")
    if not isinstance(raw, list):
        return labels
    for label in raw:
        if isinstance(label, dict):
            name = opt_str(label.get("name"))
            value = opt_str(label.get("value"))
            if name and value:
                labels.setdefault(name, []).append(value)
    return labels


def _parameters(doc: dict[str, Any]) -> list[tuple[str, str]]:
    raw = doc.get("parameters")
    if not isinstance(raw, list):
        return []
    params: list[tuple[str, str]] = []
    for param in raw:
        if not isinstance(param, dict) or param.get("excluded") is True:
            continue
        name = opt_str(param.get("name")) or ""
        value = param.get("value")
        params.append((name, value if isinstance(value, str) else json.dumps(value)))
    return params


def _test_id(doc: dict[str, Any]) -> str:
    base = opt_str(doc.get("fullName")) or opt_str(doc.get("historyId")) or str(doc.get("name"))
    params = _parameters(doc)
    if params:
        base += "[" + ", ".join(f"{n}={v}" if n else v for n, v in params) + "]"
    return base


def _tool_name(doc: dict[str, Any], labels: dict[str, list[str]]) -> str:
    package = labels.get("package", [None])[0]
    test_class = labels.get("testClass", [None])[0]
    if test_class:
        if package and "." not in test_class:
            return f"{package}.{test_class}"
        return test_class
    full_name = opt_str(doc.get("fullName"))
    if full_name and "#" in full_name:
        return full_name.rpartition("#")[0]
    for key in ("package", "suite", "parentSuite"):
        if labels.get(key):
            return labels[key][0]
    return "allure"


def _result(file: Path, doc: dict[str, Any], attempt: int | None) -> TestResult:
    raw_status = doc.get("status")
    status = _STATUSES.get(raw_status) if isinstance(raw_status, str) else None
    if status is None:
        raise ImportFormatError(file, f"unknown Allure status {raw_status!r}")
    labels = _labels(doc)
    details: dict[str, Any] = {"allure_status": raw_status}
    kept = {name: values for name, values in labels.items() if name in _LABELS_KEPT}
    if kept:
        details["labels"] = {k: v[0] if len(v) == 1 else v for k, v in kept.items()}
    params = _parameters(doc)
    if params:
        details["parameters"] = dict(params)
    for key in ("uuid", "historyId", "testCaseId"):
        if opt_str(doc.get(key)):
            details[key] = doc[key]

    status_details = doc.get("statusDetails")
    status_details = status_details if isinstance(status_details, dict) else {}
    message = opt_str(status_details.get("message"))
    trace = opt_str(status_details.get("trace"))
    for flag in ("flaky", "muted", "known"):
        if status_details.get(flag) is True:
            details[flag] = True
    error_type = error_message = traceback = None
    if status.is_failure:
        error_type, error_message = split_exception(message)
        traceback = bounded(trace, TRACEBACK_LIMIT)
    elif message:
        # allure-pytest writes an expected failure as skipped "XFAIL reason", an xpass as passed.
        if message.startswith("XFAIL"):
            details["xfail"] = True
            details["xfail_message"] = bounded(message, MESSAGE_LIMIT)
        elif message.startswith("XPASS"):
            details["xpass"] = True
            details["message"] = bounded(message, MESSAGE_LIMIT)
        else:
            key = "skip_reason" if status is Status.SKIP else "message"
            details[key] = bounded(message.removeprefix("Skipped: "), MESSAGE_LIMIT)

    start = opt_number(doc.get("start"))
    stop = opt_number(doc.get("stop"))
    duration = (stop - start) / 1000.0 if start is not None and stop is not None else None
    if duration is not None and duration < 0:
        duration = None

    name = opt_str(doc.get("name")) or opt_str(doc.get("fullName")) or "?"
    variation = name
    if params and not name.endswith("]"):
        variation = f"{name}[{', '.join(v for _, v in params)}]"
    return TestResult(
        test_id=_test_id(doc),
        tool_name=_tool_name(doc, labels),
        variation=variation,
        status=status,
        duration_secs=duration,
        error_type=error_type,
        error_message=bounded(error_message, MESSAGE_LIMIT),
        traceback=traceback,
        details=details,
        attempt=attempt,
        started_at=epoch_ms_to_utc(start),
    )
