"""Dual storage under real outages: the database goes away, recording goes on into the JSON
spool, and ``testledger sync`` loads exactly the rows, never twice.

The outages are real, not mocked: for PostgreSQL the database stops accepting connections and
its sessions are terminated; for SQLite another connection holds the write lock past the
recorder's timeout.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from testledger import Ledger, WatcherObservation, sync_runs
from testledger.cli import main
from testledger.store.database import connect_engine
from tests.helpers import query


@contextmanager
def outage(db_url: str, admin_url: str | None) -> Iterator[None]:
    """Make the database unusable for the duration of the block."""
    url = sa.engine.make_url(db_url)
    if url.get_backend_name() == "sqlite":
        holder = sqlite3.connect(str(url.database), isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        return
    assert admin_url is not None
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = url.database
    with admin.connect() as conn:
        conn.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        conn.exec_driver_sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{name}' AND pid <> pg_backend_pid()"
        )
    try:
        yield
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        admin.dispose()


@pytest.fixture
def admin_url(db_url: str, request: pytest.FixtureRequest) -> str | None:
    if db_url.startswith("sqlite"):
        return None
    url: str = request.getfixturevalue("pg_admin_url")
    return url


def short_timeout(db_url: str) -> str:
    # SQLite waits this long for the lock before the recorder gives up and spools.
    return db_url + "?timeout=0.2" if db_url.startswith("sqlite") else db_url


RESULTS_SQL = (
    "SELECT r.run_key, t.test_id, t.attempt, t.status, t.watcher_quality "
    "FROM test_results t JOIN test_runs r ON r.id = t.run_id ORDER BY t.test_id, t.attempt"
)


def record_through_outage(ledger: Ledger, db_url: str, admin_url: str | None) -> Any:
    with ledger.start_run(branch="main", run_key="outage-run", batch_size=2) as run:
        for index in range(4):  # two batches reach the database
            run.record(tool_name="tool", variation=f"v{index}", status="PASS")
        run.attach_watcher("tool/v0", WatcherObservation(quality_score=7))
        run.flush(wait=True)  # (the observation is still waiting for the next batch)
        with outage(db_url, admin_url):
            for index in range(4, 9):  # these only reach the JSON spool
                run.record(tool_name="tool", variation=f"v{index}", status="FAIL")
            run.record(tool_name="tool", variation="v4", status="PASS")  # a retry
            run.attach_watcher("tool/v5", WatcherObservation(quality_score=2))
            run.flush(wait=True)
        run.record(tool_name="tool", variation="v9", status="SKIP")  # after: still spooled
    return run


def test_outage_mid_run_spools_and_sync_loads_exact_rows(
    db_url: str, admin_url: str | None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = short_timeout(db_url)
    results_dir = tmp_path / "results"
    with caplog.at_level(logging.WARNING, logger="testledger"):
        with Ledger(url, results_dir=results_dir) as ledger:
            run = record_through_outage(ledger, db_url, admin_url)
    assert run.spooled
    warnings = [r for r in caplog.records if r.name == "testledger"]
    assert len(warnings) == 1 and "testledger sync" in warnings[0].getMessage()
    archived = json.loads((run.archive.folder / "run.json").read_text())
    assert archived["database"]["state"] == "pending"
    assert archived["stats"]["total_tests"] == 10

    before = query(db_url, RESULTS_SQL)
    assert [row[1] for row in before] == ["tool/v0", "tool/v1", "tool/v2", "tool/v3"]

    engine = connect_engine(db_url)
    try:
        first = sync_runs(engine, db_url, results_dir)
        again = sync_runs(engine, db_url, results_dir, include_synced=True)
    finally:
        engine.dispose()
    assert [o.results_written for o in first.synced] == [7]
    assert [o.results_written for o in again.synced] == [0]

    expected = [
        ("outage-run", "tool/v0", 1, "PASS", 7),
        ("outage-run", "tool/v1", 1, "PASS", None),
        ("outage-run", "tool/v2", 1, "PASS", None),
        ("outage-run", "tool/v3", 1, "PASS", None),
        ("outage-run", "tool/v4", 1, "FAIL", None),
        ("outage-run", "tool/v4", 2, "PASS", None),
        ("outage-run", "tool/v5", 1, "FAIL", 2),
        ("outage-run", "tool/v6", 1, "FAIL", None),
        ("outage-run", "tool/v7", 1, "FAIL", None),
        ("outage-run", "tool/v8", 1, "FAIL", None),
        ("outage-run", "tool/v9", 1, "SKIP", None),
    ]
    assert query(db_url, RESULTS_SQL) == expected
    assert query(db_url, "SELECT COUNT(*) FROM watcher_insights") == [(2,)]
    assert query(
        db_url,
        "SELECT status, total_tests, tests_passed, tests_failed, tests_skipped FROM test_runs",
    ) == [("finished", 10, 5, 4, 1)]
    synced = json.loads((run.archive.folder / "run.json").read_text())
    assert synced["database"]["state"] == "synced"


def test_database_unreachable_at_start_records_into_the_spool_then_syncs(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results_dir = tmp_path / "results"
    unreachable = "postgresql://tl:s3cret-pw@127.0.0.1:9/nowhere"
    with Ledger(unreachable, results_dir=results_dir) as ledger:
        with ledger.start_run(branch="dev", commit="abc", run_key="offline") as run:
            ref = run.record(tool_name="chat", variation="basic", status="PASS", cost_usd=0.25)
            run.attach_watcher(ref, WatcherObservation(quality_score=9))
            run.record(tool_name="chat", variation="other", status="FAIL")
    assert run.spooled and run.run_id is None
    assert "s3cret-pw" not in (run.spool_reason or "")
    assert run.stats is not None and run.stats.avg_watcher_quality == 9.0

    code = main(["--db", db_url, "--results-dir", str(results_dir), "sync"])
    assert code == 0
    assert "synced offline" in capsys.readouterr().out
    assert query(db_url, RESULTS_SQL) == [
        ("offline", "chat/basic", 1, "PASS", 9),
        ("offline", "chat/other", 1, "FAIL", None),
    ]
    [(branch, commit, cost)] = query(
        db_url, "SELECT branch_name, commit_hash, total_cost_usd FROM test_runs"
    )
    assert (branch, commit, float(cost)) == ("dev", "abc", 0.25)
    # A second sync finds nothing left to do, and the CLI says so.
    assert main(["--db", db_url, "--results-dir", str(results_dir), "sync"]) == 0
    assert "Nothing to sync" in capsys.readouterr().out
    assert query(db_url, "SELECT COUNT(*) FROM test_results") == [(2,)]


def test_sync_leaves_runs_still_marked_running_unless_asked(db_url: str, tmp_path: Path) -> None:
    results_dir = tmp_path / "results"
    with Ledger("postgresql://x@127.0.0.1:9/none", results_dir=results_dir) as ledger:
        run = ledger.start_run(branch="main", run_key="died")
        run.record(tool_name="a", variation="b", status="PASS")
        run.archive.close()  # the process "dies" here: no finish
    engine = connect_engine(db_url)
    try:
        report = sync_runs(engine, db_url, results_dir)
        assert report.skipped_unfinished == ["died"] and not report.synced
        report = sync_runs(engine, db_url, results_dir, include_unfinished=True)
        assert [o.status for o in report.synced] == ["aborted"]
    finally:
        engine.dispose()
    assert query(db_url, "SELECT status, total_tests FROM test_runs") == [("aborted", 1)]


def test_sync_without_a_database_keeps_the_spool(tmp_path: Path, capsys: Any) -> None:
    results_dir = tmp_path / "results"
    with Ledger("postgresql://x:pw@127.0.0.1:9/none", results_dir=results_dir) as ledger:
        with ledger.start_run(branch="main", run_key="kept") as run:
            run.record(tool_name="a", variation="b", status="PASS")
    code = main(
        ["--db", "postgresql://x:pw@127.0.0.1:9/none", "--results-dir", str(results_dir), "sync"]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "1 run(s) stay in the spool" in err and ":pw@" not in err
    assert (
        json.loads((run.archive.folder / "run.json").read_text())["database"]["state"] == "pending"
    )
