"""The migrated schema is a superset of the proposal's ``schema.sql``, on both databases."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from testledger.store.database import connect_engine
from testledger.store.engine import create_ledger_engine
from testledger.store.migrate import (
    HEAD_REVISION,
    PROPOSAL_COLUMNS,
    head_revision,
    render_sql,
    upgrade,
)
from testledger.store.tables import metadata

# The only NOT NULLs testledger relaxes (see store/tables.py for why).
RELAXED = {
    ("test_results", "provider"),
    ("test_results", "model"),
    ("watcher_insights", "quality_score"),
}

COLUMNS_SQL = """
SELECT table_name, column_name, format_type(a.atttypid, a.atttypmod) AS type,
       c.column_default, c.is_nullable
FROM information_schema.columns c
JOIN pg_attribute a ON a.attrelid = (quote_ident(c.table_name))::regclass
                   AND a.attname = c.column_name
WHERE c.table_schema = 'public' AND c.table_name <> 'alembic_version'
"""
INDEXES_SQL = "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"
CONSTRAINTS_SQL = """
SELECT conrelid::regclass::text AS table_name, conname, pg_get_constraintdef(oid) AS definition
FROM pg_constraint WHERE connamespace = 'public'::regnamespace
"""
# Row level security, view options and policies (0010): `db sql` must secure the same way.
SECURITY_SQL = """
SELECT relname, relrowsecurity, reloptions::text AS options FROM pg_class
WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'v')
"""
POLICIES_SQL = """
SELECT tablename, policyname, cmd, roles::text AS roles FROM pg_policies WHERE schemaname = 'public'
"""


def catalog(url: str) -> dict[str, Any]:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as conn:
        columns = {
            (row.table_name, row.column_name): (row.type, row.column_default, row.is_nullable)
            for row in conn.execute(sa.text(COLUMNS_SQL))
        }
        indexes = {row.indexname: row.indexdef for row in conn.execute(sa.text(INDEXES_SQL))}
        constraints = {
            (row.table_name, row.conname): row.definition
            for row in conn.execute(sa.text(CONSTRAINTS_SQL))
        }
        security = {tuple(row) for row in conn.execute(sa.text(SECURITY_SQL))}
        policies = {tuple(row) for row in conn.execute(sa.text(POLICIES_SQL))}
    engine.dispose()
    return {
        "columns": columns,
        "indexes": indexes,
        "constraints": constraints,
        "security": security,
        "policies": policies,
    }


def execute_script(url: str, script: str) -> None:
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1)) as conn:
        conn.execute(script)  # type: ignore[arg-type]


@pytest.fixture
def proposal_url(new_pg_database: Callable[[], str], shared_dir: Path) -> str:
    """A PostgreSQL database created from the proposal's schema.sql, verbatim."""
    url = new_pg_database()
    execute_script(url, (shared_dir / "spec" / "schema.sql").read_text())
    return url


@pytest.mark.postgres
def test_postgresql_schema_contains_the_proposal_exactly(proposal_url: str, pg_url: str) -> None:
    engine = create_ledger_engine(pg_url)
    upgrade(engine)
    engine.dispose()
    proposal, ours = catalog(proposal_url), catalog(pg_url)

    assert {table for table, _ in proposal["columns"]} == set(PROPOSAL_COLUMNS)
    for key, (type_, default, nullable) in proposal["columns"].items():
        assert key in ours["columns"], f"missing column {key}"
        our_type, our_default, our_nullable = ours["columns"][key]
        assert our_type == type_, key
        assert our_default == default, key
        expected_nullable = "YES" if key in RELAXED else nullable
        assert our_nullable == expected_nullable, key
    for name, definition in proposal["indexes"].items():
        assert ours["indexes"].get(name) == definition, name
    for key, definition in proposal["constraints"].items():
        if key == ("watcher_insights", "watcher_insights_quality_score_check"):
            assert ours["constraints"][key] == definition  # the 1-10 CHECK stays
            continue
        assert ours["constraints"].get(key) == definition, key
    # What testledger adds on top.
    added = set(ours["columns"]) - set(proposal["columns"])
    assert ("test_runs", "run_key") in added and ("test_results", "test_id") in added
    assert "uq_test_runs_run_key" in ours["indexes"]
    assert "uq_test_results_run_test_attempt" in ours["indexes"]


@pytest.mark.postgres
def test_db_sql_output_builds_the_same_schema(
    pg_url: str, new_pg_database: Callable[[], str]
) -> None:
    engine = create_ledger_engine(pg_url)
    upgrade(engine)
    engine.dispose()
    pasted_url = new_pg_database()
    execute_script(pasted_url, render_sql("postgresql"))
    assert catalog(pasted_url) == catalog(pg_url)


def test_migrations_match_the_table_definitions(db_url: str) -> None:
    engine = connect_engine(db_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            differences = compare_metadata(context, metadata)
    finally:
        engine.dispose()
    assert differences == []


def test_every_proposal_column_and_index_exists(db_url: str) -> None:
    engine = connect_engine(db_url)
    try:
        inspector = sa.inspect(engine)
        for table, columns in PROPOSAL_COLUMNS.items():
            have = {column["name"]: column for column in inspector.get_columns(table)}
            assert columns <= set(have), table
            for name in columns:
                if (table, name) in RELAXED or name == "id":
                    continue
                proposal_nullable = name not in _PROPOSAL_NOT_NULL.get(table, set())
                assert have[name]["nullable"] == proposal_nullable, (table, name)
        index_names = {
            index["name"] for table in PROPOSAL_COLUMNS for index in inspector.get_indexes(table)
        }
        assert index_names >= _PROPOSAL_INDEXES
    finally:
        engine.dispose()


def test_an_empty_database_is_migrated_on_first_use_and_upgrade_is_idempotent(
    empty_db_url: str,
) -> None:
    engine = connect_engine(empty_db_url)  # first use: creates the schema
    try:
        assert upgrade(engine) == (head_revision(), head_revision())
    finally:
        engine.dispose()


def test_sqlite_timestamps_are_fixed_width_iso_utc(tmp_path: Path) -> None:
    engine = connect_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO test_runs (branch_name, watcher_model, total_tests, tests_passed, "
            "tests_failed, tests_skipped, run_key) VALUES ('main', 'none', 0, 0, 0, 0, 'k')"
        )
        [(stamp,)] = conn.exec_driver_sql("SELECT run_timestamp FROM test_runs").fetchall()
    engine.dispose()
    assert len(stamp) == len("2025-10-07T13:47:15.894173Z") and stamp.endswith("Z")


_PROPOSAL_NOT_NULL = {
    "test_runs": {
        "run_timestamp",
        "branch_name",
        "watcher_model",
        "total_tests",
        "tests_passed",
        "tests_failed",
        "tests_skipped",
        "created_at",
    },
    "test_results": {"run_id", "tool_name", "variation", "status", "created_at"},
    "issues": {
        "issue_code",
        "title",
        "description",
        "category",
        "priority",
        "status",
        "created_at",
        "updated_at",
    },
    "issue_occurrences": {"issue_id", "run_id", "created_at"},
    "watcher_insights": {"test_result_id", "created_at"},
}

_PROPOSAL_INDEXES = {
    "idx_test_runs_timestamp",
    "idx_test_runs_branch",
    "idx_test_results_run",
    "idx_test_results_tool",
    "idx_test_results_status",
    "idx_test_results_watcher_quality",
    "idx_issues_status",
    "idx_issues_priority",
    "idx_issues_category",
    "idx_issue_occurrences_issue",
    "idx_issue_occurrences_run",
    "idx_watcher_insights_test_result",
    "idx_watcher_insights_quality",
}


def test_the_head_revision_constant_is_the_migration_scripts_head() -> None:
    assert head_revision() == HEAD_REVISION


def test_a_migration_that_fails_half_way_leaves_nothing_behind(
    empty_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every migration of an upgrade runs in one transaction, on SQLite too (whose driver would
    otherwise run each CREATE on its own): a failure after some revisions rolls all back."""
    from alembic import command

    from testledger.store import migrate

    real_upgrade = command.upgrade

    def upgrade_then_fail(config: Any, revision: str) -> None:
        real_upgrade(config, "0003")
        raise RuntimeError("killed half way")

    monkeypatch.setattr(command, "upgrade", upgrade_then_fail)
    engine = create_ledger_engine(empty_db_url)
    try:
        with pytest.raises(RuntimeError, match="killed half way"):
            migrate.upgrade(engine)
        assert sa.inspect(engine).get_table_names() == []
        monkeypatch.setattr(command, "upgrade", real_upgrade)
        assert migrate.upgrade(engine) == (None, head_revision())
    finally:
        engine.dispose()


def test_processes_opening_a_new_sqlite_file_at_once_all_get_its_schema(tmp_path: Path) -> None:
    """The first migrator holds the write lock for the whole upgrade; the others wait, then
    find the schema current (they used to find half of it and refuse the database)."""
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'new.db'}"
    code = (
        f"from testledger.store.database import connect_engine; connect_engine({url!r}).dispose()"
    )
    processes = [
        subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    errors = [p.communicate()[1] for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0, 0], errors
    engine = connect_engine(url)
    try:
        assert upgrade(engine) == (head_revision(), head_revision())
    finally:
        engine.dispose()
