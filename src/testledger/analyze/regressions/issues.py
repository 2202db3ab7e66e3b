"""Regression issues: opened, followed and resolved as of each run (the lifecycle part of
:mod:`testledger.analyze.regressions.finder`; its docstring tells the rules).

numpy is not imported here: :func:`detect_regressions` loads the series (and numpy with them)
only once a suite and branch has runs enough to hold a change.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from testledger.analyze.issues.lifecycle import IssueStatus, add_event, mark_auto_resolved
from testledger.analyze.issues.rules import RuleSet
from testledger.analyze.regressions.metrics import (
    METRICS,
    ORIGIN,
    Metric,
    MetricChange,
    RegressionConfig,
    RegressionSync,
    RunRef,
    change_details,
    is_regression,
    scope_runs,
    series_key,
)
from testledger.errors import NotFound
from testledger.model import utcnow
from testledger.store.tables import issue_events, issue_occurrences, issues, test_results, test_runs

if TYPE_CHECKING:  # pragma: no cover - types only: importing them would load numpy
    from testledger.analyze.regressions.baselines import Block
    from testledger.analyze.regressions.changepoint import ChangePoint, SeriesAnalysis
    from testledger.analyze.regressions.metric_series import Scope

__all__ = [
    "analyses_series",
    "detect_regressions",
    "open_regression_issue_ids",
    "regression_issues",
]


def regression_issues(connection: Connection) -> dict[tuple[str, str, str, str], list[Any]]:
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
        key = series_key(row.details)
        if key is not None:
            found.setdefault(key, []).append(row)
    return found


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
    """Whether the latest ``min_runs`` values are back: within ``min_magnitude`` (the metric's
    relative floor) of the mean before the change (or the metric's ``min_change``, when larger)
    and at least half way back
    (so that a change about as small as the threshold does not resolve and reopen run after
    run)."""
    recent = float(analysis.cleaned[-config.min_runs :].mean())
    sign = 1.0 if metric.higher_is_worse else -1.0
    remaining = (recent - before) * sign
    threshold = max(config.relative_floor(metric.name) * abs(before), config.floor(metric.name))
    allowed = min(threshold, abs(after - before) / 2.0)
    return remaining <= allowed, recent


def _seen_in(value: float, metric: Metric, before: float, after: float) -> bool:
    """Whether a value shows the change: past half way from the old level to the new (an
    occurrence names a result where the change is seen). The value as measured: the latest run
    has no runs after it to tell an outlier from the first run of a new level."""
    sign = 1.0 if metric.higher_is_worse else -1.0
    return (value - before) * sign > abs(after - before) / 2.0


class _Sync:
    """One pass of detection over a run: the issue rows, events and occurrences it writes, and
    the codes it opened, reopened and resolved."""

    def __init__(
        self,
        connection: Connection,
        run: Any,
        scope: Scope,
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
                first_seen_at=self.run.run_timestamp,
                created_at=self.now,
                updated_at=self.now,
                origin=ORIGIN,
                lifecycle="new",
                details=change_details(change),
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
                details={**change_details(change), "previous": previous},
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
        relative = self.config.relative_floor(metric.name)
        mark_auto_resolved(
            self.connection,
            int(issue.id),
            self.run,
            f"{metric.name} is back: {metric.show(recent)} over the latest "
            f"{self.config.min_runs} runs, against {metric.show(details['before_mean'])} "
            f"before the change (threshold {relative:.0%}, at least "
            f"{metric.show(self.config.floor(metric.name))})",
            self.now,
        )
        self.report.resolved.append(issue.issue_code)


@dataclass(slots=True)
class _Plan:
    """Which tests of a run get their series read and analysed, per metric (see
    :mod:`testledger.analyze.regressions.baselines`), and the baselines folded up to the run."""

    values: dict[str, dict[str, float]]
    suspects: dict[str, set[str]] = field(default_factory=dict)
    folded: dict[str, Block] = field(default_factory=dict)
    #: Detection over a run older than the baselines: every test analysed, nothing saved.
    replay: bool = False

    def tests(self) -> set[str]:
        return set().union(*self.suspects.values())


#: The issue statuses whose test is analysed every run, whatever its baseline says.
_FOLLOWED = (IssueStatus.OPEN.value, IssueStatus.IN_PROGRESS.value, IssueStatus.WONT_FIX.value)


def _plan(
    connection: Connection,
    run: Any,
    known: dict[tuple[str, str, str, str], list[Any]],
    config: RegressionConfig,
) -> _Plan:
    import numpy as np

    from testledger.analyze.regressions import baselines

    plan = _Plan(baselines.run_values(connection, run.id, config.metrics))
    plan.replay = baselines.newer_baselines(connection, run.suite, run.branch_name, run)
    if plan.replay:
        plan.suspects = {name: set(tests) for name, tests in plan.values.items()}
        return plan
    blocks = baselines.load_blocks(connection, run.suite, run.branch_name, config)
    empty = baselines.Block.empty(baselines.recent_size(config))
    followed: dict[str, set[str]] = {}
    for (suite, branch, test, name), found in known.items():
        if suite == run.suite and branch == run.branch_name and found[-1].status in _FOLLOWED:
            followed.setdefault(name, set()).add(test)
    for name in config.metrics:
        tests = plan.values[name]
        block = blocks.get(name, empty)
        index = {test: i for i, test in enumerate(block.tests)}
        current = block.rows([index[test] for test in tests if test in index])
        values = np.asarray([tests[test] for test in current.tests], dtype=np.float64)
        # Dormant baselines are neither screened nor written: nothing can come of them.
        awake = np.flatnonzero(~baselines.dormant(name, current, values, config)).tolist()
        current = baselines.fold(current.rows(awake), values[awake], run.id, config)
        plan.folded[name] = current
        flagged = baselines.suspects(name, current, config)
        plan.suspects[name] = (
            {test for test in tests if test not in index}
            | (followed.get(name, set()) & tests.keys())
            | {test for test, flag in zip(current.tests, flagged.tolist(), strict=True) if flag}
        )
    return plan


def _save_baselines(
    connection: Connection,
    run: Any,
    plan: _Plan,
    scope: Scope,
    analysed: dict[tuple[str, str], SeriesAnalysis],
    config: RegressionConfig,
) -> None:
    """The run's baselines: folded for the quiet tests, built again from the series (from its
    latest change point on) for the tests analysed."""
    import numpy as np

    from testledger.analyze.regressions.baselines import Block, built_from_series, save_blocks

    rows = {test: row for row, test in enumerate(scope.tests)}
    blocks: dict[str, Block] = {}
    for name, block in plan.folded.items():
        index = {test: i for i, test in enumerate(block.tests)}
        built: list[tuple[str, bool, Any, Any]] = []
        for test in sorted(plan.suspects[name]):
            row = rows.get(test)
            if row is None:
                continue
            series = scope.values[name][row]
            present = series[~np.isnan(series)]
            analysis = analysed.get((test, name))
            start, cleaned = 0, present
            if analysis is not None:
                cleaned = analysis.cleaned
                if analysis.change_points:
                    last = analysis.change_points[-1].index
                    start = int(np.searchsorted(analysis.positions, last))
            built.append((test, *built_from_series(present, cleaned, start, config)))
        fresh = [entry for entry in built if entry[0] not in index]
        for test, log_scale, recent, older in built:
            if test in index:
                i = index[test]
                block.log_scale[i], block.recent[i], block.older[i] = log_scale, recent, older
        if fresh:
            block = Block(
                block.tests + [entry[0] for entry in fresh],
                np.concatenate([block.run_ids, np.full(len(fresh), run.id, dtype=np.int64)]),
                np.concatenate([block.log_scale, np.asarray([e[1] for e in fresh], dtype=bool)]),
                np.concatenate([block.recent, np.stack([e[2] for e in fresh])]),
                np.concatenate([block.older, np.stack([e[3] for e in fresh])]),
            )
        block.run_ids[:] = run.id
        blocks[name] = block
    save_blocks(connection, run.suite, run.branch_name, run, blocks)


def _series_runs(connection: Connection, run: Any, config: RegressionConfig) -> list[RunRef] | None:
    """The runs whose series detection analyses as of ``run`` (a ``test_runs`` row); None
    when they cannot hold a change (too few, or the run is not the latest of its scope)."""
    runs = scope_runs(connection, run.suite, run.branch_name, config.history, run)
    if len(runs) < 2 * config.min_runs or runs[-1].id != run.id:
        return None
    return runs


def analyses_series(connection: Connection, run_id: int, config: RegressionConfig) -> bool:
    """Whether :func:`detect_regressions` would analyse series (and import numpy) as of the
    run, were it detected now: for a caller that can import ahead of detection."""
    run = connection.execute(sa.select(test_runs).where(test_runs.c.id == run_id)).first()
    return run is not None and _series_runs(connection, run, config) is not None


def detect_regressions(
    connection: Connection,
    run_id: int,
    *,
    rules: RuleSet,
    config: RegressionConfig | None = None,
    now: datetime | None = None,
) -> RegressionSync:
    """Open, follow and resolve regression issues as of one run (see the module docstring):
    the series end at the run, so that detecting the runs oldest first replays history. Only
    the tests the baselines cannot clear are analysed (:func:`_plan`)."""
    config = config or RegressionConfig()
    now = now or utcnow()
    run = connection.execute(sa.select(test_runs).where(test_runs.c.id == run_id)).first()
    if run is None:
        raise NotFound(f"no run with id {run_id}")
    runs = _series_runs(connection, run, config)
    if runs is None:
        return RegressionSync()
    # Only now, with runs enough to hold a change: the series and their analysis need numpy.
    from testledger.analyze.regressions.metric_series import analyze_metric, load_scope

    known = regression_issues(connection)
    plan = _plan(connection, run, known, config)
    scope = load_scope(
        connection, run.suite, run.branch_name, runs, config.metrics, test_ids=sorted(plan.tests())
    )
    sync = _Sync(connection, run, scope, rules, config, now)
    analysed: dict[tuple[str, str], SeriesAnalysis] = {}
    for name in config.metrics:
        for row, analysis in analyze_metric(scope, name, config, plan.suspects[name]):
            analysed[(scope.tests[row], name)] = analysis
            _follow(sync, known, row, name, analysis)
    if not plan.replay:
        _save_baselines(connection, run, plan, scope, analysed, config)
    return sync.report


def _follow(
    sync: _Sync,
    known: dict[tuple[str, str, str, str], list[Any]],
    row: int,
    name: str,
    analysis: SeriesAnalysis,
) -> None:
    """What one test's series says of its regression issue as of the run: resolved, seen
    again, opened or reopened."""
    from testledger.analyze.regressions.metric_series import describe_change

    scope, run, config = sync.scope, sync.run, sync.config
    spec = METRICS[name]
    last = len(scope.runs) - 1
    if not len(analysis.positions) or analysis.positions[-1] != last:
        return  # the run has no value of this metric for this test
    key = (scope.suite, scope.branch, scope.tests[row], name)
    value = float(scope.values[name][row, last])
    latest = known.get(key, [None])[-1]
    cps = analysis.change_points
    active = cps[-1] if cps and is_regression(spec, cps[-1]) else None
    status = None if latest is None else latest.status
    moved_on = latest is not None and latest.last_move_at is not None
    if moved_on and run.run_timestamp < latest.last_move_at:
        return  # detection replayed over an older run: the issue has moved on since
    if status in (IssueStatus.OPEN.value, IssueStatus.IN_PROGRESS.value):
        details = latest.details
        back, recent = _recovered(
            analysis, spec, details["before_mean"], details["after_mean"], config
        )
        if back and status == IssueStatus.OPEN.value:
            sync.resolve(latest, spec, recent)
        elif not back and _seen_in(value, spec, details["before_mean"], details["after_mean"]):
            sync.occurrences(latest.id, row, [last], latest.priority)
        return
    if active is None:
        return
    change = describe_change(scope, spec, row, analysis, len(cps) - 1, None)
    if status == IssueStatus.WONT_FIX.value:
        if _seen_in(value, spec, change.before_mean, change.after_mean):
            sync.occurrences(latest.id, row, [last], latest.priority)
        return
    if _recovered(analysis, spec, change.before_mean, change.after_mean, config)[0]:
        return
    if status == IssueStatus.RESOLVED.value:
        resolved_at = latest.resolved_at
        if resolved_at is None or change.first_run.at > resolved_at:
            sync.reopen(latest, row, analysis, change)
        return
    sync.open_issue(row, analysis, change)
