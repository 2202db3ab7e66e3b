"""``run_trend`` and ``testledger trend`` over a scripted history, on SQLite and PostgreSQL.

The history below is shared with the cost and history tests (``record_history``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import pytest

from testledger import Ledger, WatcherObservation
from testledger.cli import main
from testledger.common.formatting import sparkline
from testledger.report.trend import run_trend
from testledger.store.database import connect_engine
from tests.histories import pin_run_durations, record_once, record_test, scripted_run

START = datetime(2025, 10, 7, 12, 0, tzinfo=timezone.utc)

# run key -> (branch, commit, results); a result is
# (test_id, status, provider, model, cost, tokens, duration, watcher quality).
# chat/b is retried in run-1 (FAIL, then PASS); status/c calls no LLM.
HISTORY: dict[str, tuple[str, str, list[tuple[Any, ...]]]] = {
    "run-0": (
        "main",
        "c0",
        [
            ("chat/a", "PASS", "glm", "glm-4.5", 0.10, 100, 1.0, 8),
            ("chat/b", "FAIL", "glm", "glm-4.5", 0.20, 200, 2.0, 4),
            ("status/c", "PASS", None, None, None, None, 0.5, None),
        ],
    ),
    "run-1": (
        "main",
        "c1",
        [
            ("chat/a", "PASS", "glm", "glm-4.5", 0.10, 100, 1.0, 9),
            ("chat/b", "FAIL", "glm", "glm-4.5", 0.20, 200, 2.0, 5),
            ("chat/b", "PASS", "glm", "glm-4.5", 0.20, 200, 2.0, 6),
            ("status/c", "PASS", None, None, None, None, 0.5, None),
        ],
    ),
    "run-2": (
        "feature",
        "f1",
        [("chat/a", "FAIL", "glm", "glm-4.5", 0.05, 50, 0.5, 2)],
    ),
    "run-3": (
        "main",
        "c3",
        [
            ("chat/a", "FAIL", "kimi", "kimi-k2", 0.30, 300, 3.0, 3),
            ("chat/b", "PASS", "glm", "glm-4.5", 0.20, 200, 2.0, 7),
            ("status/c", "SKIP", None, None, None, None, None, None),
        ],
    ),
}
# A run's duration is its wall clock, which a scripted run does not control: pinned here, with
# fractions (the trend reads duration_secs, not the rounded total_duration_secs).
WALL_CLOCK_SECS = {"run-0": 0.84, "run-1": 12.3, "run-2": 30.0, "run-3": 90.25}


def watched(quality: int) -> WatcherObservation:
    """A watcher's verdict, which itself costs $0.002 and 30 + 10 tokens (kept apart from the
    test's own spend)."""
    return WatcherObservation(
        quality_score=quality,
        watcher_model="glm-4.5-air",
        watcher_input_tokens=30,
        watcher_output_tokens=10,
        watcher_cost_usd=0.002,
    )


def record_history(ledger: Ledger, *, with_unfinished: bool = True) -> None:
    """HISTORY, an hour apart, then (``with_unfinished``) a run still recording: trend leaves it
    out, cost counts it."""
    for index, (key, (branch, commit, results)) in enumerate(HISTORY.items()):
        with scripted_run(
            ledger,
            index,
            start=START,
            branch=branch,
            commit=commit,
            suite="validation",
            run_key=key,
        ) as run:
            for test_id, status, provider, model, cost, tokens, secs, quality in results:
                ref = record_test(
                    run,
                    test_id,
                    status,
                    provider=provider,
                    model=model,
                    cost_usd=cost,
                    tokens_total=tokens,
                    duration_secs=secs,
                )
                if quality is not None:
                    run.attach_watcher(ref, watched(quality))
    pin_run_durations(ledger, WALL_CLOCK_SECS)
    if with_unfinished:
        unfinished = scripted_run(
            ledger, 4, start=START, commit="c4", suite="validation", run_key="run-4"
        )
        unfinished.record(
            tool_name="chat", variation="a", status="PASS", provider="glm", cost_usd=1.0
        )
        unfinished.flush(wait=True)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], ""),
        ([None, None], "  "),
        ([5], "▄"),
        ([3, 3, 3], "▄▄▄"),
        ([0, 1], "▁█"),
        ([0, 1, 2, 3, 4, 5, 6, 7], "▁▂▃▄▅▆▇█"),
        ([7, 6, 5, 4, 3, 2, 1, 0], "█▇▆▅▄▃▂▁"),
        ([0, None, 10], "▁ █"),
        ([0.0, 0.5, 1.0], "▁▅█"),  # 3.5 of 7 levels rounds half to even: level 4
        ([100, 66.67, 0, 50], "█▆▁▅"),
        ([-2, 2], "▁█"),
        ([float("nan"), 1, 2], " ▁█"),
    ],
)
def test_sparkline(values: list[float | None], expected: str) -> None:
    assert sparkline(values) == expected


# (per point) run key, tests, passed, pass rate, quality, cost, duration, tokens, and the
# changes of pass rate, quality, cost, duration, tokens.
Row = tuple[Any, ...]
ALL_RUNS: list[Row] = [
    ("run-0", 3, 2, 66.67, 6.0, 0.3, 0.84, 300, None, None, None, None, None),
    ("run-1", 3, 3, 100.0, 7.5, 0.5, 12.3, 500, 33.33, 1.5, 0.2, 11.46, 200),
    ("run-2", 1, 0, 0.0, 2.0, 0.05, 30.0, 50, -100.0, -5.5, -0.45, 17.7, -450),
    ("run-3", 3, 1, 50.0, 5.0, 0.5, 90.25, 500, 50.0, 3.0, 0.45, 60.25, 450),
]
MAIN = [
    ALL_RUNS[0],
    ALL_RUNS[1],
    ("run-3", 3, 1, 50.0, 5.0, 0.5, 90.25, 500, -50.0, -2.5, 0.0, 77.95, 0),
]
TREND_CASES: list[tuple[str, dict[str, Any], list[Row]]] = [
    ("all runs", {}, ALL_RUNS),
    ("branch", {"branch": "main"}, MAIN),
    # The oldest shown run's change is against the run before the window, as LAG() gives.
    ("window", {"branch": "main", "limit": 2}, MAIN[1:]),
    ("no such suite", {"suite": "nightly"}, []),
    (
        "provider",
        {"provider": "glm"},
        [
            ("run-0", 2, 1, 50.0, 6.0, 0.3, 3.0, 300, None, None, None, None, None),
            # chat/b failed, then passed on the retry: both attempts are paid for.
            ("run-1", 2, 2, 100.0, 7.5, 0.5, 5.0, 500, 50.0, 1.5, 0.2, 2.0, 200),
            ("run-2", 1, 0, 0.0, 2.0, 0.05, 0.5, 50, -100.0, -5.5, -0.45, -4.5, -450),
            ("run-3", 1, 1, 100.0, 7.0, 0.2, 2.0, 200, 100.0, 5.0, 0.15, 1.5, 150),
        ],
    ),
    (
        "model and branch",
        {"model": "kimi-k2", "branch": "main"},
        [("run-3", 1, 0, 0.0, 3.0, 0.3, 3.0, 300, None, None, None, None, None)],
    ),
    (
        "tool without cost",
        {"tool": "status"},
        [
            ("run-0", 1, 1, 100.0, None, None, 0.5, None, None, None, None, None, None),
            ("run-1", 1, 1, 100.0, None, None, 0.5, None, 0.0, None, None, 0.0, None),
            # Skipped only: no pass rate, and so no change either.
            ("run-3", 1, 0, None, None, None, None, None, None, None, None, None, None),
        ],
    ),
    ("tool and provider that never met", {"tool": "status", "provider": "glm"}, []),
]


@pytest.fixture(scope="module")
def recorded(module_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """HISTORY (and the unfinished run), recorded once per database for this module's tests."""
    return record_once(module_db_url, tmp_path_factory, record_history)


@pytest.fixture
def history(recorded: str, copy_database: Callable[[str], str]) -> str:
    return copy_database(recorded)


@pytest.mark.parametrize(
    ("case", "options", "expected"), TREND_CASES, ids=[c[0] for c in TREND_CASES]
)
def test_trend_points(
    history: str, case: str, options: dict[str, Any], expected: list[Row]
) -> None:
    engine = connect_engine(history)
    try:
        with engine.connect() as conn:
            trend = run_trend(conn, **options)
    finally:
        engine.dispose()
    found = [
        (
            p.run_key,
            p.tests,
            p.passed,
            p.pass_rate,
            p.avg_watcher_quality,
            p.total_cost_usd,
            p.duration_secs,
            p.total_tokens,
            p.pass_rate_change,
            p.quality_change,
            p.cost_change,
            p.duration_change,
            p.tokens_change,
        )
        for p in trend.points
    ]
    assert found == expected
    assert trend.filters.per_result == any(k in options for k in ("tool", "provider", "model"))


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def lines(text: str) -> list[str]:
    """Output lines without Rich's padding at their ends."""
    return [line.rstrip() for line in text.splitlines()]


TREND_TABLE = """\
Trend of the last 3 run(s) - branch main
 run  when (UTC)        commit  tests  pass %       Δ  quality      Δ  cost $        Δ  secs      Δ  tokens     Δ
   1  2025-10-07 12:00  c0          3   66.67             6.00         0.3000           0.84            300
   2  2025-10-07 13:00  c1          3  100.00  ▲33.33     7.50  ▲1.50  0.5000  ▲0.2000  12.3  ▲11.5     500  ▲200
   4  2025-10-07 15:00  c3          3   50.00  ▼50.00     5.00  ▼2.50  0.5000        =  90.2  ▲78.0     500     =
      trend                               ▃█▁              ▄█▁            ▁██            ▁▂█            ▁██"""  # noqa: E501

TREND_BY_PROVIDER = """\
Trend of the last 2 run(s) - branch main, provider glm
numbers over the matching results of each run
 run  when (UTC)        commit  tests  pass %       Δ  quality      Δ  cost $        Δ  secs      Δ  tokens     Δ
   2  2025-10-07 13:00  c1          2  100.00  ▲50.00     7.50  ▲1.50  0.5000  ▲0.2000  5.00  ▲2.00     500  ▲200
   4  2025-10-07 15:00  c3          1  100.00       =     7.00  ▼0.50  0.2000  ▼0.3000  2.00  ▼3.00     200  ▼300
      trend                                ▄▄               █▁             █▁             █▁             █▁"""  # noqa: E501


def test_trend_command_renders_a_table(history: str, capsys: pytest.CaptureFixture[str]) -> None:
    db_url = history
    code, out, err = cli(capsys, "--db", db_url, "trend", "--branch", "main")
    assert (code, err) == (0, "")
    assert lines(out) == TREND_TABLE.splitlines()

    code, out, err = cli(
        capsys, "--db", db_url, "trend", "-b", "main", "--provider", "glm", "--limit", "2"
    )
    assert (code, err) == (0, "")
    # Run 2's changes are against run 1, outside the window.
    assert lines(out) == TREND_BY_PROVIDER.splitlines()


def test_trend_command_json_and_empty(
    ledger: Ledger, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = cli(capsys, "--db", db_url, "trend")
    assert (code, out) == (0, "No runs match.\n")
    record_history(ledger)
    code, out, _ = cli(capsys, "--db", db_url, "trend", "--model", "kimi-k2", "--json")
    assert code == 0
    assert json.loads(out) == {
        "points": [
            {
                "run_id": 4,
                "run_key": "run-3",
                "suite": "validation",
                "branch": "main",
                "commit": "c3",
                "run_timestamp": "2025-10-07T15:00:00Z",
                "status": "finished",
                "tests": 1,
                "passed": 0,
                "failed": 1,
                "pass_rate": 0.0,
                "avg_watcher_quality": 3.0,
                "total_cost_usd": 0.3,
                "duration_secs": 3.0,
                "total_tokens": 300,
                "pass_rate_change": None,
                "quality_change": None,
                "cost_change": None,
                "duration_change": None,
                "tokens_change": None,
            }
        ],
        "filters": {
            "branch": None,
            "suite": None,
            "tool": None,
            "provider": None,
            "model": "kimi-k2",
        },
        "limit": 20,
    }
    code, _, err = cli(capsys, "--db", db_url, "trend", "--limit", "0")
    assert code == 1 and "--limit" in err


# Passing tests out of twelve in each run: one test's flip is 8.33 points of pass rate, whatever
# the levels around it (100 -> 91.67 as much as 83.33 -> 91.67).
FLIPS = [10, 11, 12, 11, 10]


@pytest.mark.parametrize("options", [{}, {"tool": "flip"}], ids=["run", "per-result"])
def test_a_change_is_the_same_size_whatever_the_levels(
    ledger: Ledger, options: dict[str, Any]
) -> None:
    """Each change is the difference of the exact numbers, rounded once: the difference of
    rounded numbers made one test's flip 8.34 from 83.33 (91.67 - 83.33) and 8.33 from 100."""
    for index, passing in enumerate(FLIPS):
        with scripted_run(ledger, index, start=START, suite="flips") as run:
            for number in range(12):
                ref = record_test(
                    run, f"flip/t{number:02d}", "PASS" if number < passing else "FAIL"
                )
                # Averages of twelve scores of 8 or 9: 8.33, 8.67, 9.00, 8.67, 8.33.
                quality = 9 if number < 4 * (passing - 9) else 8
                run.attach_watcher(ref, WatcherObservation(quality_score=quality))
    with ledger.engine().connect() as conn:
        points = run_trend(conn, **options).points
    assert [p.pass_rate for p in points] == [83.33, 91.67, 100.0, 91.67, 83.33]
    assert [p.pass_rate_change for p in points] == [None, 8.33, 8.33, -8.33, -8.33]
    if options:  # the run's own quality is stored with two decimals: exact only per result
        assert [p.avg_watcher_quality for p in points] == [8.33, 8.67, 9.0, 8.67, 8.33]
        assert [p.quality_change for p in points] == [None, 0.33, 0.33, -0.33, -0.33]
