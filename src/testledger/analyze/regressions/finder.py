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
cpu        cpu_percent (results of   up          performance
           0.1 s or more)
tokens     tokens_total              up          cost
cost       cost_usd                  up          cost
quality    watcher_quality           down        quality
=========  ========================  ==========  ============

Change points come from :mod:`testledger.analyze.regressions.changepoint`; a change in the bad
direction is a regression, the other way an improvement. A change is reported when it is at least
``min_magnitude`` of the level before it (relative, 10% by default) and at least the metric's
``min_change`` (absolute, in its unit: by default 0.05 s, 2 MB, 5 CPU points, 5 tokens,
$0.0001, 0.5 quality points), so that a 1 ms test taking 2 ms is not a 100% regression. Memory
(the process's RSS after the test, which moves with all the process holds) must also change by
half its level (:data:`~testledger.analyze.regressions.metrics.MEMORY_MIN_RELATIVE`). Outliers
need the same.

Issues (``detect_regressions`` runs at the end of issue detection for every run): for each test
of the run and metric, the latest change of its series, when it is a regression that still
holds, opens one issue per (suite, branch, test, metric) - origin ``regression``, its evidence
in ``details``, linked by occurrences to the results where the change is seen, one more each
run while it lasts. An OPEN one whose metric is back (the mean of the latest ``min_runs``
values within that threshold of the mean before the change, and at least half way back) is
RESOLVED with the run and an event saying so; a later regression of the same series reopens it
as ``regressed``; WONT_FIX ones are never reopened. Running it again over a run adds nothing.

Modules: :mod:`~testledger.analyze.regressions.metrics` (metrics, settings, results),
:mod:`~testledger.analyze.regressions.metric_series` (series from the ledger, analysed),
:mod:`~testledger.analyze.regressions.issues` (the issues); this one keeps the public names and
the report. numpy is imported only by the functions that compute change points: every CLI
command and the detection at the end of a recorded run import this module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from testledger.analyze.regressions.issues import (
    detect_regressions,
    open_regression_issue_ids,
    regression_issues,
)
from testledger.analyze.regressions.metrics import (
    METRICS,
    MetricChange,
    MetricOutlier,
    RegressionConfig,
    RegressionReport,
    RegressionSync,
    RunRef,
    is_regression,
    scope_runs,
)
from testledger.errors import TestledgerError
from testledger.store.tables import test_runs

if TYPE_CHECKING:  # the modules that import numpy: for the annotations only
    from testledger.analyze.regressions.changepoint import SeriesAnalysis
    from testledger.analyze.regressions.metric_series import Scope
    from testledger.analyze.regressions.metrics import Metric

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


# --- the report ------------------------------------------------------------------------------


def _scopes_query(branch: str | None, suite: str | None) -> sa.Select[Any]:
    """Every (suite, branch) pair that has runs, within the filters: each is its own series."""
    scopes = sa.select(test_runs.c.suite, test_runs.c.branch_name).distinct()
    if branch is not None:
        scopes = scopes.where(test_runs.c.branch_name == branch)
    if suite is not None:
        scopes = scopes.where(test_runs.c.suite == suite)
    return scopes


def _series_changes(
    scope: Scope,
    spec: Metric,
    row: int,
    analysis: SeriesAnalysis,
    known: list[Any],
    run_column: dict[int, int],
    config: RegressionConfig,
    include_improvements: bool,
) -> list[MetricChange]:
    """One series' change points, oldest first (regressions only unless
    ``include_improvements``); a regression names the issue opened for it (``known``: the
    series' regression issues), found by its first run within half a window of the change
    (``run_column``: each run id's position in the series)."""
    # Imported here, as in find_regressions: it imports numpy.
    from testledger.analyze.regressions.metric_series import describe_change

    changes: list[MetricChange] = []
    for number, cp in enumerate(analysis.change_points):
        if not include_improvements and not is_regression(spec, cp):
            continue
        code = (
            _issue_near(known, run_column, cp.index, config.window // 2)
            if is_regression(spec, cp)
            else None
        )
        changes.append(describe_change(scope, spec, row, analysis, number, code))
    return changes


def _recent_outliers(
    scope: Scope,
    spec: Metric,
    row: int,
    analysis: SeriesAnalysis,
    window: int,
    include_improvements: bool,
) -> list[MetricOutlier]:
    """One series' single-run outliers among its latest ``window`` values, each against the
    cleaned level at its position; outliers in the good direction only with
    ``include_improvements``."""
    present = analysis.positions
    recent = set(present[-window:].tolist())
    outliers: list[MetricOutlier] = []
    for i in analysis.outliers:
        if i not in recent:
            continue
        k = int(present.searchsorted(i))
        value = float(scope.values[spec.name][row, i])
        median = float(analysis.cleaned[k])
        worse = (value > median) == spec.higher_is_worse
        if not worse and not include_improvements:
            continue
        outliers.append(
            MetricOutlier(
                scope.suite,
                scope.branch,
                scope.tests[row],
                spec.name,
                "regression" if worse else "improvement",
                scope.runs[i],
                value,
                median,
            )
        )
    return outliers


def _analyze_scope(
    scope: Scope,
    metrics: list[str],
    config: RegressionConfig,
    known: dict[tuple[str, str, str, str], list[Any]],
    include_improvements: bool,
) -> RegressionReport:
    """The change points and recent outliers of every series of one suite and branch."""
    # Imported here, as in find_regressions: it imports numpy.
    from testledger.analyze.regressions.metric_series import analyze_metric

    run_column = {r.id: i for i, r in enumerate(scope.runs)}
    changes: list[MetricChange] = []
    outliers: list[MetricOutlier] = []
    analyzed = 0
    for name in metrics:
        spec = METRICS[name]
        for row, analysis in analyze_metric(scope, name, config):
            analyzed += 1
            series_issues = known.get((scope.suite, scope.branch, scope.tests[row], name), [])
            changes += _series_changes(
                scope, spec, row, analysis, series_issues, run_column, config, include_improvements
            )
            outliers += _recent_outliers(
                scope, spec, row, analysis, config.window, include_improvements
            )
    return RegressionReport(changes, outliers, analyzed)


def find_regressions(
    connection: Connection,
    config: RegressionConfig | None = None,
    *,
    branch: str | None = None,
    suite: str | None = None,
    metric: str | None = None,
    test: str | None = None,
    include_improvements: bool = True,
) -> RegressionReport:
    """Every change point of every (suite, branch, test, metric) series over the latest
    ``history`` runs, oldest first within a series, with the outliers of the latest ``window``
    runs. Improvements (``kind`` "improvement") are reported too unless
    ``include_improvements`` is False; only regressions open issues."""
    config = config or RegressionConfig()
    if metric is not None and metric not in METRICS:
        raise TestledgerError(f"unknown metric {metric!r}: use one of {', '.join(METRICS)}")
    # Here, not at the top: the series and their analysis import numpy (see the docstring).
    from testledger.analyze.regressions.metric_series import load_scope

    metrics = [metric] if metric is not None else list(config.metrics)
    scopes = _scopes_query(branch, suite)
    known = regression_issues(connection)
    changes: list[MetricChange] = []
    outliers: list[MetricOutlier] = []
    analyzed = 0
    for scope_suite, scope_branch in sorted(connection.execute(scopes).all()):
        runs = scope_runs(connection, scope_suite, scope_branch, config.history, None)
        if len(runs) < 2 * config.min_runs:
            continue
        scope = load_scope(connection, scope_suite, scope_branch, runs, metrics, test=test)
        found = _analyze_scope(scope, metrics, config, known, include_improvements)
        changes += found.changes
        outliers += found.outliers
        analyzed += found.series_analyzed
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
