"""The tool-validation suite's evidence outside its run reports, parsed: watcher observation files
and folders, the CSV of watcher analyses, the API call logs (``api_responses/``), a results
folder read whole, script output split into tests, and summary-only files.

The files are hand-made in the real suite's shapes under ``tests/data/exai/suite``; what they
become in the ledger is tested in ``test_exai_import.py``.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from testledger.ingest.base import ImportFormatError, LooseResult, ParsedFile, RunTotals
from testledger.ingest.formats import pytest_json
from testledger.ingest.tool_validation import results as exai
from testledger.ingest.tool_validation.script_output import read_output
from testledger.model import Status

DATA = Path(__file__).resolve().parents[1] / "data"
SUITE = DATA / "exai" / "suite"
LATEST = SUITE / "results" / "latest"
OBSERVATIONS = LATEST / "watcher_observations"

PASS, FAIL, SKIP, ERROR = Status.PASS, Status.FAIL, Status.SKIP, Status.ERROR
NOT_RECORDED = "status_not_recorded"
PLACEHOLDER = "watcher response unparseable (placeholder quality_score 5)"
WATCHER_FAILED = "watcher failed (quality_score 0)"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def loose(parsed: ParsedFile) -> list[LooseResult]:
    assert parsed.loose is not None and list(parsed.results) == []
    return parsed.loose


# --------------------------------------------------------------------------- observations


def observation(**fields: Any) -> dict[str, Any]:
    analysis = {"quality_score": 7, "anomalies": ["a"], "suggestions": ["s"], "observations": "o"}
    return {
        "tool": "chat",
        "variation": "basic_glm",
        "timestamp": "2025-10-07T10:00:40Z",
        "watcher_analysis": analysis,
    } | fields


@pytest.mark.parametrize(
    ("obs", "status", "execution", "at", "not_before"),
    [
        # Placed by when its test started, when the file says so; the watcher wrote it later.
        (
            observation(test_status="failed", performance_metrics={"start_time": 1759831200.0}),
            FAIL,
            None,
            "2025-10-07T10:00:00",
            None,
        ),
        (observation(test_status="passed"), PASS, None, "2025-10-07T10:00:40", None),
        (observation(test_status="skipped"), SKIP, None, "2025-10-07T10:00:40", None),
        # No status recorded (older files): a result that is neither a pass nor a failure.
        (observation(), SKIP, NOT_RECORDED, "2025-10-07T10:00:40", None),
        (observation(test_status="weird"), SKIP, NOT_RECORDED, "2025-10-07T10:00:40", None),
        # The watcher's previous observation of the test: the result judged is later.
        (
            observation(test_status="passed", run_number=4, previous_run="2025-10-06T09:00:30Z"),
            PASS,
            None,
            "2025-10-07T10:00:40",
            "2025-10-06T09:00:30",
        ),
    ],
)
def test_observation_file_alone(
    tmp_path: Path,
    obs: dict[str, Any],
    status: Status,
    execution: str | None,
    at: str,
    not_before: str | None,
) -> None:
    path = tmp_path / "chat_basic_glm.json"
    path.write_text(json.dumps(obs))
    assert exai.sniff(path, path.read_bytes())
    (item,) = loose(exai.parse(path))
    result = item.result
    assert (result.test_id, result.status, result.execution_status) == (
        "chat/basic_glm",
        status,
        execution,
    )
    assert (item.at, item.kind) == (utc(at), "watcher observation")
    assert item.not_before == (utc(not_before) if not_before else None)
    assert result.started_at == item.at
    assert result.watcher is not None and result.watcher.quality_score == 7
    assert result.watcher.created_at == utc("2025-10-07T10:00:40")
    assert result.details["reconstructed_from"] == "watcher observation"
    assert result.details["observation_file"] == "chat_basic_glm.json"
    assert result.details.get("run_number") == obs.get("run_number")
    assert (result.details.get("recorded_status") is not None) is (
        execution == NOT_RECORDED and "test_status" in obs
    )


def test_observation_without_its_test_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text(json.dumps(observation(tool=None)))
    with pytest.raises(ImportFormatError, match="without 'tool' and 'variation'"):
        exai.parse(path)


def test_observation_folder() -> None:
    (parsed,) = list(exai.parse_folder(OBSERVATIONS))
    items = loose(parsed)
    assert [(i.result.test_id, i.result.status, i.at) for i in items] == [
        ("chat/basic_glm", SKIP, utc("2025-10-07T10:00:40")),
        ("chat/basic_kimi", FAIL, utc("2025-10-07T10:01:00")),
        ("health/basic_glm", SKIP, utc("2025-10-07T10:04:00")),
        ("kimi_upload_and_extract/basic_kimi", PASS, utc("2025-10-07T10:02:29")),
        ("status/basic_functionality", SKIP, utc("2025-10-07T10:02:59")),
    ]
    kimi = items[1].result.watcher
    assert kimi is not None and (kimi.quality_score, kimi.error) == (None, WATCHER_FAILED)
    assert parsed.run.suite == exai.SUITE and parsed.run.watcher_model == "glm-4.5-air"
    assert parsed.run.metadata["layout"] == "watcher_observations"


# --------------------------------------------------------------------------- the CSV


def test_analyses_csv() -> None:
    path = LATEST / "watcher_analysis.csv"
    assert exai.sniff(path, path.read_bytes()[:512])
    parsed = exai.parse(path)
    rows = [
        (
            i.result.test_id,
            i.at,
            i.result.details.get("dated_by"),
            i.result.watcher.quality_score if i.result.watcher else "-",
            i.result.watcher.error if i.result.watcher else "-",
        )
        for i in loose(parsed)
    ]
    assert rows == [
        # The file it names was rewritten since: the row is what it held before.
        (
            "kimi_upload_and_extract/basic_kimi",
            utc("2025-10-06T09:02:00"),
            "previous_run of kimi_upload_and_extract_basic_kimi.json",
            6,
            None,
        ),
        (
            "chat/basic_glm",
            utc("2025-10-06T09:00:30"),
            "previous_run of chat_basic_glm.json",
            3,
            None,
        ),
        # No file dates these; a score of 0 stays the watcher's own failure.
        ("status/edge_cases", None, None, None, PLACEHOLDER),
        ("health/basic_kimi", None, None, None, WATCHER_FAILED),
    ]
    first = loose(parsed)[0].result
    assert (first.status, first.execution_status) == (SKIP, NOT_RECORDED)
    assert first.details["run_number"] == 1 and first.details["csv_line"] == 3
    assert first.watcher is not None and first.watcher.anomalies == ["Upload slow", "No file id"]
    assert first.watcher.raw is not None and first.watcher.raw["source"]["row"] == 3
    # chat_basic_kimi's row says what its file says: one observation, not two.
    assert parsed.warnings == [
        "1 row(s) say what the observation file they name says: not imported twice",
        "2 row(s) carry no time and no newer file dates them: kept in an undated run of the CSV",
    ]


def test_csv_of_something_else(tmp_path: Path) -> None:
    path = tmp_path / "watcher_analysis.csv"
    path.write_text('"File","Tool","Variation","QualityScore"\n"a.json","","","7"\n')
    parsed = exai.parse(path)
    assert loose(parsed) == []
    assert parsed.warnings == ["watcher_analysis.csv line 2: no Tool or Variation, skipped"]
    other = tmp_path / "other.csv"
    other.write_text("name,value\na,1\n")
    assert not exai.sniff(other, other.read_bytes())


# --------------------------------------------------------------------------- API call logs

TOOL_NOT_FOUND = "MCP error: {'code': 'TOOL_NOT_FOUND', 'message': 'Unknown tool: self-check'}"
# test_id, status, at, duration, model, provider, tokens, error, execution_status
CALLS: list[tuple[Any, ...]] = [
    # A provider's pair: the response's created time, model and usage block.
    (
        "chat/basic_functionality",
        PASS,
        "2025-10-05T08:00:20",
        None,
        "glm-4.5-flash",
        "glm",
        136,
        None,
        None,
    ),
    # A provider request whose response was never saved: the call failed, when is unknown.
    (
        "chat/basic_functionality",
        ERROR,
        None,
        None,
        "kimi-k2-turbo-preview",
        "kimi",
        None,
        "no response was saved: the call failed",
        None,
    ),
    # MCP: the duration between the two files' stamps; model and tokens from the summary.
    (
        "chat/basic_glm",
        PASS,
        "2025-10-07T10:00:01.100000",
        12.5,
        "glm-4.5-flash",
        "glm",
        42,
        None,
        "continuation_available",
    ),
    (
        "chat/basic_kimi",
        ERROR,
        "2025-10-07T10:01:00",
        None,
        "kimi-k2-turbo-preview",
        "kimi",
        None,
        "no response was saved for this request",
        None,
    ),
    (
        "self-check/basic_glm",
        ERROR,
        "2025-10-07T10:05:00",
        0.2,
        None,
        "glm",
        None,
        TOOL_NOT_FOUND,
        None,
    ),
    (
        "tracer/basic_kimi",
        ERROR,
        "2025-10-07T10:06:00",
        3.0,
        "kimi-k2-turbo-preview",
        "kimi",
        None,
        "[tool:error] tracer: the model timed out",
        None,
    ),
]


@pytest.mark.parametrize("folder", [LATEST / "api_responses"])
def test_api_call_logs(folder: Path) -> None:
    assert exai.sniff(folder, b"")
    (parsed,) = list(exai.parse_folder(folder))
    items = loose(parsed)
    got = [
        (
            i.result.test_id,
            i.result.status,
            i.at,
            i.result.duration_secs,
            i.result.model,
            i.result.provider,
            i.result.tokens_total,
            i.result.error_message,
            i.result.execution_status,
        )
        for i in items
    ]
    want = [(c[0], c[1], utc(c[2]) if c[2] else None, *c[3:]) for c in CALLS]
    assert got == want
    mcp = items[2].call
    assert mcp is not None
    assert mcp["id"] == "chat_basic_glm_1759831201100" and mcp["tokens_estimated"] is True
    assert mcp["request_file"] == "chat_chat_basic_glm_1759831201100_request.json"
    assert mcp["responded_at"] == "2025-10-07T10:00:13.600000Z"
    glm = items[0]
    assert (
        glm.call is not None
        and glm.call["id"] == "glm:chat_basic_functionality@2025-10-05T08:00:20Z"
    )
    assert (glm.result.tokens_input, glm.result.tokens_output) == (18, 118)
    assert all(i.result.details["reconstructed_from"] == "API call" for i in items)


def test_one_provider_folder(tmp_path: Path) -> None:
    folder = tmp_path / "api_responses" / "mcp"
    folder.mkdir(parents=True)
    for file in (LATEST / "api_responses" / "mcp").glob("self-check*"):
        (folder / file.name).write_bytes(file.read_bytes())
    assert exai.sniff(folder, b"") and not exai.sniff(tmp_path, b"")
    (parsed,) = list(exai.parse_folder(folder))
    assert [i.result.test_id for i in loose(parsed)] == ["self-check/basic_glm"]


# --------------------------------------------------------------------------- a results folder


def test_results_folder_whole() -> None:
    parsed = list(exai.parse_folder(SUITE / "results"))
    kinds = [
        (
            p.path.relative_to(SUITE / "results").as_posix(),
            "loose" if p.loose is not None else "run",
        )
        for p in parsed
    ]
    # Runs first, oldest first; then the evidence, placed once the runs are in the ledger.
    assert kinds == [
        ("history/results_20251005_080000.json.gz", "run"),
        ("history/results_20251006_090000/test_results.json", "run"),
        ("latest/test_results.json", "run"),
        ("latest/watcher_observations", "loose"),
        ("latest/watcher_analysis.csv", "loose"),
        ("latest/api_responses", "loose"),
    ]
    # Observation files a result of the run took are not loose; the others are, never dropped.
    assert [i.result.test_id for i in loose(parsed[3])] == ["chat/basic_glm", "health/basic_glm"]
    # Its summary.json says 2 tests where the run's file lists 1: the run's totals.
    assert parsed[1].run.metadata["summary_totals"] == {
        "total": 2,
        "passed": 0,
        "failed": 1,
        "skipped": 0,
        "errored": 0,
    }
    assert [(s.path.name, s.reason) for p in parsed for s in p.skipped] == [
        ("README_not_a_run.txt", "not a run archive (history/results_YYYYMMDD_HHMMSS)")
    ]


def test_summary_beside_no_results(tmp_path: Path) -> None:
    latest = tmp_path / "results" / "latest"
    latest.mkdir(parents=True)
    (latest / "summary.json").write_bytes((LATEST / "summary.json").read_bytes())
    (parsed,) = list(exai.parse_folder(tmp_path / "results"))
    assert parsed.totals == RunTotals(total=4, passed=2, failed=1, skipped=1)
    assert [s.path.name for s in parsed.skipped] == []


# --------------------------------------------------------------------------- summaries


def test_summary_file_alone_is_a_summary() -> None:
    parsed = exai.parse(LATEST / "summary.json")
    assert list(parsed.results) == [] and parsed.loose is None
    assert parsed.totals == RunTotals(total=4, passed=2, failed=1, skipped=1)
    assert parsed.totals.pass_rate == 66.67
    assert parsed.run.started_at == utc("2025-10-07T10:00:00")


def test_pytest_json_summary_mode() -> None:
    path = DATA / "pytest_json" / "summary_only.json"
    parsed = pytest_json.parse(path)
    assert list(parsed.results) == [] and parsed.warnings == []
    # xpassed counts as passed, error as failed (and errored), xfailed as skipped.
    assert parsed.totals == RunTotals(total=11, passed=6, failed=3, skipped=2, errored=1)
    assert parsed.run.started_at == datetime.fromtimestamp(1759831260.0, tz=timezone.utc)


def test_pytest_json_without_counts(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    path.write_text(json.dumps({"created": 1.0, "exitcode": 0, "root": "/", "summary": {}}))
    parsed = pytest_json.parse(path)
    assert parsed.totals is None
    assert parsed.warnings == ["the report has no 'tests' and no counts in its summary: no results"]


# --------------------------------------------------------------------------- script output

_WORDS = st.text(st.sampled_from("abcxyz_-0123456789"), min_size=1, max_size=12)
_MESSAGE = (
    st.text(
        st.characters(blacklist_categories=["Cs", "Cc", "Zl", "Zp"], blacklist_characters="\r\n"),
        min_size=1,
        max_size=60,
    )
    .map(str.strip)
    .filter(bool)
)
_BLOCK = st.tuples(_WORDS, _WORDS, st.sampled_from(["passed", "failed", "skipped"]), _MESSAGE)


@given(st.lists(_BLOCK, max_size=6), st.booleans())
def test_script_output_round_trip(blocks: list[tuple[str, str, str, str]], summary: bool) -> None:
    """Whatever tests a script prints in the suite's format, they read back as printed."""
    rule = "=" * 60
    lines = []
    for tool, variation, status, message in blocks:
        lines += [rule, f"Test: {tool}/{variation}", f"Status: {status}"]
        lines += [f"FAILED: {message}"] if status == "failed" else ["PASSED"]
        lines += [rule, ""]
    if summary:
        lines += [rule, "  TEST RESULTS SUMMARY", rule, f"Total Tests: {len(blocks)}"]
        lines += [f"Failed: {sum(b[2] == 'failed' for b in blocks)}", "-" * 60, "Failed: 99"]
    printed = read_output("\n".join(lines))
    assert [(b.name, b.status, b.messages) for b in printed.blocks] == [
        (f"{tool}/{variation}", status, [message] if status == "failed" else [])
        for tool, variation, status, message in blocks
    ]
    if summary:
        failed = sum(b[2] == "failed" for b in blocks)
        assert printed.counts == {"total": len(blocks), "failed": failed}
    else:
        assert printed.counts == {}
