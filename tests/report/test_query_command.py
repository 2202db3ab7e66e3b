"""``testledger query NAME``: the proposal's four example queries as a command."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from testledger import Ledger
from testledger.api._reports import plain_value
from testledger.cli import main
from testledger.report.proposal import PROPOSAL_QUERIES
from tests.report.test_trend import record_history


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines()]


NAMES = [
    "latest-run        latest test run summary",
    "failing-tests     failing tests of the latest run",
    "issue-resolution  issue resolution tracking",
    "run-over-run      run-over-run comparison",
]


@pytest.mark.parametrize("args", [["query", "--list"], ["query"]])
def test_query_names_are_listed(capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    code, out, err = cli(capsys, *args)
    assert (code, err) == (0, "")
    assert lines(out) == NAMES


def test_query_names_in_help_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "query", "--help")
    assert code == 0
    for line in NAMES:
        assert f"  {line}\n" in out
    code, out, _ = cli(capsys, "query", "--list", "--json")
    assert json.loads(out) == [
        {"name": name, "title": query.title} for name, query in PROPOSAL_QUERIES.items()
    ]
    assert [entry["name"] for entry in json.loads(out)] == [
        "latest-run",
        "failing-tests",
        "issue-resolution",
        "run-over-run",
    ]


def test_unknown_query_lists_the_names(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "--db", db_url, "query", "slowest")
    assert (code, out) == (1, "")
    assert err == (
        "error: no query 'slowest': choose one of latest-run, failing-tests, "
        "issue-resolution, run-over-run\n"
    )


RUN_OVER_RUN = [
    "run-over-run comparison",
    " run_timestamp        pass_rate  avg_watcher_quality  total_cost_usd  prev_pass_rate"
    "  pass_rate_change",
    " 2025-10-07 15:00:00         50                    5             0.5               0"
    "                50",
    " 2025-10-07 14:00:00          0                    2            0.05             100"
    "              -100",
    " 2025-10-07 13:00:00        100                  7.5             0.5           66.67"
    "             33.33",
    " 2025-10-07 12:00:00      66.67                    6             0.3               -"
    "                 -",
]


def test_run_over_run(ledger: Ledger, db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    record_history(ledger, with_unfinished=False)
    code, out, err = cli(capsys, "--db", db_url, "query", "run-over-run")
    assert (code, err) == (0, "")
    assert lines(out) == RUN_OVER_RUN

    # The same numbers from either database (PostgreSQL's Decimals, SQLite's floats and text).
    code, out, _ = cli(capsys, "--db", db_url, "query", "run-over-run", "--json")
    columns = ("pass_rate", "avg_watcher_quality", "total_cost_usd", "prev_pass_rate")
    assert [
        (r["run_timestamp"], *(r[c] for c in columns), r["pass_rate_change"])
        for r in json.loads(out)
    ] == [
        ("2025-10-07T15:00:00Z", 50, 5, 0.5, 0, 50),
        ("2025-10-07T14:00:00Z", 0, 2, 0.05, 100, -100),
        ("2025-10-07T13:00:00Z", 100, 7.5, 0.5, 66.67, 33.33),
        ("2025-10-07T12:00:00Z", 66.67, 6, 0.3, None, None),
    ]


def test_latest_run_and_its_failures(
    ledger: Ledger, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = cli(capsys, "--db", db_url, "query", "latest-run")
    assert (code, lines(out)) == (0, ["latest test run summary", "No rows."])
    code, out, _ = cli(capsys, "--db", db_url, "query", "failing-tests", "--json")
    assert (code, json.loads(out)) == (0, [])

    record_history(ledger, with_unfinished=False)
    code, out, _ = cli(capsys, "--db", db_url, "query", "latest-run", "--json")
    assert json.loads(out) == [
        {
            "run_timestamp": "2025-10-07T15:00:00Z",
            "branch_name": "main",
            "total_tests": 3,
            "pass_rate": 50,
            "avg_watcher_quality": 5,
            "total_cost_usd": 0.5,
        }
    ]
    code, out, _ = cli(capsys, "--db", db_url, "query", "failing-tests")
    assert lines(out) == [
        "failing tests of the latest run",
        " tool_name  variation  status  error_message      watcher_quality",
        " chat       a          FAIL    chat/a went wrong                3",
    ]


def test_issue_resolution(ledger: Ledger, db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    record_history(ledger, with_unfinished=False)
    code, out, _ = cli(capsys, "--db", db_url, "query", "issue-resolution", "--json")
    assert code == 0
    found = sorted(json.loads(out), key=lambda row: row["title"])
    assert [(r["title"], r["status"], r["resolved_at"], r["occurrence_count"]) for r in found] == [
        ("AssertionError: chat/a went wrong", "OPEN", None, 2),
        ("AssertionError: chat/b went wrong", "OPEN", None, 2),
    ]
    # created_at is when detection ran: a UTC timestamp on either database.
    for row in found:
        assert row["created_at"].endswith("Z")
        datetime.fromisoformat(row["created_at"].replace("Z", "+00:00"))


UTC = timezone.utc
PLAIN_CASES: list[tuple[Any, Any]] = [
    (Decimal("66.67"), 66.67),
    (Decimal("0.0300"), 0.03),
    (33.329999999999998, 33.33),
    (7, 7),
    (None, None),
    (True, True),
    ("2025-10-07T15:00:00.000000Z", datetime(2025, 10, 7, 15, tzinfo=UTC)),
    ("2025-10-07 15:00:00", datetime(2025, 10, 7, 15, tzinfo=UTC)),
    ("2025-10-07T17:00:00+02:00", datetime(2025, 10, 7, 15, tzinfo=UTC)),
    (
        datetime(2025, 10, 7, 15, 0, 0, 250000, tzinfo=ZoneInfo("Etc/UTC")),
        datetime(2025, 10, 7, 15, 0, 0, 250000, tzinfo=UTC),
    ),
    (
        datetime(2025, 10, 7, 17, tzinfo=timezone(timedelta(hours=2))),
        datetime(2025, 10, 7, 15, tzinfo=UTC),
    ),
    ("2025-10-07", "2025-10-07"),  # a date alone is text
    ("chat/a went wrong", "chat/a went wrong"),
]


@pytest.mark.parametrize(("value", "expected"), PLAIN_CASES)
def test_plain_value(value: Any, expected: Any) -> None:
    plain = plain_value(value)
    assert plain == expected and type(plain) is type(expected)
    if isinstance(expected, datetime):
        assert plain.tzinfo is UTC
