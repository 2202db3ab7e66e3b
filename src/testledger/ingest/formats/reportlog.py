"""Importer for pytest-reportlog files (``pytest --report-log=report.jsonl``), plain or gzip.

The file is JSON Lines, one record per line, each with a ``$report_type``: ``SessionStart``,
``CollectReport``, ``TestReport`` (one per ``setup`` / ``call`` / ``teardown`` phase of a test),
``WarningMessage`` and ``SessionFinish``. It is read line by line, so memory stays flat whatever
the file's size: only the tests whose teardown has not arrived yet (one per xdist worker) and the
node ids of tests in the middle of a rerun chain are held. Gzip is recognised by its magic bytes,
not by the file name.

A test's phases become one result, emitted when its teardown report arrives:

* setup ``failed`` -> ERROR; call ``failed`` -> FAIL; teardown ``failed`` after a passing (or
  skipped) call -> ERROR (after a failed call it stays FAIL, ``details["teardown_failed"]``);
* ``skipped`` in setup or call -> SKIP; with ``wasxfail`` -> SKIP and ``details["xfail"]``;
  a passed call with ``wasxfail`` -> PASS and ``details["xpass"]`` (a strict xpass is ``failed``);
* pytest-rerunfailures writes the phase that failed with the outcome ``rerun`` (FAIL in call,
  ERROR in setup/teardown): the attempts of one test are numbered 1..n, the last one being the
  final outcome. A test that ran once has ``attempt`` None (the recorder numbers repeats).
* a ``CollectReport`` with outcome ``failed`` -> an ERROR result for that collection node
  (``skipped``, a module-level skip, -> SKIP).

A line that is not JSON (or not valid UTF-8) raises :class:`ImportFormatError` with its number.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
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
from testledger.ingest._common import epoch_to_utc, head_text, open_maybe_gzip, opt_number, opt_str
from testledger.ingest.base import ImportFormatError, ParsedFile
from testledger.model import RunInfo, Status, TestResult

__all__ = ["FORMAT", "PARSE_AHEAD", "READS_FOLDERS", "SUFFIXES", "parse", "sniff"]

FORMAT = "pytest-reportlog"
# Streamed line by line: a large file is worth parsing ahead (ingest.parse_ahead).
PARSE_AHEAD = True
READS_FOLDERS = False
SUFFIXES = (".jsonl", ".ndjson")

_PHASES = ("setup", "call", "teardown")
_KNOWN_TYPES = frozenset({"SessionStart", "SessionFinish", "WarningMessage", "CollectReport"})
#: How far :func:`parse` reads ahead for the run's header (pytest version, first start time).
_PEEK_LINES = 2000


def sniff(path: Path, head: bytes) -> bool:
    """JSON Lines whose records carry pytest-reportlog's ``$report_type``."""
    text = head_text(head)
    return text.startswith("{") and '"$report_type"' in text


def parse(path: Path) -> ParsedFile:
    """Check the file's first record, read ahead for the run's start, and stream the results."""
    run = RunInfo(metadata={"format": FORMAT})
    saw_record = False
    for lineno, record in _records(path, limit=_PEEK_LINES):
        if not saw_record:
            if "$report_type" not in record:
                raise ImportFormatError(
                    path, "not a pytest-reportlog file: the record has no '$report_type'", lineno
                )
            saw_record = True
        report_type = record.get("$report_type")
        if report_type == "SessionStart" and isinstance(record.get("pytest_version"), str):
            run.metadata["pytest_version"] = record["pytest_version"]
        elif report_type == "TestReport":
            run.started_at = epoch_to_utc(record.get("start"))
            break
    if not saw_record:
        raise ImportFormatError(path, "empty file: expected pytest-reportlog JSON Lines")
    warnings: list[str] = []
    return ParsedFile(
        path=path,
        format=FORMAT,
        run=run,
        results=_results(path, run, warnings),
        warnings=warnings,
    )


def _records(path: Path, limit: int | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, record)`` for each non-blank line, errors as ImportFormatError."""
    lineno = 0
    try:
        with open_maybe_gzip(path) as stream:
            for lineno, raw in enumerate(stream, start=1):
                if limit is not None and lineno > limit:
                    return
                if not raw.strip():
                    continue
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise ImportFormatError(
                        path, f"invalid UTF-8 at column {exc.start + 1}", lineno
                    ) from None
                try:
                    record = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise ImportFormatError(path, f"invalid JSON ({exc.msg})", lineno) from None
                except RecursionError:
                    raise ImportFormatError(
                        path, "invalid JSON (nested too deeply)", lineno
                    ) from None
                if not isinstance(record, dict):
                    raise ImportFormatError(path, "expected a JSON object on each line", lineno)
                yield lineno, record
    except (OSError, EOFError, zlib.error) as exc:
        # A truncated or corrupt .gz fails here, after the last line that could be read.
        raise ImportFormatError(path, f"cannot read: {exc}", lineno + 1) from None


@dataclass(slots=True)
class _Attempt:
    """What is known of one run of one test while its phases arrive."""

    nodeid: str
    first_line: int
    status: Status = Status.PASS
    culprit: dict[str, Any] | None = None
    culprit_phase: str | None = None
    reran: bool = False
    duration: float | None = None
    started: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    sections: list[Any] = field(default_factory=list)
    location: Any = None
    user_properties: Any = None
    phases: list[str] = field(default_factory=list)

    def add(self, path: Path, lineno: int, when: str, outcome: str, rec: dict[str, Any]) -> None:
        self.phases.append(when)
        duration = opt_number(rec.get("duration"))
        if duration is not None:
            self.duration = (self.duration or 0.0) + duration
        if self.started is None:
            self.started = opt_number(rec.get("start"))
        sections = rec.get("sections")
        if isinstance(sections, list):
            self.sections = sections  # cumulative: the last phase's list has them all
        if rec.get("location") is not None:
            self.location = rec["location"]
        if rec.get("user_properties"):
            self.user_properties = rec["user_properties"]
        wasxfail = rec.get("wasxfail")
        if outcome == "rerun":
            self.reran = True
        if outcome in ("failed", "rerun"):
            if when == "call":
                self._decide(Status.FAIL, when, rec)
            elif when == "teardown" and self.status is Status.FAIL:
                self.details["teardown_failed"] = True
            else:
                self._decide(Status.ERROR, when, rec)
        elif outcome == "skipped":
            if self.status is Status.PASS:
                self._decide(Status.SKIP, when, rec)
                if wasxfail is not None:
                    self.details["xfail"] = True
                    self._note_reason("xfail_reason", wasxfail)
        elif outcome == "passed":
            if when == "call" and wasxfail is not None:
                self.details["xpass"] = True
                self._note_reason("xfail_reason", wasxfail)
        else:
            raise ImportFormatError(
                path, f"{self.nodeid}: unknown outcome {outcome!r} in {when}", lineno
            )

    def _decide(self, status: Status, when: str, rec: dict[str, Any]) -> None:
        if self.culprit is not None and self.status.is_failure:
            return  # the first failure explains the result
        self.status = status
        self.culprit = rec
        self.culprit_phase = when

    def _note_reason(self, key: str, reason: Any) -> None:
        if isinstance(reason, str) and reason:
            self.details[key] = reason

    def result(self, attempt: int | None, skip_sections: int) -> TestResult:
        details = dict(self.details)
        error_type = error_message = traceback = None
        if self.culprit is not None:
            longrepr = self.culprit.get("longrepr")
            text = render_longrepr(longrepr)
            if self.status.is_failure:
                error_type, error_message = _crash(longrepr, text)
                traceback = bounded(text, TRACEBACK_LIMIT)
                details["failed_in"] = self.culprit_phase
            elif details.get("xfail"):
                _, xfail_message = _crash(longrepr, text)
                if xfail_message:
                    details["xfail_message"] = bounded(xfail_message, MESSAGE_LIMIT)
            else:
                reason = _skip_reason(longrepr)
                if reason:
                    details["skip_reason"] = reason
        if self.reran:
            details["rerun"] = True
        if "teardown" not in self.phases:
            details["incomplete"] = True
        if isinstance(self.location, list) and len(self.location) == 3:
            file, line, domain = self.location
            if isinstance(file, str):
                details["file"] = file.replace("\\", "/")
            if isinstance(line, int):
                details["lineno"] = line
            if isinstance(domain, str):
                details["domain"] = domain
        if self.user_properties:
            details["user_properties"] = self.user_properties
        tool_name, variation = split_nodeid(self.nodeid)
        return TestResult(
            test_id=self.nodeid,
            tool_name=tool_name,
            variation=variation,
            status=self.status,
            duration_secs=self.duration,
            error_type=error_type,
            error_message=bounded(error_message, MESSAGE_LIMIT),
            traceback=traceback,
            output_excerpt=join_output(_sections(self.sections[skip_sections:])),
            details=details,
            attempt=attempt,
            started_at=epoch_to_utc(self.started),
        )


def _results(path: Path, run: RunInfo, warnings: list[str]) -> Iterator[TestResult]:
    pending: dict[str, _Attempt] = {}
    # Tests in the middle of a rerun chain: node id -> (attempts emitted, sections seen).
    reruns: dict[str, tuple[int, int]] = {}
    warning_count = 0
    for lineno, record in _records(path):
        report_type = record.get("$report_type")
        if report_type == "TestReport":
            nodeid = record.get("nodeid")
            when = record.get("when")
            outcome = record.get("outcome")
            if not isinstance(nodeid, str) or not nodeid:
                raise ImportFormatError(path, "TestReport without a 'nodeid'", lineno)
            if when not in _PHASES:
                raise ImportFormatError(path, f"{nodeid}: bad 'when' {when!r}", lineno)
            if not isinstance(outcome, str):
                raise ImportFormatError(path, f"{nodeid}: TestReport without an 'outcome'", lineno)
            current = pending.get(nodeid)
            if current is None:
                current = pending[nodeid] = _Attempt(nodeid=nodeid, first_line=lineno)
            current.add(path, lineno, str(when), outcome, record)
            if when == "teardown":
                del pending[nodeid]
                yield _finish(current, reruns)
        elif report_type == "CollectReport":
            result = _collect_result(path, lineno, record)
            if result is not None:
                yield result
        elif report_type == "WarningMessage":
            warning_count += 1
        elif report_type == "SessionFinish":
            if record.get("exitstatus") is not None:
                run.metadata["exitstatus"] = record["exitstatus"]
        elif report_type is None:
            raise ImportFormatError(path, "record without '$report_type'", lineno)
        # other report types (from newer pytest versions or plugins) are ignored
    for current in pending.values():
        warnings.append(
            f"{current.nodeid}: no teardown report (from line {current.first_line}):"
            " the session was interrupted; imported as it stood"
        )
        yield _finish(current, reruns)
    if warning_count:
        warnings.append(f"the session recorded {warning_count} pytest warning(s)")


def _finish(current: _Attempt, reruns: dict[str, tuple[int, int]]) -> TestResult:
    attempt: int | None = None
    skip_sections = 0
    previous = reruns.get(current.nodeid)
    if previous is not None:
        emitted, skip_sections = previous
        attempt = emitted + 1
    elif current.reran:
        attempt = 1
    if skip_sections > len(current.sections):
        skip_sections = 0
    if current.reran:
        reruns[current.nodeid] = (attempt or 1, len(current.sections))
    elif previous is not None:
        del reruns[current.nodeid]
    return current.result(attempt, skip_sections)


def _collect_result(path: Path, lineno: int, record: dict[str, Any]) -> TestResult | None:
    outcome = record.get("outcome")
    if outcome not in ("failed", "skipped"):
        return None
    nodeid = opt_str(record.get("nodeid")) or "<session>"
    tool_name, variation = split_nodeid(nodeid)
    details: dict[str, Any] = {"collect": True, "outcome": outcome}
    longrepr = record.get("longrepr")
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
    text = render_longrepr(longrepr)
    error_type, message = _crash(longrepr, text)
    return TestResult(
        test_id=nodeid,
        tool_name=tool_name,
        variation=variation,
        status=Status.ERROR,
        error_type=error_type or "CollectionError",
        error_message=bounded(message, MESSAGE_LIMIT),
        traceback=bounded(text, TRACEBACK_LIMIT),
        details=details,
    )


def render_longrepr(longrepr: Any) -> str | None:
    """A serialised pytest ``longrepr`` as the text pytest prints.

    It is a string (collection errors, strict xpass), ``[path, lineno, "Skipped: ..."]`` for a
    skip, or a dict with ``reprcrash``, ``reprtraceback`` and ``chain`` for an exception.
    """
    if longrepr is None:
        return None
    if isinstance(longrepr, str):
        return longrepr or None
    if isinstance(longrepr, list):
        return " ".join(str(part) for part in longrepr) or None
    if not isinstance(longrepr, dict):
        return str(longrepr)
    chain = longrepr.get("chain")
    parts: list[str] = []
    if isinstance(chain, list) and chain:
        for element in chain:
            if not isinstance(element, list) or not element:
                continue
            parts.append(_render_traceback(element[0]))
            if len(element) > 2 and isinstance(element[2], str) and element[2]:
                parts.append(element[2])
    else:
        parts.append(_render_traceback(longrepr.get("reprtraceback")))
    for section in longrepr.get("sections") or []:
        if isinstance(section, list) and len(section) >= 2:
            parts.append(f"----- {section[0]} -----\n{section[1]}")
    text = "\n\n".join(part for part in parts if part)
    return text or None


def _render_traceback(reprtraceback: Any) -> str:
    if not isinstance(reprtraceback, dict):
        return ""
    out: list[str] = []
    for entry in reprtraceback.get("reprentries") or []:
        if not isinstance(entry, dict) or not isinstance(entry.get("data"), dict):
            continue
        data = entry["data"]
        lines = data.get("lines") or []
        if entry.get("type") == "ReprEntryNative":
            out.append("".join(str(line) for line in lines))
            continue
        block = "\n".join(str(line) for line in lines)
        loc = data.get("reprfileloc")
        if isinstance(loc, dict):
            block += f"\n\n{loc.get('path')}:{loc.get('lineno')}: {loc.get('message')}"
        out.append(block)
    extraline = reprtraceback.get("extraline")
    if isinstance(extraline, str) and extraline:
        out.append(extraline)
    return "\n_ _ _\n".join(out)


def _crash(longrepr: Any, text: str | None) -> tuple[str | None, str | None]:
    error_type: str | None = None
    error_message: str | None = None
    if isinstance(longrepr, dict):
        crash = longrepr.get("reprcrash")
        if isinstance(crash, dict):
            error_type, error_message = split_exception(opt_str(crash.get("message")))
    if error_type is None or error_message is None:
        long_type, long_message = exception_from_longrepr(text)
        error_type = error_type or long_type
        error_message = error_message or long_message
    if error_message is None and text:
        error_message = text.strip().partition("\n")[0] or None
    return error_type, error_message


def _skip_reason(longrepr: Any) -> str | None:
    reason: Any = longrepr
    if isinstance(longrepr, list) and len(longrepr) == 3:
        reason = longrepr[2]
    if not isinstance(reason, str):
        return None
    return reason.removeprefix("Skipped: ").strip() or None


def _sections(sections: list[Any]) -> Iterator[tuple[str, str]]:
    for section in sections:
        if (
            isinstance(section, list)
            and len(section) == 2
            and isinstance(section[0], str)
            and isinstance(section[1], str)
        ):
            yield section[0], section[1]
