"""``evaluate_gate`` and ``testledger gate``: each rule failing alone, all passing, config from
pyproject.toml (CLI overriding it), bad keys, exit codes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from testledger import Ledger
from testledger.cli import main
from testledger.errors import ConfigError
from testledger.report.gate import GateRules, evaluate_gate, parse_percent
from tests.histories import pin_run_durations, record_once
from tests.report.test_compare import record_history

# r4 against r3 (see test_compare.HISTORY): 1 new failure (chat/broken) + 1 flaky one,
# pass rate 66.67, cost 0.12 -> 0.13 (+8.33%), quality 7.75, one new non-flaky issue.
# Durations are wall-clock (~0 s in tests), so they are set here: 0.5 s -> 0.65 s (+30%), short
# runs whose rounded total_duration_secs (0 -> 1) the rule must not read.


@pytest.fixture(scope="module")
def recorded(module_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The history below, recorded once per database for this module's tests."""

    def record(ledger: Ledger) -> None:
        record_history(ledger)
        pin_run_durations(ledger, {"r3": 0.5, "r4": 0.65})

    return record_once(module_db_url, tmp_path_factory, record)


@pytest.fixture
def history(recorded: str, copy_database: Callable[[str], str]) -> str:
    return copy_database(recorded)


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


PASSING = [
    "--max-new-failures",
    "1",
    "--min-pass-rate",
    "60",
    "--max-cost-increase",
    "10%",
    "--max-duration-increase",
    "30",
    "--min-quality",
    "7.5",
]
ALL_PASS_LINES = [
    "PASS max-new-failures: 1 new failure(s) (limit 1): chat/broken; 1 flaky not counted",
    "PASS min-pass-rate: pass rate 66.67% (minimum 60%)",
    "PASS max-cost-increase: cost $ 0.12 -> 0.13 (+8.33%, limit +10%)",
    "PASS max-duration-increase: duration s 0.5 -> 0.65 (+30%, limit +30%)",
    "PASS min-quality: average watcher quality 7.75 (minimum 7.5)",
]


def test_all_rules_pass(history: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "--db", history, "gate", *PASSING)
    assert (code, out.splitlines()) == (0, ALL_PASS_LINES)


@pytest.mark.parametrize(
    ("option", "value", "line"),
    [
        (
            "--max-new-failures",
            "0",
            "FAIL max-new-failures: 1 new failure(s) (limit 0): chat/broken; 1 flaky not counted",
        ),
        (
            "--include-flaky",
            None,
            "FAIL max-new-failures: 2 new failure(s) (limit 1): chat/broken, chat/flaky",
        ),
        ("--min-pass-rate", "70", "FAIL min-pass-rate: pass rate 66.67% (minimum 70%)"),
        (
            "--max-cost-increase",
            "8",
            "FAIL max-cost-increase: cost $ 0.12 -> 0.13 (+8.33%, limit +8%)",
        ),
        (
            "--max-duration-increase",
            "29.5%",
            "FAIL max-duration-increase: duration s 0.5 -> 0.65 (+30%, limit +29.5%)",
        ),
        ("--min-quality", "8", "FAIL min-quality: average watcher quality 7.75 (minimum 8)"),
    ],
)
def test_each_rule_failing_alone(
    history: str, capsys: pytest.CaptureFixture[str], option: str, value: str | None, line: str
) -> None:
    # The passing rules, with one of them given a failing value (or --include-flaky added).
    options = dict(zip(PASSING[::2], PASSING[1::2], strict=True))
    flags = []
    if value is None:
        flags.append(option)
    else:
        options[option] = value
    argv = [item for pair in options.items() for item in pair] + flags
    code, out, _ = cli(capsys, "--db", history, "gate", *argv)
    assert code == 2
    lines = out.splitlines()
    assert [text for text in lines if text.startswith("FAIL")] == [line]
    assert len(lines) == 5
    assert all(text.startswith("PASS") for text in lines if text != line)


def test_no_new_issues(history: str, capsys: pytest.CaptureFixture[str]) -> None:
    engine = sa.create_engine(history)
    with engine.connect() as conn:
        opened_in_r4 = (
            conn.execute(
                sa.text(
                    "SELECT i.issue_code FROM issues i JOIN test_runs r"
                    " ON r.id = i.first_detected_run_id WHERE r.run_key = 'r4'"
                )
            )
            .scalars()
            .all()
        )
    engine.dispose()
    # chat/broken's issue and search/retry's (failed, then passed on retry: flaky, not counted)
    assert len(opened_in_r4) == 2
    exit_code, out, _ = cli(capsys, "--db", history, "gate", "--no-new-issues")
    assert exit_code == 2
    assert out.startswith("FAIL no-new-issues: 1 new issue(s): UNCA-")
    assert out.strip().removeprefix("FAIL no-new-issues: 1 new issue(s): ") in opened_in_r4
    exit_code, out, _ = cli(capsys, "--db", history, "gate", "--no-new-issues", "--include-flaky")
    assert (exit_code, out) == (
        2,
        f"FAIL no-new-issues: 2 new issue(s): {', '.join(sorted(opened_in_r4))}\n",
    )
    # the run before opened none (its failures were all known)
    exit_code, out, _ = cli(capsys, "--db", history, "gate", "r3", "--no-new-issues")
    assert (exit_code, out) == (0, "PASS no-new-issues: 0 new issue(s)\n")


def test_rules_not_applicable(
    ledger: Ledger, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with ledger.start_run(
        branch="main", suite="s", run_key="only", detect_environment=False
    ) as run:
        run.record(test_id="a", tool_name="a", variation="x", status="PASS")
    code, out, _ = cli(
        capsys, "--db", db_url, "gate", "--max-new-failures", "0", "--min-quality", "7"
    )
    assert code == 0
    assert out.splitlines() == [
        "SKIP max-new-failures: not applicable: no earlier run of branch main suite s to compare"
        " with (run 1)",
        "SKIP min-quality: not applicable: the run has no watcher scores",
    ]


def test_config_from_pyproject_and_overrides(
    history: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.testledger.gate]\nmax-new-failures = 0\nmax_cost_increase = "20%"\n'
    )
    monkeypatch.chdir(tmp_path)
    code, out, _ = cli(capsys, "--db", history, "gate")
    assert code == 2
    assert out.splitlines() == [
        "FAIL max-new-failures: 1 new failure(s) (limit 0): chat/broken; 1 flaky not counted",
        "PASS max-cost-increase: cost $ 0.12 -> 0.13 (+8.33%, limit +20%)",
    ]
    code, out, _ = cli(capsys, "--db", history, "gate", "--max-new-failures", "1", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["passed"] is True
    assert [(c["rule"], c["actual"], c["limit"]) for c in data["checks"]] == [
        ("max-new-failures", 1, 1),
        ("max-cost-increase", 8.33, 20.0),
    ]


@pytest.mark.parametrize(
    ("table", "error"),
    [
        ("max-new-failure = 0", "unknown [tool.testledger.gate] key: max-new-failure"),
        ('max-cost-increase = "lots"', "--max-cost-increase must be a percentage like 10%"),
        ("min-pass-rate = true", "--min-pass-rate must be a number, not True"),
    ],
)
def test_bad_config(
    history: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    table: str,
    error: str,
) -> None:
    (tmp_path / "pyproject.toml").write_text(f"[tool.testledger.gate]\n{table}\n")
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(capsys, "--db", history, "gate")
    assert (code, out) == (1, "")
    assert err.startswith(f"error: {error}")


def test_no_rules_is_an_error(
    history: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(capsys, "--db", history, "gate")
    assert code == 1
    assert err.startswith("error: no gate rules configured: pass options such as")
    code, _, err = cli(capsys, "--db", history, "gate", "nope", "--min-pass-rate", "1")
    assert (code, err) == (1, "error: no run with key 'nope'\n")


def test_evaluate_gate_core(history: str) -> None:
    engine = sa.create_engine(history)
    with engine.connect() as conn:
        result = evaluate_gate(conn, GateRules(min_pass_rate=50.0, max_new_failures=0), "r4")
        with pytest.raises(ConfigError):
            evaluate_gate(conn, GateRules(include_flaky=True))
    engine.dispose()
    assert result.passed is False
    assert (result.run.run_key, result.baseline and result.baseline.run_key) == ("r4", "r3")
    assert [(c.rule, c.passed, c.applicable, c.actual, c.limit) for c in result.checks] == [
        ("max-new-failures", False, True, 1, 0),
        ("min-pass-rate", True, True, 66.67, 50.0),
    ]


@pytest.mark.parametrize(
    ("value", "expected"), [("10%", 10.0), ("10", 10.0), (" 2.5 % ", 2.5), (7, 7.0)]
)
def test_parse_percent(value: Any, expected: float) -> None:
    assert parse_percent(value, "x") == expected


def test_run_budget_counts_the_watchers_spend(
    history: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The budget from [tool.testledger] max_run_cost_usd, as `testledger cost` reads it.
    (tmp_path / "pyproject.toml").write_text("[tool.testledger]\nmax_run_cost_usd = 0.15\n")
    monkeypatch.chdir(tmp_path)
    code, out, _ = cli(capsys, "--db", history, "gate")
    assert (code, out.splitlines()) == (
        0,
        ["PASS max-run-cost-usd: run cost $0.1300 incl. watcher (budget $0.1500)"],
    )
    # The watcher spent $0.05 judging one of the run's results: now over budget.
    engine = sa.create_engine(history)
    with engine.begin() as conn:
        result_id = conn.execute(
            sa.text(
                "SELECT r.id FROM test_results r JOIN test_runs t ON t.id = r.run_id "
                "WHERE t.run_key = 'r4' ORDER BY r.id LIMIT 1"
            )
        ).scalar_one()
        conn.execute(
            sa.text(
                "INSERT INTO watcher_insights (test_result_id, quality_score, created_at, "
                "watcher_cost_usd) VALUES (:r, 8, CURRENT_TIMESTAMP, 0.05)"
            ),
            {"r": result_id},
        )
    engine.dispose()
    code, out, _ = cli(capsys, "--db", history, "gate")
    assert (code, out.splitlines()) == (
        2,
        ["FAIL max-run-cost-usd: run cost $0.1800 incl. watcher (budget $0.1500)"],
    )
    # The option overrides the configured budget.
    code, out, _ = cli(capsys, "--db", history, "gate", "--max-run-cost-usd", "0.2")
    assert code == 0 and out.startswith("PASS max-run-cost-usd: run cost $0.1800")


@pytest.mark.parametrize(
    "rule",
    [
        "max_new_failures",
        "min_pass_rate",
        "max_cost_increase",
        "max_duration_increase",
        "min_quality",
        "max_run_cost_usd",
    ],
)
def test_a_zero_value_is_a_rule(rule: str) -> None:
    # 0 == False in Python: a rule of 0 once read as "not configured".
    assert GateRules().merged(**{rule: 0}).configured
    if rule != "max_new_failures":  # a count: 0, not 0.0
        assert GateRules().merged(**{rule: 0.0}).configured
    assert not GateRules().configured
    assert not GateRules(include_flaky=True).configured


@pytest.mark.parametrize(
    ("option", "code", "line"),
    [
        ("--min-pass-rate", 0, "PASS min-pass-rate: pass rate 66.67% (minimum 0%)"),
        (
            "--max-new-failures",
            2,
            "FAIL max-new-failures: 1 new failure(s) (limit 0): chat/broken; 1 flaky not counted",
        ),
        (
            "--max-cost-increase",
            2,
            "FAIL max-cost-increase: cost $ 0.12 -> 0.13 (+8.33%, limit +0%)",
        ),
        ("--min-quality", 0, "PASS min-quality: average watcher quality 7.75 (minimum 0)"),
    ],
)
def test_a_zero_valued_option_alone(
    history: str, capsys: pytest.CaptureFixture[str], option: str, code: int, line: str
) -> None:
    exit_code, out, err = cli(capsys, "--db", history, "gate", option, "0")
    assert (exit_code, out.splitlines()) == (code, [line]), err


def test_a_zero_valued_rule_in_pyproject(
    history: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.testledger.gate]\nmin-pass-rate = 0\n")
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(capsys, "--db", history, "gate")
    assert (code, out) == (0, "PASS min-pass-rate: pass rate 66.67% (minimum 0%)\n"), err
