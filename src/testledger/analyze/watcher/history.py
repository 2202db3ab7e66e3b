"""The ledger queries behind watching: a run's results, and every one of its tests' history.

Histories for all tests of a run come from one windowed query (ROW_NUMBER per test, newest
first), not one query per test: watching a 5,000-test run must take seconds.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from testledger.analyze.watcher.base import (
    HistoryPoint,
    PreviousObservation,
    RecentHistory,
    ResultContext,
)
from testledger.store.tables import test_results, test_runs, watcher_insights

__all__ = ["DEFAULT_HISTORY_RUNS", "load_histories", "load_results"]

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
    (newest first), and with ``with_observations`` its last observations there."""
    this = connection.execute(
        sa.select(test_runs.c.suite, test_runs.c.branch_name, test_runs.c.run_timestamp).where(
            test_runs.c.id == run_id
        )
    ).one()
    r = test_results
    earlier_runs = sa.select(test_runs.c.id).where(
        test_runs.c.suite == this.suite,
        test_runs.c.branch_name == this.branch_name,
        test_runs.c.run_timestamp < this.run_timestamp,
        test_runs.c.id != run_id,
    )
    tests_of_run = sa.select(r.c.test_id).where(r.c.run_id == run_id)
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
        .where(r.c.run_id.in_(earlier_runs), r.c.test_id.in_(tests_of_run))
        .subquery()
    )
    points: dict[str, list[HistoryPoint]] = defaultdict(list)
    result_test: dict[int, str] = {}
    rows = connection.execute(
        sa.select(ranked).where(ranked.c.rank <= runs).order_by(ranked.c.test_id, ranked.c.rank)
    )
    for row in rows:
        result_test[int(row.id)] = row.test_id
        points[row.test_id].append(
            HistoryPoint(
                run_id=int(row.run_id),
                run_timestamp=row.run_timestamp,
                status=row.status,
                duration_secs=_float(row.duration_secs),
                memory_mb=_float(row.memory_mb),
                tokens_total=None if row.tokens_total is None else int(row.tokens_total),
                cost_usd=_float(row.cost_usd),
                error_type=row.error_type,
                watcher_quality=None if row.watcher_quality is None else int(row.watcher_quality),
            )
        )
    observations: dict[str, list[PreviousObservation]] = defaultdict(list)
    if with_observations and result_test:
        observations = _previous_observations(connection, result_test, points)
    return {
        test_id: RecentHistory(tuple(points[test_id]), tuple(observations.get(test_id, ())))
        for test_id in set(points) | set(observations)
    }


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
