"""Two runs side by side: what broke, what got fixed, what got slower, costlier or worse.

Each test counts once per run: its LAST attempt gives its status, duration and watcher quality
(retries are attempts of the same test), while cost and tokens add up over every attempt, since
retries are paid for - the same rules as ``store/runs.py compute_stats``. One query reads each
run's results; the comparison itself is done in Python, which keeps it fast for 5,000-test runs.

A failure is *flaky* when its issue occurrence was marked flaky at detection time, or when the
test is flaky by its history now (``analyze.flaky``). Flaky failures are listed apart from new
failures, so a gate can ignore them.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from testledger.analyze.flaky.config import FlakyConfig
from testledger.analyze.flaky.finder import flaky_test_ids
from testledger.common.jsondata import JsonData
from testledger.errors import NotFound
from testledger.report.issues import issue_codes_for_results
from testledger.report.runs import SUMMARY_COLUMNS, RunSummary, find_run, summary_from_row
from testledger.store.tables import issue_occurrences, test_results, test_runs

__all__ = [
    "CompareThresholds",
    "GroupChange",
    "GroupStats",
    "RunComparison",
    "TestChange",
    "TotalChange",
    "compare_runs",
    "find_baseline",
]

FAILING = ("FAIL", "ERROR")
#: Test ids per IN (...) list: well below SQLite's bound-parameter limit.
_CHUNK = 500


@dataclass(frozen=True, slots=True)
class TestChange:
    """One test in both runs (``*_before`` None when absent from the baseline, ``*_after`` None
    when absent from the current run). ``before``/``after`` hold the compared measurement of
    the list the row is in (seconds, dollars, tokens or quality); None in status lists."""

    __test__ = False  # not a pytest test class, despite its name

    test_id: str
    tool_name: str
    variation: str
    provider: str | None
    model: str | None
    status_before: str | None
    status_after: str | None
    before: float | None = None
    after: float | None = None
    issue_code: str | None = None
    flaky: bool = False
    error_type: str | None = None
    error_message: str | None = None


@dataclass(frozen=True, slots=True)
class TotalChange:
    """One run-level figure before and after (delta None when either side is unknown)."""

    metric: str
    before: float | None
    after: float | None
    delta: float | None


@dataclass(frozen=True, slots=True)
class GroupStats:
    tests: int
    passed: int
    failed: int
    cost_usd: float | None
    tokens: int | None
    avg_quality: float | None


@dataclass(frozen=True, slots=True)
class GroupChange:
    """One provider's or model's figures in each run (None: it did not appear in that run)."""

    name: str
    before: GroupStats | None
    after: GroupStats | None


@dataclass(frozen=True, slots=True)
class RunComparison(JsonData):
    current: RunSummary
    baseline: RunSummary
    totals: list[TotalChange]
    new_failures: list[TestChange]
    fixed: list[TestChange]
    still_failing: list[TestChange]
    flaky_failures: list[TestChange]
    added: list[TestChange]
    removed: list[TestChange]
    slower: list[TestChange]
    faster: list[TestChange]
    costlier: list[TestChange]
    cheaper: list[TestChange]
    token_changes: list[TestChange]
    quality_changes: list[TestChange]
    providers: list[GroupChange]
    models: list[GroupChange]


@dataclass(slots=True)
class _Test:
    """A test's facts in one run: the last attempt's, with cost and tokens over all attempts."""

    result_id: int
    test_id: str
    tool_name: str
    variation: str
    provider: str | None
    model: str | None
    status: str
    duration: float | None
    cost: float | None
    tokens: int | None
    quality: int | None
    error_type: str | None
    error_message: str | None


def _add(total: Any, value: Any) -> Any:
    """Sum that stays None only while every value is None (an unknown cost is not a zero)."""
    if value is None:
        return total
    return value if total is None else total + value


def _read_tests(connection: Connection, run_id: int) -> dict[str, _Test]:
    rows = connection.execute(
        sa.select(
            test_results.c.id,
            test_results.c.test_id,
            test_results.c.tool_name,
            test_results.c.variation,
            test_results.c.provider,
            test_results.c.model,
            test_results.c.status,
            test_results.c.duration_secs,
            test_results.c.cost_usd,
            test_results.c.tokens_total,
            test_results.c.watcher_quality,
            test_results.c.error_type,
            test_results.c.error_message,
        )
        .where(test_results.c.run_id == run_id)
        .order_by(test_results.c.attempt)
    )
    tests: dict[str, _Test] = {}
    for row in rows:
        earlier = tests.get(row.test_id)
        tests[row.test_id] = _Test(
            int(row.id),
            row.test_id,
            row.tool_name,
            row.variation,
            row.provider,
            row.model,
            row.status,
            row.duration_secs,
            _add(earlier.cost if earlier else None, row.cost_usd),
            _add(earlier.tokens if earlier else None, row.tokens_total),
            row.watcher_quality,
            row.error_type,
            row.error_message,
        )
    return tests


def find_baseline(
    connection: Connection, current: RunSummary, *, baseline_branch: str | None = None
) -> RunSummary:
    """The run to compare ``current`` with: the latest run of ``baseline_branch`` in the same
    suite, or by default the run of the same branch and suite just before it. Raises NotFound."""
    query = sa.select(*SUMMARY_COLUMNS).where(
        test_runs.c.suite == current.suite, test_runs.c.id != current.id
    )
    if baseline_branch is not None:
        branch = baseline_branch
        query = query.where(test_runs.c.branch_name == branch)
    else:
        branch = current.branch
        query = query.where(test_runs.c.branch_name == branch).where(
            sa.or_(
                test_runs.c.run_timestamp < current.run_timestamp,
                sa.and_(
                    test_runs.c.run_timestamp == current.run_timestamp,
                    test_runs.c.id < current.id,
                ),
            )
        )
    query = query.order_by(test_runs.c.run_timestamp.desc(), test_runs.c.id.desc()).limit(1)
    row = connection.execute(query).first()
    if row is None:
        earlier = "" if baseline_branch is not None else "earlier "
        raise NotFound(
            f"no {earlier}run of branch {branch} suite {current.suite} to compare with"
            f" (run {current.id})"
        )
    return summary_from_row(row)


def _change(
    test: _Test,
    before: _Test | None,
    after: _Test | None,
    values: tuple[float | None, float | None] = (None, None),
    **extra: Any,
) -> TestChange:
    return TestChange(
        test_id=test.test_id,
        tool_name=test.tool_name,
        variation=test.variation,
        provider=test.provider,
        model=test.model,
        status_before=before.status if before else None,
        status_after=after.status if after else None,
        before=values[0],
        after=values[1],
        error_type=after.error_type if after and after.status in FAILING else None,
        error_message=after.error_message if after and after.status in FAILING else None,
        **extra,
    )


def _flaky_failures(
    connection: Connection,
    failing: list[_Test],
    suite: str,
    flaky_config: FlakyConfig | None,
    known_flaky: Collection[str] | None = None,
) -> set[str]:
    if not failing:
        return set()
    flaky: set[str] = set()
    ids = [test.result_id for test in failing]
    by_result = {test.result_id: test.test_id for test in failing}
    for start in range(0, len(ids), _CHUNK):
        rows = connection.execute(
            sa.select(issue_occurrences.c.test_result_id)
            .where(issue_occurrences.c.test_result_id.in_(ids[start : start + _CHUNK]))
            .where(issue_occurrences.c.flaky.is_(True))
        )
        flaky.update(by_result[int(result_id)] for (result_id,) in rows)
    if known_flaky is not None:
        flaky.update(test.test_id for test in failing if test.test_id in known_flaky)
    else:
        flaky |= flaky_test_ids(connection, [t.test_id for t in failing], suite, flaky_config)
    return flaky


def _group_stats(tests: Iterable[_Test]) -> GroupStats:
    count = passed = failed = 0
    cost: float | None = None
    tokens: int | None = None
    qualities: list[int] = []
    for test in tests:
        count += 1
        passed += test.status == "PASS"
        failed += test.status in FAILING
        cost = _add(cost, test.cost)
        tokens = _add(tokens, test.tokens)
        if test.quality is not None:
            qualities.append(test.quality)
    return GroupStats(
        tests=count,
        passed=passed,
        failed=failed,
        cost_usd=None if cost is None else round(cost, 6),
        tokens=tokens,
        avg_quality=round(sum(qualities) / len(qualities), 2) if qualities else None,
    )


def _groups(before: dict[str, _Test], after: dict[str, _Test], attribute: str) -> list[GroupChange]:
    def split(tests: dict[str, _Test]) -> dict[str, list[_Test]]:
        grouped: dict[str, list[_Test]] = {}
        for test in tests.values():
            grouped.setdefault(getattr(test, attribute) or "(none)", []).append(test)
        return grouped

    old, new = split(before), split(after)
    return [
        GroupChange(
            name=name,
            before=_group_stats(old[name]) if name in old else None,
            after=_group_stats(new[name]) if name in new else None,
        )
        for name in sorted(old.keys() | new.keys())
    ]


def _totals(baseline: RunSummary, current: RunSummary) -> list[TotalChange]:
    totals = []
    for metric in (
        "total_tests",
        "tests_passed",
        "tests_failed",
        "tests_skipped",
        "pass_rate",
        "total_cost_usd",
        "duration_secs",
        "total_tokens",
        "avg_watcher_quality",
    ):
        before, after = getattr(baseline, metric), getattr(current, metric)
        delta = None if before is None or after is None else round(after - before, 4)
        totals.append(TotalChange(metric, before, after, delta))
    return totals


@dataclass(frozen=True, slots=True)
class CompareThresholds:
    """When a test counts as slower (or faster): its time changed by ``slower_ratio`` and by
    ``slower_min_secs``; costlier / cheaper and token changes: by these fractions (0.10 = 10%);
    watcher quality: by this many points."""

    slower_ratio: float = 1.2
    slower_min_secs: float = 0.1
    cost_change: float = 0.10
    token_change: float = 0.10
    quality_change: float = 1.0


@dataclass(slots=True)
class _Failures:
    """The current run's failing tests, each in exactly one list."""

    new: list[TestChange] = field(default_factory=list)
    flaky: list[TestChange] = field(default_factory=list)
    still_failing: list[TestChange] = field(default_factory=list)


@dataclass(slots=True)
class _Movements:
    """What changed for tests across both runs, one list per kind of change, in test id
    order (sorted for display by :func:`compare_runs`)."""

    fixed: list[TestChange] = field(default_factory=list)
    added: list[TestChange] = field(default_factory=list)
    removed: list[TestChange] = field(default_factory=list)
    slower: list[TestChange] = field(default_factory=list)
    faster: list[TestChange] = field(default_factory=list)
    costlier: list[TestChange] = field(default_factory=list)
    cheaper: list[TestChange] = field(default_factory=list)
    tokens: list[TestChange] = field(default_factory=list)
    quality: list[TestChange] = field(default_factory=list)


def _runs_to_compare(
    connection: Connection,
    current: str | int | None,
    baseline: str | int | None,
    baseline_branch: str | None,
) -> tuple[RunSummary, RunSummary]:
    """The current run and its baseline: the one named, else the one ``find_baseline`` picks."""
    run = find_run(connection, current)
    base = (
        find_run(connection, baseline)
        if baseline is not None
        else find_baseline(connection, run, baseline_branch=baseline_branch)
    )
    return run, base


def _sort_failures(
    connection: Connection,
    suite: str,
    old: dict[str, _Test],
    new: dict[str, _Test],
    flaky_config: FlakyConfig | None,
    known_flaky: Collection[str] | None,
) -> _Failures:
    """The current run's failures, with their issue: still failing when the baseline failed
    too, else flaky or new - so that a gate can ignore the flaky ones."""
    failing_now = [test for test in new.values() if test.status in FAILING]
    codes = issue_codes_for_results(connection, [t.result_id for t in failing_now])
    flaky = _flaky_failures(connection, failing_now, suite, flaky_config, known_flaky)
    failures = _Failures()
    for test in sorted(failing_now, key=lambda t: t.test_id):
        before = old.get(test.test_id)
        row = _change(
            test,
            before,
            test,
            issue_code=codes.get(test.result_id),
            flaky=test.test_id in flaky,
        )
        if before is not None and before.status in FAILING:
            failures.still_failing.append(row)
        elif row.flaky:
            failures.flaky.append(row)
        else:
            failures.new.append(row)
    return failures


def _note_duration(
    moved: _Movements, before: _Test, after: _Test, limits: CompareThresholds
) -> None:
    """Slower or faster: the time must change by the ratio AND by the minimum seconds, since
    tiny tests jitter by large ratios."""
    if before.duration is None or after.duration is None:
        return
    values = (before.duration, after.duration)
    grew, shrank = after.duration - before.duration, before.duration - after.duration
    if grew >= limits.slower_min_secs and after.duration >= before.duration * limits.slower_ratio:
        moved.slower.append(_change(after, before, after, values))
    elif (
        shrank >= limits.slower_min_secs and before.duration >= after.duration * limits.slower_ratio
    ):
        moved.faster.append(_change(after, before, after, values))


def _note_cost(moved: _Movements, before: _Test, after: _Test, limits: CompareThresholds) -> None:
    """Costlier or cheaper by at least the ``cost_change`` share of the baseline's cost."""
    if before.cost is None or after.cost is None or before.cost == after.cost:
        return
    values = (before.cost, after.cost)
    if after.cost >= before.cost * (1 + limits.cost_change) and after.cost > before.cost:
        moved.costlier.append(_change(after, before, after, values))
    elif after.cost <= before.cost * (1 - limits.cost_change):
        moved.cheaper.append(_change(after, before, after, values))


def _note_tokens(moved: _Movements, before: _Test, after: _Test, limits: CompareThresholds) -> None:
    """Tokens that moved either way by the ``token_change`` share of the baseline's, and by one
    token at least: with a baseline of zero tokens the share alone would list unchanged tests."""
    if (
        before.tokens is not None
        and after.tokens is not None
        and abs(after.tokens - before.tokens) >= max(before.tokens * limits.token_change, 1)
    ):
        moved.tokens.append(_change(after, before, after, (before.tokens, after.tokens)))


def _note_quality(
    moved: _Movements, before: _Test, after: _Test, limits: CompareThresholds
) -> None:
    """Watcher quality that moved either way by ``quality_change`` points or more."""
    if (
        before.quality is not None
        and after.quality is not None
        and abs(after.quality - before.quality) >= limits.quality_change
    ):
        moved.quality.append(_change(after, before, after, (before.quality, after.quality)))


def _movements(
    old: dict[str, _Test], new: dict[str, _Test], limits: CompareThresholds
) -> _Movements:
    """Walk every test of either run once: added, removed, or in both and then possibly
    fixed, slower or faster, costlier or cheaper, with changed tokens or quality."""
    moved = _Movements()
    for test_id in sorted(old.keys() | new.keys()):
        before, after = old.get(test_id), new.get(test_id)
        if after is None:
            assert before is not None
            moved.removed.append(_change(before, before, None))
            continue
        if before is None:
            moved.added.append(_change(after, None, after))
            continue
        if before.status in FAILING and after.status == "PASS":
            moved.fixed.append(_change(after, before, after))
        _note_duration(moved, before, after, limits)
        _note_cost(moved, before, after, limits)
        _note_tokens(moved, before, after, limits)
        _note_quality(moved, before, after, limits)
    return moved


def _growth(row: TestChange) -> float:
    """How much a measurement grew (negative: shrank), the key the change lists sort by."""
    return (row.after or 0.0) - (row.before or 0.0)


def compare_runs(
    connection: Connection,
    current: str | int | None = None,
    baseline: str | int | None = None,
    *,
    baseline_branch: str | None = None,
    thresholds: CompareThresholds | None = None,
    flaky_config: FlakyConfig | None = None,
    known_flaky: Collection[str] | None = None,
) -> RunComparison:
    """Compare run ``current`` (default: the latest) with ``baseline`` (a run id or key), or
    with the latest run of ``baseline_branch``, or by default with the previous run of the
    same branch and suite. Runs are named as ``find_run`` accepts them.

    ``thresholds`` (default :class:`CompareThresholds`) say when a change counts: a test is
    slower when its duration grew by ``slower_ratio`` AND by at least ``slower_min_secs``
    (tiny tests jitter by large ratios); faster is the mirror image. Cost and tokens change
    when they moved by the given share (0.10 = 10%); quality when the watcher's score moved by
    ``quality_change`` points or more. ``known_flaky``: the tests of the run's suite already
    judged flaky now (``find_flaky(suite=...)``), so a caller that needs that list anyway does
    not have the history judged twice."""
    limits = thresholds or CompareThresholds()
    run, base = _runs_to_compare(connection, current, baseline, baseline_branch)
    old, new = _read_tests(connection, base.id), _read_tests(connection, run.id)
    failures = _sort_failures(connection, run.suite, old, new, flaky_config, known_flaky)
    moved = _movements(old, new, limits)
    return RunComparison(
        current=run,
        baseline=base,
        totals=_totals(base, run),
        new_failures=failures.new,
        fixed=moved.fixed,
        still_failing=failures.still_failing,
        flaky_failures=failures.flaky,
        added=moved.added,
        removed=moved.removed,
        slower=sorted(moved.slower, key=_growth, reverse=True),
        faster=sorted(moved.faster, key=_growth),
        costlier=sorted(moved.costlier, key=_growth, reverse=True),
        cheaper=sorted(moved.cheaper, key=_growth),
        token_changes=sorted(moved.tokens, key=lambda row: -abs(_growth(row))),
        quality_changes=sorted(moved.quality, key=_growth),
        providers=_groups(old, new, "provider"),
        models=_groups(old, new, "model"),
    )
