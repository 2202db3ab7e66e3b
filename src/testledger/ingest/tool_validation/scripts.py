"""``simple_runner_results.json`` of the tool-validation suite: one result per test *script*.

A script is judged by its exit code only (0 PASS, else FAIL, as written). Output that reports
failures anyway ("FAILED", "❌", "Error:", tracebacks, "N failed") is flagged beside it:
``details["output_reports_failures"]``, the matching lines (bounded) and ``execution_status``
``exit_0_output_reports_failure``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from testledger.common.text import MESSAGE_LIMIT, OUTPUT_LIMIT, bounded, join_output
from testledger.ingest._common import opt_number, opt_str
from testledger.ingest.base import ImportFormatError, ParsedFile
from testledger.ingest.tool_validation.context import FORMAT, SUITE
from testledger.model import RunInfo, Status, TestResult

__all__ = ["parse_simple_runner"]

#: How many matching lines (and characters of each) are kept as evidence.
_MAX_FAILURE_LINES = 20
_FAILURE_LINE_LIMIT = 300


# What a script's captured output says when tests failed although the script exited 0. Case
# matters: "Failed: 0" and "MCP tool call failed" (a retried attempt) are not failure reports.
_FAILURE_PATTERNS = re.compile(
    r"\bFAILED\b|❌|âŒ|\bError:|^\s*Traceback \(most recent call last\)"
    r"|\b[1-9]\d* (?:tests? )?failed\b|\bFailed: [1-9]\d*|\bStatus: failed\b"
)


def parse_simple_runner(path: Path, doc: dict[str, Any], warnings: list[str]) -> ParsedFile:
    entries = doc["results"]
    metadata: dict[str, Any] = {"format": FORMAT, "layout": "simple_runner"}
    keys = ("timestamp", "total_scripts", "passed", "failed", "errors", "timeouts", "pass_rate")
    metadata.update({key: doc[key] for key in keys if key in doc})
    # The runner writes a naive local timestamp: with no timezone it cannot be the run's start.
    run = RunInfo(suite=SUITE, metadata=metadata)
    results = [_script_result(path, i, e) for i, e in enumerate(entries)]
    passed = sum(r.status is Status.PASS for r in results)
    if isinstance(doc.get("passed"), int) and doc["passed"] != passed:
        warnings.append(f"the file says passed={doc['passed']} but {passed} scripts exited 0")
    flagged = [r.test_id for r in results if r.details.get("output_reports_failures")]
    if flagged:
        metadata["scripts_output_reports_failures"] = flagged
        warnings.append(f"{len(flagged)} scripts exited 0 but their output reports failures")
    return ParsedFile(path=path, format=FORMAT, run=run, results=iter(results), warnings=warnings)


def _script_result(path: Path, index: int, entry: object) -> TestResult:
    if not isinstance(entry, dict) or opt_str(entry.get("script")) is None:
        raise ImportFormatError(path, f"results[{index}]: expected an object with 'script'")
    script = str(entry["script"]).replace("\\", "/")
    name = script.rsplit("/", 1)[-1]
    tool = name.removesuffix(".py").removeprefix("test_")
    code = entry.get("return_code")
    code = code if isinstance(code, int) and not isinstance(code, bool) else None
    written = opt_str(entry.get("status"))
    details: dict[str, Any] = {"return_code": code, "runner_status": written}
    if "/" in script:
        details["category"] = script.rsplit("/", 2)[-2]
    output, errors = opt_str(entry.get("output")) or "", opt_str(entry.get("errors")) or ""
    lines = (output + "\n" + errors).splitlines()
    matches = [ln.strip()[:_FAILURE_LINE_LIMIT] for ln in lines if _FAILURE_PATTERNS.search(ln)]
    # Exit codes are the runner's only verdict and are recorded as written; the output is a
    # second opinion, flagged beside it rather than overriding it.
    status = Status.PASS if code == 0 else Status.FAIL
    if code is None:  # the runner killed it or could not start it: its own word says which
        execution = written if written in ("timeout", "error") else "no_exit_code"
    elif code == 0 and matches:
        execution = "exit_0_output_reports_failure"
        details["output_reports_failures"] = True
        details["failure_lines"] = matches[:_MAX_FAILURE_LINES]
        details["failure_lines_total"] = len(matches)
    else:
        execution = f"exit_{code}"
    return TestResult(
        test_id=script,
        tool_name=tool,
        variation="script",
        status=status,
        execution_status=execution,
        duration_secs=opt_number(entry.get("duration")),
        error_message=bounded(errors, MESSAGE_LIMIT) if status.is_failure else None,
        output_excerpt=join_output([("stdout", output), ("stderr", errors)], OUTPUT_LIMIT),
        details=details,
    )
