"""Regression baselines (analyze/regressions/baselines.py, table regression_baselines): folded
once per run, only suspect tests analysed from their series, the same issues as a detection
that analyses every test; built lazily on a ledger without them (as after ``db upgrade`` to
0011); deleted with the run that last folded them. SQLite and PostgreSQL, and the screen on
its own."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from testledger import Ledger, api
from testledger.analyze.regressions import metric_series
from testledger.analyze.regressions.baselines import (
    Block,
    built_from_series,
    dormant,
    fold,
    recent_size,
    suspects,
)
from testledger.analyze.regressions.metrics import RegressionConfig
from testledger.config import RetentionPolicy
from testledger.store.tables import regression_baselines, test_runs
from tests.histories import scripted_run

START = datetime(2025, 11, 1, 9, 0, tzinfo=timezone.utc)
CONFIG = RegressionConfig()
NOISE = (0.0, 0.04, -0.03, 0.02, -0.04, 0.03, -0.01, 0.01, -0.02, 0.05)
#: steady/slow: 24 runs at 1 s, then 8 at 1.6 s (a regression found at its 5th run).
LEVELS = [1.0] * 24 + [1.6] * 8


def record(
    ledger: Ledger, first: int, last: int, *, gone_after: int | None = None, suite: str = "s"
) -> None:
    """Runs ``first``..``last - 1`` of the history: a slowing test, a steady one, and (until
    run ``gone_after``) one that leaves the suite."""
    for i in range(first, last):
        key = f"{suite}-{i:02d}"
        with scripted_run(
            ledger, i, start=START, suite=suite, commit=f"c{i:02d}", run_key=key
        ) as run:
            noise = 1 + NOISE[i % len(NOISE)]
            run.record(
                tool_name="calc", variation="slow", status="PASS", duration_secs=LEVELS[i] * noise
            )
            run.record(
                tool_name="calc", variation="steady", status="PASS", duration_secs=2.0 * noise
            )
            fast = 0.002 if i < len(LEVELS) - 8 else 0.2  # dormant (far below 50 ms), then not
            run.record(
                tool_name="calc", variation="fast", status="PASS", duration_secs=fast * noise
            )
            if gone_after is None or i < gone_after:
                run.record(
                    tool_name="calc", variation="gone", status="PASS", duration_secs=0.5 * noise
                )


def baselines(ledger: Ledger) -> dict[tuple[str, str], tuple[Any, ...]]:
    with ledger.engine().connect() as conn:
        return {
            (row.test_id, row.metric): tuple(row)
            for row in conn.execute(sa.select(regression_baselines))
        }


def issues(ledger: Ledger) -> list[tuple[Any, ...]]:
    with ledger.engine().connect() as conn:
        return [
            tuple(row)
            for row in conn.execute(
                sa.text(
                    "SELECT issue_code, status, first_detected_run_id, title, description "
                    "FROM issues ORDER BY id"
                )
            )
        ]


def last_run_id(ledger: Ledger) -> int:
    with ledger.engine().connect() as conn:
        return int(conn.execute(sa.select(sa.func.max(test_runs.c.id))).scalar_one())


def test_baselines_are_folded_once_per_run_and_the_regression_is_found(ledger: Ledger) -> None:
    record(ledger, 0, 9)
    assert baselines(ledger) == {}  # fewer runs than a change needs: nothing detected
    record(ledger, 9, 20)
    found = baselines(ledger)
    # Built by the first detection with runs enough (run 10); calc/fast's 2 ms is dormant since
    # (far below the 50 ms a duration change needs): its baseline is never rewritten.
    assert found[("calc/fast", "duration")][4] == 10
    assert found[("calc/steady", "duration")][4] == 20
    record(ledger, 20, len(LEVELS))
    found = baselines(ledger)
    last = last_run_id(ledger)
    # duration of each test that passed in the last run (no other metric was recorded).
    assert sorted(found) == [
        ("calc/fast", "duration"),
        ("calc/gone", "duration"),
        ("calc/slow", "duration"),
        ("calc/steady", "duration"),
    ]
    assert {row[4] for row in found.values()} == {last}
    # (The sizes differ by database: PostgreSQL keeps durations to the millisecond.)
    assert sorted((row[:3], row[3].split(" (")[0]) for row in issues(ledger)) == [
        (("PERF-CRITICAL-001", "OPEN", 29), "duration regression in calc/fast"),
        (("PERF-HIGH-001", "OPEN", 29), "duration regression in calc/slow"),
    ]
    before = (found, issues(ledger))
    api.detect(ledger, str(last))  # detecting the same run again changes nothing
    api.detect(ledger, str(last))
    assert (baselines(ledger), issues(ledger)) == before


def test_only_suspect_tests_have_their_series_read(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Steady tests are cleared by their baselines, and calc/fast's 2 ms is dormant: a run's
    detection reads no series; the tests that slow down are read from their first slow runs
    on."""
    record(ledger, 0, 20)
    read: list[set[str]] = []
    original = metric_series.driver_rows

    def spy(connection: Any, query: Any) -> list[tuple[Any, ...]]:
        rows = original(connection, query)
        read.append({row[1] for row in rows})
        return rows

    monkeypatch.setattr(metric_series, "driver_rows", spy)
    record(ledger, 20, 24)
    assert read == []
    record(ledger, 24, 27)
    assert read and set().union(*read) == {"calc/fast", "calc/slow"}


def test_the_same_issues_as_detection_without_baselines(ledger: Ledger) -> None:
    """Suite "full" has its baselines deleted before each run's detection (every test analysed
    from its series), suite "s" keeps them: the same regression, at the same run, with the same
    evidence."""
    record(ledger, 0, len(LEVELS))
    for i in range(len(LEVELS)):
        with ledger.engine().begin() as conn:
            conn.execute(
                sa.delete(regression_baselines).where(regression_baselines.c.suite == "full")
            )
        record(ledger, i, i + 1, suite="full")
    with ledger.engine().connect() as conn:
        found = conn.execute(sa.text("SELECT details FROM issues")).scalars().all()
    evidence: dict[str, dict[str, Any]] = {"full": {}, "s": {}}
    for details in found:
        details = json.loads(details) if isinstance(details, str) else dict(details)
        suite = details.pop("suite")
        details["first_run_key"] = details["first_run_key"].split("-")[1]
        for run_link in ("first_run_id", "last_good_run_id", "outlier_runs"):
            details.pop(run_link)
        evidence[suite][details["test_id"]] = details
    assert sorted(evidence["s"]) == ["calc/fast", "calc/slow"]
    assert evidence["full"] == evidence["s"]
    assert {d["first_run_key"] for d in evidence["s"].values()} == {"24"}


def test_a_ledger_without_baselines_builds_them_and_detects_on(ledger: Ledger) -> None:
    """As after ``testledger db upgrade`` of a ledger recorded before 0011: runs, no baselines.
    The next run builds them from the series and the regression is found when it would be."""
    record(ledger, 0, 26)
    with ledger.engine().begin() as conn:
        conn.execute(sa.delete(regression_baselines))
    record(ledger, 26, 27)
    assert {row[4] for row in baselines(ledger).values()} == {last_run_id(ledger)}
    assert issues(ledger) == []
    record(ledger, 27, len(LEVELS))
    assert sorted(row[:3] for row in issues(ledger)) == [
        ("PERF-CRITICAL-001", "OPEN", 29),
        ("PERF-HIGH-001", "OPEN", 29),
    ]


def test_a_test_id_too_long_for_an_index_keeps_no_baseline(ledger: Ledger) -> None:
    long_name = "x" * 2500
    for i in range(12):
        with scripted_run(ledger, i, start=START, run_key=f"long-{i:02d}") as run:
            run.record(tool_name="calc", variation=long_name, status="PASS", duration_secs=1.0)
            run.record(tool_name="calc", variation="short", status="PASS", duration_secs=1.0)
    assert sorted(baselines(ledger)) == [("calc/short", "duration")]


def test_retention_removes_the_baselines_of_the_runs_it_removes(ledger: Ledger) -> None:
    record(ledger, 0, 16, gone_after=12)
    assert ("calc/gone", "duration") in baselines(ledger)
    api.prune(ledger, RetentionPolicy(keep_runs=3))
    assert sorted(baselines(ledger)) == [("calc/slow", "duration"), ("calc/steady", "duration")]


# --- the screen on its own -------------------------------------------------------------------


def block_of(values: list[float]) -> Block:
    """A one-test block built from a series' values but the last, then folded with the last,
    as a run does."""
    array = np.asarray(values[:-1], dtype=np.float64)
    log_scale, recent, older = built_from_series(array, array, 0, CONFIG)
    block = Block(["t"], np.asarray([1]), np.asarray([log_scale]), recent[None, :], older[None, :])
    return fold(block, np.asarray(values[-1:]), 2, CONFIG)


def steady(count: int, level: float = 1.0, noise: float = 0.05) -> list[float]:
    rng = np.random.default_rng(7)
    return list(level * (1 + noise * rng.standard_normal(count)))


@pytest.mark.parametrize(
    ("case", "metric", "values", "suspect"),
    [
        ("steady noise", "duration", steady(60), False),
        ("a 1.5x step, 5 runs in", "duration", steady(55) + [1.5] * 5, True),
        (
            "a 1.25x step on 15% noise, 8 runs in",
            "duration",
            steady(52, noise=0.15) + [1.25] * 8,
            True,
        ),
        ("a step below the 50 ms floor", "duration", steady(55, level=0.01) + [0.02] * 5, False),
        ("one 3x spike at the end", "duration", [*steady(59), 3.0], False),
        ("an improvement", "duration", steady(55) + [0.5] * 5, False),
        ("quality falls (lower is worse)", "quality", steady(55, level=8.0) + [5.0] * 5, True),
        ("quality rises", "quality", steady(55, level=5.0) + [8.0] * 5, False),
        ("a 2x step 3 runs in: suspect early", "duration", steady(57) + [2.0] * 3, True),
        ("a young test, 6 values, steady", "duration", steady(6), False),
        ("a young test, 5 values then a 2x step", "duration", steady(5) + [2.0] * 5, True),
        ("3 values then a step: no change yet", "duration", steady(3) + [2.0] * 5, False),
    ],
)
def test_the_screen(case: str, metric: str, values: list[float], suspect: bool) -> None:
    block = block_of(values)
    assert np.count_nonzero(~np.isnan(block.recent)) == min(len(values), recent_size(CONFIG))
    assert suspects(metric, block, CONFIG).tolist() == [suspect], case


def test_folding_keeps_the_recent_values_and_decays_the_older_ones() -> None:
    size = recent_size(CONFIG)
    block = block_of([1.0] * (size + 1))
    assert block.older.tolist() == [[1.0, 1.0, 0.0, 0.0]]  # one value moved out (log 1 = 0)
    again = fold(block, np.asarray([2.0]), 3, CONFIG)
    assert again.recent.tolist() == [[1.0] * (size - 1) + [2.0]]
    decay = 1 - 1 / CONFIG.history
    assert again.older[0, 0] == pytest.approx(decay + 1.0)
    assert again.run_ids.tolist() == [3]
    # The same run again changes nothing: it is in the baseline already.
    same = fold(again, np.asarray([5.0]), 3, CONFIG)
    assert same.recent.tolist() == again.recent.tolist()
    assert same.older.tolist() == again.older.tolist()
    # A value <= 0 leaves the logarithms: the older sums start again on the values themselves.
    zero = fold(again, np.asarray([0.0]), 4, CONFIG)
    assert zero.log_scale.tolist() == [False]
    assert zero.older[0].tolist() == [1.0, 1.0, 1.0, 1.0]


@pytest.mark.parametrize(
    ("case", "metric", "values", "expected"),
    [
        ("a 2 ms test", "duration", [0.002] * 20 + [0.003], True),
        ("a 2 ms test taking 30 ms now", "duration", [0.002] * 20 + [0.03], False),
        (
            "a 2 ms test with a 40 ms run among its latest",
            "duration",
            [0.002] * 15 + [0.04] + [0.002] * 5,
            False,
        ),
        ("too few values to be sure", "duration", [0.002] * 9, False),
        ("a 1 s test", "duration", [1.0] * 21, False),
        ("quality (lower is worse) is never dormant", "quality", [0.1] * 21, False),
    ],
)
def test_dormant_baselines(case: str, metric: str, values: list[float], expected: bool) -> None:
    array = np.asarray(values[:-1], dtype=np.float64)
    log_scale, recent, older = built_from_series(array, array, 0, CONFIG)
    block = Block(["t"], np.asarray([1]), np.asarray([log_scale]), recent[None, :], older[None, :])
    assert dormant(metric, block, np.asarray(values[-1:]), CONFIG).tolist() == [expected], case
