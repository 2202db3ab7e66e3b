"""Metric regressions over scripted histories: issues open, resolve and reopen through detection,
idempotently; ``testledger regressions`` lists them. SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from testledger import Ledger, WatcherObservation
from testledger.analyze.issues.lifecycle import IssueStatus, set_status
from testledger.analyze.options import regression_settings
from testledger.analyze.regressions.finder import METRICS, RegressionConfig, find_regressions
from testledger.cli import main
from testledger.config import load_settings
from testledger.errors import ConfigError
from tests.histories import record_once, scripted_run

START = datetime(2025, 10, 1, 9, 0, tzinfo=timezone.utc)
NOISE = (0.0, 0.02, -0.02, 0.01, -0.01, 0.03, -0.03, 0.0)
#: calc/slow's duration: 10 runs at 1 s, 8 at 1.5 s, 8 back at 1 s, 8 at 1.6 s.
LEVELS = [1.0] * 10 + [1.5] * 8 + [1.0] * 8 + [1.6] * 8


def record_history(ledger: Ledger, runs: int = len(LEVELS)) -> None:
    """Runs an hour apart, detection running at each finish (as it does by itself)."""
    for i, level in enumerate(LEVELS[:runs]):
        with scripted_run(
            ledger,
            i,
            start=START,
            commit=f"c{i:02d}",
            suite="nightly",
            run_key=f"n{i:02d}",
        ) as run:
            run.record(
                tool_name="calc",
                variation="slow",
                status="PASS",
                duration_secs=round(level * (1 + NOISE[i % 8]), 3),
                cost_usd=0.002,
            )
            run.record(
                tool_name="calc",
                variation="steady",
                status="PASS",
                duration_secs=2.0,
                cost_usd=0.002 if i < 20 else 0.004,
            )
            ref = run.record(tool_name="chat", variation="answer", status="PASS", duration_secs=3.0)
            run.attach_watcher(ref, WatcherObservation(quality_score=8 if i < 12 else 5))


@pytest.fixture(scope="module")
def recorded(module_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The whole history, recorded once per database for the tests that only read it."""
    return record_once(module_db_url, tmp_path_factory, record_history)


@pytest.fixture
def history(recorded: str, copy_database: Callable[[str], str], tmp_path: Path) -> Iterator[Ledger]:
    """A ledger on this test's own copy of the recorded history."""
    with Ledger(copy_database(recorded), results_dir=tmp_path / "results") as ledger:
        yield ledger


def rows(ledger: Ledger, sql: str) -> list[tuple[Any, ...]]:
    with ledger.engine().connect() as conn:
        return [tuple(row) for row in conn.execute(sa.text(sql))]


ISSUES = (
    "SELECT i.issue_code, i.category, i.priority, i.status, i.lifecycle, i.first_detected_run_id,"
    " i.resolved_run_id, i.regressed_run_id, i.title,"
    " (SELECT count(*) FROM issue_occurrences o WHERE o.issue_id = i.id)"
    " FROM issues i ORDER BY i.id"
)
EVENTS = (
    "SELECT i.issue_code, e.run_id, e.kind, e.status_from, e.status_to, e.note"
    " FROM issue_events e JOIN issues i ON i.id = e.issue_id ORDER BY e.id"
)

SLOW_UP = (
    "duration of calc/slow rose 49.1% (1.002 s -> 1.494 s) from run 11 (n10) on, commits "
    "c09..c10; p=1.49e-13, 10 runs before, 5 after"
)


def test_a_regression_opens_an_issue_when_it_has_held_min_runs(ledger: Ledger) -> None:
    record_history(ledger, runs=14)
    assert rows(ledger, ISSUES) == []  # four runs at the new level: not a change yet
    record_history(ledger, runs=15)  # runs already recorded are the same runs (run keys)
    assert rows(ledger, ISSUES) == [
        (
            "PERF-MEDIUM-001",
            "performance",
            "MEDIUM",
            "OPEN",
            "new",
            15,
            None,
            None,
            "duration regression in calc/slow (+49.1%)",
            5,  # the five results at the new level
        )
    ]
    assert rows(ledger, EVENTS) == [
        ("PERF-MEDIUM-001", 15, "created", None, "OPEN", f"regression: {SLOW_UP}")
    ]
    details = rows(ledger, "SELECT details FROM issues")[0][0]
    details = json.loads(details) if isinstance(details, str) else details
    assert details == {
        "kind": "regression",
        "suite": "nightly",
        "branch": "main",
        "test_id": "calc/slow",
        "metric": "duration",
        "before_mean": 1.002,
        "after_mean": 1.494,
        "magnitude_pct": 49.1,
        "first_run_id": 11,
        "first_run_key": "n10",
        "first_run_at": "2025-10-01T19:00:00.000000Z",
        "last_good_run_id": 10,
        "commit_range": "c09..c10",
        "p_value": 1.49e-13,
        "n_before": 10,
        "n_after": 5,
        "outlier_runs": [],
    }


def test_issues_open_resolve_and_reopen_by_metric(history: Ledger) -> None:
    db_url = history.settings.database_url
    assert rows(history, ISSUES) == [
        (
            "PERF-MEDIUM-001",
            "performance",
            "MEDIUM",
            "OPEN",
            "regressed",
            15,
            None,
            32,
            "duration regression in calc/slow (+49.1%)",
            16,  # runs 11-18 (the first rise), 27-34 (the second, linked when it reopened)
        ),
        (
            "QUAL-MEDIUM-001",
            "quality",
            "MEDIUM",
            "OPEN",
            "new",
            17,
            None,
            None,
            "quality regression in chat/answer (-37.5%)",
            22,
        ),
        (
            "COST-CRITICAL-001",
            "cost",
            "CRITICAL",
            "OPEN",
            "new",
            25,
            None,
            None,
            "cost regression in calc/steady (+100.0%)",
            14,
        ),
    ]
    assert rows(history, EVENTS) == [
        ("PERF-MEDIUM-001", 15, "created", None, "OPEN", f"regression: {SLOW_UP}"),
        (
            "QUAL-MEDIUM-001",
            17,
            "created",
            None,
            "OPEN",
            "regression: quality of chat/answer fell 37.5% (8.00 -> 5.00) from run 13 (n12) on,"
            " commits c11..c12; p=0, 12 runs before, 5 after",
        ),
        (
            "PERF-MEDIUM-001",
            23,
            "auto_resolved",
            "OPEN",
            "RESOLVED",
            "duration is back: 0.996 s over the latest 5 runs, against 1.002 s before the change"
            " (threshold 10%, at least 0.050 s)",
        ),
        (
            "COST-CRITICAL-001",
            25,
            "created",
            None,
            "OPEN",
            "regression: cost of calc/steady rose 100.0% ($0.0020 -> $0.0040) from run 21 (n20)"
            " on, commits c19..c20; p=0, 20 runs before, 5 after",
        ),
        (
            "PERF-MEDIUM-001",
            32,
            "regressed",
            "RESOLVED",
            "OPEN",
            "regressed again: duration of calc/slow rose 59.5% (1.000 s -> 1.595 s) from run 27"
            " (n26) on, commits c25..c26; p=1.15e-13, 8 runs before, 6 after",
        ),
    ]
    # Failure detection's "passed three times" never resolved them: only their metric does.
    before = (rows(history, ISSUES), rows(history, EVENTS), rows(history, "SELECT * FROM issues"))
    # Idempotent: detection again over every run (oldest first), and over the latest again.
    assert main(["--db", db_url, "detect", "--all"]) == 0
    assert main(["--db", db_url, "detect"]) == 0
    after = (rows(history, ISSUES), rows(history, EVENTS), rows(history, "SELECT * FROM issues"))
    assert after == before


def test_the_report_lists_changes_with_their_evidence(history: Ledger) -> None:
    with history.engine().connect() as conn:
        report = find_regressions(conn, RegressionConfig(), include_improvements=True)
        only = find_regressions(conn, metric="quality", branch="main", suite="nightly")
        none = find_regressions(conn, branch="other")
    summary = [
        (c.test_id, c.metric, c.kind, c.first_run.key, c.magnitude_pct, c.current, c.issue_code)
        for c in report.changes
    ]
    assert summary == [
        ("calc/slow", "duration", "regression", "n10", 49.7, False, "PERF-MEDIUM-001"),
        ("calc/slow", "duration", "improvement", "n18", -33.33, False, None),
        ("calc/slow", "duration", "regression", "n26", 60.0, True, "PERF-MEDIUM-001"),
        ("calc/steady", "cost", "regression", "n20", 100.0, True, "COST-CRITICAL-001"),
        ("chat/answer", "quality", "regression", "n12", -37.5, True, "QUAL-MEDIUM-001"),
    ]
    assert report.series_analyzed == 6 and report.outliers == []
    assert [(c.test_id, c.n_before, c.n_after) for c in only.changes] == [("chat/answer", 12, 22)]
    assert none.changes == [] and none.series_analyzed == 0


EXPECTED_TABLE = """\
suite nightly, branch main
 test         metric    before -> after      change  first run  when (UTC)        commits   p-value  runs   latest  outliers  issue
 calc/slow    duration  1.002 s -> 1.500 s   +49.7%  11 n10     2025-10-01 19:00  c09..c10  3.5e-17  10/8   no      -         PERF-MEDIUM-001
 calc/slow    duration  1.000 s -> 1.600 s   +60.0%  27 n26     2025-10-02 11:00  c25..c26  5.8e-16  8/8    yes     -         PERF-MEDIUM-001
 calc/steady  cost      $0.0020 -> $0.0040  +100.0%  21 n20     2025-10-02 05:00  c19..c20  <1e-300  20/14  yes     -         COST-CRITICAL-001
 chat/answer  quality   8.00 -> 5.00         -37.5%  13 n12     2025-10-01 21:00  c11..c12  <1e-300  12/22  yes     -         QUAL-MEDIUM-001

Improvements
suite nightly, branch main
 test       metric    before -> after     change  first run  when (UTC)        commits   p-value  runs  latest  outliers  issue
 calc/slow  duration  1.500 s -> 1.000 s  -33.3%  19 n18     2025-10-02 03:00  c17..c18  4.5e-15  8/8   no      -         -
4 regressions, 1 improvements in 6 series.
"""  # noqa: E501 (Rich pads each cell; trailing spaces are compared stripped)


def test_regressions_command(history: Ledger, capsys: pytest.CaptureFixture[str]) -> None:
    db_url = history.settings.database_url
    capsys.readouterr()
    assert main(["--db", db_url, "regressions"]) == 0
    out = capsys.readouterr().out
    assert [line.rstrip() for line in out.splitlines()] == EXPECTED_TABLE.splitlines()

    # Improvements are reported by default, in their own section; --regressions-only leaves
    # them out (and the JSON marks each change's kind and direction).
    assert main(["--db", db_url, "regressions", "--regressions-only"]) == 0
    only = [line.rstrip() for line in capsys.readouterr().out.splitlines()]
    assert "Improvements" not in only and only[-1] == "4 regressions in 6 series."
    assert main(["--db", db_url, "regressions", "--metric", "duration", "--json"]) == 0
    kinds = [(c["kind"], c["direction"]) for c in json.loads(capsys.readouterr().out)["changes"]]
    assert kinds == [("regression", "up"), ("improvement", "down"), ("regression", "up")]

    assert main(["--db", db_url, "regressions", "--metric", "cost", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["series_analyzed"] == 2 and data["outliers"] == []
    assert data["changes"] == [
        {
            "suite": "nightly",
            "branch": "main",
            "test_id": "calc/steady",
            "metric": "cost",
            "kind": "regression",
            "direction": "up",
            "before_mean": 0.002,
            "after_mean": 0.004,
            "magnitude_pct": 100.0,
            "first_run": {
                "id": 21,
                "key": "n20",
                "at": "2025-10-02T05:00:00Z",
                "commit": "c20",
            },
            "last_good_run": {
                "id": 20,
                "key": "n19",
                "at": "2025-10-02T04:00:00Z",
                "commit": "c19",
            },
            "commit_range": "c19..c20",
            "p_value": 0.0,
            "n_before": 20,
            "n_after": 14,
            "outlier_runs": [],
            "current": True,
            "issue_code": "COST-CRITICAL-001",
        }
    ]

    assert (
        main(["--db", db_url, "regressions", "--test", "calc/steady", "--metric", "quality"]) == 0
    )
    assert capsys.readouterr().out == "No changes in 0 series.\n"
    assert main(["--db", db_url, "regressions", "--metric", "speed"]) == 1
    assert "unknown metric 'speed'" in capsys.readouterr().err


def test_outliers_are_listed_not_opened(ledger: Ledger, capsys: pytest.CaptureFixture[str]) -> None:
    for i in range(20):
        with scripted_run(
            ledger,
            i,
            start=START,
            suite="nightly",
            run_key=f"o{i:02d}",
        ) as run:
            tokens = 5000 if i == 17 else 1000 + 10 * (i % 3)
            run.record(tool_name="chat", variation="x", status="PASS", tokens_total=tokens)
    with ledger.engine().connect() as conn:
        report = find_regressions(conn)
    assert report.changes == []
    assert [(o.test_id, o.metric, o.run.key, o.value, o.median) for o in report.outliers] == [
        ("chat/x", "tokens", "o17", 5000.0, 1010.0)
    ]
    assert rows(ledger, "SELECT count(*) FROM issues") == [(0,)]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"p_value": 2}, "p_value must be a number"),
        ({"window": 6}, "window must be a whole number"),  # below 2 * min_runs
        ({"metrics": ["speed"]}, "metrics must be a list of"),
        ({"detect": "yes"}, "detect must be true or false"),
        ({"colour": 1}, "unknown key(s) colour"),
        ({"min_change": 0.05}, "min_change must be a table of metric = number >= 0"),
        ({"min_change": {"duration": -0.1}}, "min_change must be a table of metric"),
        ({"min_change": {"duration": True}}, "min_change must be a table of metric"),
        ({"min_change": {"speed": 1}}, "min_change: unknown metric 'speed'"),
    ],
)
def test_settings_are_checked(tmp_path: Path, table: dict[str, Any], message: str) -> None:
    lines = ["[tool.testledger.regressions]"] + [f"{k} = {toml(v)}" for k, v in table.items()]
    (tmp_path / "pyproject.toml").write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        regression_settings(load_settings(start=tmp_path, environ={}))


def toml(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


def test_settings_are_read(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.testledger.regressions]\np_value = 0.01\nmin_runs = 3\nmetrics = ["cost"]\n'
        "min_change = { duration = 0.2, cost = 0 }\n"
    )
    config = regression_settings(load_settings(start=tmp_path, environ={}))
    floors = {**RegressionConfig().min_change, "duration": 0.2, "cost": 0.0}
    assert config == RegressionConfig(
        p_value=0.01, min_runs=3, metrics=("cost",), min_change=floors
    )
    assert (config.floor("duration"), config.floor("memory"), config.floor("cost")) == (0.2, 2, 0)


# Changes large relative to their level (x2 to x4) but smaller than the metric's default
# absolute minimum: not regressions by default, found once the minimums are off. (Watcher
# quality is a whole score, so its 0.5-point minimum is left to the change-point tests.)
TINY_CHANGES: list[tuple[str, dict[str, float], dict[str, float]]] = [
    # (test, the fields recorded before, after)
    ("tiny/duration", {"duration_secs": 0.001}, {"duration_secs": 0.002}),  # minimum 0.05 s
    ("tiny/memory", {"memory_mb": 1}, {"memory_mb": 2}),  # 2 MB (recorded in whole MB)
    # 5 points (and CPU is only a series for results of 0.1 s or more)
    (
        "tiny/cpu",
        {"cpu_percent": 1.0, "duration_secs": 0.5},
        {"cpu_percent": 3.0, "duration_secs": 0.5},
    ),
    ("tiny/tokens", {"tokens_total": 1}, {"tokens_total": 4}),  # 5 tokens
    ("tiny/cost", {"cost_usd": 0.00001}, {"cost_usd": 0.00004}),  # $0.0001
    # Past both minimums: found either way.
    ("big/duration", {"duration_secs": 0.1}, {"duration_secs": 0.2}),
]


def test_changes_below_a_metrics_absolute_minimum_are_not_regressions(ledger: Ledger) -> None:
    for i in range(20):
        with scripted_run(
            ledger,
            i,
            start=START,
            suite="nightly",
            run_key=f"t{i:02d}",
        ) as run:
            for test_id, before, after in TINY_CHANGES:
                tool, variation = test_id.split("/")
                fields = before if i < 10 else after
                run.record(tool_name=tool, variation=variation, status="PASS", **fields)
    no_minimum = RegressionConfig(min_change=dict.fromkeys(METRICS, 0.0))
    with ledger.engine().connect() as conn:
        default = find_regressions(conn)
        without = find_regressions(conn, no_minimum)
    assert [(c.test_id, c.metric) for c in default.changes] == [("big/duration", "duration")]
    found = sorted((c.test_id, c.metric, c.first_run.key) for c in without.changes)
    expected = [(test_id, test_id.split("/")[1], "t10") for test_id, _, _ in TINY_CHANGES]
    assert found == sorted(expected)
    # Detection as every run ends, with the default minimums: one issue.
    assert rows(ledger, "SELECT title FROM issues") == [
        ("duration regression in big/duration (+100.0%)",)
    ]


def test_wont_fix_is_never_reopened_nor_resolved_and_still_collects_occurrences(
    ledger: Ledger,
) -> None:
    record_history(ledger, runs=15)
    with ledger.engine().begin() as conn:
        set_status(conn, "PERF-MEDIUM-001", IssueStatus.WONT_FIX, note="accepted: new parser")
    record_history(ledger)
    assert rows(ledger, ISSUES)[0] == (
        "PERF-MEDIUM-001",
        "performance",
        "MEDIUM",
        "WONT_FIX",
        "new",
        15,
        None,
        None,
        "duration regression in calc/slow (+49.1%)",
        11,
    )
    # Five at creation (runs 11-15), then each run that shows a rise while it is the latest
    # change (not 19-20: back to 1 s already, though the return is not a change point yet).
    assert rows(
        ledger,
        "SELECT o.run_id FROM issue_occurrences o JOIN issues i ON i.id = o.issue_id"
        " WHERE i.issue_code = 'PERF-MEDIUM-001' ORDER BY o.run_id",
    ) == [(run,) for run in (11, 12, 13, 14, 15, 16, 17, 18, 32, 33, 34)]
    assert [kind for code, _, kind, *_ in rows(ledger, EVENTS) if code == "PERF-MEDIUM-001"] == [
        "created",
        "status",
    ]


@pytest.mark.parametrize(
    ("p_value", "shown"),
    [(0.0, "<1e-300"), (5.3e-25, "5.3e-25"), (0.000999, "0.001"), (0.04, "0.04")],
)
def test_p_values_are_printed_in_two_digits_and_zero_as_a_bound(p_value: float, shown: str) -> None:
    from testledger.cli.regressions import format_p_value

    assert format_p_value(p_value) == shown


def test_cpu_of_short_results_is_not_a_series(ledger: Ledger) -> None:
    """A few milliseconds' CPU percentage moves with the machine's load: left out, while the
    same change over results of a second is a regression."""
    for i in range(20):
        with scripted_run(ledger, i, start=START, suite="nightly", run_key=f"c{i:02d}") as run:
            for variation, duration in (("short", 0.004), ("long", 1.0)):
                cpu = 95.0 if i < 10 else 40.0 + (i % 3)
                run.record(
                    tool_name="load",
                    variation=variation,
                    status="PASS",
                    duration_secs=duration,
                    cpu_percent=100.0 - cpu,
                )
    with ledger.engine().connect() as conn:
        found = find_regressions(conn, RegressionConfig(metrics=("cpu",)))
    assert [(c.test_id, c.metric, c.first_run.key) for c in found.changes] == [
        ("load/long", "cpu", "c10")
    ]


def test_memory_is_judged_against_the_process_not_by_megabytes(ledger: Ledger) -> None:
    """Memory is the process's RSS after each test: a session that loads more (the demo's own
    runs at 33 MB, then ``pytest --ledger`` by hand at 40 MB) moves every test's figure at
    once. Neither that step nor a single run of it is a regression or an outlier; a test that
    takes the process to 120 MB is both."""
    for i in range(21):
        with scripted_run(ledger, i, start=START, suite="nightly", run_key=f"m{i:02d}") as run:
            grown = i >= 10
            for variation, memory in (
                ("grew", 40 if grown else 33),  # the process grew: +21%
                ("spike", 40 if i == 20 else 33),  # one session that loaded more
                ("leak", 120 if grown else 33),  # a real regression: +264%
                ("burst", 120 if i == 20 else 33),  # a real outlier
            ):
                run.record(tool_name="mem", variation=variation, status="PASS", memory_mb=memory)
    with ledger.engine().connect() as conn:
        report = find_regressions(conn, metric="memory")
    assert [(c.test_id, c.first_run.key) for c in report.changes] == [("mem/leak", "m10")]
    assert [(o.test_id, o.run.key, o.value) for o in report.outliers] == [
        ("mem/burst", "m20", 120.0)
    ]
    assert rows(ledger, "SELECT title FROM issues") == [
        ("memory regression in mem/leak (+263.6%)",)
    ]
