"""What the web dashboard shows of tests over time, without analysing anything again: the
regression issues detection recorded (their evidence), and one test's series over its last runs
(the test page's charts).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from testledger.analyze.issues.lifecycle import PRIORITY_RANK
from testledger.analyze.regressions.metrics import ORIGIN as REGRESSION_ORIGIN
from testledger.common.jsondata import JsonData
from testledger.report.runs import is_final_attempt
from testledger.store.tables import issues, test_results, test_runs

__all__ = [
    "RegressionIssue",
    "SeriesPoint",
    "regression_issues",
    "runs_of_test",
    "series_of_test",
]


@dataclass(frozen=True, slots=True)
class RegressionIssue:
    """A lasting change in a test's metric as issue detection recorded it (the regression
    issue's evidence), without running the change-point analysis again."""

    issue_code: str
    status: str
    priority: str
    suite: str
    branch: str
    test_id: str
    metric: str
    before_mean: float
    after_mean: float
    magnitude_pct: float | None
    first_run_id: int
    last_good_run_id: int | None
    commit_range: str
    p_value: float | None
    last_seen_at: datetime | None


def regression_issues(
    connection: Connection,
    *,
    statuses: Sequence[str] = ("OPEN", "IN_PROGRESS"),
    suite: str | None = None,
    branch: str | None = None,
    metric: str | None = None,
    limit: int = 500,
) -> list[RegressionIssue]:
    """The regression issues in ``statuses`` (of a suite, branch and metric when given), the
    highest priority first, then the largest change."""
    rows = connection.execute(
        sa.select(
            issues.c.issue_code,
            issues.c.status,
            issues.c.priority,
            issues.c.details,
            issues.c.last_seen_at,
        )
        .where(issues.c.origin == REGRESSION_ORIGIN, issues.c.status.in_(list(statuses)))
        .order_by(PRIORITY_RANK, issues.c.last_seen_at.desc(), issues.c.issue_code)
    )
    found: list[RegressionIssue] = []
    for code, status, priority, details, last_seen in rows:
        if not isinstance(details, dict) or "metric" not in details:
            continue
        wanted = (suite, branch, metric)
        actual = (details.get("suite"), details.get("branch"), details.get("metric"))
        if any(w is not None and w != a for w, a in zip(wanted, actual, strict=True)):
            continue
        found.append(_regression(code, status, priority, details, last_seen))
        if len(found) >= limit:
            break
    return found


def _regression(
    code: str, status: str, priority: str, details: dict[str, Any], last_seen: datetime | None
) -> RegressionIssue:
    def number(key: str) -> float | None:
        value = details.get(key)
        return None if value is None else float(value)

    last_good = details.get("last_good_run_id")
    return RegressionIssue(
        issue_code=code,
        status=status,
        priority=priority,
        suite=str(details.get("suite", "")),
        branch=str(details.get("branch", "")),
        test_id=str(details.get("test_id", "")),
        metric=str(details["metric"]),
        before_mean=float(details.get("before_mean") or 0.0),
        after_mean=float(details.get("after_mean") or 0.0),
        magnitude_pct=number("magnitude_pct"),
        first_run_id=int(details.get("first_run_id") or 0),
        last_good_run_id=None if last_good is None else int(last_good),
        commit_range=str(details.get("commit_range", "")),
        p_value=number("p_value"),
        last_seen_at=last_seen,
    )


@dataclass(frozen=True, slots=True)
class SeriesPoint(JsonData):
    """One test in one run (its last attempt): what the test page's charts draw."""

    run_id: int
    run_timestamp: datetime
    status: str
    attempt: int
    duration_secs: float | None
    memory_mb: float | None
    cost_usd: float | None
    watcher_quality: int | None


def runs_of_test(connection: Connection, test_id: str, branch: str | None, limit: int) -> list[int]:
    """The newest ``limit`` runs (of ``branch``) holding the test: read newest first through
    the runs' time index, each probed for the test through the results' unique index."""
    r, t = test_results, test_runs
    runs = (
        sa.select(t.c.id)
        .where(sa.exists().where(r.c.run_id == t.c.id, r.c.test_id == test_id))
        .order_by(t.c.run_timestamp.desc(), t.c.id.desc())
        .limit(limit)
    )
    if branch is not None:
        # SQLite, without statistics, would take the branch's index and sort every run of it
        # (150 ms for main on 20,000 runs, against 0.1 ms): the column is hidden from its
        # planner behind || ''. PostgreSQL's statistics choose well as it is.
        column = t.c.branch_name
        runs = runs.where(
            (column.concat("") if connection.dialect.name == "sqlite" else column) == branch
        )
    return list(connection.execute(runs).scalars())


def series_of_test(
    connection: Connection, test_id: str, *, branch: str | None = None, limit: int = 60
) -> list[SeriesPoint]:
    """The test's last ``limit`` runs (of ``branch`` when given), newest first, by its last
    attempt in each: its runs found first (see :func:`runs_of_test`), then its results in
    them (reading every result of a test of thousands of runs took 130 ms on SQLite)."""
    run_ids = runs_of_test(connection, test_id, branch, limit)
    if not run_ids:
        return []
    r, t = test_results, test_runs
    query = (
        sa.select(
            r.c.run_id,
            t.c.run_timestamp,
            r.c.status,
            r.c.attempt,
            r.c.duration_secs,
            r.c.memory_mb,
            r.c.cost_usd,
            r.c.watcher_quality,
        )
        .join(t, t.c.id == r.c.run_id)
        .where(r.c.run_id.in_(run_ids), r.c.test_id == test_id, is_final_attempt())
        .order_by(t.c.run_timestamp.desc(), t.c.id.desc())
    )
    return [SeriesPoint(*row) for row in connection.execute(query)]
