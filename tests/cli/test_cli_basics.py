"""``testledger runs``, ``show`` and ``db``: tables, ``--json``, errors, masked passwords."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from testledger import Ledger, WatcherObservation
from testledger.cli import main
from testledger.store.migrate import head_revision

START = datetime(2025, 10, 7, 12, 0, tzinfo=timezone.utc)


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def recorded(ledger: Ledger, db_url: str) -> str:
    for index, branch in enumerate(["main", "feature", "main"]):
        with ledger.start_run(
            branch=branch,
            commit=f"{index}abcdef1234",
            suite="validation",
            run_key=f"key-{index}",
            started_at=START + timedelta(hours=index),
            detect_environment=False,
        ) as run:
            ref = run.record(tool_name="chat", variation="basic", status="PASS", cost_usd=0.5)
            run.attach_watcher(ref, WatcherObservation(quality_score=7))
            run.record(
                tool_name="chat",
                variation="broken",
                status="FAIL" if index != 1 else "PASS",
                error_type="AssertionError",
                error_message="expected 3 got 4\nmore detail",
            )
    return db_url


def test_runs_lists_newest_first_with_filters(
    recorded: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = cli(capsys, "--db", recorded, "runs", "--json")
    assert code == 0
    runs = json.loads(out)
    assert [r["run_key"] for r in runs] == ["key-2", "key-1", "key-0"]
    assert runs[0]["pass_rate"] == 50.0 and runs[0]["total_cost_usd"] == 0.5
    assert runs[0]["run_timestamp"] == "2025-10-07T14:00:00Z"

    code, out, _ = cli(capsys, "--db", recorded, "runs", "--branch", "feature", "--json")
    assert [r["run_key"] for r in json.loads(out)] == ["key-1"]

    code, out, _ = cli(capsys, "--db", recorded, "runs", "--limit", "1")
    assert code == 0
    assert "validation" in out and "key" not in out  # the table shows ids, not keys
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 2  # header + one run


def test_show_defaults_to_the_latest_run_and_lists_failures(
    recorded: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = cli(capsys, "--db", recorded, "show")
    assert code == 0
    assert "key-2" in out and "2 tests: 1 passed, 1 failed" in out
    assert "chat/broken" in out and "AssertionError: expected 3 got 4" in out

    code, out, _ = cli(capsys, "--db", recorded, "show", "key-1", "--json")
    detail = json.loads(out)
    assert detail["run"]["branch"] == "feature" and detail["failing"] == []

    code, out, _ = cli(capsys, "--db", recorded, "show", "--branch", "main", "--json")
    detail = json.loads(out)
    assert detail["run"]["run_key"] == "key-2"
    assert [f["test_id"] for f in detail["failing"]] == ["chat/broken"]


def test_unknown_run_is_one_line_and_exit_1(
    recorded: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(capsys, "--db", recorded, "show", "nope")
    assert code == 1 and out == ""
    assert err == "error: no run with key 'nope'\n"


@pytest.mark.parametrize(
    "command",
    [["runs", "-n"], ["trend", "-n"], ["cost", "-n"], ["show"], ["compare", "1"]],
    ids=lambda words: "-".join(words),
)
def test_a_number_too_large_for_the_database_is_one_line_and_exit_1(
    recorded: str, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    code, out, err = cli(capsys, "--db", recorded, *command, "9" * 30)
    # SQLite's driver cannot bind it; PostgreSQL says "bigint out of range".
    assert (code, out) == (1, "") and err.count("\n") == 1, err
    assert err in (
        "error: a number given is too large\n",
        "error: database error: bigint out of range\n",
    )


def test_an_empty_ledger_says_so(empty_db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    # A database never used before: reading finds no ledger and creates none; once the schema
    # is there (the first recorded run, or db upgrade), the ledger has no runs yet.
    code, _, err = cli(capsys, "--db", empty_db_url, "runs")
    assert code == 1 and err.startswith("error: no ledger ")
    assert cli(capsys, "--db", empty_db_url, "db", "upgrade")[0] == 0
    code, out, _ = cli(capsys, "--db", empty_db_url, "runs")
    assert (code, out.strip()) == (0, "No runs recorded yet.")
    code, _, err = cli(capsys, "--db", empty_db_url, "show")
    assert code == 1 and err == "error: no runs recorded yet\n"
    code, out, _ = cli(capsys, "--db", empty_db_url, "runs", "--json")
    assert json.loads(out) == []


def test_db_current_and_sql(empty_db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "--db", empty_db_url, "db", "current", "--json")
    assert code == 0 and json.loads(out)["revision"] is None  # empty, untouched
    code, out, _ = cli(capsys, "--db", empty_db_url, "db", "upgrade")
    assert code == 0 and f"to {head_revision()}" in out
    code, out, _ = cli(capsys, "--db", empty_db_url, "db", "current", "--json")
    data: dict[str, Any] = json.loads(out)
    assert (data["revision"], data["current"]) == (head_revision(), True)
    code, out, _ = cli(capsys, "db", "sql", "--dialect", "postgresql")
    assert code == 0
    assert "CREATE TABLE test_runs" in out and "BIGSERIAL" in out and "JSONB" in out
    code, _, err = cli(capsys, "db", "sql", "--dialect", "oracle")
    assert code == 1 and "unknown dialect 'oracle'" in err


def test_passwords_are_masked_in_errors(capsys: pytest.CaptureFixture[str]) -> None:
    url = "postgresql://alice:hunter2-secret@127.0.0.1:9/ledger"
    code, out, err = cli(capsys, "--db", url, "runs")
    assert code == 1
    assert "hunter2-secret" not in out + err
    assert err.startswith("error: cannot connect to postgresql://alice:***@127.0.0.1:9/ledger: ")
    assert len(err.strip().splitlines()) == 1


def test_bad_urls_are_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "--db", "mysql://u:topsecret@h/db", "runs")
    assert code == 1 and "unsupported database 'mysql'" in err and "topsecret" not in err


def test_console_script_runs(tmp_path: Path) -> None:
    env = dict(os.environ, TESTLEDGER_DATABASE_URL=f"sqlite:///{tmp_path / 'l.db'}")
    for argv in (["db", "upgrade"], ["runs", "--json"]):
        completed = subprocess.run(
            [sys.executable, "-m", "testledger", *argv],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            check=False,
        )
        assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout) == []
