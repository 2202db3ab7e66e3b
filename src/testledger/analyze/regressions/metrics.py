"""What regression detection works on and reports: the metrics, the settings, the runs a series
spans, and the changes, outliers and issue moves it finds (see
:mod:`testledger.analyze.regressions.finder`).

Plain data without numpy: every CLI command and the detection at the end of a recorded run
import this module, and numpy (tens of milliseconds to import) is only loaded by the functions
that compute change points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from testledger.common.jsondata import JsonData
from testledger.store.tables import test_results, test_runs
from testledger.store.types import format_utc

if TYPE_CHECKING:  # pragma: no cover - types only: importing it would load numpy
    from testledger.analyze.regressions.changepoint import ChangePoint, ChangePointParams

__all__ = [
    "CPU_MIN_DURATION_SECS",
    "MEMORY_MIN_RELATIVE",
    "METRICS",
    "ORIGIN",
    "Metric",
    "MetricChange",
    "MetricOutlier",
    "RegressionConfig",
    "RegressionReport",
    "RegressionSync",
    "RunRef",
    "change_details",
    "commit_range",
    "is_regression",
    "magnitude_pct",
    "scope_runs",
    "series_key",
]

#: ``issues.origin`` of the issues regressions open.
ORIGIN = "regression"


@dataclass(frozen=True, slots=True)
class Metric:
    name: str
    #: The value of a result (NULL: none for this result).
    column: sa.ColumnElement[Any]
    higher_is_worse: bool
    category: str
    unit: str
    #: The default smallest absolute change reported, in the metric's unit.
    min_change: float
    #: The smallest relative change reported, when it is above ``min_magnitude`` (see memory).
    min_relative: float = 0.0

    def show(self, value: float) -> str:
        return self.unit.format(value)


#: CPU percentages of results shorter than this are left out of CPU series: over a few
#: milliseconds the figure says more about the machine's scheduler (another process taking the
#: core for a moment) than about the test, and a loaded CI machine would make them regressions.
CPU_MIN_DURATION_SECS = 0.1

# The absolute minimums are about what a reader would act on: 50 ms of a test's time, two
# megabytes (memory is recorded in whole megabytes: one is its resolution, and its jitter), five
# points of CPU, a handful of tokens, a hundredth of a cent, half a quality point.
#
# Memory is the process's RSS right after the test (record.measure), not what the test itself
# used, so it moves with everything the process holds: in the demo every test reads 34-35 MB in
# its own sessions and 41 MB in a `pytest --ledger` run by hand, which loads more plugins (+17
# to +21%, all tests at once; the README's Regressions section). A memory change must therefore
# also be half of the level (MEMORY_MIN_RELATIVE): over twice that drift, so a session that
# loads a few more modules is not a regression, while a test that makes the process grow by
# half or more is (33 -> 120 MB: +264%). A per-test delta was not used: the allocator keeps
# freed memory, so RSS after minus before mostly reads 0, or whatever the first test to touch
# a cache happened to allocate.
MEMORY_MIN_RELATIVE = 0.5
METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("duration", test_results.c.duration_secs, True, "performance", "{:.3f} s", 0.05),
        Metric(
            "memory",
            test_results.c.memory_mb,
            True,
            "performance",
            "{:.0f} MB",
            2.0,
            min_relative=MEMORY_MIN_RELATIVE,
        ),
        Metric(
            "cpu",
            sa.case(
                (test_results.c.duration_secs >= CPU_MIN_DURATION_SECS, test_results.c.cpu_percent)
            ),
            True,
            "performance",
            "{:.1f}%",
            5.0,
        ),
        Metric("tokens", test_results.c.tokens_total, True, "cost", "{:.0f}", 5.0),
        Metric("cost", test_results.c.cost_usd, True, "cost", "${:.4f}", 0.0001),
        Metric("quality", test_results.c.watcher_quality, False, "quality", "{:.2f}", 0.5),
    )
}


def _default_min_change() -> dict[str, float]:
    return {name: metric.min_change for name, metric in METRICS.items()}


@dataclass(frozen=True, slots=True)
class RegressionConfig:
    """``[tool.testledger.regressions]``."""

    p_value: float = 0.001
    window: int = 50
    min_magnitude: float = 0.10
    #: Smallest absolute change reported, per metric and in its unit (0: none); a metric not
    #: named has its default (:data:`METRICS`).
    min_change: dict[str, float] = field(default_factory=_default_min_change)
    #: Fewest runs on each side of a change, and the "latest window" a resolution looks at.
    min_runs: int = 5
    metrics: tuple[str, ...] = tuple(METRICS)
    #: How many recent runs of a suite and branch make a series.
    history: int = 200
    #: Whether ``testledger detect`` (and detection after every run) looks for regressions.
    detect: bool = True

    def floor(self, metric: str) -> float:
        """The smallest absolute change of ``metric`` reported."""
        return self.min_change.get(metric, METRICS[metric].min_change)

    def relative_floor(self, metric: str) -> float:
        """The smallest relative change of ``metric`` reported: ``min_magnitude``, or the
        metric's own minimum when higher (memory: see :data:`MEMORY_MIN_RELATIVE`)."""
        return max(self.min_magnitude, METRICS[metric].min_relative)

    def params(self, metric: str) -> ChangePointParams:
        from testledger.analyze.regressions.changepoint import (
            ChangePointParams,  # numpy: only when used
        )

        return ChangePointParams(
            p_value=self.p_value,
            window=self.window,
            min_magnitude=self.relative_floor(metric),
            min_change=self.floor(metric),
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
    kind: str  # "regression" or "improvement": only regressions open issues
    direction: str  # "up" or "down": which way the metric moved
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
class RegressionReport(JsonData):
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


def is_regression(metric: Metric, cp: ChangePoint) -> bool:
    rose = cp.mean_after > cp.mean_before
    return rose if metric.higher_is_worse else not rose


def magnitude_pct(cp: ChangePoint) -> float | None:
    change = cp.relative_change
    return None if math.isinf(change) else round(change * 100.0, 2)


def commit_range(before: RunRef, first: RunRef) -> str:
    return f"{(before.commit or '?')[:12]}..{(first.commit or '?')[:12]}"


def change_details(change: MetricChange) -> dict[str, Any]:
    """The evidence a regression issue keeps in ``issues.details``."""
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


def series_key(details: Any) -> tuple[str, str, str, str] | None:
    """(suite, branch, test, metric) of a regression issue's details; None for other issues."""
    if not isinstance(details, dict) or details.get("kind") != ORIGIN:
        return None
    return (details["suite"], details["branch"], details["test_id"], details["metric"])


def scope_runs(
    connection: Connection, suite: str, branch: str, history: int, until: Any | None
) -> list[RunRef]:
    """The latest ``history`` finished runs of a suite and branch, oldest first; with ``until``
    (a ``test_runs`` row), those up to it, and itself even while it is still running."""
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
