"""A PostgreSQL database made from the proposal's schema.sql, holding rows, is adopted by
``testledger db upgrade`` without losing or changing any row."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from testledger import Ledger, SchemaError
from testledger.cli import main
from testledger.store.database import connect_engine
from testledger.store.migrate import PROPOSAL_COLUMNS, head_revision
from tests.store.test_schema import execute_script

pytestmark = pytest.mark.postgres

LEGACY_ROWS = """
INSERT INTO test_runs (run_timestamp, branch_name, commit_hash, watcher_model, total_tests,
  tests_passed, tests_failed, tests_skipped, pass_rate, avg_watcher_quality,
  total_duration_secs, total_cost_usd, notes)
VALUES ('2025-10-06 10:00:00+00', 'main', 'aaa111', 'glm-4.5-air', 3, 2, 1, 0, 66.67, 6.50,
        120, 0.0123, 'run 1'),
       ('2025-10-07 10:00:00+00', 'main', 'bbb222', 'glm-4.5-air', 2, 2, 0, 0, 100.00, 8.00,
        90, 0.0100, NULL);
INSERT INTO test_results (run_id, tool_name, variation, provider, model, status,
  execution_status, duration_secs, memory_mb, cpu_percent, tokens_total, cost_usd,
  watcher_quality, watcher_observations, error_message)
VALUES (1, 'chat', 'basic_glm', 'glm', 'glm-4.5-air', 'PASS', 'success', 10.943, 61, 0.00,
        1500, 0.004100, 5, '{"quality_score": 5, "anomalies": ["truncated"]}', NULL),
       (1, 'chat', 'basic_kimi', 'kimi', 'kimi-k2', 'FAIL', 'consensus_failed', 3.100, 40,
        12.50, 800, 0.008200, 8, NULL, 'timeout after 30s'),
       (1, 'chat', 'basic_kimi', 'kimi', 'kimi-k2', 'PASS', 'success', 2.900, 40, 10.00, 700,
        0.000000, NULL, NULL, NULL),
       (2, 'chat', 'basic_glm', 'glm', 'glm-4.5-air', 'PASS', 'success', 9.000, 60, 1.00,
        1400, 0.005000, 8, NULL, NULL),
       (2, 'chat', 'basic_kimi', 'kimi', 'kimi-k2', 'PASS', 'success', 2.000, 41, 2.00, 600,
        0.005000, 8, NULL, NULL);
INSERT INTO issues (issue_code, title, description, category, priority, status, root_cause,
  affected_tools, first_detected_run_id)
VALUES ('PHASE2-HIGH-001', 'Kimi consensus times out', 'Consensus fails after 30 s',
        'production', 'HIGH', 'OPEN', 'provider latency', ARRAY['chat', 'consensus'], 1);
INSERT INTO issue_occurrences (issue_id, run_id, test_result_id, severity, notes)
VALUES (1, 1, 2, 'high', 'first seen');
INSERT INTO watcher_insights (test_result_id, quality_score, strengths, weaknesses, anomalies,
  recommendations, confidence_level, raw_observation)
VALUES (1, 5, ARRAY['works'], ARRAY[]::text[], ARRAY['truncated'], ARRAY['fix truncation'],
        'high', '{"quality_score": 5}');
"""


def snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the proposal's five tables, through the proposal's columns only."""
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    data: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for table, columns in PROPOSAL_COLUMNS.items():
            names = ", ".join(sorted(columns))
            data[table] = [
                tuple(row)
                for row in conn.execute(sa.text(f"SELECT {names} FROM {table} ORDER BY id"))
            ]
    engine.dispose()
    return data


@pytest.fixture
def legacy_url(new_pg_database: Callable[[], str], shared_dir: Path) -> str:
    url = new_pg_database()
    execute_script(url, (shared_dir / "spec" / "schema.sql").read_text())
    execute_script(url, LEGACY_ROWS)
    return url


def test_upgrade_adopts_a_schema_sql_database_keeping_every_row(
    legacy_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(legacy_url)
    assert sum(len(rows) for rows in before.values()) == 10

    assert main(["--db", legacy_url, "db", "upgrade"]) == 0
    out = capsys.readouterr().out
    assert f"upgraded from proposal schema.sql (unversioned) to {head_revision()}" in out
    assert snapshot(legacy_url) == before

    engine = connect_engine(legacy_url)
    with engine.connect() as conn:
        runs = conn.execute(
            sa.text("SELECT id, run_key, suite, status, source FROM test_runs ORDER BY id")
        ).fetchall()
        results = conn.execute(
            sa.text("SELECT run_id, test_id, attempt FROM test_results ORDER BY id")
        ).fetchall()
    engine.dispose()
    assert [tuple(r) for r in runs] == [
        (1, "adopted-1", "default", "finished", "adopted"),
        (2, "adopted-2", "default", "finished", "adopted"),
    ]
    # The same test twice in run 1 becomes two attempts of it, oldest first.
    assert [tuple(r) for r in results] == [
        (1, "chat/basic_glm", 1),
        (1, "chat/basic_kimi", 1),
        (1, "chat/basic_kimi", 2),
        (2, "chat/basic_glm", 1),
        (2, "chat/basic_kimi", 1),
    ]

    # The adopted ledger records new runs like any other.
    with Ledger(legacy_url, results_dir=tmp_path / "results") as ledger:
        with ledger.start_run(branch="main", commit="ccc333") as run:
            run.record(tool_name="chat", variation="basic_glm", status="PASS")
    assert not run.spooled and run.run_id == 3

    # Upgrading again is a no-op.
    assert main(["--db", legacy_url, "db", "upgrade"]) == 0
    assert f"already at revision {head_revision()}" in capsys.readouterr().out


def test_an_unadopted_database_is_not_touched_implicitly(
    legacy_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(legacy_url)
    with pytest.raises(SchemaError, match="testledger db upgrade"):
        connect_engine(legacy_url)
    assert main(["--db", legacy_url, "runs"]) == 1
    assert "run `testledger db upgrade` to adopt it" in capsys.readouterr().err
    assert main(["--db", legacy_url, "db", "current"]) == 0
    assert "not yet adopted" in capsys.readouterr().out
    # A recorder facing it spools rather than writing into an unmanaged schema.
    with Ledger(legacy_url, results_dir=tmp_path / "results") as ledger:
        with ledger.start_run(branch="main") as run:
            run.record(tool_name="x", variation="y", status="PASS")
    assert run.spooled
    assert snapshot(legacy_url) == before


def test_a_database_with_only_some_proposal_tables_is_refused(pg_url: str) -> None:
    execute_script(pg_url, "CREATE TABLE test_runs (id BIGSERIAL PRIMARY KEY, note TEXT);")
    assert main(["--db", pg_url, "db", "upgrade"]) == 1
