"""Regressions of per-test metrics: their series from the ledger, their change points, and
the issues they open and resolve.

A series is one test's metric over the runs of one suite and branch (oldest first, at most
``history`` runs), from its passing results: a failure is an issue of its own, and its timings
and cost say how it failed, not what the test usually costs. Metrics and their bad direction:

=========  ========================  ==========  ============
metric     column                    worse when  issue category
=========  ========================  ==========  ============
duration   duration_secs             up          performance
memory     memory_mb                 up          performance
cpu        cpu_percent               up          performance
tokens     tokens_total              up          cost
cost       cost_usd                  up          cost
quality    watcher_quality           down        quality
=========  ========================  ==========  ============

Change points come from :mod:`testledger.analyze.changepoint`; a change in the bad direction
is a regression, the other way an improvement.

Issues (``detect_regressions`` runs at the end of issue detection for every run): for each test
of the run and metric, the latest change of its series, when it is a regression that still
holds, opens one issue per (suite, branch, test, metric) - origin ``regression``, its evidence
in ``details``, linked by occurrences to the results where the change is seen, one more each
run while it lasts. An OPEN one whose metric is back (the mean of the latest ``min_runs``
values within ``min_magnitude`` of the mean before the change, and at least half way back) is
RESOLVED with the run and an event saying so; a later regression of the same series reopens it
as ``regressed``; WONT_FIX ones are never reopened. Running it again over a run adds nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from operator import itemgetter
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from testledger.analyze.changepoint import (
    ChangePoint,
    ChangePointParams,
    SeriesAnalysis,
    analyze_many,
)
from testledger.analyze.lifecycle import IssueStatus, add_event
from testledger.analyze.rules import RuleSet
from testledger.errors import NotFound, TestledgerError
from testledger.model import Status, utcnow
from testledger.store.tables import (
    issue_events,
    issue_occurrences,
    issues,
    test_results,
    test_runs,
)
from testledger.store.types import format_utc

__all__ = [
    "METRICS",
    "MetricChange",
    "MetricOutlier",
    "RegressionConfig",
    "RegressionReport",
    "RegressionSync",
    "RunRef",
    "detect_regressions",
    "find_regressions",
    "open_regression_issue_ids",
]

ORIGIN = "regression"


@dataclass(frozen=True, slots=True)
class Metric:
    name: str
    column: sa.Column[Any]
    higher_is_worse: bool
    category: str
    unit: str

    def show(self, value: float) -> str:
        return self.unit.format(value)


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("duration", test_results.c.duration_secs, True, "performance", "{:.3f} s"),
        Metric("memory", test_results.c.memory_mb, True, "performance", "{:.0f} MB"),
        Metric("cpu", test_results.c.cpu_percent, True, "performance", "{:.1f}%"),
        Metric("tokens", test_results.c.tokens_total, True, "cost", "{:.0f}"),
        Metric("cost", test_results.c.cost_usd, True, "cost", "${:.4f}"),
        Metric("quality", test_results.c.watcher_quality, False, "quality", "{:.2f}"),
    )
}


@dataclass(frozen=True, slots=True)
class RegressionConfig:
    """``[tool.testledger.regressions]``."""

    p_value: float = 0.001
    window: int = 50
    min_magnitude: float = 0.10
    #: Fewest runs on each side of a change, and the "latest window" a resolution looks at.
    min_runs: int = 5
    metrics: tuple[str, ...] = tuple(METRICS)
    #: How many recent runs of a suite and branch make a series.
    history: int = 200
    #: Whether ``testledger detect`` (and detection after every run) looks for regressions.
    detect: bool = True

    def params(self) -> ChangePointParams:
        return ChangePointParams(
            p_value=self.p_value,
            window=self.window,
            min_magnitude=self.min_magnitude,
            min_segment=self.min_runs,
        )


@dataclass(frozen=True, slots=True)
class RunRef:
    id: int
    key: str
    at: datetime
    commit: str | None


@dataclass(frozen=True, slots=True)
class MetricChange:
    suite: str
    branch: str
    test_id: str
    metric: str
    kind: str  # "regression" or "improvement"
    before_mean: float
    after_mean: float
    magnitude_pct: float | None  # None: the metric rose from zero
    first_run: RunRef
    last_good_run: RunRef
    commit_range: str
    p_value: float
    n_before: int
    n_after: int
    outlier_runs: list[int]
    current: bool  # the latest change of its series: the after level is where it is now
    issue_code: str | None


@dataclass(frozen=True, slots=True)
class MetricOutlier:
    suite: str
    branch: str
    test_id: str
    metric: str
    kind: str
    run: RunRef
    value: float
    median: float


@dataclass(frozen=True, slots=True)
class RegressionReport:
    changes: list[MetricChange]
    outliers: list[MetricOutlier]
    series_analyzed: int


@dataclass(slots=True)
class RegressionSync:
    """What one pass over a run did to regression issues (codes)."""

    opened: list[str] = field(default_factory=list)
    reopened: list[str] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)
    occurrences_added: int = 0


# --- series from the ledger --------------------------------------------------------------------


@dataclass(slots=True)
class _Scope:
    """One suite and branch: its runs (oldest first) and each metric's (tests x runs) values."""

    suite: str
    branch: str
    runs: list[RunRef]
    tests: list[str]
    values: dict[str, np.ndarray[Any, np.dtype[np.float64]]]
    result_ids: np.ndarray[Any, np.dtype[np.int64]]


def _scope_runs(
    connection: Connection, suite: str, branch: str, history: int, until: Any | None
) -> list[RunRef]:
    query = (
        sa.select(
            test_runs.c.id, test_runs.c.run_key, test_runs.c.run_timestamp, test_runs.c.commit_hash
        )
        .where(test_runs.c.suite == suite)
        .where(test_runs.c.branch_name == branch)
        .order_by(test_runs.c.run_timestamp.desc(), test_runs.c.id.desc())
        .limit(history)
    )
    if until is None:
        query = query.where(test_runs.c.status != "running")
    else:
        query = query.where(
            sa.or_(
                test_runs.c.id == until.id,
                sa.and_(
                    test_runs.c.status != "running",
                    sa.or_(
                        test_runs.c.run_timestamp < until.run_timestamp,
                        sa.and_(
                            test_runs.c.run_timestamp == until.run_timestamp,
                            test_runs.c.id < until.id,
                        ),
                    ),
                ),
            )
        )
    rows = connection.execute(query).all()
    return [RunRef(int(r.id), r.run_key, r.run_timestamp, r.commit_hash) for r in reversed(rows)]


def _driver_rows(connection: Connection, query: sa.Select[Any]) -> list[tuple[Any, ...]]:
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


def _load_scope(
    connection: Connection,
    suite: str,
    branch: str,
    runs: list[RunRef],
    metrics: Sequence[str],
    *,
    test: str | None = None,
    tests_of_run: int | None = None,
) -> _Scope:
    """Every passing result of the runs, pivoted to (tests x runs) arrays, NaN where none."""
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
    rows = _driver_rows(connection, query)
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
    return _Scope(suite, branch, runs, tests, values, result_ids)


def _analyze(
    scope: _Scope, metric: str, config: RegressionConfig
) -> list[tuple[int, SeriesAnalysis]]:
    """(test row, analysis) of each series long enough to hold a change."""
    matrix = scope.values[metric]
    counts = (~np.isnan(matrix)).sum(axis=1)
    rows = np.flatnonzero(counts >= 2 * config.min_runs)
    analyses = analyze_many([matrix[row] for row in rows], config.params())
    return list(zip(rows.tolist(), analyses, strict=True))


# --- describing a change -----------------------------------------------------------------------


def _is_regression(metric: Metric, cp: ChangePoint) -> bool:
    rose = cp.mean_after > cp.mean_before
    return rose if metric.higher_is_worse else not rose


def _magnitude_pct(cp: ChangePoint) -> float | None:
    change = cp.relative_change
    return None if math.isinf(change) else round(change * 100.0, 2)


def _commit_range(before: RunRef, first: RunRef) -> str:
    return f"{(before.commit or '?')[:12]}..{(first.commit or '?')[:12]}"


def _describe(
    scope: _Scope,
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
        kind="regression" if _is_regression(metric, cp) else "improvement",
        before_mean=round(cp.mean_before, 6),
        after_mean=round(cp.mean_after, 6),
        magnitude_pct=_magnitude_pct(cp),
        first_run=first,
        last_good_run=last_good,
        commit_range=_commit_range(last_good, first),
        p_value=float(f"{cp.p_value:.3g}"),
        n_before=cp.n_before,
        n_after=cp.n_after,
        outlier_runs=[scope.runs[i].id for i in analysis.outliers if low <= i <= high],
        current=number == len(analysis.change_points) - 1,
        issue_code=issue_code,
    )


def _details(change: MetricChange) -> dict[str, Any]:
    return {
        "kind": ORIGIN,
        "suite": change.suite,
        "branch": change.branch,
        "test_id": change.test_id,
        "metric": change.metric,
        "before_mean": change.before_mean,
        "after_mean": change.after_mean,
        "magnitude_pct": change.magnitude_pct,
        "first_run_id": change.first_run.id,
        "first_run_key": change.first_run.key,
        "first_run_at": format_utc(change.first_run.at),
        "last_good_run_id": change.last_good_run.id,
        "commit_range": change.commit_range,
        "p_value": change.p_value,
        "n_before": change.n_before,
        "n_after": change.n_after,
        "outlier_runs": change.outlier_runs,
    }


def _key(details: Any) -> tuple[str, str, str, str] | None:
    if not isinstance(details, dict) or details.get("kind") != ORIGIN:
        return None
    return (details["suite"], details["branch"], details["test_id"], details["metric"])


def _regression_issues(connection: Connection) -> dict[tuple[str, str, str, str], list[Any]]:
    """Regression issues by (suite, branch, test, metric), newest last."""
    found: dict[tuple[str, str, str, str], list[Any]] = {}
    last_move = (
        sa.select(sa.func.max(test_runs.c.run_timestamp))
        .join(issue_events, issue_events.c.run_id == test_runs.c.id)
        .where(issue_events.c.issue_id == issues.c.id)
        .scalar_subquery()
    )
    for row in connection.execute(
        sa.select(
            issues.c.id,
            issues.c.issue_code,
            issues.c.status,
            issues.c.priority,
            issues.c.resolved_at,
            issues.c.details,
            last_move.label("last_move_at"),
        )
        .where(issues.c.origin == ORIGIN)
        .order_by(issues.c.id)
    ):
        key = _key(row.details)
        if key is not None:
            found.setdefault(key, []).append(row)
    return found


# --- the report ------------------------------------------------------------------------------


def find_regressions(
    connection: Connection,
    config: RegressionConfig | None = None,
    *,
    branch: str | None = None,
    suite: str | None = None,
    metric: str | None = None,
    test: str | None = None,
    include_improvements: bool = False,
) -> RegressionReport:
    """Every change point of every (suite, branch, test, metric) series over the latest
    ``history`` runs, oldest first within a series, with the outliers of the latest ``window``
    runs. Regressions only unless ``include_improvements``."""
    config = config or RegressionConfig()
    if metric is not None and metric not in METRICS:
        raise TestledgerError(f"unknown metric {metric!r}: use one of {', '.join(METRICS)}")
    metrics = [metric] if metric is not None else list(config.metrics)
    scopes = sa.select(test_runs.c.suite, test_runs.c.branch_name).distinct()
    if branch is not None:
        scopes = scopes.where(test_runs.c.branch_name == branch)
    if suite is not None:
        scopes = scopes.where(test_runs.c.suite == suite)
    known = _regression_issues(connection)
    changes: list[MetricChange] = []
    outliers: list[MetricOutlier] = []
    analyzed = 0
    for scope_suite, scope_branch in sorted(connection.execute(scopes).all()):
        runs = _scope_runs(connection, scope_suite, scope_branch, config.history, None)
        if len(runs) < 2 * config.min_runs:
            continue
        scope = _load_scope(connection, scope_suite, scope_branch, runs, metrics, test=test)
        run_column = {r.id: i for i, r in enumerate(runs)}
        for name in metrics:
            spec = METRICS[name]
            for row, analysis in _analyze(scope, name, config):
                analyzed += 1
                test_id = scope.tests[row]
                for number, cp in enumerate(analysis.change_points):
                    if not include_improvements and not _is_regression(spec, cp):
                        continue
                    code = (
                        _issue_near(
                            known.get((scope_suite, scope_branch, test_id, name), []),
                            run_column,
                            cp.index,
                            config.window // 2,
                        )
                        if _is_regression(spec, cp)
                        else None
                    )
                    changes.append(_describe(scope, spec, row, analysis, number, code))
                present = analysis.positions
                recent = set(present[-config.window :].tolist())
                for i in analysis.outliers:
                    if i not in recent:
                        continue
                    k = int(np.searchsorted(present, i))
                    value = float(scope.values[name][row, i])
                    median = float(analysis.cleaned[k])
                    worse = (value > median) == spec.higher_is_worse
                    if not worse and not include_improvements:
                        continue
                    outliers.append(
                        MetricOutlier(
                            scope_suite,
                            scope_branch,
                            test_id,
                            name,
                            "regression" if worse else "improvement",
                            scope.runs[i],
                            value,
                            median,
                        )
                    )
    return RegressionReport(changes, outliers, analyzed)


def _issue_near(
    candidates: list[Any], run_column: dict[int, int], position: int, reach: int
) -> str | None:
    best: tuple[int, str] | None = None
    for issue in candidates:
        column = run_column.get(int(issue.details.get("first_run_id", -1)))
        if column is None or abs(column - position) > reach:
            continue
        distance = abs(column - position)
        if best is None or distance < best[0]:
            best = (distance, issue.issue_code)
    return None if best is None else best[1]


# --- issues ----------------------------------------------------------------------------------


def open_regression_issue_ids(connection: Connection) -> set[int]:
    """OPEN regression issues: failure detection's "passed N times" resolution is not theirs
    (a slow test passes), they resolve when their metric is back."""
    return {
        int(issue_id)
        for issue_id in connection.execute(
            sa.select(issues.c.id)
            .where(issues.c.origin == ORIGIN)
            .where(issues.c.status == IssueStatus.OPEN.value)
        ).scalars()
    }


def _priority(change: MetricChange) -> str:
    size = math.inf if change.magnitude_pct is None else abs(change.magnitude_pct)
    if size >= 100:
        return "CRITICAL"
    if size >= 50:
        return "HIGH"
    if size >= 25:
        return "MEDIUM"
    return "LOW"


def _sentence(change: MetricChange) -> str:
    spec = METRICS[change.metric]
    verb = "rose" if change.after_mean > change.before_mean else "fell"
    size = "from zero" if change.magnitude_pct is None else f"{abs(change.magnitude_pct):.1f}%"
    return (
        f"{change.metric} of {change.test_id} {verb} {size} "
        f"({spec.show(change.before_mean)} -> {spec.show(change.after_mean)}) "
        f"from run {change.first_run.id} ({change.first_run.key}) on, commits "
        f"{change.commit_range}; p={change.p_value:.3g}, {change.n_before} runs before, "
        f"{change.n_after} after"
    )


def _recovered(
    analysis: SeriesAnalysis, metric: Metric, before: float, after: float, config: RegressionConfig
) -> tuple[bool, float]:
    """Whether the latest ``min_runs`` values are back: within ``min_magnitude`` of the mean
    before the change and at least half way back (so that a change about as small as the
    threshold does not resolve and reopen run after run)."""
    recent = float(np.mean(analysis.cleaned[-config.min_runs :]))
    sign = 1.0 if metric.higher_is_worse else -1.0
    remaining = (recent - before) * sign
    allowed = min(config.min_magnitude * abs(before), abs(after - before) / 2.0)
    return remaining <= allowed, recent


def _seen_in(value: float, metric: Metric, before: float, after: float) -> bool:
    """Whether a value shows the change: past half way from the old level to the new (an
    occurrence names a result where the change is seen). The value as measured: the latest run
    has no runs after it to tell an outlier from the first run of a new level."""
    sign = 1.0 if metric.higher_is_worse else -1.0
    return (value - before) * sign > abs(after - before) / 2.0


class _Sync:
    def __init__(
        self,
        connection: Connection,
        run: Any,
        scope: _Scope,
        rules: RuleSet,
        config: RegressionConfig,
        now: datetime,
    ) -> None:
        self.connection = connection
        self.run = run
        self.scope = scope
        self.rules = rules
        self.config = config
        self.now = now
        self.report = RegressionSync()
        self.taken: set[str] | None = None
        self.next_seq: dict[tuple[str, str], int] = {}

    def new_code(self, category: str, priority: str) -> str:
        """The first free code of the rules' default template (as ``new_issue_code``), with
        the codes read once per pass: a release can open hundreds of regressions at once."""
        if self.taken is None:
            self.taken = set(self.connection.execute(sa.select(issues.c.issue_code)).scalars())
        seq = self.next_seq.get((category, priority), 1)
        while True:
            code = self.rules.format_code(
                self.rules.defaults, seq, category=category, priority=priority
            )
            seq += 1
            if code not in self.taken:
                self.taken.add(code)
                self.next_seq[(category, priority)] = seq
                return code

    def occurrences(self, issue_id: int, row: int, columns: Sequence[int], priority: str) -> None:
        result_ids = [int(self.scope.result_ids[row, c]) for c in columns]
        result_ids = [r for r in result_ids if r >= 0]
        existing = set(
            self.connection.execute(
                sa.select(issue_occurrences.c.test_result_id)
                .where(issue_occurrences.c.issue_id == issue_id)
                .where(issue_occurrences.c.test_result_id.in_(result_ids))
            ).scalars()
        )
        column_of = {int(self.scope.result_ids[row, c]): c for c in columns}
        fresh = [
            {
                "issue_id": issue_id,
                "run_id": self.scope.runs[column_of[r]].id,
                "test_result_id": r,
                "severity": priority.lower(),
                "test_id": self.scope.tests[row],
                "fingerprint": None,
                "flaky": False,
                "created_at": self.now,
            }
            for r in result_ids
            if r not in existing
        ]
        if fresh:
            self.connection.execute(sa.insert(issue_occurrences), fresh)
            self.connection.execute(
                sa.update(issues)
                .where(issues.c.id == issue_id)
                .values(
                    last_seen_run_id=self.run.id,
                    last_seen_at=self.run.run_timestamp,
                    updated_at=self.now,
                )
            )
        self.report.occurrences_added += len(fresh)

    def tool_of(self, row: int) -> list[str]:
        result_id = int(self.scope.result_ids[row, -1])
        tool = self.connection.execute(
            sa.select(test_results.c.tool_name).where(test_results.c.id == result_id)
        ).scalar()
        return [tool] if tool else []

    def after_columns(self, analysis: SeriesAnalysis, cp: ChangePoint) -> list[int]:
        return [int(p) for p in analysis.positions if p >= cp.index]

    def open_issue(self, row: int, analysis: SeriesAnalysis, change: MetricChange) -> None:
        spec = METRICS[change.metric]
        priority = _priority(change)
        code = self.new_code(spec.category, priority)
        sign = "+" if change.after_mean >= change.before_mean else "-"
        size = "new" if change.magnitude_pct is None else f"{sign}{abs(change.magnitude_pct):.1f}%"
        issue_id = self.connection.execute(
            sa.insert(issues)
            .values(
                issue_code=code,
                title=f"{change.metric} regression in {change.test_id} ({size})",
                description=_sentence(change) + ".",
                category=spec.category,
                priority=priority,
                status=IssueStatus.OPEN.value,
                affected_tools=self.tool_of(row),
                first_detected_run_id=self.run.id,
                created_at=self.now,
                updated_at=self.now,
                origin=ORIGIN,
                lifecycle="new",
                details=_details(change),
            )
            .returning(issues.c.id)
        ).scalar_one()
        add_event(
            self.connection,
            int(issue_id),
            "created",
            run_id=self.run.id,
            status_to=IssueStatus.OPEN.value,
            note=f"regression: {_sentence(change)}",
            at=self.now,
        )
        cp = analysis.change_points[-1]
        self.occurrences(int(issue_id), row, self.after_columns(analysis, cp), priority)
        self.report.opened.append(code)

    def reopen(self, issue: Any, row: int, analysis: SeriesAnalysis, change: MetricChange) -> None:
        details = dict(issue.details)
        previous = [*details.pop("previous", []), details]
        self.connection.execute(
            sa.update(issues)
            .where(issues.c.id == issue.id)
            .values(
                status=IssueStatus.OPEN.value,
                lifecycle="regressed",
                regressed_run_id=self.run.id,
                resolved_at=None,
                resolved_run_id=None,
                updated_at=self.now,
                details={**_details(change), "previous": previous},
            )
        )
        add_event(
            self.connection,
            int(issue.id),
            "regressed",
            run_id=self.run.id,
            status_from=IssueStatus.RESOLVED.value,
            status_to=IssueStatus.OPEN.value,
            note=f"regressed again: {_sentence(change)}",
            at=self.now,
        )
        cp = analysis.change_points[-1]
        self.occurrences(int(issue.id), row, self.after_columns(analysis, cp), issue.priority)
        self.report.reopened.append(issue.issue_code)

    def resolve(self, issue: Any, metric: Metric, recent: float) -> None:
        details = issue.details
        self.connection.execute(
            sa.update(issues)
            .where(issues.c.id == issue.id)
            .values(
                status=IssueStatus.RESOLVED.value,
                resolved_run_id=self.run.id,
                resolved_at=self.run.run_timestamp,
                updated_at=self.now,
            )
        )
        add_event(
            self.connection,
            int(issue.id),
            "auto_resolved",
            run_id=self.run.id,
            status_from=IssueStatus.OPEN.value,
            status_to=IssueStatus.RESOLVED.value,
            note=(
                f"{metric.name} is back: {metric.show(recent)} over the latest "
                f"{self.config.min_runs} runs, against {metric.show(details['before_mean'])} "
                f"before the change (threshold {self.config.min_magnitude:.0%})"
            ),
            at=self.now,
        )
        self.report.resolved.append(issue.issue_code)


def detect_regressions(
    connection: Connection,
    run_id: int,
    *,
    rules: RuleSet,
    config: RegressionConfig | None = None,
    now: datetime | None = None,
) -> RegressionSync:
    """Open, follow and resolve regression issues as of one run (see the module docstring):
    the series end at the run, so that detecting the runs oldest first replays history."""
    config = config or RegressionConfig()
    now = now or utcnow()
    run = connection.execute(sa.select(test_runs).where(test_runs.c.id == run_id)).first()
    if run is None:
        raise NotFound(f"no run with id {run_id}")
    runs = _scope_runs(connection, run.suite, run.branch_name, config.history, run)
    if len(runs) < 2 * config.min_runs or runs[-1].id != run.id:
        return RegressionSync()
    scope = _load_scope(
        connection, run.suite, run.branch_name, runs, config.metrics, tests_of_run=run.id
    )
    known = _regression_issues(connection)
    sync = _Sync(connection, run, scope, rules, config, now)
    last = len(runs) - 1
    for name in config.metrics:
        spec = METRICS[name]
        for row, analysis in _analyze(scope, name, config):
            if not len(analysis.positions) or analysis.positions[-1] != last:
                continue  # the run has no value of this metric for this test
            key = (scope.suite, scope.branch, scope.tests[row], name)
            value = float(scope.values[name][row, last])
            latest = known.get(key, [None])[-1]
            cps = analysis.change_points
            active = cps[-1] if cps and _is_regression(spec, cps[-1]) else None
            status = None if latest is None else latest.status
            moved_on = latest is not None and latest.last_move_at is not None
            if moved_on and run.run_timestamp < latest.last_move_at:
                continue  # detection replayed over an older run: the issue has moved on since
            if status in (IssueStatus.OPEN.value, IssueStatus.IN_PROGRESS.value):
                details = latest.details
                back, recent = _recovered(
                    analysis, spec, details["before_mean"], details["after_mean"], config
                )
                if back and status == IssueStatus.OPEN.value:
                    sync.resolve(latest, spec, recent)
                elif not back and _seen_in(
                    value, spec, details["before_mean"], details["after_mean"]
                ):
                    sync.occurrences(latest.id, row, [last], latest.priority)
                continue
            if active is None:
                continue
            change = _describe(scope, spec, row, analysis, len(cps) - 1, None)
            if status == IssueStatus.WONT_FIX.value:
                if _seen_in(value, spec, change.before_mean, change.after_mean):
                    sync.occurrences(latest.id, row, [last], latest.priority)
                continue
            if _recovered(analysis, spec, change.before_mean, change.after_mean, config)[0]:
                continue
            if status == IssueStatus.RESOLVED.value:
                resolved_at = latest.resolved_at
                if resolved_at is None or change.first_run.at > resolved_at:
                    sync.reopen(latest, row, analysis, change)
                continue
            sync.open_issue(row, analysis, change)
    return sync.report
