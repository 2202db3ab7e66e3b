"""The runner API, end to end against SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from testledger import (
    Ledger,
    RunStatus,
    Status,
    TestResult,
    WatcherObservation,
)
from testledger.errors import TestledgerError
from testledger.record.archive import read_events


def rows(ledger: Ledger, sql: str, **params: Any) -> list[dict[str, Any]]:
    with ledger.engine().connect() as conn:
        return [dict(row._mapping) for row in conn.execute(sa.text(sql), params)]


def record_sample(ledger: Ledger, **start: Any) -> Any:
    start.setdefault("branch", "main")
    start.setdefault("commit", "c0ffee")
    start.setdefault("watcher_model", "glm-4.5-air")
    with ledger.start_run(**start) as run:
        ok = run.record(
            tool_name="chat",
            variation="basic_glm",
            status="PASS",
            provider="glm",
            model="glm-4.5-air",
            execution_status="success",
            duration_secs=2.5,
            memory_mb=61.4,
            cpu_percent=12.5,
            tokens_total=1200,
            tokens_input=1000,
            tokens_output=200,
            cost_usd=0.0012,
            metrics={"latency_p95_ms": 840.0},
        )
        run.attach_watcher(
            ok,
            WatcherObservation(
                quality_score=8,
                strengths=["clear answer"],
                weaknesses=["verbose"],
                anomalies=[],
                recommendations=["trim the preamble"],
                confidence=0.9,
                raw={"quality_score": 8, "note": "raw stays whole"},
                watcher="glm-4.5-air",
            ),
        )
        run.record(
            TestResult(
                test_id="chat/basic_kimi",
                tool_name="chat",
                variation="basic_kimi",
                status=Status.FAIL,
                provider="kimi",
                model="kimi-k2",
                duration_secs=1.0,
                cost_usd=0.002,
                tokens_total=800,
                error_type="AssertionError",
                error_message="response truncated",
                traceback="Traceback...\nAssertionError: response truncated",
                watcher=WatcherObservation(quality_score=4, anomalies=["cut off"]),
            )
        )
        run.record(tool_name="status", variation="basic", status="SKIP")
        run.record(tool_name="plain", variation="test_x", status="ERROR", error_message="setup")
    return run


def test_round_trip_with_watcher_observations_and_statistics(ledger: Ledger) -> None:
    run = record_sample(ledger, suite="validation", notes="nightly", metadata={"k": "v"})
    assert run.status is RunStatus.FINISHED and not run.spooled

    [stored] = rows(ledger, "SELECT * FROM test_runs")
    assert stored["run_key"] == run.run_key
    assert (stored["branch_name"], stored["commit_hash"], stored["watcher_model"]) == (
        "main",
        "c0ffee",
        "glm-4.5-air",
    )
    assert stored["suite"] == "validation" and stored["notes"] == "nightly"
    assert stored["status"] == "finished"
    assert (stored["total_tests"], stored["tests_passed"], stored["tests_failed"]) == (4, 1, 2)
    assert (stored["tests_skipped"], stored["tests_errored"]) == (1, 1)
    # 1 passed of 3 executed (the skip does not count)
    assert float(stored["pass_rate"]) == pytest.approx(33.33)
    assert float(stored["avg_watcher_quality"]) == pytest.approx(6.0)
    assert float(stored["total_cost_usd"]) == pytest.approx(0.0032)
    assert stored["total_tokens"] == 2000

    results = {r["test_id"]: r for r in rows(ledger, "SELECT * FROM test_results")}
    assert set(results) == {"chat/basic_glm", "chat/basic_kimi", "status/basic", "plain/test_x"}
    glm = results["chat/basic_glm"]
    assert (glm["provider"], glm["model"], glm["status"], glm["attempt"]) == (
        "glm",
        "glm-4.5-air",
        "PASS",
        1,
    )
    assert float(glm["duration_secs"]) == 2.5 and glm["memory_mb"] == 61
    assert float(glm["cpu_percent"]) == 12.5 and float(glm["cost_usd"]) == pytest.approx(0.0012)
    assert (glm["tokens_total"], glm["tokens_input"], glm["tokens_output"]) == (1200, 1000, 200)
    assert glm["watcher_quality"] == 8
    observations = glm["watcher_observations"]
    if isinstance(observations, str):
        observations = json.loads(observations)
    assert observations["quality_score"] == 8
    assert observations["confidence_level"] == "high"
    plain = results["plain/test_x"]
    assert plain["provider"] is None and plain["model"] is None

    insights = rows(
        ledger,
        "SELECT wi.*, tr.test_id FROM watcher_insights wi "
        "JOIN test_results tr ON tr.id = wi.test_result_id ORDER BY tr.test_id",
    )
    assert [(i["test_id"], i["quality_score"]) for i in insights] == [
        ("chat/basic_glm", 8),
        ("chat/basic_kimi", 4),
    ]
    first = insights[0]
    strengths = first["strengths"]
    if isinstance(strengths, str):  # SQLite keeps TEXT[] as a JSON array
        strengths = json.loads(strengths)
    assert strengths == ["clear answer"]
    assert first["confidence_level"] == "high" and float(first["confidence"]) == 0.9
    raw = first["raw_observation"]
    raw = json.loads(raw) if isinstance(raw, str) else raw
    assert raw == {"quality_score": 8, "note": "raw stays whole"}


def test_retries_are_attempts_and_the_last_attempt_decides(ledger: Ledger) -> None:
    with ledger.start_run(branch="main") as run:
        first = run.record(tool_name="t", variation="flaky", status="FAIL", cost_usd=0.5)
        second = run.record(tool_name="t", variation="flaky", status="PASS", cost_usd=0.5)
    assert (first.attempt, second.attempt) == (1, 2)
    assert run.stats is not None
    assert (run.stats.total_tests, run.stats.tests_passed, run.stats.tests_failed) == (1, 1, 0)
    assert run.stats.total_cost_usd == pytest.approx(1.0)  # retries are paid for


def test_a_watcher_attached_after_the_batch_was_written_updates_the_result(
    ledger: Ledger,
) -> None:
    with ledger.start_run(branch="main", batch_size=1) as run:
        ref = run.record(tool_name="chat", variation="v", status="PASS")
        run.flush()
        run.attach_watcher(ref, WatcherObservation(quality_score=3))
        run.attach_watcher("chat/v", WatcherObservation(quality_score=None, error="timeout"))
    [result] = rows(ledger, "SELECT id, watcher_quality FROM test_results")
    assert result["watcher_quality"] is None  # the latest observation: the watcher failed
    insights = rows(ledger, "SELECT quality_score, watcher_error FROM watcher_insights ORDER BY id")
    assert [(i["quality_score"], i["watcher_error"]) for i in insights] == [
        (3, None),
        (None, "timeout"),
    ]


def test_the_same_run_key_recorded_twice_is_one_run(ledger: Ledger) -> None:
    record_sample(ledger, run_key="ci-1234")
    record_sample(ledger, run_key="ci-1234")
    assert rows(ledger, "SELECT COUNT(*) AS n FROM test_runs")[0]["n"] == 1
    assert rows(ledger, "SELECT COUNT(*) AS n FROM test_results")[0]["n"] == 4
    assert rows(ledger, "SELECT COUNT(*) AS n FROM watcher_insights")[0]["n"] == 2
    [run] = rows(ledger, "SELECT total_tests, status FROM test_runs")
    assert run == {"total_tests": 4, "status": "finished"}


def test_an_exception_marks_the_run_aborted_and_keeps_its_results(ledger: Ledger) -> None:
    with pytest.raises(RuntimeError, match="runner crashed"):
        with ledger.start_run(branch="main") as run:
            run.record(tool_name="a", variation="b", status="PASS")
            raise RuntimeError("runner crashed")
    [stored] = rows(ledger, "SELECT status, notes, total_tests FROM test_runs")
    assert stored["status"] == "aborted"
    assert stored["notes"] == "aborted: RuntimeError: runner crashed"
    assert stored["total_tests"] == 1
    archived = json.loads((run.archive.folder / "run.json").read_text())
    assert archived["status"] == "aborted"


def test_recording_into_a_finished_run_is_refused(ledger: Ledger) -> None:
    with ledger.start_run(branch="main") as run:
        pass
    with pytest.raises(TestledgerError, match="already finished"):
        run.record(tool_name="a", variation="b", status="PASS")


def test_bad_values_are_rejected_before_anything_is_written(ledger: Ledger) -> None:
    with ledger.start_run(branch="main") as run:
        with pytest.raises(ValueError, match="unknown test status"):
            run.record(tool_name="a", variation="b", status="GREEN")
        with pytest.raises(ValueError, match="1-10"):
            WatcherObservation(quality_score=11)
        with pytest.raises(ValueError, match="must be a number"):
            run.record(tool_name="a", variation="b", status="PASS", metrics={"x": "fast"})
    assert rows(ledger, "SELECT COUNT(*) AS n FROM test_results")[0]["n"] == 0


def test_every_run_is_also_written_as_json_files(ledger: Ledger, tmp_path: Path) -> None:
    run = record_sample(ledger)
    latest = tmp_path / "results" / "latest"
    summary = json.loads((latest / "run.json").read_text())
    assert summary["format"] == "testledger-run/1"
    assert summary["run_key"] == run.run_key and summary["status"] == "finished"
    assert summary["stats"]["total_tests"] == 4
    assert summary["database"]["state"] == "synced"
    events = [json.loads(line) for line in (latest / "results.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events] == [
        "columns",
        "result",
        "watcher",
        "result",
        "result",
        "result",
    ]
    first = dict(zip(events[0]["columns"], events[1]["row"], strict=True))
    assert (first["test_id"], first["attempt"], first["status"]) == ("chat/basic_glm", 1, "PASS")
    assert json.loads(first["metrics"]) == {"latency_p95_ms": 840.0}
    assert events[2]["observation"]["quality_score"] == 8
    kimi = dict(zip(events[0]["columns"], events[3]["row"], strict=True))
    assert json.loads(kimi["watcher_observations"])["anomalies"] == ["cut off"]
    # Read back, the files give the results as recorded.
    replayed = list(read_events(latest / "results.jsonl"))
    assert isinstance(replayed[2], TestResult) and replayed[2].watcher is not None
    assert replayed[2].watcher.quality_score == 4 and replayed[2].traceback is not None
    assert (tmp_path / "results" / "runs" / run.run_key / "run.json").exists()


def test_started_at_is_kept_as_utc(ledger: Ledger) -> None:
    moment = datetime(2025, 10, 7, 13, 46, 44, 257440, tzinfo=timezone.utc)
    with ledger.start_run(branch="main", started_at=moment):
        pass
    [stored] = rows(ledger, "SELECT run_timestamp FROM test_runs")
    value = stored["run_timestamp"]
    if isinstance(value, str):
        assert value == "2025-10-07T13:46:44.257440Z"
    else:
        assert value == moment
