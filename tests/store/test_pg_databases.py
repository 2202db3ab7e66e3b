"""The suite's own PostgreSQL databases (tests/pgdatabases.py): a database reset for a next test
holds nothing of the last one, and one whose schema a test changed is never used again."""

from __future__ import annotations

import psycopg
import pytest

from tests.pgdatabases import PgDatabases, database_url

pytestmark = pytest.mark.postgres


def _execute(url: str, *statements: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows: list[tuple[object, ...]] = []
        for statement in statements:
            cursor = conn.execute(statement)
            rows = cursor.fetchall() if cursor.description else []
        return rows


def _names(admin_url: str) -> set[str]:
    return {str(row[0]) for row in _execute(admin_url, "SELECT datname FROM pg_database")}


def test_a_reset_database_is_empty_renamed_and_numbers_from_one(
    pg_admin_url: str, pg_template: str
) -> None:
    template = pg_template.rsplit("/", 1)[1]
    databases = PgDatabases(pg_admin_url)
    try:
        first = databases.take_copy(template, reusable=True)
        url = database_url(pg_admin_url, first)
        insert = (
            "INSERT INTO test_runs (run_key, run_timestamp, branch_name, watcher_model, "
            "total_tests, tests_passed, tests_failed, tests_skipped, tests_errored, created_at, "
            "suite, status, source) VALUES (gen_random_uuid()::text, now(), 'main', '', 0, 0, "
            "0, 0, 0, now(), 'default', 'finished', 'runner') RETURNING id"
        )
        assert _execute(url, insert, insert) == [(2,)]
        _execute(url, "ANALYZE test_runs")
        # A connection the test left open does not keep the database from being reset.
        left_open = psycopg.connect(url, autocommit=True)
        databases.drop_later(first)
        second = databases.take_copy(template, reusable=True)
        assert second != first and first not in _names(pg_admin_url)
        assert databases.counts == {"created": 1, "reset": 1, "dropped": 0}
        again = database_url(pg_admin_url, second)
        assert _execute(again, "SELECT count(*) FROM test_runs") == [(0,)]
        statistics = "SELECT count(*) FROM pg_stats WHERE tablename = 'test_runs'"
        assert _execute(again, statistics) == [(0,)]
        assert _execute(again, insert) == [(1,)]
        assert left_open.closed or left_open.broken or _gone(left_open)
    finally:
        databases.close()


def _gone(connection: psycopg.Connection[tuple[object, ...]]) -> bool:
    try:
        connection.execute("SELECT 1")
    except psycopg.OperationalError:
        return True
    return False


def test_a_database_whose_schema_changed_is_dropped(pg_admin_url: str, pg_template: str) -> None:
    template = pg_template.rsplit("/", 1)[1]
    databases = PgDatabases(pg_admin_url)
    try:
        first = databases.take_copy(template, reusable=True)
        _execute(database_url(pg_admin_url, first), "DROP INDEX idx_test_results_tool")
        databases.drop_later(first)
        second = databases.take_copy(template, reusable=True)
        indexes = _execute(
            database_url(pg_admin_url, second),
            "SELECT count(*) FROM pg_indexes WHERE indexname = 'idx_test_results_tool'",
        )
        assert indexes == [(1,)]
        assert databases.counts == {"created": 2, "reset": 0, "dropped": 1}
        assert first not in _names(pg_admin_url)
    finally:
        databases.close()
