"""``compare_runs`` and ``testledger compare``: a scripted history with retries, a flaky test,
a provider/model mix and a missing watcher score, compared exactly on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from testledger import Ledger, WatcherObservation
from testledger.cli import main
from testledger.errors import NotFound
from testledger.report.compare import CompareThresholds, RunComparison, compare_runs
from tests.histories import pin_run_durations, record_once, record_test, scripted_run

START = datetime(2025, 11, 3, 9, 0, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Attempt:
    status: str
    secs: float | None = 1.0
    cost: float | None = 0.01
    tokens: int | None = 100
    quality: int | None = 8


# test_id -> (provider, model, attempts per run r1..r4; None = not run). Each run is a tuple
# of attempts (a retry is a second attempt).
P = Attempt("PASS")
F = Attempt("FAIL")
BARE = Attempt("PASS", secs=0.01, cost=None, tokens=None, quality=None)
HISTORY: dict[str, tuple[str | None, str | None, list[tuple[Attempt, ...] | None]]] = {
    "chat/basic": (
        "openai",
        "gpt-4o",
        [(P,), (P,), (P,), (Attempt("PASS", secs=1.5, cost=0.02, tokens=200, quality=6),)],
    ),
    "chat/broken": ("openai", "gpt-4o", [(P,), (P,), (P,), (F,)]),
    "chat/flaky": ("openai", "gpt-4o-mini", [(P,), (F, P), (P,), (F,)]),
    "search/old": ("anthropic", "claude", [(P,), (P,), (P,), None]),
    "search/new": ("anthropic", "claude", [None, None, None, (P,)]),
    "search/fixed": ("anthropic", "claude", [(F,), (F,), (F,), (P,)]),
    "search/still": ("anthropic", "claude", [(F,), (F,), (F,), (F,)]),
    "search/retry": ("anthropic", "claude", [(P,), (P,), (P,), (F, P)]),
    "search/fast": (
        "anthropic",
        "claude",
        [(P,), (P,), (Attempt("PASS", secs=2.0, cost=0.05),), (Attempt("PASS", cost=0.04),)],
    ),
    # no LLM: no provider, cost, tokens or watcher score
    "plain/no-llm": (None, None, [(BARE,), (BARE,), (BARE,), (BARE,)]),
}


RUN_SECS = {"r1": 0.91, "r2": 1.5, "r3": 12.3, "r4": 0.84}


def record_history(ledger: Ledger) -> None:
    for index in range(4):
        with scripted_run(
            ledger, index, start=START, suite="llm", commit=f"c{index + 1}", run_key=f"r{index + 1}"
        ) as run:
            for test_id, (provider, model, runs) in HISTORY.items():
                for attempt in runs[index] or ():
                    record_test(
                        run,
                        test_id,
                        attempt.status,
                        duration_secs=attempt.secs,
                        cost_usd=attempt.cost,
                        tokens_total=attempt.tokens,
                        provider=provider,
                        model=model,
                        watcher=None
                        if attempt.quality is None
                        else WatcherObservation(quality_score=attempt.quality),
                    )
    # A run's duration is its wall clock, which a scripted run does not control: pinned, short
    # runs among them (their rounded total_duration_secs would read 1 and 0).
    pin_run_durations(ledger, RUN_SECS)


@pytest.fixture(scope="module")
def recorded(module_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The history above, recorded once per database for this module's tests."""
    return record_once(module_db_url, tmp_path_factory, record_history)


@pytest.fixture
def history(recorded: str, copy_database: Callable[[str], str]) -> str:
    return copy_database(recorded)


def _rows(changes: list[Any], *fields: str) -> list[tuple[Any, ...]]:
    return [tuple(getattr(change, name) for name in fields) for change in changes]


def _compare(url: str, *args: Any, **kwargs: Any) -> RunComparison:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return compare_runs(conn, *args, **kwargs)
    finally:
        engine.dispose()


STATUS = ("test_id", "status_before", "status_after", "flaky")
VALUES = ("test_id", "before", "after")


def test_latest_run_against_the_previous_one(history: str) -> None:
    result = _compare(history)
    assert (result.current.run_key, result.baseline.run_key) == ("r4", "r3")
    assert [(t.metric, t.before, t.after, t.delta) for t in result.totals] == [
        ("total_tests", 9, 9, 0),
        ("tests_passed", 7, 6, -1),
        ("tests_failed", 2, 3, 1),
        ("tests_skipped", 0, 0, 0),
        ("pass_rate", 77.78, 66.67, -11.11),
        ("total_cost_usd", 0.12, 0.13, 0.01),
        ("duration_secs", 12.3, 0.84, -11.46),
        ("total_tokens", 800, 1000, 200),
        ("avg_watcher_quality", 8.0, 7.75, -0.25),
    ]
    assert _rows(result.new_failures, *STATUS, "error_type", "error_message") == [
        ("chat/broken", "PASS", "FAIL", False, "AssertionError", "chat/broken went wrong")
    ]
    # chat/flaky failed then passed on retry in r2: flaky, so told apart from new failures
    assert _rows(result.flaky_failures, *STATUS) == [("chat/flaky", "PASS", "FAIL", True)]
    assert _rows(result.still_failing, *STATUS) == [("search/still", "FAIL", "FAIL", False)]
    assert _rows(result.fixed, *STATUS) == [("search/fixed", "FAIL", "PASS", False)]
    assert _rows(result.added, *STATUS) == [("search/new", None, "PASS", False)]
    assert _rows(result.removed, *STATUS) == [("search/old", "PASS", None, False)]
    assert _rows(result.slower, *VALUES) == [("chat/basic", 1.0, 1.5)]
    assert _rows(result.faster, *VALUES) == [("search/fast", 2.0, 1.0)]
    # search/retry passed on its second attempt: both attempts are paid for
    assert _rows(result.costlier, *VALUES) == [
        ("chat/basic", 0.01, 0.02),
        ("search/retry", 0.01, 0.02),
    ]
    assert _rows(result.cheaper, *VALUES) == [("search/fast", 0.05, 0.04)]
    assert _rows(result.token_changes, *VALUES) == [
        ("chat/basic", 100, 200),
        ("search/retry", 100, 200),
    ]
    assert _rows(result.quality_changes, *VALUES) == [("chat/basic", 8, 6)]
    assert [
        (g.name, g.before and tuple(vars_of(g.before)), g.after and tuple(vars_of(g.after)))
        for g in result.providers
    ] == [
        ("(none)", (1, 1, 0, None, None, None), (1, 1, 0, None, None, None)),
        ("anthropic", (5, 3, 2, 0.09, 500, 8.0), (5, 4, 1, 0.09, 600, 8.0)),
        ("openai", (3, 3, 0, 0.03, 300, 8.0), (3, 1, 2, 0.04, 400, 7.33)),
    ]
    assert [
        (g.name, g.before and g.before.tests, g.after and g.after.failed) for g in result.models
    ] == [
        ("(none)", 1, 0),
        ("claude", 5, 1),
        ("gpt-4o", 2, 1),
        ("gpt-4o-mini", 1, 1),
    ]


def vars_of(stats: Any) -> list[Any]:
    return [
        stats.tests,
        stats.passed,
        stats.failed,
        stats.cost_usd,
        stats.tokens,
        stats.avg_quality,
    ]


def test_each_failure_carries_its_issue_code(history: str) -> None:
    engine = sa.create_engine(history)
    with engine.connect() as conn:
        expected = dict(
            conn.execute(
                sa.text(
                    "SELECT o.test_id, i.issue_code FROM issue_occurrences o"
                    " JOIN issues i ON i.id = o.issue_id JOIN test_runs r ON r.id = o.run_id"
                    " WHERE r.run_key = 'r4'"
                )
            ).all()
        )
    engine.dispose()
    # search/retry's first attempt failed too, but it passed on retry: not a failure of the run
    assert expected.pop("search/retry")
    result = _compare(history)
    failing = result.new_failures + result.flaky_failures + result.still_failing
    assert {f.test_id: f.issue_code for f in failing} == expected
    assert sorted(expected) == ["chat/broken", "chat/flaky", "search/still"]
    assert all(code for code in expected.values())


@pytest.mark.parametrize(
    ("args", "kwargs", "pair"),
    [
        (("r2",), {}, ("r2", "r1")),
        (("r4", "r1"), {}, ("r4", "r1")),
        (("3",), {}, ("r3", "r2")),
        (("feat-1",), {"baseline_branch": "main"}, ("feat-1", "r4")),
        (("feat-1",), {}, None),
    ],
)
def test_which_runs_are_compared(
    history: str, tmp_path: Path, args: tuple[Any, ...], kwargs: dict[str, Any], pair: Any
) -> None:
    with Ledger(history, results_dir=tmp_path / "results") as ledger:
        with ledger.start_run(
            branch="feature",
            commit="f1",
            suite="llm",
            run_key="feat-1",
            started_at=START + timedelta(hours=9),
            detect_environment=False,
        ) as run:
            run.record(test_id="chat/broken", tool_name="chat", variation="broken", status="PASS")
    if pair is None:
        with pytest.raises(NotFound, match="no earlier run of branch feature suite llm"):
            _compare(history, *args, **kwargs)
        return
    result = _compare(history, *args, **kwargs)
    assert (result.current.run_key, result.baseline.run_key) == pair


def test_first_run_has_nothing_to_compare_with(ledger: Ledger, db_url: str) -> None:
    with ledger.start_run(branch="main", suite="llm", detect_environment=False) as run:
        run.record(test_id="a", tool_name="a", variation="x", status="PASS")
    with pytest.raises(NotFound, match="no earlier run of branch main suite llm to compare with"):
        _compare(db_url)


@pytest.mark.parametrize(
    ("kwargs", "slower", "faster", "costlier"),
    [
        ({}, ["chat/basic"], ["search/fast"], ["chat/basic", "search/retry"]),
        ({"slower_ratio": 1.6}, [], ["search/fast"], ["chat/basic", "search/retry"]),
        ({"slower_min_secs": 0.6}, [], ["search/fast"], ["chat/basic", "search/retry"]),
        ({"cost_change": 1.5}, ["chat/basic"], ["search/fast"], []),
    ],
)
def test_thresholds(
    history: str, kwargs: dict[str, Any], slower: list[str], faster: list[str], costlier: list[str]
) -> None:
    result = _compare(history, thresholds=CompareThresholds(**kwargs))
    assert [c.test_id for c in result.slower] == slower
    assert [c.test_id for c in result.faster] == faster
    assert [c.test_id for c in result.costlier] == costlier


def test_thresholds_are_the_api_option_object() -> None:
    from testledger import api

    assert api.CompareThresholds is CompareThresholds
    assert CompareThresholds() == CompareThresholds(1.2, 0.1, 0.10, 0.10, 1.0)


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_compare_command(history: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "--db", history, "compare", "--json")
    assert code == 0
    data = json.loads(out)
    assert (data["current"]["run_key"], data["baseline"]["run_key"]) == ("r4", "r3")
    assert [f["test_id"] for f in data["new_failures"]] == ["chat/broken"]
    assert [f["test_id"] for f in data["flaky_failures"]] == ["chat/flaky"]

    code, out, _ = cli(capsys, "--db", history, "compare")
    assert code == 0
    assert out.splitlines()[0] == "Run 4 (r4, main @ c4) vs run 3 (r3, main @ c3)  suite llm"
    for heading in ("New failures (1)", "Flaky failures (1)", "Fixed (1)", "Slower (s) (1)"):
        assert heading in out
    assert " pass rate %   77.78   66.67   -11.11" in out
    assert "By provider" in out

    code, _, err = cli(capsys, "--db", history, "compare", "r1")
    assert (code, err) == (
        1,
        "error: no earlier run of branch main suite llm to compare with (run 1)\n",
    )
    code, _, err = cli(capsys, "--db", history, "compare", "r4", "r1", "--baseline", "main")
    assert (code, err) == (1, "error: give either a BASELINE run or --baseline BRANCH, not both\n")


def test_compare_of_5000_tests_finds_every_change(ledger: Ledger, db_url: str) -> None:
    # Scale, not speed: compare's speed is measured by bench/reports.py.
    for index in range(2):
        with ledger.start_run(
            branch="main",
            suite="big",
            run_key=f"big-{index}",
            started_at=START + timedelta(hours=index),
            detect_environment=False,
        ) as run:
            for number in range(5000):
                failing = index == 1 and number % 100 == 0
                run.record(
                    test_id=f"t/{number}",
                    tool_name="t",
                    variation=str(number),
                    status="FAIL" if failing else "PASS",
                    duration_secs=0.5 + index * (number % 7 == 0),
                    cost_usd=0.001,
                    provider="openai",
                    model="gpt-4o",
                )
    result = _compare(db_url)
    assert len(result.new_failures) == 50
    assert len(result.slower) == 715
