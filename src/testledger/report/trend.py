"""The trend of the last runs: pass rate, watcher quality, cost, duration and tokens, each with
its change from the previous run.

This is the run-over-run example query (``LAG(pass_rate) OVER (ORDER BY run_timestamp)``)
generalised to every metric, as the ``v_run_trend`` view does. Without a tool, provider or model
filter the run-level columns of ``test_runs`` are the numbers; with one, each run's numbers are
aggregated over its matching results (the last attempt of a test decides its status and quality,
cost, tokens and duration add up every attempt - retries are paid for), the same rules
``store.runs.compute_stats`` applies to a whole run.

Runs still being recorded (status ``running``) are left out: their numbers are not final.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from testledger.common.jsondata import JsonData
from testledger.report.runs import run_duration_secs
from testledger.store.tables import test_results, test_runs

__all__ = [
    "TREND_METRICS",
    "Trend",
    "TrendFilters",
    "TrendMetric",
    "TrendPoint",
    "run_trend",
]


@dataclass(frozen=True, slots=True)
class TrendMetric:
    """One trended number: the TrendPoint attributes holding it and its change, and which way
    is good (``higher_is_better`` None: neither, e.g. tokens)."""

    name: str
    label: str
    attribute: str
    change_attribute: str
    higher_is_better: bool | None


TREND_METRICS: tuple[TrendMetric, ...] = (
    TrendMetric("pass_rate", "pass %", "pass_rate", "pass_rate_change", True),
    TrendMetric("quality", "quality", "avg_watcher_quality", "quality_change", True),
    TrendMetric("cost", "cost $", "total_cost_usd", "cost_change", False),
    TrendMetric("duration", "secs", "duration_secs", "duration_change", False),
    TrendMetric("tokens", "tokens", "total_tokens", "tokens_change", False),
)


@dataclass(frozen=True, slots=True)
class TrendPoint:
    """One run of the trend. ``tests``/``passed``/``failed`` count tests (last attempts) that
    the numbers cover; ``failed`` includes errors, as in ``test_runs.tests_failed``."""

    run_id: int
    run_key: str
    suite: str
    branch: str
    commit: str | None
    run_timestamp: datetime
    status: str
    tests: int
    passed: int
    failed: int
    pass_rate: float | None
    avg_watcher_quality: float | None
    total_cost_usd: float | None
    duration_secs: float | None
    total_tokens: int | None
    pass_rate_change: float | None
    quality_change: float | None
    cost_change: float | None
    duration_change: float | None
    tokens_change: int | None


@dataclass(frozen=True, slots=True)
class TrendFilters:
    branch: str | None = None
    suite: str | None = None
    tool: str | None = None
    provider: str | None = None
    model: str | None = None

    @property
    def per_result(self) -> bool:
        """True when the numbers come from matching results rather than the run's columns."""
        return any(value is not None for value in (self.tool, self.provider, self.model))


@dataclass(frozen=True, slots=True)
class Trend(JsonData):
    """The runs oldest to newest. The first point's changes are against the run just before
    the window (None when there is none), as ``LAG()`` over all runs would give."""

    points: list[TrendPoint]
    filters: TrendFilters
    limit: int

    def series(self, metric: TrendMetric | str) -> list[float | None]:
        """The values of one metric, oldest to newest (for sparklines and charts)."""
        attribute = _metric(metric).attribute
        values: list[float | None] = []
        for point in self.points:
            value = getattr(point, attribute)
            values.append(None if value is None else float(value))
        return values


def _metric(metric: TrendMetric | str) -> TrendMetric:
    if isinstance(metric, TrendMetric):
        return metric
    for known in TREND_METRICS:
        if metric in (known.name, known.attribute):
            return known
    raise KeyError(metric)


@dataclass(frozen=True, slots=True)
class _Numbers:
    """A run's numbers as exact as the ledger has them, before the changes are computed: each
    value and each change is rounded once, in :func:`_point`. (Changes of values rounded first
    disagreed: one test of twelve flipping read 91.67 - 83.33 = 8.34 from one level and
    100 - 91.67 = 8.33 from the next.)"""

    tests: int
    passed: int
    failed: int
    pass_rate: float | None
    quality: float | None
    cost: float | None
    duration: float | None
    tokens: int | None


_NO_NUMBERS = _Numbers(0, 0, 0, None, None, None, None, None)  # "before the first run"


def _result_conditions(table: Any, filters: TrendFilters) -> list[sa.ColumnElement[bool]]:
    conditions: list[sa.ColumnElement[bool]] = []
    if filters.tool is not None:
        conditions.append(table.c.tool_name == filters.tool)
    if filters.provider is not None:
        conditions.append(table.c.provider == filters.provider)
    if filters.model is not None:
        conditions.append(table.c.model == filters.model)
    return conditions


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _per_result_numbers(
    connection: Connection, run_ids: list[int], filters: TrendFilters
) -> dict[int, _Numbers]:
    """Each run's numbers over its results that match the tool/provider/model filter, in one
    pass: the last matching attempt of each test decides its status and quality."""
    last_attempt = sa.func.max(test_results.c.attempt).over(
        partition_by=(test_results.c.run_id, test_results.c.test_id)
    )
    matching = (
        sa.select(
            test_results.c.run_id,
            test_results.c.status,
            test_results.c.watcher_quality,
            test_results.c.cost_usd,
            test_results.c.duration_secs,
            test_results.c.tokens_total,
            (test_results.c.attempt == last_attempt).label("is_last"),
        )
        .where(test_results.c.run_id.in_(run_ids))
        .where(*_result_conditions(test_results, filters))
        .subquery()
    )
    is_last = matching.c.is_last == sa.true()

    def count(*statuses: str) -> sa.ColumnElement[Any]:
        return sa.func.sum(sa.case((sa.and_(is_last, matching.c.status.in_(statuses)), 1), else_=0))

    rows = connection.execute(
        sa.select(
            matching.c.run_id,
            sa.func.sum(sa.case((is_last, 1), else_=0)).label("total"),
            count("PASS").label("passed"),
            count("FAIL", "ERROR").label("failed"),
            count("SKIP").label("skipped"),
            sa.func.avg(sa.case((is_last, matching.c.watcher_quality))).label("quality"),
            sa.func.sum(matching.c.cost_usd).label("cost"),
            sa.func.sum(matching.c.duration_secs).label("duration"),
            sa.func.sum(matching.c.tokens_total).label("tokens"),
        ).group_by(matching.c.run_id)
    )
    numbers: dict[int, _Numbers] = {}
    for row in rows:
        total, passed, skipped = int(row.total), int(row.passed), int(row.skipped)
        executed = total - skipped
        numbers[int(row.run_id)] = _Numbers(
            tests=total,
            passed=passed,
            failed=int(row.failed),
            pass_rate=100.0 * passed / executed if executed else None,
            quality=_optional_float(row.quality),
            cost=_optional_float(row.cost),
            duration=_optional_float(row.duration),
            tokens=None if row.tokens is None else int(row.tokens),
        )
    return numbers


def _change(current: float | None, previous: float | None, digits: int) -> float | None:
    if current is None or previous is None:
        return None
    return round(current - previous, digits)


def _exact_pass_rate(row: Any) -> float | None:
    """The run's pass rate from its counts (``test_runs.pass_rate`` keeps two decimals), or
    the stored one where the counts do not give it."""
    stored = _optional_float(row.pass_rate)
    executed = int(row.total_tests) - int(row.tests_skipped)
    if stored is None or executed <= 0:
        return stored
    exact = 100.0 * int(row.tests_passed) / executed
    return exact if round(exact, 2) == round(stored, 2) else stored


def _runs_query(filters: TrendFilters) -> sa.Select[Any]:
    """Finished runs of the branch / suite, with their run-level numbers; with a tool,
    provider or model filter, only runs that have a matching result."""
    query = sa.select(
        test_runs.c.id,
        test_runs.c.run_key,
        test_runs.c.suite,
        test_runs.c.branch_name,
        test_runs.c.commit_hash,
        test_runs.c.run_timestamp,
        test_runs.c.status,
        test_runs.c.total_tests,
        test_runs.c.tests_passed,
        test_runs.c.tests_failed,
        test_runs.c.tests_skipped,
        test_runs.c.pass_rate,
        test_runs.c.avg_watcher_quality,
        test_runs.c.total_cost_usd,
        run_duration_secs().label("duration_secs"),
        test_runs.c.total_tokens,
    ).where(test_runs.c.status != "running")
    if filters.branch is not None:
        query = query.where(test_runs.c.branch_name == filters.branch)
    if filters.suite is not None:
        query = query.where(test_runs.c.suite == filters.suite)
    if filters.per_result:
        query = query.where(
            sa.select(test_results.c.id)
            .where(test_results.c.run_id == test_runs.c.id)
            .where(*_result_conditions(test_results, filters))
            .exists()
        )
    return query


def _run_numbers(rows: list[Any]) -> dict[int, _Numbers]:
    """Each run's numbers from its own ``test_runs`` columns (no result filter). Quality, cost
    and duration are stored rounded (2, 4 and 3 decimals): their changes are of those."""
    return {
        int(row.id): _Numbers(
            tests=int(row.total_tests),
            passed=int(row.tests_passed),
            failed=int(row.tests_failed),
            pass_rate=_exact_pass_rate(row),
            quality=_optional_float(row.avg_watcher_quality),
            cost=_optional_float(row.total_cost_usd),
            duration=_optional_float(row.duration_secs),
            tokens=None if row.total_tokens is None else int(row.total_tokens),
        )
        for row in rows
    }


def _point(row: Any, now: _Numbers, previous: _Numbers) -> TrendPoint:
    """One run's point: its numbers and their change from the run before it."""
    tokens_change = (
        None if now.tokens is None or previous.tokens is None else now.tokens - previous.tokens
    )
    return TrendPoint(
        run_id=int(row.id),
        run_key=row.run_key,
        suite=row.suite,
        branch=row.branch_name,
        commit=row.commit_hash,
        run_timestamp=row.run_timestamp,
        status=row.status,
        tests=now.tests,
        passed=now.passed,
        failed=now.failed,
        pass_rate=_rounded(now.pass_rate, 2),
        avg_watcher_quality=_rounded(now.quality, 2),
        total_cost_usd=_rounded(now.cost, 6),
        duration_secs=_rounded(now.duration, 3),
        total_tokens=now.tokens,
        pass_rate_change=_change(now.pass_rate, previous.pass_rate, 2),
        quality_change=_change(now.quality, previous.quality, 2),
        cost_change=_change(now.cost, previous.cost, 6),
        duration_change=_change(now.duration, previous.duration, 3),
        tokens_change=tokens_change,
    )


def run_trend(
    connection: Connection,
    *,
    limit: int = 20,
    branch: str | None = None,
    suite: str | None = None,
    tool: str | None = None,
    provider: str | None = None,
    model: str | None = None,
) -> Trend:
    """The last ``limit`` finished runs (of a branch / suite; with a tool, provider or model
    filter only runs that have matching results), oldest to newest, with each number's change
    from the run before."""
    filters = TrendFilters(branch, suite, tool, provider, model)
    newest_first = _runs_query(filters).order_by(
        test_runs.c.run_timestamp.desc(), test_runs.c.id.desc()
    )
    # One run more than asked for: the oldest shown run's change is against it (LAG semantics).
    rows = list(connection.execute(newest_first.limit(limit + 1)))
    rows.reverse()
    if filters.per_result:
        numbers = _per_result_numbers(connection, [int(row.id) for row in rows], filters)
    else:
        numbers = _run_numbers(rows)
    points: list[TrendPoint] = []
    previous = _NO_NUMBERS
    for row in rows:
        now = numbers[int(row.id)]
        points.append(_point(row, now, previous))
        previous = now
    return Trend(points=points[-limit:] if limit > 0 else [], filters=filters, limit=limit)
