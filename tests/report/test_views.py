"""The SQL views read the same numbers as the reports, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa

from testledger import Ledger
from testledger.report.proposal import run_proposal_query
from tests.histories import scripted_run

START = datetime(2025, 10, 1, 9, 0, tzinfo=timezone.utc)


def record(ledger: Ledger, index: int, outcomes: dict[str, tuple[str, float]]) -> None:
    with scripted_run(ledger, index, start=START, commit=f"c{index}", suite="validation") as run:
        for test_id, (status, cost) in outcomes.items():
            tool, variation = test_id.split("/")
            run.record(
                tool_name=tool,
                variation=variation,
                status=status,
                cost_usd=cost,
                provider="glm" if tool == "chat" else None,
                model="glm-4.5" if tool == "chat" else None,
                tokens_total=100,
            )


def rows(ledger: Ledger, sql: str) -> list[dict[str, Any]]:
    with ledger.engine().connect() as conn:
        return [dict(row._mapping) for row in conn.execute(sa.text(sql))]


def num(value: Any) -> float | None:
    return None if value is None else float(value)


def test_views_match_the_reports(ledger: Ledger) -> None:
    record(ledger, 0, {"chat/a": ("PASS", 0.1), "chat/b": ("FAIL", 0.2), "status/c": ("PASS", 0)})
    record(ledger, 1, {"chat/a": ("FAIL", 0.1), "chat/b": ("PASS", 0.2), "tool/new": ("PASS", 0)})

    # The proposal's queries, as views, give the queries' own rows.
    with ledger.engine().connect() as conn:
        for view, name in (
            ("v_latest_run_summary", "latest-run"),
            ("v_issue_resolution", "issue-resolution"),
            ("v_run_over_run", "run-over-run"),
        ):
            assert rows(ledger, f"SELECT * FROM {view}") == run_proposal_query(conn, name)

    trend = rows(ledger, "SELECT * FROM v_run_trend ORDER BY run_timestamp")
    assert [num(r["pass_rate"]) for r in trend] == [pytest_approx(66.67), pytest_approx(66.67)]
    assert [num(r["pass_rate_change"]) for r in trend] == [None, 0.0]
    assert [num(r["cost_change"]) for r in trend] == [None, 0.0]

    cost = rows(
        ledger,
        "SELECT run_id, provider, results, passed, cost_usd, tokens_total FROM v_cost_by_model "
        "WHERE provider = 'glm' ORDER BY run_id",
    )
    assert [(r["results"], r["passed"], num(r["cost_usd"]), r["tokens_total"]) for r in cost] == [
        (2, 1, pytest_approx(0.3), 200),
        (2, 1, pytest_approx(0.3), 200),
    ]

    changes = {
        r["test_id"]: r["change"]
        for r in rows(ledger, "SELECT test_id, change FROM v_latest_comparison")
    }
    assert changes == {
        "chat/a": "new_failure",
        "chat/b": "fixed",
        "status/c": "removed",
        "tool/new": "added",
    }


def pytest_approx(value: float) -> Any:
    import pytest

    return pytest.approx(value, abs=0.01)


def test_flaky_evidence_view(ledger: Ledger) -> None:
    record(ledger, 0, {"chat/a": ("PASS", 0.1), "chat/b": ("FAIL", 0.1)})
    with ledger.start_run(
        branch="main",
        commit="c0",
        suite="validation",
        started_at=START + timedelta(hours=1),
        detect_environment=False,
    ) as run:
        run.record(tool_name="chat", variation="a", status="FAIL")  # same commit, failing
        run.record(tool_name="chat", variation="b", status="FAIL")
        run.record(tool_name="chat", variation="c", status="FAIL")
        run.record(tool_name="chat", variation="c", status="PASS")  # passed on retry
    found = sorted(
        (r["test_id"], r["evidence"])
        for r in rows(ledger, "SELECT test_id, evidence FROM v_flaky_evidence")
    )
    assert found == [("chat/a", "same_commit"), ("chat/c", "retry")]
