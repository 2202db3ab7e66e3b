"""The proposal's four example queries, unchanged, over data recorded through testledger."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from testledger import Ledger, WatcherObservation
from testledger.report.proposal import PROPOSAL_QUERIES, run_proposal_query
from testledger.store.tables import issue_occurrences, issues, test_results
from tests.histories import scripted_run

START = datetime(2025, 10, 5, 9, 0, tzinfo=timezone.utc)


def record_history(ledger: Ledger) -> None:
    outcomes = [
        # run 1: both fail; run 2: one fails; run 3: two fail, one without a watcher score
        {"chat/basic_glm": ("FAIL", 4, 0.01), "chat/basic_kimi": ("FAIL", 3, 0.02)},
        {"chat/basic_glm": ("PASS", 8, 0.01), "chat/basic_kimi": ("FAIL", 5, 0.02)},
        {
            "chat/basic_glm": ("PASS", 9, 0.01),
            "chat/basic_kimi": ("FAIL", 6, 0.03),
            "consensus/basic": ("FAIL", None, 0.04),
            "status/basic": ("FAIL", 2, None),
        },
    ]
    for index, results in enumerate(outcomes):
        with scripted_run(
            ledger,
            index,
            start=START,
            step=timedelta(days=1),
            commit=f"c{index}",
            suite=None,
            watcher_model="glm-4.5-air",
            detect_issues=False,  # the issues below are the test's own
        ) as run:
            for test_id, (status, quality, cost) in results.items():
                tool, variation = test_id.split("/")
                ref = run.record(
                    tool_name=tool,
                    variation=variation,
                    status=status,
                    cost_usd=cost,
                    error_message=None if status == "PASS" else f"{tool} broke",
                )
                if quality is not None:
                    run.attach_watcher(ref, WatcherObservation(quality_score=quality))


def add_issues(ledger: Ledger) -> None:
    with ledger.engine().begin() as conn:
        result_ids = conn.execute(
            sa.select(test_results.c.id, test_results.c.run_id)
            .where(test_results.c.test_id == "chat/basic_kimi")
            .order_by(test_results.c.run_id)
        ).fetchall()
        for code, priority, day, status in (
            ("PHASE2-HIGH-001", "HIGH", 1, "OPEN"),
            ("PHASE1-CRITICAL-001", "CRITICAL", 2, "RESOLVED"),
            ("PHASE2-HIGH-002", "HIGH", 3, "OPEN"),
        ):
            stamp = START + timedelta(days=day)
            conn.execute(
                sa.insert(issues).values(
                    issue_code=code,
                    title=f"title {code}",
                    description="d",
                    category="production",
                    priority=priority,
                    status=status,
                    affected_tools=["chat"],
                    created_at=stamp,
                    updated_at=stamp,
                    resolved_at=stamp + timedelta(hours=5) if status == "RESOLVED" else None,
                )
            )
        kimi = conn.execute(
            sa.select(issues.c.id).where(issues.c.issue_code == "PHASE2-HIGH-001")
        ).scalar_one()
        for result_id, run_id in result_ids:
            conn.execute(
                sa.insert(issue_occurrences).values(
                    issue_id=kimi, run_id=run_id, test_result_id=result_id, created_at=START
                )
            )


def query(ledger: Ledger, name: str) -> list[dict[str, Any]]:
    with ledger.engine().connect() as conn:
        return run_proposal_query(conn, name)


def num(value: Any) -> float | None:
    return None if value is None else float(value)


def when(value: Any) -> datetime:
    if isinstance(value, str):  # SQLite returns its ISO text
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert isinstance(value, datetime)
    return value


def test_the_queries_are_the_contract_verbatim(shared_dir: Path) -> None:
    text = (shared_dir / "spec" / "queries.sql").read_text()
    for query_ in PROPOSAL_QUERIES.values():
        assert query_.sql in text


def test_latest_run_summary(ledger: Ledger) -> None:
    record_history(ledger)
    [row] = query(ledger, "latest-run")
    assert when(row["run_timestamp"]) == START + timedelta(days=2)
    assert (row["branch_name"], row["total_tests"]) == ("main", 4)
    assert num(row["pass_rate"]) == 25.0
    assert num(row["avg_watcher_quality"]) == pytest.approx(5.67)
    assert num(row["total_cost_usd"]) == pytest.approx(0.08)


def test_failing_tests_of_the_latest_run(ledger: Ledger, db_url: str) -> None:
    record_history(ledger)
    rows = [
        (r["tool_name"], r["variation"], r["status"], r["error_message"], r["watcher_quality"])
        for r in query(ledger, "failing-tests")
    ]
    scored = [
        ("status", "basic", "FAIL", "status broke", 2),
        ("chat", "basic_kimi", "FAIL", "chat broke", 6),
    ]
    unscored = [("consensus", "basic", "FAIL", "consensus broke", None)]
    # ORDER BY ... ASC puts NULLs last on PostgreSQL and first on SQLite: the query is kept
    # verbatim, so each database answers in its own way.
    expected = scored + unscored if db_url.startswith("postgresql") else unscored + scored
    assert rows == expected


def test_issue_resolution_tracking(ledger: Ledger) -> None:
    record_history(ledger)
    add_issues(ledger)
    rows = [
        (r["issue_code"], r["status"], r["occurrence_count"], r["resolved_at"] is not None)
        for r in query(ledger, "issue-resolution")
    ]
    assert rows == [
        ("PHASE1-CRITICAL-001", "RESOLVED", 0, True),
        ("PHASE2-HIGH-002", "OPEN", 0, False),
        ("PHASE2-HIGH-001", "OPEN", 3, False),
    ]


def test_run_over_run_comparison(ledger: Ledger) -> None:
    record_history(ledger)
    rows = [
        (num(r["pass_rate"]), num(r["prev_pass_rate"]), num(r["pass_rate_change"]))
        for r in query(ledger, "run-over-run")
    ]
    assert rows == [(25.0, 50.0, -25.0), (50.0, 0.0, 50.0), (0.0, None, None)]
