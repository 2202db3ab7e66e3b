"""The tool-validation suite's whole history into the ledger, on SQLite and PostgreSQL: a results
folder in one ``testledger import``, evidence before or after its runs (never doubled), summaries
of runs in the ledger or not, the session gap, the closing summary; and the real suite's results
folder from ``../shared`` (skipped when absent).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from testledger.cli import main
from tests.helpers import query

DATA = Path(__file__).resolve().parents[1] / "data"
SUITE = DATA / "exai" / "suite"
RESULTS = SUITE / "results"
LATEST = RESULTS / "latest"
TOOL_NOT_FOUND = "MCP error: {'code': 'TOOL_NOT_FOUND', 'message': 'Unknown tool: self-check'}"


def imported(capsys: pytest.CaptureFixture[str], db_url: str, *paths: Path) -> dict[str, Any]:
    code = main(["--db", db_url, "import", *map(str, paths), "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    report: dict[str, Any] = json.loads(out)
    return report


def runs(db_url: str) -> list[tuple[Any, ...]]:
    """(run key prefix, start, tests, passed, failed, skipped) of every run, by start."""
    rows = query(
        db_url,
        "SELECT run_key, started_at, total_tests, tests_passed, tests_failed, tests_skipped "
        "FROM test_runs ORDER BY started_at, id",
    )
    # SQLite gives its ISO text, PostgreSQL a datetime: compared as "YYYY-MM-DD HH:MM:SS".
    return [
        (key.split("-")[0], str(start).replace("T", " ")[:19], *rest) for key, start, *rest in rows
    ]


def counts(db_url: str) -> tuple[int, int, int]:
    (row,) = query(
        db_url,
        "SELECT (SELECT COUNT(*) FROM test_runs), (SELECT COUNT(*) FROM test_results), "
        "(SELECT COUNT(*) FROM watcher_insights)",
    )
    return (int(row[0]), int(row[1]), int(row[2]))


def as_dict(value: Any) -> Any:
    """A JSON column's value: text on SQLite, already decoded on PostgreSQL."""
    return json.loads(value) if isinstance(value, str) else value


def placed(report: dict[str, Any]) -> dict[str, tuple[int, int, int]]:
    return {
        Path(p["path"]).name: (p["attached"], p["reconstructed"], p["already_imported"])
        for p in report["placed"]
    }


#: The suite folder imported whole: its 3 runs, then 5 reconstructed (sessions of 5 and 6
#: October, of 7 October after the latest run; the CSV's and the call logs' undated evidence).
SUITE_RUNS = [
    ("import", "2025-10-05 08:00:00", 1, 1, 0, 0),
    ("reconstructed", "2025-10-05 08:00:20", 1, 1, 0, 0),
    ("import", "2025-10-06 09:00:00", 2, 0, 1, 0),  # its summary.json counts 2 tests
    ("reconstructed", "2025-10-06 09:02:00", 1, 0, 0, 1),
    ("reconstructed", "2025-10-06 09:02:00", 2, 0, 0, 2),  # the CSV's undated rows
    ("import", "2025-10-07 10:00:00", 4, 2, 1, 1),
    ("reconstructed", "2025-10-07 10:04:00", 3, 0, 2, 1),
    ("reconstructed", "2025-10-07 10:06:00", 1, 0, 1, 0),  # the call logs' undated call
]


def test_results_folder_in_one_import(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    report = imported(capsys, db_url, RESULTS)
    assert [Path(o["path"]).name for o in report["imported"]] == [
        "results_20251005_080000.json.gz",
        "test_results.json",
        "test_results.json",
    ]
    assert placed(report) == {
        # chat_basic_glm.json repeats the latest run's own observation; health_basic_glm.json
        # is of no test of the run: reconstructed, not dropped.
        "watcher_observations": (0, 1, 1),
        # chat/basic_glm's row is the observation the 6 October run already holds.
        "watcher_analysis.csv": (0, 3, 1),
        # Two calls of the latest run's tests; the others of tests no run in the ledger has.
        "api_responses": (2, 4, 0),
    }
    assert runs(db_url) == SUITE_RUNS
    assert [s["reason"] for s in report["skipped"]] == [
        "not a run archive (history/results_YYYYMMDD_HHMMSS)"
    ]
    # The call matched to the latest run's chat/basic_glm is kept on it; what it lacked, filled.
    [(details, tokens)] = query(
        db_url,
        "SELECT r.details, r.tokens_total FROM test_results r JOIN test_runs t ON t.id = r.run_id "
        "WHERE r.test_id = 'chat/basic_glm' AND t.started_at > '2025-10-07'",
    )
    calls = as_dict(details)["api_calls"]
    assert [c["id"] for c in calls] == ["chat_basic_glm_1759831201100"] and tokens == 170
    # Reconstructed runs say so.
    for (metadata,) in query(
        db_url, "SELECT run_metadata FROM test_runs WHERE run_key LIKE 'reconstructed-%'"
    ):
        data = as_dict(metadata)
        assert data["reconstructed"] is True and data["reconstructed_from"]
    before = counts(db_url)
    # 6 results of the runs, 8 reconstructed; 5 observations in the runs' files, 4 placed.
    assert before == (8, 14, 9)
    again = imported(capsys, db_url, RESULTS)
    assert again["imported"] == [] and len(again["already_imported"]) == 3
    assert placed(again) == {
        "watcher_observations": (0, 0, 2),
        "watcher_analysis.csv": (0, 0, 4),
        "api_responses": (0, 0, 6),
    }
    assert counts(db_url) == before and runs(db_url) == SUITE_RUNS


def test_evidence_before_its_run(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Call logs and observations first, then the run they belong to: its results take them
    over, rather than the ledger holding each test twice."""
    first = imported(capsys, db_url, LATEST / "api_responses", LATEST / "watcher_observations")
    assert placed(first) == {"api_responses": (0, 6, 0), "watcher_observations": (2, 3, 0)}
    report = imported(capsys, db_url, LATEST / "test_results.json")
    (run,) = report["imported"]
    # chat/basic_glm, chat/basic_kimi, kimi_upload_and_extract/basic_kimi, status/basic_...
    assert run["matched_reconstructed"] == 4
    rows = query(
        db_url,
        "SELECT r.test_id, COUNT(*) FROM test_results r JOIN test_runs t ON t.id = r.run_id "
        "WHERE t.started_at >= '2025-10-07' GROUP BY r.test_id ORDER BY r.test_id",
    )
    assert rows == [
        ("chat/basic_functionality", 1),  # the call logs' undated call, dated by their latest
        ("chat/basic_glm", 1),
        ("chat/basic_kimi", 1),
        ("health/basic_glm", 1),
        ("kimi_upload_and_extract/basic_kimi", 1),
        ("self-check/basic_glm", 1),
        ("status/basic_functionality", 1),
        ("tracer/basic_kimi", 1),
    ]
    # The latest run holds its tests, with the observations and calls taken over: chat/basic_kimi
    # its file's failed watcher and its unanswered call; chat/basic_glm one observation (the
    # file's copy of its own is the same observation).
    observed = query(
        db_url,
        "SELECT r.test_id, COUNT(w.id) FROM test_results r "
        "JOIN test_runs t ON t.id = r.run_id LEFT JOIN watcher_insights w "
        "ON w.test_result_id = r.id WHERE t.run_key LIKE 'import-%' GROUP BY r.test_id "
        "ORDER BY r.test_id",
    )
    assert observed == [
        ("chat/basic_glm", 1),
        ("chat/basic_kimi", 1),
        ("kimi_upload_and_extract/basic_kimi", 1),
        ("status/basic_functionality", 1),
    ]
    [(details,)] = query(
        db_url,
        "SELECT r.details FROM test_results r JOIN test_runs t ON t.id = r.run_id "
        "WHERE t.run_key LIKE 'import-%' AND r.test_id = 'chat/basic_kimi'",
    )
    (call,) = as_dict(details)["api_calls"]
    assert call["error"] == "no response was saved for this request"
    # No run left empty; the session's others stay reconstructed.
    assert all(row[2] > 0 for row in runs(db_url))
    assert ("reconstructed", "2025-10-07 10:04:00", 3, 0, 2, 1) in runs(db_url)


def test_observation_attaches_to_a_scripts_test(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The simple runner's tests are read from the scripts' output and dated from the file; an
    observation of one of them lands on it, in its script's time."""
    imported(capsys, db_url, DATA / "exai" / "simple_runner_results.json")
    obs = {
        "tool": "self-check",
        "variation": "basic_glm",
        "timestamp": "2025-10-07T13:47:07Z",
        "test_status": "failed",
        "watcher_analysis": {
            "quality_score": 2,
            "anomalies": ["Unknown tool"],
            "observations": "x",
        },
    }
    path = tmp_path / "self-check_basic_glm.json"
    path.write_text(json.dumps(obs))
    assert placed(imported(capsys, db_url, path)) == {path.name: (1, 0, 0)}
    rows = query(
        db_url,
        "SELECT test_id, status, watcher_quality, error_message FROM test_results "
        "WHERE status <> 'PASS' ORDER BY test_id",
    )
    assert ("self-check/basic_glm", "FAIL", 2, TOOL_NOT_FOUND) in rows
    assert len(rows) == 5  # activity, 2 scripts without test blocks, 2 self-check
    assert runs(db_url) == [("import", "2025-10-07 13:46:36", 7, 2, 5, 0)]


def test_summaries(db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    summary = LATEST / "summary.json"
    report = imported(capsys, db_url, summary)
    (outcome,) = report["summaries"]
    assert (outcome["created"], outcome["totals_set"]) == (True, True)
    assert runs(db_url) == [("import", "2025-10-07 10:00:00", 4, 2, 1, 1)]
    [(metadata,)] = query(db_url, "SELECT run_metadata FROM test_runs")
    assert as_dict(metadata)["summary_only"] is True
    assert imported(capsys, db_url, summary)["summaries"][0]["already_imported"] is True
    # The run it summarised comes: one run, its own results, the summary taken over.
    imported(capsys, db_url, LATEST / "test_results.json")
    assert runs(db_url) == [("import", "2025-10-07 10:00:00", 4, 2, 1, 1)]
    assert counts(db_url)[:2] == (1, 4)
    # A summary of a run in the ledger that lists fewer tests sets its totals.
    archive = RESULTS / "history" / "results_20251006_090000"
    imported(capsys, db_url, archive / "test_results.json")
    (outcome,) = imported(capsys, db_url, archive / "summary.json")["summaries"]
    assert (outcome["created"], outcome["totals_set"]) == (False, True)
    assert ("import", "2025-10-06 09:00:00", 2, 0, 1, 0) in runs(db_url)
    # A summary counting no test makes no run of 0 tests.
    empty = tmp_path / "summary.json"
    empty.write_text(
        json.dumps({"session_start": "2025-10-01T00:00:00Z", "total_tests": 0, "passed": 0})
    )
    (outcome,) = imported(capsys, db_url, empty)["summaries"]
    assert outcome["run_id"] is None and "no run of 0 tests" in outcome["warnings"][0]
    # pytest-json-report's summary mode.
    (outcome,) = imported(capsys, db_url, DATA / "pytest_json" / "summary_only.json")["summaries"]
    assert outcome["created"] is True
    [(*totals, rate)] = query(
        db_url,
        "SELECT total_tests, tests_passed, tests_failed, tests_skipped, tests_errored, pass_rate "
        f"FROM test_runs WHERE id = {outcome['run_id']}",
    )
    assert (totals, float(rate)) == ([11, 6, 3, 2, 1], 66.67)
    assert all(row[2] > 0 for row in runs(db_url))


def test_session_gap_is_configurable(
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = tmp_path / "api_responses"
    shutil.copytree(LATEST / "api_responses" / "mcp", folder / "mcp")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text("[tool.testledger.import]\nsession_gap_minutes = 2\n")
    imported(capsys, db_url, folder)
    # 10:00:01 and 10:01:00 are one session; 10:05 and 10:06, four minutes later, another.
    assert [row[1:3] for row in runs(db_url)] == [
        ("2025-10-07 10:00:01", 2),
        ("2025-10-07 10:05:00", 2),
    ]
    (tmp_path / "pyproject.toml").write_text("[tool.testledger.import]\nsession_gap_minutes = 0\n")
    assert main(["--db", db_url, "import", str(folder)]) == 1
    assert "session_gap_minutes must be a number > 0" in capsys.readouterr().err


def test_closing_summary(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--db", db_url, "import", str(RESULTS)]) == 0
    out = capsys.readouterr().out
    assert "runs: 8 created, 0 matched in the ledger; results: 6 imported, 8 reconstructed" in out
    assert (
        "watcher observations: 5 in the runs' files, 0 attached, 4 reconstructed, 2 already" in out
    )
    assert "API calls: 2 matched to results, 4 reconstructed, 0 already imported" in out
    assert "skipped 1 file(s): not a run archive (history/results_YYYYMMDD_HHMMSS)" in out
    assert main(["--db", db_url, "import", str(RESULTS), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    # Today's keys, and the new ones.
    assert {"imported", "already_imported", "skipped_not_reports", "errors"} <= set(data)
    assert {"summaries", "placed", "skipped"} <= set(data)


# --------------------------------------------------------------------------- the real suite

#: The tests of the five scripts that exited 0 while printing their failures.
EXEC_ERROR = "MCP error: {'code': 'EXEC_ERROR', 'message': "
REAL_FAILED = {
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


def test_real_results_folder(
    db_url: str, shared_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = shared_dir / "fixtures" / "exai" / "tool_validation_suite" / "results"
    report = imported(capsys, db_url, folder)
    # The runner's run: 69 results (62 tests read from 30 scripts' output, 7 scripts whole),
    # the five scripts' tests failing with their messages.
    failures = dict(
        query(
            db_url,
            "SELECT r.test_id, r.error_message FROM test_results r JOIN test_runs t "
            "ON t.id = r.run_id WHERE r.status = 'FAIL' AND t.total_tests = 69",
        )
    )
    assert sorted(failures) == sorted(REAL_FAILED)
    assert all(failures[t].startswith(m) for t, m in REAL_FAILED.items())
    # Every observation file kept: each of the 12 is an insight of its test, at its time.
    files = sorted((folder / "latest" / "watcher_observations").glob("*.json"))
    stamps = query(
        db_url,
        "SELECT r.test_id, w.created_at FROM watcher_insights w "
        "JOIN test_results r ON r.id = w.test_result_id",
    )
    kept = {(test_id, str(created).replace(" ", "T")[:19]) for test_id, created in stamps}
    for file in files:
        obs = json.loads(file.read_text(encoding="utf-8"))
        assert (f"{obs['tool']}/{obs['variation']}", obs["timestamp"][:19]) in kept, file.name
    # The call history: the MCP call on the runner's chat/basic_glm, the provider call
    # reconstructed in the run of its session (with two observations of 5 October).
    assert placed(report)["api_responses"] == (1, 1, 0)
    assert placed(report)["watcher_observations"] == (7, 4, 1)
    assert ("reconstructed", "2025-10-05 07:04:18", 3, 1, 2, 0) in runs(db_url)
    # No empty run; 6 runs: the runner's, the latest test_results.json's, 3 sessions and the
    # CSV's undated rows.
    assert all(row[2] > 0 for row in runs(db_url))
    before = counts(db_url)
    assert before == (6, 134, 71)
    again = imported(capsys, db_url, folder)
    assert again["imported"] == [] and all(
        p["attached"] + p["reconstructed"] == 0 for p in again["placed"]
    )
    assert counts(db_url) == before


def test_one_command_evidence_first(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A summary and call logs named before their run in one command: the report counts the
    runs that remain, not those the run took over."""
    report = imported(
        capsys,
        db_url,
        LATEST / "summary.json",
        LATEST / "api_responses" / "mcp",
        LATEST / "test_results.json",
    )
    # The run, and the session of the calls it did not take (it now starts at the first).
    assert [row[:3] for row in runs(db_url)] == [
        ("import", "2025-10-07 10:00:00", 4),
        ("reconstructed", "2025-10-07 10:05:00", 2),
    ]
    (summary,) = report["summaries"]
    (run,) = report["imported"]
    assert (summary["created"], summary["run_id"]) == (False, run["run_id"])
    assert run["matched_reconstructed"] == 2  # chat/basic_glm and chat/basic_kimi's calls
    (calls,) = report["placed"]
    assert len(calls["runs_created"]) == 1  # the session of self-check's and tracer's calls
    assert counts(db_url)[:2] == (2, 6)
