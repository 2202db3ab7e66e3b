"""Issues as data: the filtered list, and one issue's history and evidence."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from testledger.analyze.issues.lifecycle import PRIORITY_RANK
from testledger.common.jsondata import JsonData
from testledger.errors import NotFound, TestledgerError
from testledger.store.tables import (
    issue_events,
    issue_fingerprints,
    issue_occurrences,
    issues,
    test_results,
    test_runs,
)

__all__ = ["IssueDetail", "IssueSummary", "issue_codes_for_results", "issue_detail", "list_issues"]

SORTS = ("priority", "last-seen", "occurrences", "code", "created")


@dataclass(frozen=True, slots=True)
class IssueSummary(JsonData):
    code: str
    title: str
    status: str
    priority: str
    category: str
    lifecycle: str | None
    origin: str
    affected_tools: list[str]
    occurrences: int
    flaky_occurrences: int
    first_detected_run_id: int | None
    last_seen_run_id: int | None
    last_seen_at: datetime | None
    regressed_run_id: int | None
    resolved_run_id: int | None
    resolved_at: datetime | None
    created_at: datetime
    updated_at: datetime
    rule_name: str | None
    #: None: the default branch's issue; else the one other branch it was seen only on.
    branch_name: str | None = None


def _occurrence_count(*, flaky_only: bool) -> sa.ScalarSelect[Any]:
    """One issue's occurrence count, correlated to the outer ``issues`` row: evaluated only for
    the issues the query's filters kept, each through the ``issue_id`` index, instead of
    counting every issue's occurrences before filtering."""
    query = (
        sa.select(sa.func.count())
        .select_from(issue_occurrences)
        .where(issue_occurrences.c.issue_id == issues.c.id)
    )
    if flaky_only:
        query = query.where(issue_occurrences.c.flaky.is_(True))
    return query.correlate(issues).scalar_subquery()


def _affects_tool(connection: Connection, tool: str) -> sa.ColumnElement[bool]:
    """``affected_tools`` holds ``tool``: a TEXT[] on PostgreSQL, a JSON text array on SQLite."""
    if connection.dialect.name == "postgresql":
        return issues.c.affected_tools.any_() == sa.literal(tool)
    members = sa.func.json_each(issues.c.affected_tools).table_valued("value")
    return sa.exists(sa.select(1).select_from(members).where(members.c.value == tool))


def _summary_query(where: list[Any], order: list[Any], limit: int | None = None) -> sa.Select[Any]:
    return (
        sa.select(
            issues,
            _occurrence_count(flaky_only=False).label("n"),
            _occurrence_count(flaky_only=True).label("n_flaky"),
        )
        .where(*where)
        .order_by(*order, issues.c.issue_code)
        .limit(limit)
    )


def _summary(row: Any) -> IssueSummary:
    return IssueSummary(
        code=row.issue_code,
        title=row.title,
        status=row.status,
        priority=row.priority,
        category=row.category,
        lifecycle=row.lifecycle,
        origin=row.origin,
        affected_tools=list(row.affected_tools or []),
        occurrences=int(row.n),
        flaky_occurrences=int(row.n_flaky),
        first_detected_run_id=row.first_detected_run_id,
        last_seen_run_id=row.last_seen_run_id,
        last_seen_at=row.last_seen_at,
        regressed_run_id=row.regressed_run_id,
        resolved_run_id=row.resolved_run_id,
        resolved_at=row.resolved_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
        rule_name=row.rule_name,
        branch_name=row.branch_name,
    )


def list_issues(
    connection: Connection,
    *,
    statuses: list[str] | None = None,
    priorities: list[str] | None = None,
    categories: list[str] | None = None,
    tool: str | None = None,
    sort: str = "priority",
    limit: int | None = None,
    branch: str | None = None,
) -> list[IssueSummary]:
    """Issues matching every filter given, sorted by ``sort``; every filter and the limit are
    applied in the query, so occurrences are counted only for the issues returned. ``branch``:
    issues seen on that branch (an occurrence in one of its runs)."""
    where: list[Any] = []
    if branch is not None:
        seen_on = (
            sa.select(issue_occurrences.c.issue_id)
            .join(test_runs, test_runs.c.id == issue_occurrences.c.run_id)
            .where(test_runs.c.branch_name == branch)
        )
        where.append(issues.c.id.in_(seen_on))
    if statuses:
        where.append(issues.c.status.in_([s.upper() for s in statuses]))
    if priorities:
        where.append(issues.c.priority.in_([p.upper() for p in priorities]))
    if categories:
        where.append(issues.c.category.in_(categories))
    if tool is not None:
        where.append(_affects_tool(connection, tool))
    orders: dict[str, list[Any]] = {
        "priority": [PRIORITY_RANK, issues.c.last_seen_at.desc()],
        "last-seen": [issues.c.last_seen_at.desc()],
        "occurrences": [sa.literal_column("n").desc()],
        "code": [],
        "created": [issues.c.created_at.desc()],
    }
    if sort not in orders:
        raise TestledgerError(f"unknown sort {sort!r}: use one of {', '.join(SORTS)}")
    query = _summary_query(where, orders[sort], limit or None)
    return [_summary(row) for row in connection.execute(query)]


@dataclass(frozen=True, slots=True)
class Occurrence:
    run_id: int
    run_timestamp: datetime
    branch: str
    commit: str | None
    test_id: str | None
    result_id: int | None
    status: str | None
    attempt: int | None
    flaky: bool
    error_message: str | None


@dataclass(frozen=True, slots=True)
class IssueEvent:
    at: datetime
    kind: str
    run_id: int | None
    status_from: str | None
    status_to: str | None
    note: str | None
    actor: str


@dataclass(frozen=True, slots=True)
class IssueDetail(JsonData):
    issue: IssueSummary
    description: str
    root_cause: str | None
    resolution: str | None
    backfill_source: str | None
    fingerprints: list[str]
    affected_tests: dict[str, int]
    first_seen: datetime | None
    last_seen: datetime | None
    occurrences: list[Occurrence]
    events: list[IssueEvent]
    #: The branches it was seen on (from its occurrences' runs), with its occurrences on each,
    #: most first.
    branches: dict[str, int] = field(default_factory=dict)


def _fingerprints(connection: Connection, issue_id: int) -> list[str]:
    """The issue's fingerprints as ``HASH (vN)``, in the order they were linked."""
    return [
        f"{fp} (v{version})"
        for fp, version in connection.execute(
            sa.select(issue_fingerprints.c.fingerprint, issue_fingerprints.c.fingerprint_version)
            .where(issue_fingerprints.c.issue_id == issue_id)
            .order_by(issue_fingerprints.c.id)
        )
    ]


def _affected_tests(connection: Connection, issue_id: int) -> dict[str, int]:
    """The issue's occurrences per test, most first (occurrences without a test left out)."""
    return {
        test_id: int(count)
        for test_id, count in connection.execute(
            sa.select(issue_occurrences.c.test_id, sa.func.count())
            .where(issue_occurrences.c.issue_id == issue_id)
            .group_by(issue_occurrences.c.test_id)
            .order_by(sa.func.count().desc(), issue_occurrences.c.test_id)
        )
        if test_id is not None
    }


def _branches(connection: Connection, issue_id: int) -> dict[str, int]:
    """The branches of the runs the issue occurred in, with its occurrences on each."""
    count = sa.func.count()
    return {
        str(branch): int(n)
        for branch, n in connection.execute(
            sa.select(test_runs.c.branch_name, count)
            .join(issue_occurrences, issue_occurrences.c.run_id == test_runs.c.id)
            .where(issue_occurrences.c.issue_id == issue_id)
            .group_by(test_runs.c.branch_name)
            .order_by(count.desc(), test_runs.c.branch_name)
        )
    }


def _seen_span(connection: Connection, issue_id: int) -> tuple[datetime | None, datetime | None]:
    """The timestamps of the first and the last run the issue occurred in (None, None: none)."""
    first, last = connection.execute(
        sa.select(sa.func.min(test_runs.c.run_timestamp), sa.func.max(test_runs.c.run_timestamp))
        .join(issue_occurrences, issue_occurrences.c.run_id == test_runs.c.id)
        .where(issue_occurrences.c.issue_id == issue_id)
    ).one()
    return first, last


def _occurrence(row: Any) -> Occurrence:
    """One occurrence, its error cut to the first line and 300 characters: enough to tell
    occurrences apart in a list."""
    return Occurrence(
        run_id=row.run_id,
        run_timestamp=row.run_timestamp,
        branch=row.branch_name,
        commit=row.commit_hash,
        test_id=row.test_id,
        result_id=row.test_result_id,
        status=row.status,
        attempt=row.attempt,
        flaky=bool(row.flaky),
        error_message=(row.error_message or "").splitlines()[0][:300]
        if row.error_message
        else None,
    )


def _latest_occurrences(connection: Connection, issue_id: int, limit: int) -> list[Occurrence]:
    """The issue's last ``limit`` occurrences, newest first. Outer join: an occurrence keeps
    its run even when its result is gone."""
    rows = connection.execute(
        sa.select(
            issue_occurrences.c.run_id,
            test_runs.c.run_timestamp,
            test_runs.c.branch_name,
            test_runs.c.commit_hash,
            issue_occurrences.c.test_id,
            issue_occurrences.c.test_result_id,
            issue_occurrences.c.flaky,
            test_results.c.status,
            test_results.c.attempt,
            test_results.c.error_message,
        )
        .join(test_runs, test_runs.c.id == issue_occurrences.c.run_id)
        .outerjoin(test_results, test_results.c.id == issue_occurrences.c.test_result_id)
        .where(issue_occurrences.c.issue_id == issue_id)
        .order_by(test_runs.c.run_timestamp.desc(), issue_occurrences.c.id.desc())
        .limit(limit)
    )
    return [_occurrence(row) for row in rows]


def _events(connection: Connection, issue_id: int) -> list[IssueEvent]:
    """The issue's history, oldest first."""
    return [
        IssueEvent(e.created_at, e.kind, e.run_id, e.status_from, e.status_to, e.note, e.actor)
        for e in connection.execute(
            sa.select(issue_events)
            .where(issue_events.c.issue_id == issue_id)
            .order_by(issue_events.c.created_at, issue_events.c.id)
        )
    ]


def issue_detail(connection: Connection, code: str, *, occurrences: int = 50) -> IssueDetail:
    row = connection.execute(_summary_query([issues.c.issue_code == code], [])).first()
    if row is None:
        raise NotFound(f"no issue {code!r}")
    summary = _summary(row)
    prints = _fingerprints(connection, row.id)
    tests = _affected_tests(connection, row.id)
    first_seen, last_seen = _seen_span(connection, row.id)
    return IssueDetail(
        issue=summary,
        description=row.description,
        root_cause=row.root_cause,
        resolution=row.resolution,
        backfill_source=row.backfill_source,
        fingerprints=prints,
        affected_tests=tests,
        first_seen=first_seen,
        last_seen=last_seen,
        occurrences=_latest_occurrences(connection, row.id, occurrences),
        events=_events(connection, row.id),
        branches=_branches(connection, row.id),
    )


def issue_codes_for_results(connection: Connection, result_ids: list[int]) -> dict[int, str]:
    """The issue each of these results is an occurrence of."""
    found: dict[int, str] = {}
    for start in range(0, len(result_ids), 500):
        rows = connection.execute(
            sa.select(issue_occurrences.c.test_result_id, issues.c.issue_code)
            .join(issues, issues.c.id == issue_occurrences.c.issue_id)
            .where(issue_occurrences.c.test_result_id.in_(result_ids[start : start + 500]))
        )
        found.update((int(result_id), code) for result_id, code in rows)
    return found
