"""The heuristic watcher: status x history -> score and exact sentences, through the ledger."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa

from testledger import Ledger
from testledger.analyze.watcher import load_watcher, watch_run
from testledger.analyze.watcher.heuristic import HeuristicWatcher
from testledger.errors import ConfigError
from testledger.store.tables import test_results, watcher_insights

START = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Case:
    name: str
    history: list[dict[str, Any]]
    current: dict[str, Any]
    score: int | None
    strengths: list[str] = field(default_factory=list)
    weaknesses: list[str] = field(default_factory=list)
    anomalies: list[str] = field(default_factory=list)
    recommendations: list[str] = field(default_factory=list)
    confidence: float | None = None


STEADY = [{"status": "PASS", "duration_secs": d} for d in (2.0, 2.1, 2.2, 2.1, 2.0)]
CASES = [
    Case(
        "pass within range",
        STEADY,
        {"status": "PASS", "duration_secs": 2.1},
        9,
        strengths=["passed in 2.1 s, within its usual range"],
        confidence=0.41,
    ),
    Case(
        "pass but slow",
        STEADY,
        {"status": "PASS", "duration_secs": 7.14},
        7,
        strengths=["passed in 7.1 s"],
        anomalies=["duration 3.4x its 5-run median of 2.1 s"],
        recommendations=["check what made duration grow from 2.1 s to 7.1 s"],
        confidence=0.41,
    ),
    Case(
        "a millisecond test three times slower: under the 50 ms minimum",
        [{"status": "PASS", "duration_secs": d} for d in (0.001, 0.0011, 0.001, 0.0012, 0.001)],
        {"status": "PASS", "duration_secs": 0.003},
        9,
        strengths=["passed in 0.003 s, within its usual range"],
        confidence=0.41,
    ),
    Case(
        "new failure",
        STEADY,
        {
            "status": "FAIL",
            "duration_secs": 2.0,
            "error_type": "AssertionError",
            "error_message": "expected 3\ngot 4",
        },
        2,
        weaknesses=["failed: AssertionError: expected 3"],
        anomalies=["failed after passing its last 5 runs"],
        recommendations=["look at what changed since run 5, its last pass"],
        confidence=0.41,
    ),
    Case(
        "always failing",
        [{"status": "FAIL", "error_type": "Timeout"}] * 4,
        {"status": "FAIL", "error_type": "Timeout"},
        3,
        weaknesses=["failed: Timeout"],
        recommendations=["it has failed in each of its last 4 runs: fix or quarantine it"],
        confidence=0.39,
    ),
    Case(
        "no history",
        [],
        {"status": "PASS", "duration_secs": 0.8},
        9,
        strengths=["passed in 0.8 s"],
        confidence=0.3,
    ),
    Case(
        "pass reporting an error",
        [],
        {"status": "PASS", "duration_secs": 0.8, "error_message": "deprecated call"},
        8,
        strengths=["passed in 0.8 s"],
        weaknesses=["passed but reported an error: deprecated call"],
        confidence=0.3,
    ),
    Case(
        "error with token blow-up",
        [{"status": "PASS", "tokens_total": 1000, "cost_usd": 0.01}] * 4,
        {"status": "ERROR", "tokens_total": 3000, "cost_usd": 0.012},
        1,
        weaknesses=["errored"],
        anomalies=[
            "tokens 3.0x its 4-run median of 1,000 tokens",
            "errored after passing its last 4 runs",
        ],
        recommendations=[
            "check what made tokens grow from 1,000 tokens to 3,000 tokens",
            "look at what changed since run 4, its last pass",
        ],
        confidence=0.39,
    ),
    Case("skipped", STEADY, {"status": "SKIP"}, None),
]


def record_history(ledger: Ledger, history: list[dict[str, Any]], current: dict[str, Any]) -> int:
    run_id = 0
    for index, fields in enumerate([*history, current]):
        with ledger.start_run(
            branch="main",
            suite="s",
            run_key=f"r{index}",
            started_at=START + timedelta(hours=index),
            detect_environment=False,
            detect_issues=False,
        ) as run:
            run.record(tool_name="chat", variation="basic", **fields)
        assert run.run_id is not None
        run_id = run.run_id
    return run_id


def stored(ledger: Ledger, run_id: int) -> list[dict[str, Any]]:
    with ledger.engine().connect() as conn:
        rows = conn.execute(
            sa.select(watcher_insights)
            .join(test_results, test_results.c.id == watcher_insights.c.test_result_id)
            .where(test_results.c.run_id == run_id)
        ).mappings()
        return [dict(row) for row in rows]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_heuristic_scores_and_sentences(ledger: Ledger, case: Case) -> None:
    run_id = record_history(ledger, case.history, case.current)
    summary = watch_run(ledger.engine(), run_id, HeuristicWatcher())
    rows = stored(ledger, run_id)
    if case.score is None:
        assert rows == []
        assert (summary.watched, summary.not_watched) == (0, 1)
        return
    [row] = rows
    got = {
        key: row[key]
        for key in ("quality_score", "strengths", "weaknesses", "anomalies", "recommendations")
    }
    assert got == {
        "quality_score": case.score,
        "strengths": case.strengths,
        "weaknesses": case.weaknesses,
        "anomalies": case.anomalies,
        "recommendations": case.recommendations,
    }
    assert row["confidence"] == case.confidence
    assert row["watcher"] == "heuristic"
    assert row["truncated"] is False
    assert row["watcher_cost_usd"] is None
    assert summary.anomalies == len(case.anomalies)


def test_history_of_other_branches_is_ignored(ledger: Ledger) -> None:
    for index, branch in enumerate(["feature", "feature", "feature", "main"]):
        with ledger.start_run(
            branch=branch,
            suite="s",
            run_key=f"b{index}",
            started_at=START + timedelta(hours=index),
            detect_environment=False,
            detect_issues=False,
        ) as run:
            run.record(
                tool_name="chat",
                variation="basic",
                status="PASS",
                duration_secs=9.0 if branch == "main" else 1.0,
            )
    assert run.run_id is not None
    watch_run(ledger.engine(), run.run_id, HeuristicWatcher())
    [row] = stored(ledger, run.run_id)
    assert (row["quality_score"], row["strengths"], row["anomalies"]) == (
        9,
        ["passed in 9.0 s"],
        [],
    )


def test_confidence_grows_with_history() -> None:
    watcher = HeuristicWatcher(window=30)
    from testledger.analyze.watcher.base import RecentHistory, ResultContext
    from testledger.analyze.watcher.history import HistoryPoint

    result = ResultContext(1, "t", 1, "t", "v", "PASS", duration_secs=1.0)
    point = HistoryPoint(1, START, "PASS", 1.0, None, None, None, None, None)
    levels = []
    for length in (0, 10, 30, 60):
        observation = watcher.observe(result, RecentHistory((point,) * length))
        assert observation is not None
        levels.append((observation.confidence, observation.confidence_level))
    assert levels == [(0.3, "low"), (0.52, "medium"), (0.95, "high"), (0.95, "high")]


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("nope", {}, "unknown watcher 'nope'; available: heuristic, llm"),
        ("heuristic", {"windw": 3}, "[tool.testledger.watcher.heuristic] unknown key(s): windw"),
        ("llm", {"modle": "x"}, "[tool.testledger.watcher.llm] unknown key(s): modle"),
    ],
)
def test_unknown_watchers_and_options_are_config_errors(
    name: str, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as error:
        load_watcher(name, {"watcher": {name: options}})
    assert str(error.value) == message


@pytest.mark.parametrize(
    ("current", "anomalies"),
    [
        # The process grew by a fifth (another session loading more): no anomaly, even for a
        # watcher told to flag anything 10% above its median.
        ({"memory_mb": 40.0}, []),
        ({"memory_mb": 120.0}, ["memory 3.6x its 5-run median of 33 MB"]),
        # Only memory has a floor relative to its level: a fifth more time is still one.
        ({"duration_secs": 2.4}, ["duration 1.2x its 5-run median of 2.0 s"]),
    ],
)
def test_memory_anomalies_need_a_share_of_the_process(
    current: dict[str, float], anomalies: list[str]
) -> None:
    from testledger.analyze.watcher.base import HistoryPoint, RecentHistory, ResultContext

    point = HistoryPoint(1, START, "PASS", 2.0, 33.0, None, None, None, None)
    fields: dict[str, float] = {"duration_secs": 2.0, "memory_mb": 33.0, **current}
    result = ResultContext(1, "t", 1, "t", "v", "PASS", **fields)
    observation = HeuristicWatcher(ratio=1.1).observe(result, RecentHistory((point,) * 5))
    assert observation is not None
    assert observation.anomalies == anomalies
