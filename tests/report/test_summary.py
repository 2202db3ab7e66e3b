"""``render_markdown``/``build_summary`` and ``testledger summary``: exact markdown, the gate
section, long lists cut short, and appending to $GITHUB_STEP_SUMMARY."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from testledger import Ledger
from testledger.cli import main
from testledger.report.compare import TestChange
from testledger.report.gate import GateRules
from testledger.report.markdown import SummaryData, build_summary, render_markdown
from tests.histories import record_once
from tests.report.test_compare import record_history


@pytest.fixture(scope="module")
def recorded(module_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """test_compare's history, recorded once per database for this module's tests."""
    return record_once(module_db_url, tmp_path_factory, record_history)


@pytest.fixture
def history(recorded: str, copy_database: Callable[[str], str]) -> str:
    return copy_database(recorded)


def _summary(url: str, **kwargs: object) -> SummaryData:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return build_summary(conn, **kwargs)  # type: ignore[arg-type]
    finally:
        engine.dispose()


EXPECTED = """\
### ❌ testledger: llm on main

✅ 6 passed · ❌ 3 failed · ⏭️ 0 skipped · 9 tests

Run `r4` (id 4), branch `main`, commit `c4`.
Compared with run `r3` (id 3), branch `main`, commit `c3`.

| | Before | After | Δ |
|---|---:|---:|---:|
| Tests | 9 | 9 | 0 |
| Passed | 7 | 6 | -1 |
| Failed | 2 | 3 | +1 |
| Skipped | 0 | 0 | 0 |
| Pass rate | 77.78% | 66.67% | -11.11 |
| Cost | $0.1200 | $0.1300 | +0.0100 |
| Duration | 12.3 s | 0.84 s | -11.5 |
| Tokens | 800 | 1000 | +200 |
| Avg quality | 8.00 | 7.75 | -0.25 |

#### ❌ New failures (1)

- `chat/broken` — AssertionError: chat/broken went wrong (issue {broken})

#### 🎲 Flaky failures (1)

- `chat/flaky` — AssertionError: chat/flaky went wrong (issue {flaky})

#### 🔁 Still failing (1)

- `search/still` — AssertionError: search/still went wrong (issue {still})

#### ✅ Fixed (1)

- `search/fixed`

#### 🐢 Slower (1)

- `chat/basic` 1.00 s → 1.50 s (+50%)

#### 💸 Costlier (2)

- `chat/basic` $0.0100 → $0.0200 (+100%)
- `search/retry` $0.0100 → $0.0200 (+100%)
"""

GATE = """
#### Gate: ❌ failed

- ❌ max-new-failures: 1 new failure(s) (limit 0): chat/broken; 1 flaky not counted
- ✅ min-pass-rate: pass rate 66.67% (minimum 50%)
- ➖ min-quality: not applicable: the run has no watcher scores
"""


def _codes(data: SummaryData) -> dict[str, str | None]:
    assert data.comparison is not None
    failing = (
        data.comparison.new_failures
        + data.comparison.flaky_failures
        + data.comparison.still_failing
    )
    codes = {change.test_id.split("/")[1]: change.issue_code for change in failing}
    assert all(codes.values()) and len(codes) == 3
    return codes


def test_exact_markdown(history: str) -> None:
    data = _summary(history)
    assert data.gate is None
    assert render_markdown(data) == EXPECTED.format(**_codes(data))


def test_gate_section(history: str) -> None:
    data = _summary(history, rules=GateRules(max_new_failures=0, min_pass_rate=50.0))
    # min-quality is not applicable once the run has no scores: shown as such, not failed
    assert data.gate is not None
    checks = [
        *data.gate.checks,
        dataclasses.replace(
            data.gate.checks[1],
            rule="min-quality",
            applicable=False,
            message="not applicable: the run has no watcher scores",
        ),
    ]
    data = dataclasses.replace(data, gate=dataclasses.replace(data.gate, checks=checks))
    assert render_markdown(data) == EXPECTED.format(**_codes(data)) + GATE


def test_first_run_without_baseline(ledger: Ledger, db_url: str) -> None:
    with ledger.start_run(
        branch="dev", suite="s", run_key="k1", commit=None, detect_environment=False
    ) as run:
        run.record(test_id="a", tool_name="a", variation="x", status="PASS", cost_usd=0.5)
    with ledger.engine().begin() as conn:  # the wall clock, pinned
        conn.execute(sa.text("UPDATE test_runs SET duration_secs = 0.07, total_duration_secs = 0"))
    data = _summary(db_url)
    text = render_markdown(data)
    assert text == (
        "### ✅ testledger: s on dev\n"
        "\n"
        "✅ 1 passed · ❌ 0 failed · ⏭️ 0 skipped · 1 tests\n"
        "\n"
        "Run `k1` (id 1), branch `dev`.\n"
        "\n"
        "_no earlier run of branch dev suite s to compare with (run 1)._\n"
        "\n"
        "| | This run |\n"
        "|---|---:|\n"
        "| Tests | 1 |\n"
        "| Passed | 1 |\n"
        "| Failed | 0 |\n"
        "| Skipped | 0 |\n"
        "| Pass rate | 100.00% |\n"
        "| Cost | $0.5000 |\n"
        "| Duration | 0.07 s |\n"
        "| Tokens | - |\n"
        "| Avg quality | - |\n"
    )


def test_long_lists_are_cut(history: str) -> None:
    data = _summary(history)
    assert data.comparison is not None
    failure = data.comparison.new_failures[0]
    many = [
        dataclasses.replace(failure, test_id=f"t/{n:02}", issue_code=None, error_type=None)
        for n in range(23)
    ]
    slow = [
        TestChange(f"s/{n}", "s", str(n), None, None, "PASS", "PASS", 1.0, 2.0 + n)
        for n in range(7)
    ]
    comparison = dataclasses.replace(
        data.comparison, new_failures=many, slower=slow, flaky_failures=[], still_failing=[]
    )
    text = render_markdown(dataclasses.replace(data, comparison=comparison))
    section = text.split("#### ❌ New failures (23)\n\n")[1].split("\n\n")[0].splitlines()
    assert section[0] == "- `t/00` — chat/broken went wrong"
    assert section[19:] == ["- `t/19` — chat/broken went wrong", "- … and 3 more"]
    slower = text.split("#### 🐢 Slower (7)\n\n")[1].split("\n\n")[0].splitlines()
    assert slower == [
        "- `s/0` 1.00 s → 2.00 s (+100%)",
        "- `s/1` 1.00 s → 3.00 s (+200%)",
        "- `s/2` 1.00 s → 4.00 s (+300%)",
        "- `s/3` 1.00 s → 5.00 s (+400%)",
        "- `s/4` 1.00 s → 6.00 s (+500%)",
        "- … and 2 more",
    ]


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_summary_command(
    history: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    expected = EXPECTED.format(**_codes(_summary(history)))
    code, out, _ = cli(capsys, "--db", history, "summary", "--markdown")
    assert (code, out) == (0, expected)

    target = tmp_path / "summary.md"
    code, out, _ = cli(capsys, "--db", history, "summary", "r4", "--output", str(target))
    assert (code, out, target.read_text()) == (0, "", expected)

    code, out, err = cli(capsys, "--db", history, "summary", "--github")
    assert (code, out) == (1, "")
    assert err == "error: --github needs $GITHUB_STEP_SUMMARY (set by GitHub Actions)\n"

    code, out, _ = cli(capsys, "--db", history, "summary", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["run"]["run_key"] == "r4" and data["gate"] is None
    assert [f["test_id"] for f in data["comparison"]["new_failures"]] == ["chat/broken"]


def test_appends_to_github_step_summary(
    history: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text("[tool.testledger.gate]\nmin-pass-rate = 70\n")
    step_summary = tmp_path / "step_summary.md"
    step_summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))
    expected = EXPECTED.format(**_codes(_summary(history))) + (
        "\n#### Gate: ❌ failed\n\n- ❌ min-pass-rate: pass rate 66.67% (minimum 70%)\n"
    )
    code, out, _ = cli(capsys, "--db", history, "summary", "--github")
    assert (code, out) == (0, expected)
    code, out, _ = cli(capsys, "--db", history, "summary")
    assert (code, out) == (0, expected)
    assert step_summary.read_text() == "earlier step\n" + (expected + "\n") * 2
    # --output FILE writes only that file
    code, _, _ = cli(capsys, "--db", history, "summary", "--output", str(tmp_path / "x.md"))
    assert code == 0 and step_summary.read_text().count("### ❌ testledger") == 2
