"""Finding results and issues by text: a test's name, an error's type or message, an issue's
code, title, description, root cause or resolution (case-insensitive substring).

Results come back one line per test (the test's matching results counted, its latest matching
result shown), so that a name found in a hundred runs is one hit, not a hundred.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from testledger.common.jsondata import JsonData
from testledger.errors import ConfigError
from testledger.store.tables import issues, test_results, test_runs

__all__ = ["IssueHit", "SearchResults", "TestHit", "search"]


@dataclass(frozen=True, slots=True)
class TestHit:
    """A test with results matching the text: ``matched`` says whether its name (``test``) or
    only an error (``error``) matched; the rest describe its latest matching result."""

    __test__ = False  # not a pytest test class, despite its name

    test_id: str
    tool_name: str
    variation: str
    matched: str
    matching_results: int
    result_id: int
    run_id: int
    run_timestamp: datetime
    status: str
    error_type: str | None
    error_message: str | None


@dataclass(frozen=True, slots=True)
class IssueHit:
    """An issue whose ``matched`` field (code, title, description, root_cause or resolution)
    holds the text."""

    code: str
    title: str
    status: str
    priority: str
    category: str
    origin: str
    matched: str
    last_seen_run_id: int | None
    last_seen_at: datetime | None


@dataclass(frozen=True, slots=True)
class SearchResults(JsonData):
    """At most ``limit`` tests (latest match first) of ``tests_total``, and at most ``limit``
    issues (most recently seen first) of ``issues_total``."""

    text: str
    tests: list[TestHit]
    tests_total: int
    issues: list[IssueHit]
    issues_total: int
    limit: int


def _has(column: Any, text: str) -> sa.ColumnElement[bool]:
    return sa.func.lower(column).contains(text.lower(), autoescape=True)


def _test_hits(connection: Connection, text: str, limit: int) -> tuple[list[TestHit], int]:
    r = test_results
    named = sa.or_(_has(r.c.test_id, text), _has(r.c.tool_name, text), _has(r.c.variation, text))
    matches = sa.or_(named, _has(r.c.error_type, text), _has(r.c.error_message, text))
    total = connection.execute(
        sa.select(sa.func.count(sa.distinct(r.c.test_id))).where(matches)
    ).scalar_one()
    latest = (
        sa.select(r.c.test_id, sa.func.count().label("n"), sa.func.max(r.c.id).label("last_id"))
        .where(matches)
        .group_by(r.c.test_id)
        .order_by(sa.func.max(r.c.id).desc())
        .limit(limit)
        .subquery()
    )
    rows = connection.execute(
        sa.select(
            latest.c.n,
            r.c.id,
            r.c.test_id,
            r.c.tool_name,
            r.c.variation,
            r.c.run_id,
            test_runs.c.run_timestamp,
            r.c.status,
            r.c.error_type,
            r.c.error_message,
            named.label("named"),
        )
        .join(latest, latest.c.last_id == r.c.id)
        .join(test_runs, test_runs.c.id == r.c.run_id)
        .order_by(r.c.id.desc())
    )
    hits = [
        TestHit(
            test_id=row.test_id,
            tool_name=row.tool_name,
            variation=row.variation,
            matched="test" if row.named else "error",
            matching_results=int(row.n),
            result_id=int(row.id),
            run_id=int(row.run_id),
            run_timestamp=row.run_timestamp,
            status=row.status,
            error_type=row.error_type,
            error_message=row.error_message,
        )
        for row in rows
    ]
    return hits, int(total)


_ISSUE_FIELDS = ("issue_code", "title", "description", "root_cause", "resolution")


def _issue_hits(connection: Connection, text: str, limit: int) -> tuple[list[IssueHit], int]:
    matches = sa.or_(*(_has(issues.c[name], text) for name in _ISSUE_FIELDS))
    total = connection.execute(sa.select(sa.func.count()).where(matches)).scalar_one()
    rows = connection.execute(
        sa.select(issues)
        .where(matches)
        .order_by(
            issues.c.last_seen_at.is_(None), issues.c.last_seen_at.desc(), issues.c.issue_code
        )
        .limit(limit)
    )
    needle = text.lower()
    hits = [
        IssueHit(
            code=row.issue_code,
            title=row.title,
            status=row.status,
            priority=row.priority,
            category=row.category,
            origin=row.origin,
            matched=next(
                (
                    "code" if name == "issue_code" else name
                    for name in _ISSUE_FIELDS
                    if needle in (getattr(row, name) or "").lower()
                ),
                "title",
            ),
            last_seen_run_id=row.last_seen_run_id,
            last_seen_at=row.last_seen_at,
        )
        for row in rows
    ]
    return hits, int(total)


def search(connection: Connection, text: str, *, limit: int = 20) -> SearchResults:
    """Tests and issues matching ``text`` (case-insensitive). Raises ConfigError for empty text
    or a limit below 1."""
    text = text.strip()
    if not text:
        raise ConfigError("give some text to search for (a test name, an error, an issue code)")
    if limit < 1:
        raise ConfigError("limit must be at least 1")
    tests, tests_total = _test_hits(connection, text, limit)
    found, issues_total = _issue_hits(connection, text, limit)
    return SearchResults(
        text=text,
        tests=tests,
        tests_total=tests_total,
        issues=found,
        issues_total=issues_total,
        limit=limit,
    )
