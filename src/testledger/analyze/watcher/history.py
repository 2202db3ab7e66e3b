"""The ledger queries behind watching: a run's results, and every one of its tests' history.

Histories for all tests of a run come from one windowed query (ROW_NUMBER per test, newest
first), not one query per test: watching a 5,000-test run must take seconds. The same query,
with the test's open issues and recorded change points, gives one test's context to an agent
(:func:`load_test_context`), so that what an agent sees and what the watcher sees agree.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from testledger.analyze.watcher.base import (
    HistoryPoint,
    OpenIssue,
    PreviousObservation,
    RecentHistory,
    RecordedChange,
    ResultContext,
)
from testledger.analyze.watcher.context import open_issues_for_tests, recorded_changes
from testledger.common.jsondata import JsonData
from testledger.errors import NotFound
from testledger.store.tables import test_results, test_runs, watcher_insights

__all__ = [
    "DEFAULT_HISTORY_RUNS",
    "TestContext",
    "load_histories",
    "load_results",
    "load_test_context",
]

#: How many earlier runs of a test its history holds, unless configured otherwise.
DEFAULT_HISTORY_RUNS = 30
#: How many earlier observations of a test are kept for a watcher that reads them.
PREVIOUS_OBSERVATIONS = 5


def load_results(
    connection: Connection, run_id: int, *, missing_for: str | None = None
) -> list[ResultContext]:
    """The last attempt of every test in the run, by test id. With ``missing_for`` only results
    that have no observation from that watcher yet."""
    r = test_results
    final = r.alias("final")
    last_attempt = (
        sa.select(sa.func.max(r.c.attempt))
        .where(r.c.run_id == run_id)
        .where(r.c.test_id == final.c.test_id)
        .scalar_subquery()
    )
    query = (
        sa.select(final)
        .where(final.c.run_id == run_id)
        .where(final.c.attempt == last_attempt)
        .order_by(final.c.test_id)
    )
    if missing_for is not None:
        watched = sa.select(watcher_insights.c.id).where(
            watcher_insights.c.test_result_id == final.c.id,
            watcher_insights.c.watcher == missing_for,
        )
        query = query.where(~sa.exists(watched))
    return [_context(row) for row in connection.execute(query).mappings()]


def _context(row: Any) -> ResultContext:
    return ResultContext(
        result_id=int(row["id"]),
        test_id=row["test_id"],
        attempt=int(row["attempt"]),
        tool_name=row["tool_name"],
        variation=row["variation"],
        status=row["status"],
        provider=row["provider"],
        model=row["model"],
        duration_secs=_float(row["duration_secs"]),
        memory_mb=_float(row["memory_mb"]),
        tokens_total=None if row["tokens_total"] is None else int(row["tokens_total"]),
        cost_usd=_float(row["cost_usd"]),
        error_type=row["error_type"],
        error_message=row["error_message"],
        output_excerpt=row["output_excerpt"],
        metrics=dict(row["metrics"] or {}),
        details=dict(row["details"] or {}),
    )


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def load_histories(
    connection: Connection,
    run_id: int,
    *,
    runs: int = DEFAULT_HISTORY_RUNS,
    with_observations: bool = False,
) -> dict[str, RecentHistory]:
    """Each test of the run's last ``runs`` results in earlier runs of the same suite and branch
    (newest first), its open issues and recorded change points (:mod:`.context`), and with
    ``with_observations`` its last observations there."""
    this = connection.execute(
        sa.select(
            test_runs.c.id, test_runs.c.suite, test_runs.c.branch_name, test_runs.c.run_timestamp
        ).where(test_runs.c.id == run_id)
    ).one()
    r = test_results
    tests_of_run = sa.select(r.c.test_id).where(r.c.run_id == run_id)
    points, result_test = _points(
        connection, this.suite, this.branch_name, r.c.test_id.in_(tests_of_run), runs, before=this
    )
    observations: dict[str, list[PreviousObservation]] = defaultdict(list)
    if with_observations and result_test:
        observations = _previous_observations(connection, result_test, points)
    test_ids = sorted(set(connection.execute(tests_of_run.distinct()).scalars()))
    issues_of = open_issues_for_tests(connection, test_ids)
    changes_of = recorded_changes(connection, this.suite, this.branch_name, test_ids)
    return {
        test_id: RecentHistory(
            tuple(points[test_id]),
            tuple(observations.get(test_id, ())),
            issues_of.get(test_id, ()),
            changes_of.get(test_id, ()),
        )
        for test_id in set(points) | set(observations) | set(issues_of) | set(changes_of)
    }


@dataclass(frozen=True, slots=True)
class TestContext(JsonData):
    """One test as the watcher sees it, in the latest run of its suite and branch that has it:
    its last ``runs`` results there (newest first, that run's included), its open issues and
    the change points recorded for its metrics (newest first)."""

    __test__ = False  # not a pytest test class, despite its name

    test_id: str
    suite: str
    branch: str
    latest_run_id: int
    points: tuple[HistoryPoint, ...]
    open_issues: tuple[OpenIssue, ...]
    changes: tuple[RecordedChange, ...]


def load_test_context(
    connection: Connection,
    test_id: str,
    *,
    runs: int = DEFAULT_HISTORY_RUNS,
    branch: str | None = None,
    suite: str | None = None,
) -> TestContext:
    """The context of ``test_id`` (an exact id) in its latest run, of ``branch`` and ``suite``
    when given: what :func:`load_histories` gives the watcher, from the same queries. Raises
    NotFound."""
    latest = (
        sa.select(test_runs.c.id, test_runs.c.suite, test_runs.c.branch_name)
        .join(test_results, test_results.c.run_id == test_runs.c.id)
        .where(test_results.c.test_id == test_id)
        .order_by(test_runs.c.run_timestamp.desc(), test_runs.c.id.desc())
        .limit(1)
    )
    if branch is not None:
        latest = latest.where(test_runs.c.branch_name == branch)
    if suite is not None:
        latest = latest.where(test_runs.c.suite == suite)
    run = connection.execute(latest).first()
    if run is None:
        where = "".join(f" {k} {v}" for k, v in (("suite", suite), ("branch", branch)) if v)
        raise NotFound(f"no result of {test_id}" + (f" in{where}" if where else ""))
    recent = _recent_runs_of_test(connection, test_id, run.suite, run.branch_name, runs)
    points, _ = _points(
        connection,
        run.suite,
        run.branch_name,
        test_results.c.test_id == test_id,
        runs,
        within=recent,
    )
    return TestContext(
        test_id=test_id,
        suite=run.suite,
        branch=run.branch_name,
        latest_run_id=int(run.id),
        points=tuple(points[test_id]),
        open_issues=open_issues_for_tests(connection, [test_id]).get(test_id, ()),
        changes=recorded_changes(connection, run.suite, run.branch_name, [test_id]).get(
            test_id, ()
        ),
    )


def _recent_runs_of_test(
    connection: Connection, test_id: str, suite: str, branch: str, runs: int
) -> list[int]:
    """The last ``runs`` runs of a suite and branch that have a result of ``test_id``, newest
    first. Walks the suite's runs newest first and probes each for the test through the
    (run, test, attempt) key, so it reads about ``runs`` runs: ranking all of a test's results
    (11,000 of them in bench/web.py's ledger) took 60-90 ms."""
    has_result = sa.exists().where(
        test_results.c.run_id == test_runs.c.id, test_results.c.test_id == test_id
    )
    return [
        int(run_id)
        for run_id in connection.execute(
            sa.select(test_runs.c.id)
            .where(test_runs.c.suite == suite, test_runs.c.branch_name == branch, has_result)
            .order_by(test_runs.c.run_timestamp.desc(), test_runs.c.id.desc())
            .limit(runs)
        ).scalars()
    ]


def _points(
    connection: Connection,
    suite: str,
    branch: str,
    tests: sa.ColumnElement[bool],
    runs: int,
    *,
    before: Any | None = None,
    within: Sequence[int] | None = None,
) -> tuple[dict[str, list[HistoryPoint]], dict[int, str]]:
    """The last ``runs`` results of each test ``tests`` selects in the runs of a suite and
    branch (earlier than run ``before`` when given; among the runs ``within`` when given, which
    must hold them), newest first, and the test of each."""
    r = test_results
    scope: Any = sa.select(test_runs.c.id).where(
        test_runs.c.suite == suite, test_runs.c.branch_name == branch
    )
    if within is not None:
        scope = list(within)
    elif before is not None:
        scope = scope.where(
            test_runs.c.run_timestamp < before.run_timestamp, test_runs.c.id != before.id
        )
    rank = (
        sa.func.row_number()
        .over(
            partition_by=r.c.test_id,
            order_by=(test_runs.c.run_timestamp.desc(), r.c.run_id.desc(), r.c.attempt.desc()),
        )
        .label("rank")
    )
    ranked = (
        sa.select(
            r.c.id,
            r.c.test_id,
            r.c.run_id,
            r.c.attempt,
            test_runs.c.run_timestamp,
            r.c.status,
            r.c.duration_secs,
            r.c.memory_mb,
            r.c.tokens_total,
            r.c.cost_usd,
            r.c.error_type,
            r.c.watcher_quality,
            rank,
        )
        .join(test_runs, test_runs.c.id == r.c.run_id)
        .where(r.c.run_id.in_(scope), tests)
        .subquery()
    )
    points: dict[str, list[HistoryPoint]] = defaultdict(list)
    result_test: dict[int, str] = {}
    rows = connection.execute(
        sa.select(ranked).where(ranked.c.rank <= runs).order_by(ranked.c.test_id, ranked.c.rank)
    )
    for row in rows:
        result_test[int(row.id)] = row.test_id
        points[row.test_id].append(_point(row))
    return points, result_test


def _point(row: Any) -> HistoryPoint:
    return HistoryPoint(
        run_id=int(row.run_id),
        run_timestamp=row.run_timestamp,
        status=row.status,
        duration_secs=_float(row.duration_secs),
        memory_mb=_float(row.memory_mb),
        tokens_total=None if row.tokens_total is None else int(row.tokens_total),
        cost_usd=_float(row.cost_usd),
        error_type=row.error_type,
        watcher_quality=None if row.watcher_quality is None else int(row.watcher_quality),
        result_id=int(row.id),
        attempt=int(row.attempt),
    )


def _previous_observations(
    connection: Connection,
    result_test: dict[int, str],
    points: dict[str, list[HistoryPoint]],
) -> dict[str, list[PreviousObservation]]:
    run_of_result: dict[int, int] = {}
    ids = sorted(result_test)
    found: dict[str, list[PreviousObservation]] = defaultdict(list)
    w = watcher_insights
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        rows = connection.execute(
            sa.select(
                w.c.test_result_id,
                test_results.c.run_id,
                w.c.watcher,
                w.c.quality_score,
                w.c.anomalies,
                w.c.recommendations,
                w.c.watcher_error,
            )
            .join(test_results, test_results.c.id == w.c.test_result_id)
            .where(w.c.test_result_id.in_(chunk))
            .order_by(w.c.created_at.desc(), w.c.id.desc())
        )
        for row in rows:
            run_of_result[int(row.test_result_id)] = int(row.run_id)
            found[result_test[int(row.test_result_id)]].append(
                PreviousObservation(
                    run_id=int(row.run_id),
                    watcher=row.watcher,
                    quality_score=row.quality_score,
                    anomalies=tuple(row.anomalies or ()),
                    recommendations=tuple(row.recommendations or ()),
                    error=row.watcher_error,
                )
            )
    # Newest runs first (the order of the test's history), then keep the last few.
    order = {test_id: [p.run_id for p in pts] for test_id, pts in points.items()}
    return {
        test_id: sorted(obs, key=lambda o: _position(order.get(test_id, []), o.run_id))[
            :PREVIOUS_OBSERVATIONS
        ]
        for test_id, obs in found.items()
    }


def _position(run_ids: Sequence[int], run_id: int) -> int:
    return run_ids.index(run_id) if run_id in run_ids else len(run_ids)
