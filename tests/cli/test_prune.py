"""``testledger prune``: its text, ``--json``, ``--dry-run`` and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from testledger import Ledger
from testledger.cli import main
from tests.helpers import query
from tests.histories import record_test, scripted_run


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def recorded(ledger: Ledger) -> list[str]:
    """The ledger's --db and --results-dir, over four runs of two tests (one failing)."""
    for index in range(4):
        with scripted_run(ledger, index, run_key=f"r{index}", detect_issues=index == 0) as run:
            record_test(run, "chat/ok", "PASS", duration_secs=1.0)
            record_test(run, "chat/broken", "FAIL")
    return ["--db", ledger.settings.database_url, "--results-dir", str(ledger.results_dir)]


def run_keys(ledger: Ledger) -> list[str]:
    url = ledger.settings.database_url
    return [row[0] for row in query(url, "SELECT run_key FROM test_runs ORDER BY run_key")]


def test_prune_says_what_it_removed(
    recorded: list[str], ledger: Ledger, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(capsys, *recorded, "prune", "--keep-runs", "3", "--dry-run")
    assert code == 0 and err == ""
    assert out.startswith("Would remove 1 run(s) from ")
    lines = out.splitlines()
    assert lines[0].endswith(": finished runs beyond the 3 newest of its suite")
    assert lines[1] == "2 result(s), 0 observation(s), 2 file(s)"
    assert "daily sums would be kept in 2 aggregate row(s)" in out
    assert run_keys(ledger) == ["r0", "r1", "r2", "r3"]

    code, out, _ = cli(capsys, *recorded, "prune", "--keep-runs", "3")
    assert code == 0 and out.startswith("Removed 1 run(s) from ")
    assert "issue link(s) to these runs cleared; the issues stay" in out
    assert run_keys(ledger) == ["r1", "r2", "r3"]

    code, out, _ = cli(capsys, *recorded, "prune", "--keep-runs", "3")
    assert code == 0 and out.startswith("Nothing to prune in ")
    assert out.rstrip().endswith("no finished runs beyond the 3 newest of its suite.")


def test_prune_json(
    recorded: list[str], ledger: Ledger, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    args = ["prune", "--older-than", "1h", "--suite", "s", "--no-keep-aggregates", "--json"]
    code, out, _ = cli(capsys, *recorded, *args)
    assert code == 0
    report = json.loads(out)
    assert {key: report[key] for key in ("runs", "results", "files", "aggregate_rows")} == {
        "runs": 4,
        "results": 8,
        "files": 8,
        "aggregate_rows": 0,
    }
    assert report["dry_run"] is False and report["keep_aggregates"] is False
    assert report["suite"] == "s" and report["cutoff"].endswith("Z")
    assert run_keys(ledger) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--older-than", "banana"], "error: not an age: 'banana'"),
        (["--older-than", "90d", "--keep-runs", "2"], "error: give one of --keep-runs N or"),
        ([], "error: give one of --keep-runs N or --older-than AGE"),
        (["--keep-runs", "0"], "error: keep_runs must be a whole number of runs, at least 1"),
        (["--keep-runs", "x"], "error: Invalid value for '--keep-runs'"),
    ],
)
def test_bad_input_is_one_line_and_removes_nothing(
    recorded: list[str],
    ledger: Ledger,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    code, out, err = cli(capsys, *recorded, "prune", *args)
    assert code == 1 and out == ""
    assert err.startswith(message) and err.count("\n") == 1
    assert run_keys(ledger) == ["r0", "r1", "r2", "r3"]
