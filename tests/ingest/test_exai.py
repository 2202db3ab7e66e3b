"""Tests of the tool-validation-suite importer (``testledger.ingest.tool_validation.results``).

``tests/data/exai/suite`` is a hand-made suite folder in the real suite's shapes: ``config/``,
``results/latest/`` (test_results.json, summary.json, prompt_counter.json, watcher_observations/,
api_responses/mcp/), the report ``results/test_results.json`` and ``results/history/`` archives
(a folder, a ``.json.gz`` and a copy of the latest session). The real run in
``shared/fixtures/exai`` is read in place when present.
"""

from __future__ import annotations

import gzip
import json
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from testledger.ingest.base import ImportFormatError, ParsedFile
from testledger.ingest.tool_validation import results as exai
from testledger.model import Status, TestResult

DATA = Path(__file__).resolve().parents[1] / "data" / "exai"
SUITE = DATA / "suite"
LATEST = SUITE / "results" / "latest"
REAL = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "exai"
REAL_SUITE = REAL / "tool_validation_suite"
REAL_LATEST = REAL_SUITE / "results" / "latest"
# Skipped only without ../shared itself: with it, a sample missing from it fails its test.
needs_real = pytest.mark.skipif(not REAL.parents[1].is_dir(), reason="../shared is absent")

PASS, FAIL, SKIP = Status.PASS, Status.FAIL, Status.SKIP


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def by_id(results: list[TestResult]) -> dict[str, TestResult]:
    return {r.test_id: r for r in results}


def runs_of(folder: Path) -> list[ParsedFile]:
    """The runs a folder gives (not its summaries nor its loose evidence)."""
    return [p for p in exai.parse_folder(folder) if p.loose is None and p.totals is None]


# --------------------------------------------------------------------------- sniff


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (LATEST / "test_results.json", True),
        (SUITE / "results" / "test_results.json", True),
        (LATEST / "summary.json", True),
        (DATA / "simple_runner_results.json", True),
        (SUITE / "results" / "history" / "results_20251005_080000.json.gz", True),
        (LATEST / "prompt_counter.json", False),
        # An observation file imports on its own (placed on the result it judged).
        (LATEST / "watcher_observations" / "chat_basic_kimi.json", True),
        (SUITE / "config" / "test_config.json", False),
    ],
)
def test_sniff_own_files(path: Path, expected: bool) -> None:
    assert exai.sniff(path, path.read_bytes()[:512]) is expected


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b'{\n  "session_start": "2025-10-07T13:46:44Z",\n  "tests": [', True),
        (b'\xef\xbb\xbf{"session_start": "x", "total_tests": 3', True),
        (b'{"summary": {"session_start": "x"', True),
        (b'{"timestamp": "2025-10-08T00:47:15", "total_scripts": 37', True),
        (gzip.compress(b'{"session_start": "x", "tests": []}', mtime=0), True),
        (b'{"session_start": "x", "total_prompts": 2', False),
        (b'{"results": {"tool": {"name": "x"}}}', False),
        (b"<testsuite/>", False),
        (b"", False),
    ],
)
def test_sniff_heads(head: bytes, expected: bool) -> None:
    assert exai.sniff(Path("x.json"), head) is expected


@pytest.mark.parametrize(
    ("folder", "expected"),
    [
        (SUITE, True),
        (SUITE / "results", True),
        (LATEST, True),
        (SUITE / "results" / "history" / "results_20251006_090000", True),
        (LATEST / "watcher_observations", True),
        (LATEST / "api_responses", True),
        (LATEST / "api_responses" / "mcp", True),
        (DATA, False),
        (SUITE / "config", False),
    ],
)
def test_sniff_folders(folder: Path, expected: bool) -> None:
    assert exai.sniff(folder, b"") is expected


def test_sniff_folder_with_unreadable_results(tmp_path: Path) -> None:
    (tmp_path / "test_results.json.gz").write_bytes(b"\x1f\x8bnot gzip")
    assert exai.sniff(tmp_path, b"") is False
    (tmp_path / "test_results.json.gz").unlink()
    (tmp_path / "test_results.json").write_text('{"other": 1}')
    assert exai.sniff(tmp_path, b"") is False


# --------------------------------------------------------------------------- one file


# test_id: status, provider, model, execution_status, duration, memory_mb, cpu, started_at, error
LATEST_ALONE: dict[str, tuple[Any, ...]] = {
    "chat/basic_glm": (PASS, "glm", None, None, 12.5, 62, 3.0, "2025-10-07T10:00:01", None),
    "chat/basic_kimi": (
        FAIL,
        "kimi",
        "kimi-k2-0905-preview",
        None,
        2.25,
        64,
        15.5,
        "2025-10-07T10:01:00",
        "MCP error: timeout\nResponse has no content",
    ),
    "kimi_upload_and_extract/basic_kimi": (
        PASS,
        "kimi",
        "kimi-k2-0905-preview",
        "success",
        5.0,
        62,
        0.0,
        "2025-10-07T10:02:00",
        None,
    ),
    "status/basic_functionality": (
        SKIP,
        None,
        None,
        None,
        0.0,
        None,
        None,
        "2025-10-07T10:03:00",
        None,
    ),
}


def test_parse_latest_file_alone() -> None:
    parsed = exai.parse(LATEST / "test_results.json")
    results = list(parsed.results)
    assert parsed.format == "exai"
    assert parsed.warnings == []
    assert parsed.run.started_at == utc("2025-10-07T10:00:00")
    assert parsed.run.watcher_model == "glm-4.5-air"
    assert parsed.run.suite == exai.SUITE
    assert [r.test_id for r in results] == list(LATEST_ALONE)
    for result in results:
        status, provider, model, execution, duration, memory, cpu, start, error = LATEST_ALONE[
            result.test_id
        ]
        tool, variation = result.test_id.split("/")
        assert (result.tool_name, result.variation) == (tool, variation)
        assert result.status is status
        assert (result.provider, result.model, result.execution_status) == (
            provider,
            model,
            execution,
        )
        assert (result.duration_secs, result.memory_mb, result.cpu_percent) == (
            duration,
            memory,
            cpu,
        )
        assert result.started_at == utc(start)
        assert result.error_message == error
        # Alone, the file's side files are not read: only the embedded watcher is there.
        assert (result.watcher is not None) is (result.test_id == "chat/basic_glm")
        assert result.tokens_total is None
    kimi = by_id(results)["chat/basic_kimi"]
    assert kimi.details["recorded_at"] == "2025-10-07T10:01:30.000000Z"
    assert kimi.details["validation"]["errors"] == ["Response has no content"]
    assert kimi.metrics == {"memory_delta_mb": 0.5}


def test_embedded_watcher_mapping() -> None:
    glm = by_id(list(exai.parse(LATEST / "test_results.json").results))["chat/basic_glm"]
    watcher = glm.watcher
    assert watcher is not None
    assert watcher.quality_score == 7
    assert watcher.confidence == 0.85
    assert watcher.confidence_level == "high"
    assert watcher.anomalies == ["Response ends abruptly"]
    assert watcher.recommendations == ["Check truncation", "Record metrics"]
    assert watcher.strengths == [] and watcher.weaknesses == []
    assert watcher.error is None
    assert watcher.watcher == "glm-4.5-air"
    assert watcher.created_at == utc("2025-10-07T10:00:40")
    assert watcher.raw is not None
    assert watcher.raw["run_number"] == 4
    assert watcher.raw["previous_run"] == "2025-10-06T09:00:30.000000Z"
    assert watcher.raw["watcher_analysis"]["correctness"] == "PARTIAL"
    assert watcher.raw["watcher_analysis"]["progress"] == "Same as previous run."
    assert watcher.raw["watcher_analysis"]["observations"] == "Works but output looks cut."


def analysis(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"anomalies": ["a"], "suggestions": ["s"], "observations": "o"}
    return {"tool": "t", "variation": "v", "watcher_analysis": {**base, **fields}}


@pytest.mark.parametrize(
    ("obs", "score", "error", "confidence", "level", "recommendations"),
    [
        (analysis(quality_score=9, confidence=0.95), 9, None, 0.95, "high", ["s"]),
        (analysis(quality_score=6, confidence=0.5), 6, None, 0.5, "medium", ["s"]),
        (analysis(quality_score=1, confidence=0.2), 1, None, 0.2, "low", ["s"]),
        (analysis(quality_score=4), 4, None, None, None, ["s"]),
        (analysis(quality_score=4, confidence=90), 4, None, None, None, ["s"]),
        (
            analysis(quality_score=0, confidence=0.0),
            None,
            "watcher failed (quality_score 0)",
            None,
            None,
            [],
        ),
        (
            analysis(
                quality_score=5,
                confidence=0.5,
                suggestions=["Unable to parse watcher response"],
                observations="",
            ),
            None,
            "watcher response unparseable (placeholder quality_score 5)",
            None,
            None,
            [],
        ),
        (
            analysis(quality_score=11),
            None,
            "watcher quality_score not an integer 1-10: 11",
            None,
            None,
            [],
        ),
        (
            analysis(quality_score="7"),
            None,
            "watcher quality_score not an integer 1-10: '7'",
            None,
            None,
            [],
        ),
        (
            analysis(quality_score=True),
            None,
            "watcher quality_score not an integer 1-10: True",
            None,
            None,
            [],
        ),
        (
            {"quality_score": 8, "suggestions": ["flat"], "confidence": 0.7},
            8,
            None,
            0.7,
            "medium",
            ["flat"],
        ),
    ],
)
def test_watcher_from_observation(
    obs: dict[str, Any],
    score: int | None,
    error: str | None,
    confidence: float | None,
    level: str | None,
    recommendations: list[str],
) -> None:
    watcher = exai.watcher_from_observation(obs, "glm-4.5-air")
    assert watcher.quality_score == score
    assert watcher.error == error
    assert watcher.confidence == confidence
    assert watcher.confidence_level == level
    assert watcher.recommendations == recommendations
    assert watcher.raw is obs
    assert watcher.watcher == "glm-4.5-air"


def test_parse_report_layout() -> None:
    parsed = exai.parse(SUITE / "results" / "test_results.json")
    results = list(parsed.results)
    # Failures in full first, then every other test of the coverage map.
    assert [(r.test_id, r.status) for r in results] == [
        ("chat/basic_kimi", FAIL),
        ("chat/basic_glm", PASS),
        ("kimi_upload_and_extract/basic_kimi", PASS),
        ("status/basic_functionality", SKIP),
    ]
    assert results[0].error_message == "MCP error: timeout\nResponse has no content"
    assert results[1].details == {} and results[1].duration_secs is None
    assert parsed.run.started_at == utc("2025-10-07T10:00:00")
    assert parsed.run.metadata["layout"] == "report"
    assert parsed.run.metadata["performance"]["max_memory_mb"] == 64.4
    assert parsed.run.metadata["prompt_counter"]["total_prompts"] == 5
    assert parsed.run.metadata["prompt_counter_attribution"] == "run_level_only"
    assert parsed.warnings == [
        "prompt counter has no prompt history: tokens and cost kept as run totals"
    ]


def test_parse_summary_alone() -> None:
    parsed = exai.parse(LATEST / "summary.json")
    assert list(parsed.results) == []
    assert parsed.run.metadata["layout"] == "summary"
    assert parsed.run.metadata["summary"]["total_tools"] == 3
    assert parsed.run.started_at == utc("2025-10-07T10:00:00")


def test_file_summary_mismatch_is_a_warning(tmp_path: Path) -> None:
    doc = json.loads((LATEST / "test_results.json").read_text())
    doc["summary"] = {"total": 5, "passed": 2, "failed": 2, "skipped": 1}
    path = tmp_path / "test_results.json"
    path.write_text(json.dumps(doc))
    parsed = exai.parse(path)
    assert len(list(parsed.results)) == 4
    assert parsed.warnings == [
        "the file's summary says total=5 but the run has 4 total",
        "the file's summary says failed=2 but the run has 1 failed",
    ]


# --------------------------------------------------------------------------- folders


def test_parse_folder_runs_in_time_order() -> None:
    runs = runs_of(SUITE / "results")
    assert [(r.path.relative_to(SUITE / "results").as_posix(), r.run.started_at) for r in runs] == [
        ("history/results_20251005_080000.json.gz", utc("2025-10-05T08:00:00")),
        ("history/results_20251006_090000/test_results.json", utc("2025-10-06T09:00:00")),
        ("latest/test_results.json", utc("2025-10-07T10:00:00")),
    ]
    assert [len(list(r.results)) for r in runs] == [1, 1, 4]
    # The same folder reached three ways.
    for start in (SUITE, LATEST):
        again = [r.path for r in runs_of(start)]
        assert again == [r.path for r in runs]


def test_parse_folder_history_run() -> None:
    runs = runs_of(SUITE / "results")
    oldest, older = runs[0], runs[1]
    assert [(r.test_id, r.status) for r in oldest.results] == [("chat/basic_glm", PASS)]
    assert oldest.warnings == []
    assert older.warnings == ["summary.json says total_tests=2 but the run has 1 total"]
    assert older.run.metadata["summary"]["total_tests"] == 2
    (result,) = list(older.results)
    assert result.status is FAIL and result.error_message == "Timed out"
    assert result.details["watcher_source"] == "watcher_observations"
    assert result.watcher is not None
    assert (result.watcher.quality_score, result.watcher.confidence_level) == (3, "low")
    assert result.watcher.raw is not None and result.watcher.raw["run_number"] == 3


# test_id: model, tokens (in, out, total), cost, prompt numbers, watcher score, watcher error
LATEST_FOLDER: dict[str, tuple[Any, ...]] = {
    "chat/basic_glm": ("glm-4.5-flash", (100, 70, 170), 0.0, [2, 3], 7, None),
    "chat/basic_kimi": (
        "kimi-k2-turbo-preview",
        (None, None, None),
        None,
        None,
        None,
        "watcher failed (quality_score 0)",
    ),
    "kimi_upload_and_extract/basic_kimi": (
        "kimi-k2-0905-preview",
        (50, 75, 125),
        0.0011,
        [5],
        None,
        "watcher response unparseable (placeholder quality_score 5)",
    ),
    "status/basic_functionality": (None, (None, None, None), None, None, 8, None),
}


def test_parse_folder_latest_run() -> None:
    latest = runs_of(SUITE / "results")[-1]
    results = by_id(list(latest.results))
    assert list(results) == list(LATEST_FOLDER)
    for test_id, (model, tokens, cost, prompts, score, error) in LATEST_FOLDER.items():
        result = results[test_id]
        assert result.model == model, test_id
        assert (result.tokens_input, result.tokens_output, result.tokens_total) == tokens
        assert result.cost_usd == cost
        assert result.details.get("prompt_numbers") == prompts
        assert result.watcher is not None
        assert (result.watcher.quality_score, result.watcher.error) == (score, error)
    # The embedded observation wins over the file of the same test (score 2 there).
    assert "watcher_source" not in results["chat/basic_glm"].details
    failed = results["chat/basic_kimi"].watcher
    assert failed is not None and failed.confidence is None and failed.raw is not None
    assert failed.raw["watcher_analysis"]["anomalies"] == [
        "Watcher error: Read timed out. (read timeout=30)"
    ]
    # Matched by the fields inside "renamed_observation.json", not by its name.
    status = results["status/basic_functionality"].watcher
    assert status is not None
    assert status.strengths == ["Clear output"] and status.weaknesses == ["No timing"]
    assert status.recommendations == ["Add a timing check"] and status.confidence == 0.6
    metadata = latest.run.metadata
    assert metadata["prompt_counter_attribution"] == "partial"
    assert metadata["prompt_counter"]["total_prompts"] == 5
    assert metadata["prompt_counter"]["cost_tracking"] == {"total_cost_usd": 0.0012}
    assert metadata["summary"]["total_tools"] == 3
    assert metadata["report_summary"]["tools_with_failures"] == 1
    assert metadata["failure_analysis"]["total_failures"] == 1
    history_copy = SUITE / "results" / "history" / "results_20251007_100500" / "test_results.json"
    # The observation files no result of the run took (health_basic_glm.json, and the copy of
    # chat_basic_glm.json) are not dropped: see test_parse_folder_loose_evidence.
    assert latest.warnings == [
        "2 of 5 prompt-history entries match no result of this run (other tool/variation, "
        "another session or the watcher): kept in run totals only",
        f"{history_copy} is the same session: not imported",
    ]


def test_parse_archive_folder_directly() -> None:
    archive = SUITE / "results" / "history" / "results_20251006_090000"
    (run,) = runs_of(archive)
    (result,) = list(run.results)
    # Its own watcher_observations/ and summary.json are read.
    assert result.watcher is not None and result.watcher.quality_score == 3
    assert run.warnings == ["summary.json says total_tests=2 but the run has 1 total"]


def copy_latest(tmp_path: Path) -> Path:
    shutil.copytree(SUITE / "config", tmp_path / "config")
    shutil.copytree(LATEST, tmp_path / "results" / "latest")
    return tmp_path / "results" / "latest"


def test_prompts_of_a_retried_test_are_split_by_time(tmp_path: Path) -> None:
    latest = copy_latest(tmp_path)
    doc = json.loads((latest / "test_results.json").read_text())
    retry = json.loads(json.dumps(doc["tests"][0]))
    retry["performance_metrics"]["start_time"] = 1759831225.0  # 10:00:25, after prompt 3
    del retry["watcher_observation"]
    doc["tests"].insert(1, retry)
    (latest / "test_results.json").write_text(json.dumps(doc))
    counter = json.loads((latest / "prompt_counter.json").read_text())
    counter["prompt_history"].append(
        {
            "timestamp": "2025-10-07T10:00:26Z",
            "prompt_number": 6,
            "provider": "glm",
            "tool": "chat",
            "variation": "basic_glm",
            "tokens": {"input": 10, "output": 5, "total": 15},
            "cost_usd": 0.0,
        }
    )
    (latest / "prompt_counter.json").write_text(json.dumps(counter))
    (run,) = runs_of(latest)
    first, second = [r for r in run.results if r.test_id == "chat/basic_glm"]
    assert (first.details["prompt_numbers"], first.tokens_total) == ([2, 3], 170)
    assert (second.details["prompt_numbers"], second.tokens_total) == ([6], 15)
    assert run.run.metadata["prompt_counter_attribution"] == "partial"


def test_stale_watcher_file_is_not_attached(tmp_path: Path) -> None:
    latest = copy_latest(tmp_path)
    obs_path = latest / "watcher_observations" / "chat_basic_kimi.json"
    obs = json.loads(obs_path.read_text())
    obs["timestamp"] = "2025-10-05T07:05:50.164144Z"  # a leftover of an older run
    obs_path.write_text(json.dumps(obs))
    (run,) = runs_of(latest)
    kimi = by_id(list(run.results))["chat/basic_kimi"]
    assert kimi.watcher is None
    assert kimi.details["stale_watcher_observation"] == "2025-10-05T07:05:50.164144Z"


def test_prompt_counter_of_another_session(tmp_path: Path) -> None:
    latest = copy_latest(tmp_path)
    counter = json.loads((latest / "prompt_counter.json").read_text())
    counter["session_start"] = "2025-10-07T09:00:00Z"
    for prompt in counter["prompt_history"]:
        prompt["timestamp"] = "2025-10-07T09:00:05Z"
    (latest / "prompt_counter.json").write_text(json.dumps(counter))
    (run,) = runs_of(latest)
    assert all(r.tokens_total is None for r in run.results)
    assert run.run.metadata["prompt_counter_attribution"] == "run_level_only"
    assert "prompt counter is of another session (started 2025-10-07 09:00:00+00:00)" in (
        run.warnings
    )


def test_report_of_another_session_is_a_run_of_its_own(tmp_path: Path) -> None:
    latest = copy_latest(tmp_path)
    report = json.loads((SUITE / "results" / "test_results.json").read_text())
    report["summary"]["session_start"] = "2025-10-07T11:00:00Z"
    (tmp_path / "results" / "test_results.json").write_text(json.dumps(report))
    runs = runs_of(tmp_path)  # the suite root
    assert [(r.path.relative_to(tmp_path).as_posix(), r.run.started_at) for r in runs] == [
        ("results/latest/test_results.json", utc("2025-10-07T10:00:00")),
        ("results/test_results.json", utc("2025-10-07T11:00:00")),
    ]
    assert "report_summary" not in runs[0].run.metadata
    assert latest.is_dir()


def test_report_alone_is_the_run(tmp_path: Path) -> None:
    (tmp_path / "results").mkdir()
    shutil.copy(SUITE / "results" / "test_results.json", tmp_path / "results")
    (run,) = runs_of(tmp_path / "results")
    assert run.run.metadata["layout"] == "report"
    assert len(list(run.results)) == 4


def test_corrupt_archive_names_its_file(tmp_path: Path) -> None:
    copy_latest(tmp_path)
    history = tmp_path / "results" / "history"
    history.mkdir()
    (history / "results_20251001_000000.json.gz").write_bytes(gzip.compress(b'{"tests": ['))
    with pytest.raises(ImportFormatError) as info:
        list(exai.parse_folder(tmp_path / "results"))
    assert info.value.path == history / "results_20251001_000000.json.gz"
    assert "invalid JSON" in info.value.reason


# --------------------------------------------------------------------------- simple runner


TOOL_NOT_FOUND = "MCP error: {'code': 'TOOL_NOT_FOUND', 'message': 'Unknown tool: self-check'}"
# test_id: (tool, variation), status, execution_status, message, start (seconds into the run)
SCRIPT_TESTS: dict[str, tuple[Any, ...]] = {
    "chat/basic_glm": (("chat", "basic_glm"), PASS, None, None, 0.0),
    "activity/basic_glm": (("activity", "basic_glm"), FAIL, None, "Unknown error", 12.5),
    "kimi_multi_file_chat/basic_kimi": (
        ("kimi_multi_file_chat", "basic_kimi"),
        PASS,
        None,
        None,
        13,
    ),
    # No test blocks: the script is the result, judged by its exit code...
    "tool_validation_suite/tests/integration/test_file_upload_glm.py": (
        ("file_upload_glm", "script"),
        FAIL,
        "exit_1",
        "Traceback (most recent call last):\n  File",
        16.0,
    ),
    # ... unless its output reports failures, whatever its exit code.
    "tool_validation_suite/tests/integration/test_web_search_integration.py": (
        ("web_search_integration", "script"),
        FAIL,
        "exit_0_output_reports_failure",
        "âŒ 2 failed, 1 passed",
        25.0,
    ),
    "self-check/basic_glm": (("self-check", "basic_glm"), FAIL, None, TOOL_NOT_FOUND, 29.0),
    "self-check/basic_kimi": (("self-check", "basic_kimi"), FAIL, None, TOOL_NOT_FOUND, 29.0),
}


def test_simple_runner_tests_from_script_output() -> None:
    parsed = exai.parse(DATA / "simple_runner_results.json")
    results = list(parsed.results)
    assert [r.test_id for r in results] == list(SCRIPT_TESTS)
    # The file's timestamp is the end, in naive local time; the request id the self-check
    # script printed (13:47:06.5Z, 9.5 s into its 10 s) puts it at UTC+11.
    start = utc("2025-10-07T13:46:36.939931")
    assert parsed.run.started_at == start
    assert parsed.finished_at == utc("2025-10-07T13:47:15.939931")
    for result in results:
        names, status, execution, message, offset = SCRIPT_TESTS[result.test_id]
        assert (result.tool_name, result.variation) == names
        assert (result.status, result.execution_status) == (status, execution), result.test_id
        assert (result.error_message or "").startswith(message or ""), result.test_id
        assert (message is None) is (result.error_message is None), result.test_id
        assert result.started_at == start + timedelta(seconds=offset), result.test_id
        assert result.details["return_code"] == (1 if "upload" in result.test_id else 0)
    glm = by_id(results)["self-check/basic_glm"]
    assert glm.provider == "glm" and glm.details["source"] == "script_output"
    assert glm.details["script"] == "tool_validation_suite/tests/advanced_tools/test_self-check.py"
    assert glm.details["runner_status"] == "passed" and glm.details["category"] == "advanced_tools"
    assert glm.output_excerpt is not None and "TOOL_NOT_FOUND" in glm.output_excerpt
    assert by_id(results)["chat/basic_glm"].output_excerpt is None
    upload = by_id(results)["tool_validation_suite/tests/integration/test_file_upload_glm.py"]
    assert upload.details["category"] == "integration" and upload.duration_secs == 9.0
    assert upload.output_excerpt is not None and "----- stderr -----" in upload.output_excerpt
    web = by_id(results)["tool_validation_suite/tests/integration/test_web_search_integration.py"]
    assert web.details["failure_lines"] == ["âŒ 2 failed, 1 passed"]
    metadata = parsed.run.metadata
    assert metadata["timestamp"] == "2025-10-08T00:47:15.939931"
    assert metadata["timestamp_utc_offset"] == "+11:00"
    assert metadata["time_source"] == "timestamp, UTC offset from the request ids"
    assert metadata["scripts_output_reports_failures"] == [
        "tool_validation_suite/tests/advanced_tools/test_activity.py",
        "tool_validation_suite/tests/integration/test_web_search_integration.py",
        "tool_validation_suite/tests/advanced_tools/test_self-check.py",
    ]
    assert parsed.warnings == [
        "the runner counts 5 of 6 scripts passed by their exit codes, but 3 of those scripts "
        "report 4 failed test(s) in their output: imported as failures"
    ]


def runner_file(tmp_path: Path, entries: list[dict[str, Any]], stamp: str = "t") -> Path:
    path = tmp_path / "simple_runner_results.json"
    doc = {"timestamp": stamp, "total_scripts": len(entries), "results": entries}
    path.write_text(json.dumps(doc))
    return path


def script(
    output: str, *, code: int = 0, duration: float = 5.0, errors: str = ""
) -> dict[str, Any]:
    return {
        "script": "tests\\tools\\test_x.py",
        "status": "passed" if code == 0 else "failed",
        "return_code": code,
        "duration": duration,
        "output": output,
        "errors": errors,
    }


RULE = "=" * 60


@pytest.mark.parametrize(
    ("output", "expected", "warnings"),
    [
        # Blocks with every status word the suite prints, a message on each failure.
        (
            f"{RULE}\nTest: x/a\nStatus: passed\nPASSED\n{RULE}\n{RULE}\nTest: x/b\n"
            f"Status: failed\nFAILED: boom\nFAILED: again\n{RULE}\n{RULE}\nTest: x/c\n"
            f"Status: skipped\nSKIPPED: no key\n{RULE}\n",
            [("x/a", PASS, None), ("x/b", FAIL, "boom\nagain"), ("x/c", SKIP, "no key")],
            [],
        ),
        # A block named without a tool takes the script's; a word the suite never prints is
        # not taken for a pass.
        (
            f"{RULE}\nTest: edge\nStatus: exploded\n{RULE}\n",
            [("x/edge", Status.ERROR, None)],
            [],
        ),
        # The summary's count disagrees with the blocks printed; the failure analysis's own
        # "Failed:" count is not the summary's.
        (
            f"{RULE}\nTest: x/a\nStatus: failed\nFAILED: e\n{RULE}\n{RULE}\n  TEST RESULTS "
            f"SUMMARY\n{RULE}\nTotal Tests: 3\nFailed: 1\n{'-' * 60}\nTotal Tests: 9\n",
            [("x/a", FAIL, "e")],
            [
                "tests/tools/test_x.py: its summary says Total Tests: 3 but 1 test block(s) "
                "were printed"
            ],
        ),
    ],
)
def test_script_output_blocks(
    tmp_path: Path, output: str, expected: list[tuple[Any, ...]], warnings: list[str]
) -> None:
    parsed = exai.parse(runner_file(tmp_path, [script(output)]))
    results = list(parsed.results)
    assert [(r.test_id, r.status, r.error_message) for r in results] == expected
    assert [w for w in parsed.warnings if "Total Tests" in w] == warnings


@pytest.mark.parametrize(
    ("stamp", "sibling", "start", "source"),
    [
        # The test_results.json beside it, written as the last test ended (in UTC).
        (
            "2025-10-08T00:47:15.900000",
            "2025-10-07T13:47:15.850000Z",
            "2025-10-07T13:47:10.900000",
            "timestamp, UTC offset from the test_results.json beside it",
        ),
        # Of another run (the offset would be 3 h 12 min): no evidence, read as UTC.
        (
            "2025-10-08T00:47:15.900000",
            "2025-10-07T21:35:00Z",
            "2025-10-08T00:47:10.900000",
            "timestamp read as UTC (no zone)",
        ),
        # A stamp with its zone is taken as it is.
        ("2025-10-08T00:47:15.900000+02:00", None, "2025-10-07T22:47:10.900000", "timestamp"),
    ],
)
def test_simple_runner_time(
    tmp_path: Path, stamp: str, sibling: str | None, start: str, source: str
) -> None:
    if sibling is not None:
        entry = {"tool": "x", "variation": "a", "status": "passed", "timestamp": sibling}
        doc = {"session_start": sibling, "tests": [entry]}
        (tmp_path / "test_results.json").write_text(json.dumps(doc))
    parsed = exai.parse(runner_file(tmp_path, [script("no blocks")], stamp))
    assert parsed.run.started_at == datetime.fromisoformat(start).replace(
        tzinfo=datetime.fromisoformat(start).tzinfo or timezone.utc
    )
    assert parsed.run.metadata["time_source"] == source
    read_as_utc = source.startswith("timestamp read as UTC")
    assert any("read as UTC" in w for w in parsed.warnings) is read_as_utc


def test_simple_runner_undated(tmp_path: Path) -> None:
    parsed = exai.parse(runner_file(tmp_path, [script("no blocks")], "yesterday"))
    assert parsed.run.started_at is None and parsed.finished_at is None
    assert parsed.warnings == [
        "the runner's timestamp 'yesterday' is not a time: the run is undated"
    ]


def test_simple_runner_bounds_failure_lines(tmp_path: Path) -> None:
    output = "\n".join(f"FAILED: case {n} " + "x" * 500 for n in range(30))
    doc = {
        "timestamp": "t",
        "total_scripts": 1,
        "passed": 1,
        "results": [
            {"script": "test_big.py", "status": "passed", "return_code": 0, "output": output}
        ],
    }
    path = tmp_path / "simple_runner_results.json"
    path.write_text(json.dumps(doc))
    (result,) = list(exai.parse(path).results)
    assert result.details["failure_lines_total"] == 30
    assert len(result.details["failure_lines"]) == 20
    assert all(len(line) == 300 for line in result.details["failure_lines"])
    assert "category" not in result.details


@pytest.mark.parametrize(
    ("code", "written", "status", "execution"),
    [
        (0, "passed", PASS, "exit_0"),
        (2, "failed", FAIL, "exit_2"),
        (None, "timeout", FAIL, "timeout"),
        (None, None, FAIL, "no_exit_code"),
        (True, "passed", FAIL, "no_exit_code"),
    ],
)
def test_simple_runner_exit_codes(
    tmp_path: Path, code: object, written: str | None, status: Status, execution: str
) -> None:
    entry = {"script": "tests\\test_x.py", "status": written, "return_code": code, "errors": "e"}
    path = tmp_path / "simple_runner_results.json"
    path.write_text(json.dumps({"timestamp": "t", "total_scripts": 1, "results": [entry]}))
    (result,) = list(exai.parse(path).results)
    assert (result.status, result.execution_status) == (status, execution)
    assert result.details["runner_status"] == written
    assert result.error_message == ("e" if status is FAIL else None)


# --------------------------------------------------------------------------- bad input


def write(tmp_path: Path, content: str | bytes, name: str = "test_results.json") -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


ENTRY = '{"tool": "chat", "variation": "basic_glm", "status": "passed"}'


@pytest.mark.parametrize(
    ("content", "message", "line"),
    [
        ("", "empty file", None),
        ('{"session_start": "x",\n "tests": [\n', "invalid JSON", 3),
        ("[1, 2]", "(a JSON object)", None),
        ('{"hello": 1}', "not a tool-validation-suite file", None),
        ('{"session_start": "x", "tests": [1]}', "test entry 0: expected an object", None),
        (
            '{"tests": [{"tool": "chat", "status": "passed"}]}',
            "tests[0]: missing 'tool' or 'variation'",
            None,
        ),
        (
            '{"tests": [{"tool": "chat", "variation": "v", "status": "flaky"}]}',
            "tests[0] (chat/v): unknown status 'flaky'",
            None,
        ),
        (
            '{"tests": [' + ENTRY + ', {"tool": "x", "variation": "y"}]}',
            "tests[1] (x/y): unknown status None",
            None,
        ),
        (
            '{"timestamp": "t", "total_scripts": 1, "results": [{"return_code": 0}]}',
            "results[0]: expected an object with 'script'",
            None,
        ),
    ],
)
def test_bad_files(tmp_path: Path, content: str, message: str, line: int | None) -> None:
    path = write(tmp_path, content)
    with pytest.raises(ImportFormatError) as info:
        list(exai.parse(path).results)
    assert message in info.value.reason
    assert info.value.path == path
    assert info.value.line == line


def test_bad_folders(tmp_path: Path) -> None:
    with pytest.raises(ImportFormatError, match="use parse_folder"):
        exai.parse(tmp_path)
    with pytest.raises(ImportFormatError, match=r"no test_results\.json"):
        list(exai.parse_folder(tmp_path))
    with pytest.raises(ImportFormatError, match="not a folder"):
        list(exai.parse_folder(tmp_path / "missing"))


def test_unreadable_side_files_are_warnings(tmp_path: Path) -> None:
    latest = copy_latest(tmp_path)
    (latest / "watcher_observations" / "broken.json").write_text("{not json")
    (latest / "watcher_observations" / "anonymous.json").write_text('{"watcher_analysis": {}}')
    (latest / "prompt_counter.json").write_text("[]")
    (run,) = runs_of(latest)
    assert len(list(run.results)) == 4
    joined = "\n".join(run.warnings)
    assert "watcher observation ignored" in joined and "broken.json" in joined
    assert "anonymous.json: watcher observation without tool/variation skipped" in joined
    assert "prompt counter ignored" in joined
    assert "prompt_counter" not in run.run.metadata


# --------------------------------------------------------------------------- the real run


@needs_real
def test_real_latest_test_results() -> None:
    parsed = exai.parse(REAL_LATEST / "test_results.json")
    (result,) = list(parsed.results)
    assert result.test_id == "web_search_integration/basic_functionality"
    assert result.status is FAIL
    assert result.provider is None and result.model is None
    assert result.duration_secs == 0.10167312622070312
    assert (result.memory_mb, result.cpu_percent) == (61, 0.0)
    assert result.started_at == datetime.fromtimestamp(1759844804.2574635, tz=timezone.utc)
    assert result.details["recorded_at"] == "2025-10-07T13:47:15.894173Z"
    assert result.error_message == "Response has no content"
    watcher = result.watcher
    assert watcher is not None
    assert (watcher.quality_score, watcher.confidence, watcher.confidence_level) == (5, 0.9, "high")
    assert len(watcher.anomalies) == 4 and len(watcher.recommendations) == 3
    assert watcher.recommendations[0] == "Clarify expected behavior for basic_functionality test"
    assert watcher.raw is not None
    assert (watcher.raw["run_number"], watcher.raw["previous_run"]) == (
        3,
        "2025-10-07T12:33:05.399310Z",
    )
    assert parsed.run.started_at == utc("2025-10-07T13:46:44.257440")
    assert parsed.run.watcher_model == "glm-4.5-air"
    assert parsed.warnings == []


@needs_real
@pytest.mark.parametrize(
    ("name", "score", "error", "confidence", "first_recommendation"),
    [
        (
            "chat_basic_glm.json",
            5,
            None,
            0.9,
            "Fix response handling to prevent truncation of API responses",
        ),
        (
            "tracer_basic_kimi.json",
            3,
            None,
            1.0,
            "Fix JSON serialization to ensure complete output without truncation",
        ),
        (
            "conversation_id_kimi_basic_functionality.json",
            10,
            None,
            0.95,
            "Implement retry logic with exponential backoff to handle potential timeout issues",
        ),
        ("status_provider_availability.json", None, "watcher failed (quality_score 0)", None, None),
        (
            "thinkdeep_basic_glm.json",
            None,
            "watcher response unparseable (placeholder quality_score 5)",
            None,
            None,
        ),
    ],
)
def test_real_watcher_files(
    name: str,
    score: int | None,
    error: str | None,
    confidence: float | None,
    first_recommendation: str | None,
) -> None:
    obs = json.loads((REAL_LATEST / "watcher_observations" / name).read_text(encoding="utf-8"))
    watcher = exai.watcher_from_observation(obs)
    assert (watcher.quality_score, watcher.error, watcher.confidence) == (score, error, confidence)
    assert next(iter(watcher.recommendations), None) == first_recommendation
    assert watcher.raw is obs and watcher.strengths == []


@needs_real
def test_real_watcher_chat_basic_glm_in_full() -> None:
    path = REAL_LATEST / "watcher_observations" / "chat_basic_glm.json"
    watcher = exai.watcher_from_observation(json.loads(path.read_text(encoding="utf-8")))
    assert watcher.anomalies == [
        "Response content is still truncated (ends abruptly with 'continuation_offer')",
        "Incomplete JSON structure in the response",
        "Performance metrics are not captured (all showing N/A)",
        "Response appears to be cut off mid-field",
    ]
    assert watcher.confidence_level == "high"
    assert watcher.created_at == utc("2025-10-07T13:20:20.065554")
    assert watcher.raw is not None and watcher.raw["run_number"] == 11
    assert watcher.raw["watcher_analysis"]["correctness"] == "PARTIAL"


@needs_real
def test_real_folder() -> None:
    runner, run = runs_of(REAL_SUITE / "results")  # oldest first: the runner started earlier
    assert runner.path.name == "simple_runner_results.json"
    (result,) = list(run.results)
    assert result.test_id == "web_search_integration/basic_functionality"
    assert result.tokens_total is None  # the counter's prompts are of another session
    metadata = run.run.metadata
    assert metadata["prompt_counter"]["total_prompts"] == 2
    assert metadata["prompt_counter"]["token_usage"]["total_tokens"] == 142
    assert metadata["prompt_counter_attribution"] == "run_level_only"
    assert metadata["report_summary"]["tools_with_failures"] == 1
    assert metadata["summary"]["total_tests"] == 1
    assert run.warnings == [
        "prompt counter is of another session (started 2025-10-07 13:42:06.234783+00:00)",
        "2 of 2 prompt-history entries match no result of this run (other tool/variation, "
        "another session or the watcher): kept in run totals only",
    ]


#: The five scripts that exited 0 although their tests failed, and their tests' messages.
EXEC_ERROR = "MCP error: {'code': 'EXEC_ERROR', 'message': "
REAL_FAILURES = {
    "activity/basic_glm": "Unknown error",
    "activity/basic_kimi": "Unknown error",
    "self-check/basic_glm": TOOL_NOT_FOUND,
    "self-check/basic_kimi": TOOL_NOT_FOUND,
    "toolcall_log_tail/basic_glm": TOOL_NOT_FOUND.replace("self-check", "toolcall_log_tail"),
    "toolcall_log_tail/basic_kimi": TOOL_NOT_FOUND.replace("self-check", "toolcall_log_tail"),
    "glm_upload_file/basic_glm": EXEC_ERROR + "'file is required'}",
    "glm_upload_file/basic_kimi": EXEC_ERROR + "'file is required'}",
    "kimi_capture_headers/basic_glm": EXEC_ERROR + '"Error code: 404',
    "kimi_capture_headers/basic_kimi": EXEC_ERROR + '"Error code: 404',
}


@needs_real
def test_real_simple_runner() -> None:
    parsed = exai.parse(REAL_LATEST / "simple_runner_results.json")
    results = list(parsed.results)
    # 30 scripts print their tests (62 in all), 7 print none and are one result each.
    assert len(results) == 69
    assert sum(r.variation == "script" for r in results) == 7
    failed = {r.test_id: r.error_message or "" for r in results if r.status.is_failure}
    assert sorted(failed) == sorted(REAL_FAILURES)
    for test_id, message in REAL_FAILURES.items():
        assert failed[test_id].startswith(message), test_id
    assert all(r.details["return_code"] == 0 for r in results)  # every script exited 0
    # Retried-then-passed noise on stderr is no failure report.
    assert by_id(results)["kimi_multi_file_chat/basic_kimi"].status is PASS
    # The runner's local stamp (00:47:15, 8 October) is 11 hours ahead of the
    # test_results.json written as its last script ended (13:47:15.894Z).
    assert parsed.finished_at == utc("2025-10-07T13:47:15.939931")
    assert parsed.run.metadata["timestamp_utc_offset"] == "+11:00"
    assert parsed.run.started_at == utc("2025-10-07T13:18:51.589452")
    assert by_id(results)["chat/basic_glm"].started_at == utc("2025-10-07T13:19:50.759293")
    assert parsed.warnings == [
        "the runner counts 37 of 37 scripts passed by their exit codes, but 5 of those scripts "
        "report 10 failed test(s) in their output: imported as failures"
    ]


@needs_real
@pytest.mark.parametrize(
    ("relative", "expected"),
    [
        ("results/latest/test_results.json", True),
        ("results/test_results.json", True),
        ("results/latest/summary.json", True),
        ("results/latest/simple_runner_results.json", True),
        ("results/latest/prompt_counter.json", False),
        ("results/latest/coverage_matrix.json", False),
        ("results/latest/watcher_observations/chat_basic_glm.json", True),
        ("results/latest/watcher_analysis.csv", True),
        ("config/pricing_and_models.json", False),
    ],
)
def test_real_sniff(relative: str, expected: bool) -> None:
    path = REAL_SUITE / relative
    assert exai.sniff(path, path.read_bytes()[:512]) is expected
