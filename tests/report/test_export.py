"""``testledger export``: every table and format round-trips, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from testledger import Ledger, WatcherObservation
from testledger.cli import main
from testledger.report import export
from testledger.report.export import _iso, _iso_from_text, iter_rows
from testledger.store import types
from testledger.store.types import parse_utc
from tests.histories import scripted_run

START = datetime(2025, 10, 1, 9, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def recorded(module_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Three runs, recorded once per database for this module's tests."""
    with Ledger(module_db_url, results_dir=tmp_path_factory.mktemp("results")) as ledger:
        for index in range(3):
            with scripted_run(ledger, index, start=START, commit=f"c{index}", suite=None) as run:
                ref = run.record(
                    tool_name="chat",
                    variation="a",
                    status="PASS",
                    cost_usd=0.25,
                    metrics={"x": 1.5},
                )
                run.attach_watcher(ref, WatcherObservation(quality_score=7, strengths=["ok"]))
                run.record(tool_name="chat", variation="b", status="FAIL", error_message="boom")
    return module_db_url


@pytest.fixture
def history(recorded: str, copy_database: Callable[[str], str], tmp_path: Path) -> Iterator[Ledger]:
    """A ledger on this test's own copy of the recorded runs."""
    with Ledger(copy_database(recorded), results_dir=tmp_path / "results") as ledger:
        yield ledger


def database_rows(ledger: Ledger, table: str, **run_range: int) -> list[dict[str, Any]]:
    with ledger.engine().connect() as conn:
        return list(iter_rows(conn, table, **run_range))


@pytest.mark.parametrize("table", ["runs", "results", "issues", "occurrences", "insights"])
def test_jsonl_and_json_round_trip(
    history: Ledger, tmp_path: Path, table: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db_url = history.settings.database_url
    expected = json.loads(json.dumps(database_rows(history, table), default=str))
    assert expected, table
    out = tmp_path / f"{table}.jsonl"
    assert main(["--db", db_url, "export", table, "--format", "jsonl", "-o", str(out)]) == 0
    assert [json.loads(line) for line in out.read_text().splitlines()] == expected
    assert main(["--db", db_url, "export", table, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == expected


def test_csv_round_trip_and_run_range(history: Ledger, tmp_path: Path) -> None:
    db_url = history.settings.database_url
    out = tmp_path / "results.csv"
    assert (
        main(
            [
                "--db",
                db_url,
                "export",
                "results",
                "-f",
                "csv",
                "-o",
                str(out),
                "--from",
                "2",
                "--to",
                "3",
            ]
        )
        == 0
    )
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["run_id"], r["test_id"], r["status"]) for r in rows] == [
        ("2", "chat/a", "PASS"),
        ("2", "chat/b", "FAIL"),
        ("3", "chat/a", "PASS"),
        ("3", "chat/b", "FAIL"),
    ]
    assert json.loads(rows[0]["metrics"]) == {"x": 1.5}
    assert rows[0]["created_at"].endswith("Z")


def test_parquet_round_trip(history: Ledger, tmp_path: Path) -> None:
    import pyarrow.parquet as pq  # a test dependency: its absence fails, never skips

    db_url = history.settings.database_url
    out = tmp_path / "results.parquet"
    assert main(["--db", db_url, "export", "results", "-f", "parquet", "-o", str(out)]) == 0
    table = pq.read_table(out).to_pylist()
    expected = database_rows(history, "results")
    assert [(r["id"], r["test_id"], r["cost_usd"], r["watcher_quality"]) for r in table] == [
        (r["id"], r["test_id"], r["cost_usd"], r["watcher_quality"]) for r in expected
    ]
    assert json.loads(table[0]["metrics"]) == {"x": 1.5}


def test_bad_requests_are_one_line_and_leave_no_file(
    history: Ledger, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db_url = history.settings.database_url
    out = tmp_path / "x.csv"
    assert main(["--db", db_url, "export", "widgets", "-o", str(out)]) == 1
    assert "unknown table 'widgets'" in capsys.readouterr().err
    assert main(["--db", db_url, "export", "runs", "-f", "xml", "-o", str(out)]) == 1
    assert "unknown format 'xml'" in capsys.readouterr().err
    assert main(["--db", db_url, "export", "runs", "-f", "parquet"]) == 1
    assert "give --output FILE" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob("*.partial"))


# Stored text -> exported text: the stored fixed-width form is sliced, anything else parsed.
STORED_TIMESTAMPS = [
    ("2025-10-07T13:47:15.894173Z", "2025-10-07T13:47:15.894173Z"),
    ("2025-10-07T13:47:15.000000Z", "2025-10-07T13:47:15Z"),  # as datetime.isoformat drops it
    ("2025-10-07T13:47:15.000100Z", "2025-10-07T13:47:15.000100Z"),
    ("2025-10-07 13:47:15", "2025-10-07T13:47:15Z"),  # naive text is UTC
    ("2025-10-07T15:47:15.5+02:00", "2025-10-07T13:47:15.500000Z"),
    ("2025-10-07T13:47:15.894173z", "2025-10-07T13:47:15.894173Z"),
]


@pytest.mark.parametrize(("stored", "exported"), STORED_TIMESTAMPS)
def test_stored_timestamp_text_is_exported_as_parsing_would(stored: str, exported: str) -> None:
    assert _iso_from_text(stored) == exported == _iso(parse_utc(stored))


def test_timestamps_are_iso_utc(ledger: Ledger, db_url: str, tmp_path: Path) -> None:
    for index, micros in enumerate((0, 123456)):
        with ledger.start_run(
            branch="main",
            started_at=START + timedelta(hours=index, microseconds=micros),
            detect_environment=False,
        ) as run:
            run.record(tool_name="chat", variation="a", status="PASS")
    out = tmp_path / "runs.jsonl"
    assert main(["--db", db_url, "export", "runs", "--format", "jsonl", "-o", str(out)]) == 0
    runs = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["run_timestamp"] for r in runs] == [
        "2025-10-01T09:00:00Z",
        "2025-10-01T10:00:00.123456Z",
    ]
    assert all(r["created_at"].endswith("Z") and "+" not in r["created_at"] for r in runs)


def test_sqlite_export_reads_stored_timestamps_without_parsing_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with Ledger(url, results_dir=tmp_path / "results") as ledger:
        with ledger.start_run(branch="main", started_at=START, detect_environment=False) as run:
            for index in range(3):
                run.record(tool_name="chat", variation=f"v{index}", status="PASS")
        parsed: list[str] = []

        def counting_parse(text: str) -> datetime:
            parsed.append(text)
            return parse_utc(text)

        monkeypatch.setattr(types, "parse_utc", counting_parse)
        monkeypatch.setattr(export, "parse_utc", counting_parse)
        with ledger.engine().connect() as conn:
            rows = list(iter_rows(conn, "results"))
    assert [row["started_at"] is None or row["started_at"].endswith("Z") for row in rows] == [
        True
    ] * 3
    assert all(row["created_at"].endswith("Z") for row in rows)
    assert parsed == []
