"""``cost_report`` and ``testledger cost`` over the scripted history, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from testledger import Ledger
from testledger.cli import main
from testledger.errors import ConfigError
from testledger.report.cost import CostGroup, budget_from_settings, cost_report
from tests.histories import record_once
from tests.report.test_trend import record_history

# (run key, results, tests, passed, cost, tokens, cost per passing test, watcher cost,
# watcher tokens, total cost, over budget). Every watched result's watcher cost $0.002 and 40
# tokens, apart from the test's own spend.
RunRow = tuple[Any, ...]
ALL_RUNS: list[RunRow] = [
    # still recording: its spend counts all the same
    ("run-4", 1, 1, 1, 1.0, None, 1.0, None, None, 1.0, True),
    ("run-3", 3, 3, 1, 0.5, 500, 0.5, 0.004, 80, 0.504, True),
    ("run-2", 1, 1, 0, 0.05, 50, None, 0.002, 40, 0.052, False),
    # chat/b failed, then passed: two results, one test, both attempts paid for
    ("run-1", 4, 3, 3, 0.5, 500, 0.166667, 0.006, 120, 0.506, True),
    ("run-0", 3, 3, 2, 0.3, 300, 0.15, 0.004, 80, 0.304, False),
]


@pytest.fixture(scope="module")
def recorded(module_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """test_trend's history, recorded once per database for this module's tests."""
    return record_once(module_db_url, tmp_path_factory, record_history)


@pytest.fixture
def history(recorded: str, copy_database: Callable[[str], str], tmp_path: Path) -> Iterator[Ledger]:
    """A ledger on this test's own copy of the recorded history."""
    with Ledger(copy_database(recorded), results_dir=tmp_path / "results") as ledger:
        yield ledger


def group(name: str | None, provider: str | None, *numbers: Any) -> CostGroup:
    results, passed, cost, tokens, per_pass, share = numbers
    return CostGroup(name, provider, results, passed, cost, tokens, per_pass, share)


def run_rows(report: Any) -> list[RunRow]:
    return [
        (
            r.run_key,
            r.results,
            r.tests,
            r.passed,
            r.cost_usd,
            r.tokens_total,
            r.cost_per_passing_test,
            r.watcher_cost_usd,
            r.watcher_tokens,
            r.total_cost_usd,
            r.over_budget,
        )
        for r in report.runs
    ]


def test_cost_of_every_run(history: Ledger) -> None:
    with history.engine().connect() as conn:
        report = cost_report(conn, budget_usd=0.45)
    assert run_rows(report) == ALL_RUNS
    assert report.runs_over_budget == 3
    total = report.total
    assert (total.runs, total.results, total.tests, total.passed) == (5, 12, 11, 7)
    assert (total.cost_usd, total.tokens_total, total.cost_per_passing_test) == (
        2.35,
        1350,
        0.335714,
    )
    assert (total.watcher_cost_usd, total.watcher_tokens, total.total_cost_usd) == (
        0.016,
        320,
        2.366,
    )
    # The budget counts the watcher's spend too: run-3 and run-1 cost $0.50 themselves.
    with history.engine().connect() as conn:
        at_half = cost_report(conn, budget_usd=0.5)
    assert [(run.run_key, run.over_budget) for run in at_half.runs] == [
        ("run-4", True),
        ("run-3", True),
        ("run-2", False),
        ("run-1", True),
        ("run-0", False),
    ]
    assert report.by_tool == [
        group("chat", None, 9, 5, 2.35, 1350, 0.47, 1.0),
        group("status", None, 3, 2, None, None, None, None),
    ]
    assert report.by_provider == [
        group("glm", None, 8, 5, 2.05, 1050, 0.41, 0.8723),
        group("kimi", None, 1, 0, 0.3, 300, None, 0.1277),
        group(None, None, 3, 2, None, None, None, None),
    ]
    assert report.by_model == [
        group("glm-4.5", "glm", 7, 4, 1.05, 1050, 0.2625, 0.4468),
        group(None, "glm", 1, 1, 1.0, None, 1.0, 0.4255),
        group("kimi-k2", "kimi", 1, 0, 0.3, 300, None, 0.1277),
        group(None, None, 3, 2, None, None, None, None),
    ]


SELECTION_CASES: list[tuple[str, dict[str, Any], list[str], float | None]] = [
    # options, run keys (newest first), total cost
    ("last two", {"runs": 2}, ["run-4", "run-3"], 1.5),
    ("branch", {"branch": "feature"}, ["run-2"], 0.05),
    ("suite", {"suite": "validation", "runs": 1}, ["run-4"], 1.0),
    ("nothing", {"suite": "nightly"}, [], None),
]


@pytest.mark.parametrize(
    ("case", "options", "keys", "cost"), SELECTION_CASES, ids=[c[0] for c in SELECTION_CASES]
)
def test_cost_selection(
    history: Ledger, case: str, options: dict[str, Any], keys: list[str], cost: float | None
) -> None:
    with history.engine().connect() as conn:
        report = cost_report(conn, **options)
    assert [run.run_key for run in report.runs] == keys
    assert report.total.cost_usd == cost
    assert report.budget_usd is None and report.runs_over_budget == 0
    assert not any(run.over_budget for run in report.runs)
    if not keys:
        assert (report.by_tool, report.by_provider, report.by_model) == ([], [], [])


@pytest.mark.parametrize(
    ("tool", "expected"),
    [
        ({}, None),
        ({"max_run_cost_usd": 2}, 2.0),
        ({"cost": {"max_run_cost_usd": 0.25}}, 0.25),
        ({"max_run_cost_usd": 1.5, "cost": {"max_run_cost_usd": 0.25}}, 1.5),
        ({"max_run_cost_usd": 0}, ConfigError),
        ({"max_run_cost_usd": "5"}, ConfigError),
        ({"max_run_cost_usd": True}, ConfigError),
    ],
)
def test_budget_from_settings(tool: dict[str, Any], expected: Any) -> None:
    if expected is ConfigError:
        with pytest.raises(ConfigError, match="max_run_cost_usd must be a positive number"):
            budget_from_settings(tool)
    else:
        assert budget_from_settings(tool) == expected


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


COST_TABLE = """\
Cost of the last 2 run(s) - branch main: $1.5000 for 2 passing test(s) ($0.7500 each), 500 tokens
watcher: $0.0040, 80 tokens; total $1.5040
budget $0.4500 per run: 2 run(s) over
 run  when (UTC)        suite       branch  status    results  passed  cost $  tokens  $ / pass  watcher $  watcher tokens  total $  budget
   5  2025-10-07 16:00  validation  main    running         1       1  1.0000       -    1.0000          -               -   1.0000  OVER
   4  2025-10-07 15:00  validation  main    finished        3       1  0.5000     500    0.5000     0.0040              80   0.5040  OVER

By tool
 tool    results  passed  cost $  share  tokens  $ / pass
 chat          3       2  1.5000   100%     500    0.7500
 status        1       0       -      -       -         -

By provider
 provider  results  passed  cost $  share  tokens  $ / pass
 glm             2       2  1.2000    80%     200    0.6000
 kimi            1       0  0.3000    20%     300         -
 (none)          1       0       -      -       -         -

By model
 provider  model    results  passed  cost $  share  tokens  $ / pass
 glm       (none)         1       1  1.0000    67%       -    1.0000
 kimi      kimi-k2        1       0  0.3000    20%     300         -
 glm       glm-4.5        1       1  0.2000    13%     200    0.2000
 (none)    (none)         1       0       -      -       -         -"""  # noqa: E501


def test_cost_command(
    history: Ledger,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db_url = history.settings.database_url
    # The budget comes from the project's pyproject.toml.
    (tmp_path / "pyproject.toml").write_text("[tool.testledger.cost]\nmax_run_cost_usd = 0.45\n")
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(capsys, "--db", db_url, "cost", "--branch", "main", "--runs", "2")
    assert (code, err) == (0, "")
    assert [line.rstrip() for line in out.splitlines()] == COST_TABLE.splitlines()

    # --budget wins over the project's; JSON carries the same numbers.
    code, out, _ = cli(capsys, "--db", db_url, "cost", "-n", "1", "--budget", "2", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["budget_usd"] == 2.0 and data["runs_over_budget"] == 0
    assert data["runs"] == [
        {
            "run_id": 5,
            "run_key": "run-4",
            "run_timestamp": "2025-10-07T16:00:00Z",
            "suite": "validation",
            "branch": "main",
            "status": "running",
            "results": 1,
            "tests": 1,
            "passed": 1,
            "cost_usd": 1.0,
            "tokens_total": None,
            "cost_per_passing_test": 1.0,
            "watcher_cost_usd": None,  # nothing watched in it
            "watcher_tokens": None,
            "total_cost_usd": 1.0,
            "over_budget": False,
        }
    ]
    assert data["by_model"] == [
        {
            "name": None,
            "provider": "glm",
            "results": 1,
            "passed": 1,
            "cost_usd": 1.0,
            "tokens_total": None,
            "cost_per_passing_test": 1.0,
            "share": 1.0,
        }
    ]

    code, out, _ = cli(capsys, "--db", db_url, "cost", "--suite", "nightly")
    assert (code, out) == (0, "No runs match.\n")
    (tmp_path / "pyproject.toml").write_text("[tool.testledger.cost]\nmax_run_cost_usd = -1\n")
    code, out, err = cli(capsys, "--db", db_url, "cost")
    assert (code, out) == (1, "")
    assert err == (
        "error: [tool.testledger] max_run_cost_usd must be a positive number of dollars\n"
    )
