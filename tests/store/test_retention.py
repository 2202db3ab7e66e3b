"""Retention (``api.prune`` and the ``[tool.testledger.retention]`` policy), on SQLite and
PostgreSQL: which runs go, what stays of them (issues, daily sums), their files, running runs."""

from __future__ import annotations

import dataclasses
import json
import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from testledger import Ledger, WatcherObservation, api
from testledger.analyze.pipeline import DETECTION_LOCK_KEY
from testledger.config import retention_policy
from testledger.errors import ConfigError
from testledger.record.archive import folder_name
from testledger.store import retention
from tests.helpers import query, query_rows
from tests.histories import record_test, scripted_run

DAY = timedelta(days=1)
START = datetime(2025, 3, 1, 9, 0, tzinfo=timezone.utc)


def record_history(
    ledger: Ledger,
    runs: int,
    *,
    suite: str = "s",
    start: datetime = START,
    step: timedelta = DAY,
    prefix: str = "r",
    detect: bool = False,
) -> list[str]:
    """``runs`` runs of three tests each (a scored PASS, a FAIL, a SKIP); their keys. Issue
    detection only with ``detect`` (it costs most of the time)."""
    keys = []
    for index in range(runs):
        key = f"{prefix}{index}"
        with scripted_run(
            ledger, index, start=start, step=step, suite=suite, run_key=key, detect_issues=detect
        ) as run:
            ref = record_test(
                run, "chat/ok", "PASS", duration_secs=1.25, cost_usd=0.01, tokens_total=100
            )
            run.attach_watcher(ref, WatcherObservation(quality_score=7))
            record_test(run, "chat/broken", "FAIL", duration_secs=2.0)
            record_test(run, "chat/later", "SKIP")
        keys.append(key)
    return keys


def run_keys(url: str) -> list[str]:
    return [row[0] for row in query(url, "SELECT run_key FROM test_runs ORDER BY run_timestamp")]


def count(url: str, table: str) -> int:
    return int(query(url, f"SELECT count(*) FROM {table}")[0][0])


def run_folder(ledger: Ledger, key: str) -> Path:
    return ledger.results_dir / "runs" / folder_name(key)


def test_keep_runs_removes_the_oldest_with_their_rows_and_files(
    ledger: Ledger, db_url: str
) -> None:
    keys = record_history(ledger, 5, detect=True)
    files = sum(1 for path in run_folder(ledger, "r0").iterdir())

    report = api.prune(ledger, api.RetentionPolicy(keep_runs=2))

    assert run_keys(db_url) == keys[3:]
    assert (report.runs, report.results, report.observations) == (3, 9, 3)
    assert report.files == 3 * files and not report.skipped_runs
    assert count(db_url, "test_results") == 6 and count(db_url, "watcher_insights") == 2
    assert count(db_url, "issue_occurrences") == 2  # the kept runs' failures
    assert [key for key in keys if run_folder(ledger, key).exists()] == keys[3:]
    # The run's rows and folder are gone, so nothing can bring it back.
    replayed = api.sync(ledger, include_synced=True).synced
    assert [outcome.run_key for outcome in replayed] == keys[3:]
    assert run_keys(db_url) == keys[3:]


def test_older_than_and_suite_choose_the_runs(ledger: Ledger, db_url: str) -> None:
    now = datetime.now(timezone.utc)
    old = now - 20 * DAY
    record_history(ledger, 3, suite="s", start=old, step=7 * DAY, prefix="s")  # -20, -13, -6 d
    record_history(ledger, 2, suite="other", start=old, step=DAY, prefix="o")  # -20, -19 d

    report = api.prune(ledger, api.RetentionPolicy(older_than=api.parse_age("10d"), suite="s"))

    assert report.runs == 2 and report.suite == "s"
    assert report.cutoff is not None and abs(report.cutoff - (now - 10 * DAY)) < timedelta(
        minutes=5
    )
    assert sorted(run_keys(db_url)) == ["o0", "o1", "s2"]
    assert api.prune(ledger, api.RetentionPolicy(older_than=timedelta(days=30))).runs == 0


def test_latest_goes_with_the_run_it_copies(ledger: Ledger, db_url: str) -> None:
    record_history(ledger, 2, start=datetime.now(timezone.utc) - 20 * DAY)
    latest = ledger.results_dir / "latest"
    assert json.loads((latest / "run.json").read_text(encoding="utf-8"))["run_key"] == "r1"

    api.prune(ledger, api.RetentionPolicy(keep_runs=1))
    assert (latest / "run.json").exists()  # r1, still in the ledger

    assert api.prune(ledger, api.RetentionPolicy(older_than=api.parse_age("10d"))).runs == 1
    assert run_keys(db_url) == [] and not latest.exists()


def test_keep_runs_counts_each_suite_and_branch_filter(ledger: Ledger, db_url: str) -> None:
    record_history(ledger, 3, suite="s", prefix="s")
    record_history(ledger, 3, suite="other", prefix="o")
    with scripted_run(ledger, 9, branch="feature", run_key="f9") as run:
        record_test(run, "chat/ok", "PASS")

    by_branch = api.RetentionPolicy(keep_runs=1, branch="main")
    assert api.prune(ledger, by_branch).runs == 4  # s0, s1, o0, o1
    assert sorted(run_keys(db_url)) == ["f9", "o2", "s2"]


def test_dry_run_counts_what_would_go_and_removes_nothing(ledger: Ledger, db_url: str) -> None:
    record_history(ledger, 4)
    before = {table: count(db_url, table) for table in ("test_runs", "test_results", "issues")}

    dry = api.prune(ledger, api.RetentionPolicy(keep_runs=1), dry_run=True)

    assert dry.dry_run and {table: count(db_url, table) for table in before} == before
    assert count(db_url, "test_daily_stats") == 0
    assert all(run_folder(ledger, key).exists() for key in ("r0", "r1", "r2", "r3"))
    done = api.prune(ledger, api.RetentionPolicy(keep_runs=1))
    counted = ("runs", "results", "observations", "files", "aggregate_rows")
    assert [getattr(dry, name) for name in counted] == [getattr(done, name) for name in counted]
    assert (dry.runs, dry.results, dry.aggregate_rows) == (3, 9, 9)


def daily_stats(url: str) -> dict[tuple[str, str], dict[str, Any]]:
    rows = query_rows(url, "SELECT * FROM test_daily_stats")
    return {(str(row.pop("day")), row.pop("test_id")): row for row in rows}


def test_daily_sums_add_up_when_a_day_is_pruned_twice(ledger: Ledger, db_url: str) -> None:
    record_history(ledger, 4, step=timedelta(hours=3))  # one day: 09:00 to 18:00

    first = api.prune(ledger, api.RetentionPolicy(keep_runs=3))
    second = api.prune(ledger, api.RetentionPolicy(keep_runs=1))

    assert (first.runs, second.runs) == (1, 2) and first.aggregate_rows == 3
    stats = daily_stats(db_url)
    assert sorted(stats) == [
        ("2025-03-01", "chat/broken"),
        ("2025-03-01", "chat/later"),
        (
            "2025-03-01",
            "chat/ok",
        ),
    ]
    ok, broken, later = (
        stats["2025-03-01", name] for name in ("chat/ok", "chat/broken", "chat/later")
    )
    assert (ok["suite"], ok["branch_name"], ok["tool_name"]) == ("s", "main", "chat")
    assert (ok["results"], ok["passed"], ok["failed"], ok["skipped"]) == (3, 3, 0, 0)
    assert float(ok["duration_secs_sum"]) == pytest.approx(3.75) and ok["duration_count"] == 3
    assert float(ok["cost_usd_sum"]) == pytest.approx(0.03) and ok["tokens_total_sum"] == 300
    assert (ok["watcher_quality_sum"], ok["watcher_quality_count"]) == (21, 3)
    assert (broken["results"], broken["failed"], broken["watcher_quality_count"]) == (3, 3, 0)
    assert broken["cost_usd_sum"] is None and broken["watcher_quality_sum"] is None
    assert (later["skipped"], later["duration_count"]) == (3, 0)


def test_no_keep_aggregates_writes_no_daily_sums(ledger: Ledger, db_url: str) -> None:
    record_history(ledger, 3)
    report = api.prune(ledger, api.RetentionPolicy(keep_runs=1, keep_aggregates=False))
    assert report.runs == 2 and report.aggregate_rows == 0
    assert count(db_url, "test_daily_stats") == 0


ISSUE_LINKS = ("first_detected_run_id", "last_seen_run_id", "resolved_run_id", "regressed_run_id")


def test_issues_stay_with_their_first_and_last_seen_times(ledger: Ledger, db_url: str) -> None:
    record_history(ledger, 4, detect=True)
    (issue,) = query_rows(db_url, "SELECT id, first_seen_at FROM issues")
    events_before = count(db_url, "issue_events")
    with ledger.engine().begin() as connection:  # as a ledger from before 0009 could hold it
        connection.execute(sa.text("UPDATE issues SET first_seen_at = NULL"))

    report = api.prune(ledger, api.RetentionPolicy(keep_runs=1))

    assert report.runs == 3 and report.issue_links_cleared >= 1
    (after,) = query_rows(
        db_url, "SELECT id, first_detected_run_id, first_seen_at, last_seen_run_id FROM issues"
    )
    assert after["id"] == issue["id"] and after["first_detected_run_id"] is None
    assert after["first_seen_at"] is not None and str(after["first_seen_at"]).startswith(
        "2025-03-01"
    )
    (newest,) = query(db_url, "SELECT id FROM test_runs")
    assert after["last_seen_run_id"] == newest[0]
    assert count(db_url, "issue_events") == events_before  # history kept, its runs NULL
    dangling = [
        name
        for name in ISSUE_LINKS
        if query(
            db_url,
            f"SELECT count(*) FROM issues WHERE {name} IS NOT NULL "
            f"AND {name} NOT IN (SELECT id FROM test_runs)",
        )[0][0]
    ]
    assert dangling == []
    assert query(
        db_url,
        "SELECT count(*) FROM issue_events WHERE run_id IS NOT NULL "
        "AND run_id NOT IN (SELECT id FROM test_runs)",
    ) == [(0,)]
    listed = api.list_issues(ledger, api.IssueFilter())
    assert [summary.code for summary in listed] and api.issue_detail(ledger, listed[0].code)


def test_a_resolved_issue_keeps_its_resolution(ledger: Ledger, db_url: str) -> None:
    for index in range(8):
        with scripted_run(ledger, index, run_key=f"r{index}") as run:
            record_test(run, "chat/broken", "FAIL" if index < 2 else "PASS")
    resolved = query_rows(db_url, "SELECT status, resolved_run_id, resolved_at FROM issues")
    api.prune(ledger, api.RetentionPolicy(keep_runs=1))
    after = query_rows(db_url, "SELECT status, resolved_run_id, resolved_at FROM issues")
    assert [row["status"] for row in after] == [row["status"] for row in resolved]
    for before_row, after_row in zip(resolved, after, strict=True):
        assert after_row["resolved_run_id"] is None or after_row["resolved_run_id"] in {
            row[0] for row in query(db_url, "SELECT id FROM test_runs")
        }
        if before_row["resolved_run_id"] is not None:
            assert after_row["resolved_at"] is not None


def test_a_running_run_is_never_pruned_nor_counted(ledger: Ledger, db_url: str) -> None:
    record_history(ledger, 2, start=START + DAY)
    live = scripted_run(ledger, 0, run_key="live", start=START - 100 * DAY)
    record_test(live, "chat/ok", "PASS")
    live.flush(wait=True)
    try:
        report = api.prune(ledger, api.RetentionPolicy(keep_runs=1))
        assert report.runs == 1
        assert sorted(run_keys(db_url)) == ["live", "r1"]
        assert api.prune(ledger, api.RetentionPolicy(older_than=timedelta(days=1))).runs == 1
        assert run_keys(db_url) == ["live"]
        assert count(db_url, "test_results") == 1
    finally:
        live.finish()
    assert run_keys(db_url) == ["live"]


def test_the_policy_is_applied_after_each_recorded_run(db_url: str, tmp_path: Path) -> None:
    settings = api.Ledger(db_url, results_dir=tmp_path / "results").settings
    tool = {"retention": {"keep_runs": 2}}
    with Ledger(settings=dataclasses.replace(settings, tool=tool)) as ledger:
        record_history(ledger, 4)
        assert run_keys(db_url) == ["r2", "r3"]
        assert not run_folder(ledger, "r1").exists() and run_folder(ledger, "r2").exists()
        assert count(db_url, "test_daily_stats") == 2 * 3  # two days of three tests


def test_a_bad_policy_is_an_error_logged_and_never_stops_recording(
    db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An error, not a warning: every run meets it until it is fixed."""
    settings = api.Ledger(db_url, results_dir=tmp_path / "results").settings
    tool = {"retention": {"keep_runs": "two"}}
    with Ledger(settings=dataclasses.replace(settings, tool=tool)) as ledger:
        with caplog.at_level(logging.WARNING, logger="testledger"):
            record_history(ledger, 3)
    assert run_keys(db_url) == ["r0", "r1", "r2"]
    said = [r for r in caplog.records if "retention skipped" in r.getMessage()]
    assert len(said) == 3 and "keep_runs must be a whole number" in said[0].getMessage()
    assert {record.levelname for record in said} == {"ERROR"}


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ({"keep_runs": 0}, "keep_runs must be a whole number of runs, at least 1"),
        ({"older_than": "banana"}, "not an age: 'banana'"),
        ({"older_than": "0d"}, "not an age"),
        ({"keep_aggregates": True}, "needs keep_runs or older_than"),
        ({"keep_runs": 3, "keep_aggregates": "yes"}, "keep_aggregates must be true or false"),
        ({"keep_runs": 3, "keep": 1}, "unknown key(s): keep"),
    ],
)
def test_a_malformed_retention_table_is_a_config_error(
    table: dict[str, Any], problem: str, tmp_path: Path
) -> None:
    settings = dataclasses.replace(
        api.Ledger("sqlite:///unused.db", results_dir=tmp_path).settings,
        tool={"retention": table},
    )
    with pytest.raises(ConfigError) as raised:
        retention_policy(settings)
    assert problem in str(raised.value)


@pytest.mark.parametrize(
    ("text", "hours"), [("90d", 90 * 24), ("36h", 36), ("2w", 336), (" 7D ", 168)]
)
def test_ages(text: str, hours: int) -> None:
    assert api.parse_age(text) == timedelta(hours=hours)


def test_the_detection_lock_is_the_pipelines() -> None:
    assert retention.DETECTION_LOCK_KEY == DETECTION_LOCK_KEY


def test_runs_whose_locks_stay_taken_are_left_for_next_time(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: a detection under way (its advisory lock held, as another process would)
    makes the prune leave the runs for next time instead of waiting. (SQLite's writers queue
    on its busy timeout instead.)"""
    monkeypatch.setattr(retention, "ATTEMPTS", 2)
    with Ledger(pg_url, results_dir=tmp_path / "results") as ledger:
        record_history(ledger, 3)
        holder = ledger.engine().connect()
        try:
            holder.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": DETECTION_LOCK_KEY})
            skipped = api.prune(ledger, api.RetentionPolicy(keep_runs=1))
            assert (skipped.runs, skipped.skipped_runs) == (0, ["r0", "r1"])
            assert run_keys(pg_url) == ["r0", "r1", "r2"]
        finally:
            holder.execute(sa.text("SELECT pg_advisory_unlock_all()"))
            holder.close()
        again = api.prune(ledger, api.RetentionPolicy(keep_runs=1))
    assert again.runs == 2 and not again.skipped_runs and run_keys(pg_url) == ["r2"]
