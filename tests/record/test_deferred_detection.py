"""Issue detection after the session (issue 18): it reads the ledger's history, so the pytest
plugin's writer runs it once the session has been told the run is finished, and the session
waits for it 0.1 s at most, saying so when it leaves it to the background. Nothing about it is
lost: a run whose detection never ran keeps ``detected_at`` NULL and the next one completes it."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from testledger import Ledger
from testledger.record import runner
from tests.helpers import query_rows as rows
from tests.helpers import run_ledger

pytest_plugins = ["pytester"]


SUITE = "def test_ok():\n    pass\n\ndef test_broken():\n    raise KeyError('gone')\n"


def test_deferred_work_runs_when_asked_and_not_before(ledger: Ledger) -> None:
    with ledger.start_run(branch="main", detect_environment=False) as run:
        run.defer_after_finish = True
        run.record(tool_name="a", variation="v", status="PASS")
        run.record(tool_name="b", variation="v", status="FAIL", error_type="KeyError")
    assert run.deferred and run.stats is not None and run.stats.tests_failed == 1
    undetected = "SELECT id FROM test_runs WHERE detected_at IS NULL"
    assert rows(ledger.settings.database_url, undetected) == [{"id": run.run_id}]
    assert rows(ledger.settings.database_url, "SELECT id FROM issues") == []

    run.run_deferred()
    assert not run.deferred
    assert rows(ledger.settings.database_url, undetected) == []
    assert len(rows(ledger.settings.database_url, "SELECT id FROM issues")) == 1
    run.run_deferred()  # once only
    assert len(rows(ledger.settings.database_url, "SELECT id FROM issues")) == 1


def test_a_run_finished_without_deferring_is_detected_at_once(ledger: Ledger) -> None:
    with ledger.start_run(branch="main", detect_environment=False) as run:
        run.record(tool_name="b", variation="v", status="FAIL", error_type="KeyError")
    assert not run.deferred
    assert (
        rows(ledger.settings.database_url, "SELECT id FROM test_runs WHERE detected_at IS NULL")
        == []
    )


def test_waiting_for_detection_when_asked(pytester: pytest.Pytester, db_url: str) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result = run_ledger(pytester, db_url, "--ledger-wait-detection")
    result.assert_outcomes(passed=1, failed=1)
    assert "background" not in result.stdout.str()
    assert rows(db_url, "SELECT detected_at FROM test_runs")[0]["detected_at"] is not None
    assert len(rows(db_url, "SELECT id FROM issues")) == 1


DETECTION_SKIPPED = "testledger: issue detection skipped for run(s) 1: "

#: name -> (pyproject.toml, rules.toml or None, what the summary's line starts with, its reason)
BROKEN_SETTINGS = {
    "regressions": (
        '[tool.testledger.regressions]\nmin_runs = "five"\n',
        None,
        DETECTION_SKIPPED,
        "min_runs must be a whole number",
    ),
    "rules": (
        '[tool.testledger.detect]\nrules = "rules.toml"\n',
        "this is [not toml\n",
        DETECTION_SKIPPED,
        "rules.toml:1: invalid TOML",
    ),
    "retention": (
        '[tool.testledger.retention]\nkeep_runs = "many"\n',
        None,
        "testledger: retention skipped: ",
        "keep_runs must be a whole number",
    ),
    # The setting's own text, shown with its control characters written out.
    "hostile key": (
        '[tool.testledger.regressions]\n"\\u001b[31mevil\\u0000" = 1\n',
        None,
        DETECTION_SKIPPED,
        "unknown key(s) \\x1b[31mevil\\x00",
    ),
}


@pytest.mark.parametrize("broken", BROKEN_SETTINGS)
def test_a_setting_that_cannot_be_used_after_the_run_is_said_in_the_summary(
    pytester: pytest.Pytester, db_url: str, broken: str
) -> None:
    """A broken ``[tool.testledger.regressions]`` or rules file leaves every run undetected
    until it is fixed, a broken ``[tool.testledger.retention]`` every run kept: the session's
    summary says so, once."""
    pyproject, rules, line_start, why = BROKEN_SETTINGS[broken]
    pytester.makepyprojecttoml(pyproject)
    if rules is not None:
        pytester.path.joinpath("rules.toml").write_text(rules)
    pytester.makepyfile(test_suite=SUITE)
    result = run_ledger(pytester, db_url, "--ledger-wait-detection")
    result.assert_outcomes(passed=1, failed=1)
    said = [line for line in result.outlines if line.startswith(line_start)]
    assert len(said) == 1, result.outlines
    assert why in result.stdout.str(), result.outlines
    assert "\x1b" not in result.stdout.str() and "\x00" not in result.stdout.str()
    detected = rows(db_url, "SELECT detected_at FROM test_runs")[0]["detected_at"]
    if line_start == DETECTION_SKIPPED:
        assert "`testledger detect`" in result.stdout.str() and detected is None
    else:
        assert detected is not None


def _gone(pid: int) -> bool:
    """Whether the process has exited (a zombie nobody reaps counts as exited)."""
    stat = Path(f"/proc/{pid}/stat")
    if not stat.parent.parent.joinpath("self").exists():  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False
    try:
        state = stat.read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


def test_by_default_detection_finishes_after_the_session(
    pytester: pytest.Pytester, db_url: str
) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result = run_ledger(pytester, db_url)
    result.assert_outcomes(passed=1, failed=1)
    said = re.search(
        r"testledger: issue detection of run \d+ goes on in the background \(process (\d+)\); "
        r"should it be stopped, the next recording or `testledger detect` completes it",
        result.stdout.str(),
    )
    if said is not None:  # not over within 0.1 s: the writer finishes it on its own
        pid = int(said.group(1))
        deadline = time.monotonic() + 60
        while not _gone(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _gone(pid)
    assert rows(db_url, "SELECT detected_at FROM test_runs")[0]["detected_at"] is not None
    assert len(rows(db_url, "SELECT id FROM issues")) == 1


def _statements_per_batch(ledger: Ledger, key: str) -> list[str]:
    """The SQL a run writes for one batch of 50 results, as SQLite's trace sees it."""
    seen: list[str] = []
    with ledger.start_run(
        branch="main", suite="s", run_key=key, detect_environment=False, batch_size=10_000
    ) as run:
        for index in range(50):
            run.record(tool_name="t", variation=f"v{index}", status="PASS")
        with ledger.engine().connect() as connection:
            driver = connection.connection.driver_connection
            assert driver is not None
            driver.set_trace_callback(seen.append)
        run.flush(wait=True)
        with ledger.engine().connect() as connection:
            driver = connection.connection.driver_connection
            assert driver is not None
            driver.set_trace_callback(None)
    return seen


def test_a_batch_costs_the_same_whatever_the_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the writer does per batch reads nothing of the ledger's history: the same
    statements for the first run as for the twenty-first."""
    monkeypatch.setattr(runner, "FLUSH_INTERVAL_SECS", 1e9)  # one batch, at flush()
    with Ledger(f"sqlite:///{tmp_path / 'ledger.db'}", results_dir=tmp_path / "r") as ledger:
        first = _statements_per_batch(ledger, "run-0")
        for index in range(1, 20):
            _statements_per_batch(ledger, f"run-{index}")
        later = _statements_per_batch(ledger, "run-20")
    # (SQLite traces an executemany row by row.)
    kinds = [statement.split()[0] for statement in later]
    assert kinds == [statement.split()[0] for statement in first]
    assert kinds == ["BEGIN", *["INSERT"] * 50, "COMMIT"], later
