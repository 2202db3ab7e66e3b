"""``simple_runner_results.json`` of the tool-validation suite: one entry per test *script*, with
the script's exit code, duration and captured output.

The runner judged each script by its exit code alone, so the file calls every script that
exited 0 passed, even one whose output says its tests failed. Here the output decides:

* a script whose output holds the suite's per-test blocks (``Test: tool/variation``,
  ``Status: ...``, ``FAILED: message``; see :mod:`.script_output`) gives one result per block,
  ``<tool>/<variation>`` as the suite's own test_results.json names it, with that block's status
  and message; the script, its exit code and the runner's word go into ``details``;
* a script whose output cannot be split is one result (its path, variation ``script``): FAIL
  with the failure lines as its message when its output reports failures ("FAILED", "❌",
  "Error:", tracebacks, "N failed"), else what its exit code says. ``execution_status``
  ``exit_0_output_reports_failure`` marks a script that exited 0 while reporting failures.

Time: the runner stamps the file with ``datetime.now()`` when its last script ends, naive local
time. The scripts ran one after another, so the run started the sum of their durations before
that, and each script's tests started where the ones before it ended. The stamp's UTC offset is
read from what else the run left: the ``test_results.json`` beside it (written as the last script
ended, stamped in UTC) or the millisecond request ids a script printed (``tool_variation_<ms>``);
offsets are whole quarter hours, so the stamp and the evidence must agree to within two minutes.
Without evidence the stamp is read as UTC, and the run's metadata and a warning say so.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from testledger.common.text import MESSAGE_LIMIT, OUTPUT_LIMIT, bounded, join_output
from testledger.ingest._common import epoch_ms_to_utc, opt_number, opt_str
from testledger.ingest.base import ImportFormatError, ParsedFile
from testledger.ingest.tool_validation.context import (
    FORMAT,
    SUITE,
    ExaiContext,
    json_object,
    parse_time,
)
from testledger.ingest.tool_validation.entries import (
    STATUSES,
    document_kind,
    provider_of,
    suite_context,
    try_load,
)
from testledger.ingest.tool_validation.script_output import (
    MAX_FAILURE_LINES,
    failure_lines,
    read_output,
)
from testledger.model import NO_WATCHER, RunInfo, Status, TestResult

__all__ = ["parse_simple_runner"]

_QUARTER_HOUR = timedelta(minutes=15)
#: How closely the evidence must fall in the window it was written in, once the offset applied:
#: a request id within its script's run; the test_results.json beside the file within seconds
#: of its stamp (written together), so that another run's file is not taken for evidence.
_AGREEMENT = timedelta(minutes=2)
_WRITTEN_TOGETHER = timedelta(seconds=10)
_MAX_OFFSET = timedelta(hours=14)
#: ``<tool>_<variation>_<epoch ms>``: the suite's MCP request ids, printed on failures.
_REQUEST_ID = re.compile(r"\b[A-Za-z][\w-]*_(1[5-9]\d{11})\b")


def parse_simple_runner(path: Path, doc: dict[str, Any], warnings: list[str]) -> ParsedFile:
    entries = [_checked(path, i, e) for i, e in enumerate(doc["results"])]
    metadata: dict[str, Any] = {"format": FORMAT, "layout": "simple_runner"}
    keys = ("timestamp", "total_scripts", "passed", "failed", "errors", "timeouts", "pass_rate")
    metadata.update({key: doc[key] for key in keys if key in doc})
    ctx = suite_context(path.parent, warnings)
    durations = [opt_number(e.get("duration")) or 0.0 for e in entries]
    start, end = _run_window(path, doc, entries, durations, metadata, warnings)
    results: list[TestResult] = []
    flagged: list[str] = []
    failed_tests = 0
    clock = start
    for entry, duration in zip(entries, durations, strict=True):
        script_results = _script_results(entry, duration, clock, ctx, warnings)
        results += script_results
        code = entry.get("return_code")
        if code == 0 and any(r.status.is_failure for r in script_results):
            flagged.append(_script_id(entry))
            failed_tests += sum(r.status.is_failure for r in script_results)
        clock = clock + timedelta(seconds=duration) if clock is not None else None
    if flagged:
        metadata["scripts_output_reports_failures"] = flagged
        warnings.append(
            f"the runner counts {doc.get('passed')!r} of {len(entries)} scripts passed by their "
            f"exit codes, but {len(flagged)} of those scripts report {failed_tests} failed "
            "test(s) in their output: imported as failures"
        )
    watcher = ctx.watcher_model or NO_WATCHER
    run = RunInfo(suite=SUITE, started_at=start, metadata=metadata, watcher_model=watcher)
    return ParsedFile(path, FORMAT, run, iter(results), warnings, finished_at=end)


def _checked(path: Path, index: int, entry: object) -> dict[str, Any]:
    if not isinstance(entry, dict) or opt_str(entry.get("script")) is None:
        raise ImportFormatError(path, f"results[{index}]: expected an object with 'script'")
    return entry


def _script_id(entry: dict[str, Any]) -> str:
    return str(entry["script"]).replace("\\", "/")


def _exit_code(entry: dict[str, Any]) -> int | None:
    code = entry.get("return_code")
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def _script_details(entry: dict[str, Any], duration: float) -> dict[str, Any]:
    script = _script_id(entry)
    details: dict[str, Any] = {
        "script": script,
        "return_code": _exit_code(entry),
        "runner_status": opt_str(entry.get("status")),
        "script_duration_secs": duration,
    }
    if "/" in script:
        details["category"] = script.rsplit("/", 2)[-2]
    return details


def _script_results(
    entry: dict[str, Any],
    duration: float,
    start: datetime | None,
    ctx: ExaiContext,
    warnings: list[str],
) -> list[TestResult]:
    """The results of one script: one per printed test block, else the script as one."""
    output, errors = opt_str(entry.get("output")) or "", opt_str(entry.get("errors")) or ""
    printed = read_output(output)
    if not printed.blocks:
        return [_whole_script(entry, duration, start, output, errors)]
    script = _script_id(entry)
    total = printed.counts.get("total")
    if total is not None and total != len(printed.blocks):
        warnings.append(
            f"{script}: its summary says Total Tests: {total} but {len(printed.blocks)} test "
            "block(s) were printed"
        )
    default_tool = script.rsplit("/", 1)[-1].removesuffix(".py").removeprefix("test_")
    results = []
    for block in printed.blocks:
        tool, _, variation = block.name.partition("/")
        if not variation:
            tool, variation = default_tool, block.name
        status = STATUSES.get((block.status or "").lower())
        details = _script_details(entry, duration) | {"source": "script_output"}
        if status is None:
            # A word the suite's runner does not print: kept, and not taken for a pass.
            details["printed_status"] = block.status
            status = Status.ERROR
        failing = status.is_failure
        results.append(
            TestResult(
                test_id=f"{tool}/{variation}",
                tool_name=tool,
                variation=variation,
                status=status,
                provider=provider_of(tool, variation, ctx),
                error_message=bounded("\n".join(block.messages), MESSAGE_LIMIT) or None,
                output_excerpt=join_output(
                    [("stdout", "\n".join(block.lines)), ("stderr", errors)], OUTPUT_LIMIT
                )
                if failing
                else None,
                details=details,
                started_at=start,
            )
        )
    return results


def _whole_script(
    entry: dict[str, Any],
    duration: float,
    start: datetime | None,
    output: str,
    errors: str,
) -> TestResult:
    """A script whose output has no test blocks: one result, judged by its output's failure
    reports first and its exit code second."""
    script = _script_id(entry)
    tool = script.rsplit("/", 1)[-1].removesuffix(".py").removeprefix("test_")
    code, written = _exit_code(entry), opt_str(entry.get("status"))
    details = _script_details(entry, duration)
    matches = failure_lines(output + "\n" + errors)
    message = errors
    if code is None:  # the runner killed it or could not start it: its own word says which
        execution = written if written in ("timeout", "error") else "no_exit_code"
    elif code == 0 and matches:
        execution = "exit_0_output_reports_failure"
        details["output_reports_failures"] = True
        details["failure_lines"] = matches[:MAX_FAILURE_LINES]
        details["failure_lines_total"] = len(matches)
        message = "\n".join(matches[:MAX_FAILURE_LINES])
    else:
        execution = f"exit_{code}"
    status = Status.PASS if code == 0 and not matches else Status.FAIL
    return TestResult(
        test_id=script,
        tool_name=tool,
        variation="script",
        status=status,
        execution_status=execution,
        duration_secs=duration,
        error_message=bounded(message, MESSAGE_LIMIT) if status.is_failure else None,
        output_excerpt=join_output([("stdout", output), ("stderr", errors)], OUTPUT_LIMIT),
        details=details,
        started_at=start,
    )


# --------------------------------------------------------------------------- time


def _run_window(
    path: Path,
    doc: dict[str, Any],
    entries: list[dict[str, Any]],
    durations: list[float],
    metadata: dict[str, Any],
    warnings: list[str],
) -> tuple[datetime | None, datetime | None]:
    """When the run started and ended, in UTC (see the module's note on time)."""
    stamp = opt_str(doc.get("timestamp"))
    try:
        local_end = datetime.fromisoformat(stamp) if stamp else None
    except ValueError:
        local_end = None
    if local_end is None:
        warnings.append(f"the runner's timestamp {stamp!r} is not a time: the run is undated")
        return None, None
    elapsed = timedelta(seconds=sum(durations))
    if local_end.tzinfo is not None:
        end = local_end.astimezone(timezone.utc)
        metadata["time_source"] = "timestamp"
        return end - elapsed, end
    local_end = local_end.replace(tzinfo=timezone.utc)  # naive arithmetic, in aware form
    offset, source = _offset_beside(path, local_end), "test_results.json beside it"
    if offset is None:
        offset, source = _offset_in_output(entries, durations, local_end), "request ids"
    if offset is None:
        warnings.append(
            "the runner's timestamp is local time without a zone, and nothing in the run tells "
            "its UTC offset: read as UTC"
        )
        metadata["time_source"] = "timestamp read as UTC (no zone)"
        offset = timedelta(0)
    else:
        metadata["time_source"] = f"timestamp, UTC offset from the {source}"
    metadata["timestamp_utc_offset"] = _offset_text(offset)
    end = local_end - offset
    return end - elapsed, end


def _offset_text(offset: timedelta) -> str:
    minutes = int(offset.total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _offset(
    local_low: datetime, local_high: datetime, instant: datetime, slack: timedelta = _AGREEMENT
) -> timedelta | None:
    """The whole-quarter-hour UTC offset that puts ``instant`` within the local window, if any."""
    middle = local_low + (local_high - local_low) / 2
    offset = round((middle - instant) / _QUARTER_HOUR) * _QUARTER_HOUR
    if abs(offset) > _MAX_OFFSET:
        return None
    inside = local_low - slack <= instant + offset <= local_high + slack
    return offset if inside else None


def _offset_beside(path: Path, local_end: datetime) -> timedelta | None:
    """From the ``test_results.json`` beside the file: the suite writes it, stamped in UTC, when
    the last script's last test ends, just before the runner stamps its own file."""
    doc = try_load(path.parent / "test_results.json", "test results", None)
    if doc is None or document_kind(doc) != "tests":
        return None
    stamps = [parse_time(json_object(t).get("timestamp")) for t in doc["tests"]]
    last = max((s for s in stamps if s is not None), default=None)
    return _offset(local_end, local_end, last, _WRITTEN_TOGETHER) if last else None


def _offset_in_output(
    entries: list[dict[str, Any]], durations: list[float], local_end: datetime
) -> timedelta | None:
    """From the request ids scripts printed (``tool_variation_<epoch ms>``): each must fall
    within its own script's local window. The offset most of them agree on."""
    found: Counter[timedelta] = Counter()
    script_end = local_end
    for entry, duration in reversed(list(zip(entries, durations, strict=True))):
        script_start = script_end - timedelta(seconds=duration)
        text = (opt_str(entry.get("output")) or "") + (opt_str(entry.get("errors")) or "")
        for match in _REQUEST_ID.finditer(text):
            instant = epoch_ms_to_utc(int(match.group(1)))
            offset = _offset(script_start, script_end, instant) if instant else None
            if offset is not None:
                found[offset] += 1
        script_end = script_start
    return found.most_common(1)[0][0] if found else None
