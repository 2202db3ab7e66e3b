"""A suite and branch's per-test metric series from the ledger, and their change points.

Each metric becomes a (tests x runs) array, oldest run first, NaN where a test has no passing
result (see :mod:`testledger.analyze.regressions.finder` for why only passing results count). This
module and :mod:`testledger.analyze.regressions.changepoint` import numpy: the modules
everyone imports load them only inside the functions that compute.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from testledger.analyze.regressions.changepoint import SeriesAnalysis, analyze_many
from testledger.analyze.regressions.metrics import (
    METRICS,
    Metric,
    MetricChange,
    RegressionConfig,
    RunRef,
    commit_range,
    is_regression,
    magnitude_pct,
)
from testledger.model import Status
from testledger.store.tables import test_results

__all__ = ["Scope", "analyze_metric", "describe_change", "driver_rows", "load_scope"]

#: Test ids per IN (...) list: with the runs' ids beside them, below SQLite's parameter limit.
_TEST_CHUNK = 500


@dataclass(slots=True)
class Scope:
    """One suite and branch: its runs (oldest first) and each metric's (tests x runs) values."""

    suite: str
    branch: str
    runs: list[RunRef]
    tests: list[str]
    values: dict[str, np.ndarray[Any, np.dtype[np.float64]]]
    result_ids: np.ndarray[Any, np.dtype[np.int64]]


def driver_rows(connection: Connection, query: sa.Select[Any]) -> list[tuple[Any, ...]]:
    """The query's rows as the driver's plain tuples: a million results are read in about half
    the time it takes to build SQLAlchemy rows for them (every value here is a plain number or
    text, nothing for SQLAlchemy's type processing to do)."""
    compiled = query.compile(
        dialect=connection.dialect, compile_kwargs={"render_postcompile": True}
    )
    params = compiled.params
    args: Any = (
        tuple(params[name] for name in compiled.positiontup or ())
        if connection.dialect.positional
        else params
    )
    cursor = connection.connection.cursor()
    try:
        cursor.execute(compiled.string, args)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def load_scope(
    connection: Connection,
    suite: str,
    branch: str,
    runs: list[RunRef],
    metrics: Sequence[str],
    *,
    test: str | None = None,
    tests_of_run: int | None = None,
    test_ids: Sequence[str] | None = None,
) -> Scope:
    """Every passing result of the runs, pivoted to (tests x runs) arrays, NaN where none
    (of one ``test``, of the tests of the run ``tests_of_run``, or of ``test_ids``)."""
    run_ids = np.array([r.id for r in runs], dtype=np.int64)
    order = np.argsort(run_ids)
    # As floats from the database itself: PostgreSQL would send NUMERIC as Decimal.
    columns = [sa.cast(METRICS[name].column, sa.Float) for name in metrics]
    query = (
        sa.select(test_results.c.run_id, test_results.c.test_id, test_results.c.id, *columns)
        .where(test_results.c.run_id.in_([r.id for r in runs]))
        .where(test_results.c.status == Status.PASS.value)
    )
    if test is not None:
        query = query.where(test_results.c.test_id == test)
    if tests_of_run is not None:
        query = query.where(
            test_results.c.test_id.in_(
                sa.select(test_results.c.test_id).where(test_results.c.run_id == tests_of_run)
            )
        )
    if test_ids is None:
        rows = driver_rows(connection, query)
    else:
        wanted = sorted(set(test_ids))
        rows = [
            row
            for start in range(0, len(wanted), _TEST_CHUNK)
            for row in driver_rows(
                connection,
                query.where(test_results.c.test_id.in_(wanted[start : start + _TEST_CHUNK])),
            )
        ]
    index: dict[str, int] = {}
    if rows:
        # Column by column (zip(*rows) over a million tuples is several times slower).
        fields = [list(map(itemgetter(k), rows)) for k in range(3 + len(metrics))]
        index = {test_id: i for i, test_id in enumerate(dict.fromkeys(fields[1]))}
        test_index = np.array([index[test_id] for test_id in fields[1]], dtype=np.int64)
        found = np.asarray(fields[0], dtype=np.int64)
        run_index = order[np.searchsorted(run_ids, found, sorter=order)]
    tests = list(index)
    shape = (len(tests), len(runs))
    values: dict[str, np.ndarray[Any, np.dtype[np.float64]]] = {}
    result_ids = np.full(shape, -1, dtype=np.int64)
    if rows:
        result_ids[test_index, run_index] = np.asarray(fields[2], dtype=np.int64)
    for offset, name in enumerate(metrics):
        matrix = np.full(shape, np.nan)
        if rows:
            matrix[test_index, run_index] = np.asarray(fields[3 + offset], dtype=np.float64)
        values[name] = matrix
    return Scope(suite, branch, runs, tests, values, result_ids)


def analyze_metric(
    scope: Scope, metric: str, config: RegressionConfig, tests: set[str] | None = None
) -> list[tuple[int, SeriesAnalysis]]:
    """(test row, analysis) of each series long enough to hold a change (of ``tests`` only,
    when given)."""
    matrix = scope.values[metric]
    counts = (~np.isnan(matrix)).sum(axis=1)
    long_enough = counts >= 2 * config.min_runs
    if tests is not None:
        long_enough &= np.asarray([test in tests for test in scope.tests], dtype=bool)
    rows = np.flatnonzero(long_enough)
    analyses = analyze_many([matrix[row] for row in rows], config.params(metric))
    return list(zip(rows.tolist(), analyses, strict=True))


def describe_change(
    scope: Scope,
    metric: Metric,
    row: int,
    analysis: SeriesAnalysis,
    number: int,
    issue_code: str | None,
) -> MetricChange:
    cp = analysis.change_points[number]
    positions = analysis.positions
    at = int(np.searchsorted(positions, cp.index))
    first = scope.runs[cp.index]
    last_good = scope.runs[int(positions[at - 1])]
    low = int(positions[at - cp.n_before])
    high = int(positions[at + cp.n_after - 1])
    return MetricChange(
        suite=scope.suite,
        branch=scope.branch,
        test_id=scope.tests[row],
        metric=metric.name,
        kind="regression" if is_regression(metric, cp) else "improvement",
        direction="up" if cp.mean_after > cp.mean_before else "down",
        before_mean=round(cp.mean_before, 6),
        after_mean=round(cp.mean_after, 6),
        magnitude_pct=magnitude_pct(cp),
        first_run=first,
        last_good_run=last_good,
        commit_range=commit_range(last_good, first),
        p_value=float(f"{cp.p_value:.3g}"),
        n_before=cp.n_before,
        n_after=cp.n_after,
        outlier_runs=[scope.runs[i].id for i in analysis.outliers if low <= i <= high],
        current=number == len(analysis.change_points) - 1,
        issue_code=issue_code,
    )
