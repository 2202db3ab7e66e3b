"""What the ledger knows about a test beside its outcomes: the open issues it is an occurrence
of, and the change points regression detection recorded for its metrics.

The watcher's histories (:func:`testledger.analyze.watcher.history.load_histories`) and one
test's context for an agent (:func:`testledger.analyze.watcher.history.load_test_context`,
behind ``testledger.api.test_context`` and the MCP server's test-history tool) both read them
here, so that what an agent sees and what the watcher sees agree.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from testledger.analyze.issues.lifecycle import PRIORITY_RANK, IssueStatus
from testledger.analyze.regressions.metrics import ORIGIN as REGRESSION_ORIGIN
from testledger.analyze.regressions.metrics import series_key
from testledger.analyze.watcher.base import OpenIssue, RecordedChange
from testledger.store.tables import issue_occurrences, issues

__all__ = ["OPEN_STATUSES", "open_issues_for_tests", "recorded_changes"]

#: The statuses of an issue someone still has to act on.
OPEN_STATUSES = (IssueStatus.OPEN.value, IssueStatus.IN_PROGRESS.value)
#: Test ids per IN (...) list: well below SQLite's bound-parameter limit.
_CHUNK = 500


def open_issues_for_tests(
    connection: Connection, test_ids: Sequence[str]
) -> dict[str, tuple[OpenIssue, ...]]:
    """Each test's open issues (those with an occurrence of the test), most urgent first:
    by priority, then the most recently seen."""
    found: dict[str, list[OpenIssue]] = {}
    columns = (
        issues.c.issue_code,
        issues.c.title,
        issues.c.status,
        issues.c.priority,
        issues.c.category,
        issues.c.origin,
        issues.c.lifecycle,
        issues.c.last_seen_run_id,
        issues.c.last_seen_at,
    )
    for start in range(0, len(test_ids), _CHUNK):
        rows = connection.execute(
            sa.select(issue_occurrences.c.test_id, *columns, sa.func.count().label("n"))
            .join(issues, issues.c.id == issue_occurrences.c.issue_id)
            .where(issue_occurrences.c.test_id.in_(test_ids[start : start + _CHUNK]))
            .where(issues.c.status.in_(OPEN_STATUSES))
            .group_by(issue_occurrences.c.test_id, issues.c.id, *columns)
            .order_by(
                issue_occurrences.c.test_id,
                PRIORITY_RANK,
                issues.c.last_seen_at.desc(),
                issues.c.issue_code,
            )
        )
        for row in rows:
            found.setdefault(row.test_id, []).append(_open_issue(row))
    return {test_id: tuple(listed) for test_id, listed in found.items()}


def _open_issue(row: Any) -> OpenIssue:
    return OpenIssue(
        code=row.issue_code,
        title=row.title,
        status=row.status,
        priority=row.priority,
        category=row.category,
        origin=row.origin,
        lifecycle=row.lifecycle,
        occurrences=int(row.n),
        last_seen_run_id=None if row.last_seen_run_id is None else int(row.last_seen_run_id),
    )


def recorded_changes(
    connection: Connection,
    suite: str,
    branch: str,
    test_ids: Collection[str] | None = None,
) -> dict[str, tuple[RecordedChange, ...]]:
    """The change points regression detection recorded (as issues) for the tests of one suite
    and branch (all of them when ``test_ids`` is None), newest first."""
    wanted = None if test_ids is None else set(test_ids)
    found: dict[str, list[RecordedChange]] = {}
    rows = connection.execute(
        sa.select(issues.c.issue_code, issues.c.status, issues.c.details)
        .where(issues.c.origin == REGRESSION_ORIGIN)
        .order_by(issues.c.id.desc())
    )
    for row in rows:
        key = series_key(row.details)
        if key is None or key[:2] != (suite, branch):
            continue
        if wanted is not None and key[2] not in wanted:
            continue
        found.setdefault(key[2], []).append(_change(row.issue_code, row.status, row.details))
    return {test_id: tuple(listed) for test_id, listed in found.items()}


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _change(code: str, status: str, details: dict[str, Any]) -> RecordedChange:
    return RecordedChange(
        issue_code=code,
        status=status,
        metric=str(details["metric"]),
        before_mean=float(details["before_mean"]),
        after_mean=float(details["after_mean"]),
        magnitude_pct=_number(details.get("magnitude_pct")),
        first_run_id=int(details["first_run_id"]),
        commit_range=str(details.get("commit_range") or ""),
        p_value=_number(details.get("p_value")),
    )
