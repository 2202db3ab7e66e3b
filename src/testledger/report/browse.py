"""What the web dashboard's pages show beyond the other reports: a page of runs by keyset, a run's
extras (CI link, progress, slowest and costliest tests, badges of its issues, watcher
observations), a live run's state, and one test's observations.

Runs are paged by keyset on ``(run_timestamp, id)`` (``before`` / ``after`` a run id, never an
OFFSET): a page costs the same on the 20,000th run as on the first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from testledger.common.jsondata import JsonData
from testledger.errors import ConfigError, NotFound
from testledger.report.browse_series import runs_of_test
from testledger.report.runs import (
    SUMMARY_COLUMNS,
    RunSummary,
    find_run,
    is_final_attempt,
    parse_run_status,
)
from testledger.store.tables import (
    issue_occurrences,
    issues,
    test_results,
    test_runs,
    watcher_insights,
)

__all__ = [
    "Dimensions",
    "LiveRun",
    "Observation",
    "RunExtras",
    "RunFilters",
    "RunsPage",
    "TopTest",
    "dimensions",
    "live_run",
    "observations_of_test",
    "run_extras",
    "runs_page",
]

MAX_PAGE = 200
TOP_N = 10
_FAILING = ("FAIL", "ERROR")


@dataclass(frozen=True, slots=True)
class RunFilters:
    """Which runs to list: each given filter must hold (dates are UTC days, both inclusive)."""

    suite: str | None = None
    branch: str | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class RunsPage(JsonData):
    """Runs newest first. ``next_before``: the ``before`` of the next (older) page, None on the
    last; ``prev_after``: the ``after`` of the previous (newer) page, None on the first."""

    runs: list[RunSummary]
    ci_job_urls: dict[int, str]
    next_before: int | None
    prev_after: int | None
    limit: int


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def _filtered(query: sa.Select[Any], filters: RunFilters) -> sa.Select[Any]:
    if filters.suite:
        query = query.where(test_runs.c.suite == filters.suite)
    if filters.branch:
        query = query.where(test_runs.c.branch_name == filters.branch)
    if filters.status:
        query = query.where(test_runs.c.status == parse_run_status(filters.status))
    if filters.since is not None:
        query = query.where(test_runs.c.run_timestamp >= _utc(filters.since))
    if filters.until is not None:
        query = query.where(test_runs.c.run_timestamp <= _utc(filters.until))
    return query


def _anchor(connection: Connection, run_id: int) -> tuple[datetime, int]:
    row = connection.execute(
        sa.select(test_runs.c.run_timestamp, test_runs.c.id).where(test_runs.c.id == run_id)
    ).first()
    if row is None:
        raise NotFound(f"no run with id {run_id}")
    return row.run_timestamp, int(row.id)


def _older_than(anchor: tuple[datetime, int]) -> sa.ColumnElement[bool]:
    stamp, run_id = anchor
    return sa.or_(
        test_runs.c.run_timestamp < stamp,
        sa.and_(test_runs.c.run_timestamp == stamp, test_runs.c.id < run_id),
    )


def _newer_than(anchor: tuple[datetime, int]) -> sa.ColumnElement[bool]:
    stamp, run_id = anchor
    return sa.or_(
        test_runs.c.run_timestamp > stamp,
        sa.and_(test_runs.c.run_timestamp == stamp, test_runs.c.id > run_id),
    )


def _exists(connection: Connection, query: sa.Select[Any]) -> bool:
    return connection.execute(query.with_only_columns(test_runs.c.id).limit(1)).first() is not None


def runs_page(
    connection: Connection,
    filters: RunFilters,
    *,
    before: int | None = None,
    after: int | None = None,
    limit: int = 50,
) -> RunsPage:
    """One page of runs matching ``filters``, newest first: the newest ones, or those just
    older than run ``before``, or just newer than run ``after``. Raises ConfigError, NotFound."""
    if not 1 <= limit <= MAX_PAGE:
        raise ConfigError(f"limit must be between 1 and {MAX_PAGE}")
    base = _filtered(sa.select(*SUMMARY_COLUMNS, test_runs.c.ci_job_url), filters)
    newest_first = (test_runs.c.run_timestamp.desc(), test_runs.c.id.desc())
    if before is not None and after is not None:
        # Both: the runs between the two, newest first (a window of the list).
        base = base.where(_newer_than(_anchor(connection, after)))
        after = None
    if after is not None:
        query = base.where(_newer_than(_anchor(connection, after)))
        query = query.order_by(test_runs.c.run_timestamp, test_runs.c.id).limit(limit + 1)
        rows = list(connection.execute(query))
        more_newer = len(rows) > limit
        rows = list(reversed(rows[:limit]))
    else:
        query = base if before is None else base.where(_older_than(_anchor(connection, before)))
        rows = list(connection.execute(query.order_by(*newest_first).limit(limit + 1)))
        more_newer = before is not None
        more_older = len(rows) > limit
        rows = rows[:limit]
    if not rows:
        return RunsPage([], {}, None, None, limit)
    first, last = rows[0], rows[-1]
    if after is not None:
        more_older = _exists(connection, base.where(_older_than((last.run_timestamp, last.id))))
    if before is not None:
        more_newer = _exists(connection, base.where(_newer_than((first.run_timestamp, first.id))))
    summaries = [_summary(row) for row in rows]
    return RunsPage(
        runs=summaries,
        ci_job_urls={int(row.id): row.ci_job_url for row in rows if row.ci_job_url},
        next_before=int(last.id) if more_older else None,
        prev_after=int(first.id) if more_newer else None,
        limit=limit,
    )


def _summary(row: Any) -> RunSummary:
    """The run of a row that also holds its CI link."""
    values = row._asdict()
    values.pop("ci_job_url", None)
    return RunSummary(**values)


@dataclass(frozen=True, slots=True)
class TopTest:
    """One of a run's slowest or costliest results."""

    result_id: int
    test_id: str
    status: str
    attempt: int
    duration_secs: float | None
    cost_usd: float | None
    tokens_total: int | None


@dataclass(frozen=True, slots=True)
class Observation(JsonData):
    """What a watcher said about one result."""

    result_id: int
    run_id: int
    test_id: str
    watcher: str | None
    quality_score: int | None
    confidence_level: str | None
    strengths: list[str]
    weaknesses: list[str]
    anomalies: list[str]
    recommendations: list[str]
    watcher_error: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class RunExtras(JsonData):
    """What the run page shows beside the summary, failures and comparison. ``badges``: per
    issue code among the run's failures, ``new`` (first detected in this run), ``regressed``
    (reopened by it), ``flaky`` (its occurrence here was flaky) or ``known``."""

    run: RunSummary
    ci_provider: str | None
    ci_job_url: str | None
    host: str | None
    expected_tests: int | None
    slowest: list[TopTest]
    costliest: list[TopTest]
    badges: dict[str, str]
    observations: list[Observation]


def _top(connection: Connection, run_id: int, column: Any) -> list[TopTest]:
    r = test_results
    rows = connection.execute(
        sa.select(r.c.id, r.c.test_id, r.c.status, r.c.attempt, r.c.duration_secs, r.c.cost_usd)
        .add_columns(r.c.tokens_total)
        .where(r.c.run_id == run_id, column.is_not(None))
        .order_by(column.desc(), r.c.test_id)
        .limit(TOP_N)
    )
    return [TopTest(*row) for row in rows]


def _badges(connection: Connection, run_id: int) -> dict[str, str]:
    rows = connection.execute(
        sa.select(
            issues.c.issue_code,
            issues.c.first_detected_run_id,
            issues.c.regressed_run_id,
            sa.func.max(sa.case((issue_occurrences.c.flaky.is_(True), 1), else_=0)).label("fl"),
        )
        .join(issue_occurrences, issue_occurrences.c.issue_id == issues.c.id)
        .where(issue_occurrences.c.run_id == run_id)
        .group_by(issues.c.issue_code, issues.c.first_detected_run_id, issues.c.regressed_run_id)
    )
    badges: dict[str, str] = {}
    for code, first_run, regressed_run, flaky in rows:
        if first_run == run_id:
            badges[code] = "new"
        elif regressed_run == run_id:
            badges[code] = "regressed"
        elif flaky:
            badges[code] = "flaky"
        else:
            badges[code] = "known"
    return badges


def _observations(connection: Connection, where: Any, limit: int) -> list[Observation]:
    w, r = watcher_insights, test_results
    rows = connection.execute(
        sa.select(
            w.c.test_result_id,
            r.c.run_id,
            r.c.test_id,
            w.c.watcher,
            w.c.quality_score,
            w.c.confidence_level,
            w.c.strengths,
            w.c.weaknesses,
            w.c.anomalies,
            w.c.recommendations,
            w.c.watcher_error,
            w.c.created_at,
        )
        .join(r, r.c.id == w.c.test_result_id)
        .where(where)
        .order_by(sa.func.coalesce(w.c.quality_score, -1), w.c.id.desc())
        .limit(limit)
    )
    return [
        Observation(
            result_id=int(row.test_result_id),
            run_id=int(row.run_id),
            test_id=row.test_id,
            watcher=row.watcher,
            quality_score=row.quality_score,
            confidence_level=row.confidence_level,
            strengths=list(row.strengths or []),
            weaknesses=list(row.weaknesses or []),
            anomalies=list(row.anomalies or []),
            recommendations=list(row.recommendations or []),
            watcher_error=row.watcher_error,
            created_at=row.created_at,
        )
        for row in rows
    ]


def run_extras(
    connection: Connection, run: str | int | None, *, observations: int = 50
) -> RunExtras:
    """The run's extras (see :class:`RunExtras`); the observations with the lowest quality
    first, at most ``observations``. Raises NotFound."""
    summary = find_run(connection, run)
    row = connection.execute(
        sa.select(
            test_runs.c.ci_provider,
            test_runs.c.ci_job_url,
            test_runs.c.host,
            test_runs.c.expected_tests,
        ).where(test_runs.c.id == summary.id)
    ).one()
    return RunExtras(
        run=summary,
        ci_provider=row.ci_provider,
        ci_job_url=row.ci_job_url,
        host=row.host,
        expected_tests=row.expected_tests,
        slowest=_top(connection, summary.id, test_results.c.duration_secs),
        costliest=_top(connection, summary.id, test_results.c.cost_usd),
        badges=_badges(connection, summary.id),
        observations=_observations(connection, test_results.c.run_id == summary.id, observations),
    )


#: The test's runs whose observations its page lists: as many as its history shows.
OBSERVED_RUNS = 60


def observations_of_test(
    connection: Connection,
    test_id: str,
    *,
    limit: int = 20,
    run_ids: Sequence[int] | None = None,
) -> list[Observation]:
    """The watcher observations of one test's results in its last ``OBSERVED_RUNS`` runs (or
    in ``run_ids``), lowest quality first. Bounded by runs: sorting every observation of a
    test of a long history (its results spread over thousands of pages) took a second on
    PostgreSQL."""
    if run_ids is None:
        run_ids = runs_of_test(connection, test_id, None, OBSERVED_RUNS)
    if not run_ids:
        return []
    where = sa.and_(test_results.c.test_id == test_id, test_results.c.run_id.in_(list(run_ids)))
    return _observations(connection, where, limit)


@dataclass(frozen=True, slots=True)
class LiveFailure:
    result_id: int
    test_id: str
    status: str
    attempt: int
    error_type: str | None
    error_message: str | None


@dataclass(frozen=True, slots=True)
class LiveRun(JsonData):
    """A run as it records: its tests so far by the status of their last attempt, the expected
    total when the recorder knows it (``progress``: done / expected, at most 1), and its
    failures newer than the ``after`` result id asked for, newest first (``last_result_id``:
    the newest result so far, for the next poll)."""

    run: RunSummary
    status: str
    counts: dict[str, int]
    done: int
    expected_tests: int | None
    progress: float | None
    failures: list[LiveFailure]
    last_result_id: int | None


def live_run(
    connection: Connection, run: str | int | None, *, after: int | None = None, limit: int = 50
) -> LiveRun:
    """What the live page of a run shows (see :class:`LiveRun`). Raises NotFound."""
    summary = find_run(connection, run)
    r = test_results
    counts = {
        status: int(n)
        for status, n in connection.execute(
            sa.select(r.c.status, sa.func.count())
            .where(r.c.run_id == summary.id, is_final_attempt())
            .group_by(r.c.status)
        )
    }
    expected = connection.execute(
        sa.select(test_runs.c.expected_tests).where(test_runs.c.id == summary.id)
    ).scalar_one()
    last = connection.execute(sa.select(sa.func.max(r.c.id)).where(r.c.run_id == summary.id))
    failing = (
        sa.select(r.c.id, r.c.test_id, r.c.status, r.c.attempt, r.c.error_type)
        .add_columns(sa.func.substr(r.c.error_message, 1, 300))
        .where(r.c.run_id == summary.id, r.c.status.in_(_FAILING))
        .order_by(r.c.id.desc())
        .limit(limit)
    )
    if after is not None:
        failing = failing.where(r.c.id > after)
    done = sum(counts.values())
    return LiveRun(
        run=summary,
        status=summary.status,
        counts=counts,
        done=done,
        expected_tests=expected,
        progress=min(1.0, done / expected) if expected else None,
        failures=[LiveFailure(*row) for row in connection.execute(failing)],
        last_result_id=last.scalar_one(),
    )


@dataclass(frozen=True, slots=True)
class Dimensions(JsonData):
    """The values the pages' filters offer: every suite and branch, and the tools, providers
    and models of the last ``recent_runs`` runs' results (reading a million results' distinct
    models would cost more than the page)."""

    suites: list[str]
    branches: list[str]
    tools: list[str]
    providers: list[str]
    models: list[str]
    recent_runs: int


def dimensions(connection: Connection, *, recent_runs: int = 20, limit: int = 200) -> Dimensions:
    """The filters' values (at most ``limit`` of each, sorted)."""

    def distinct(column: Any, where: Any = None) -> list[str]:
        query = sa.select(column).where(column.is_not(None)).distinct().order_by(column)
        if where is not None:
            query = query.where(where)
        return [value for (value,) in connection.execute(query.limit(limit))]

    def walked(column: Any) -> list[str]:
        """The column's values, walked through its index one value at a time (a loose index
        scan: a probe per suite or branch instead of reading every run, on every page)."""
        walk = sa.select(sa.func.min(column).label("value")).cte("walk", recursive=True)
        following = sa.select(sa.func.min(column)).where(column > walk.c.value)
        walk = walk.union_all(
            sa.select(following.scalar_subquery()).where(walk.c.value.is_not(None))
        )
        query = sa.select(walk.c.value).where(walk.c.value.is_not(None)).limit(limit)
        return [value for (value,) in connection.execute(query)]

    recent = (
        sa.select(test_runs.c.id)
        .order_by(test_runs.c.run_timestamp.desc(), test_runs.c.id.desc())
        .limit(recent_runs)
    )
    run_ids = [run_id for (run_id,) in connection.execute(recent)]
    in_recent = test_results.c.run_id.in_(run_ids)
    return Dimensions(
        suites=walked(test_runs.c.suite),
        branches=walked(test_runs.c.branch_name),
        tools=distinct(test_results.c.tool_name, in_recent),
        providers=distinct(test_results.c.provider, in_recent),
        models=distinct(test_results.c.model, in_recent),
        recent_runs=recent_runs,
    )
