"""A run's statistics (``store.runs.compute_stats``): the last attempt of each test decides its
status, every attempt is paid for; and on PostgreSQL the plan stays linear in the run, with no
subquery looped per result, even for a run written just now that the planner knows nothing
of (issue 18: the correlated subquery looped 5,000 times over a 5,000-test run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from testledger.model import RunInfo, RunStatus, Status, TestResult, WatcherObservation
from testledger.store.database import connect_engine
from testledger.store.runs import (
    compute_stats,
    create_or_join_run,
    final_attempts_query,
    finish_run,
    refresh_planner_statistics,
    stats_query,
)
from testledger.store.writer import encode_result, insert_rows


def result(
    test_id: str, attempt: int, status: Status, quality: int | None = None, **fields: Any
) -> TestResult:
    return TestResult(
        test_id=test_id,
        tool_name="t",
        variation=test_id,
        status=status,
        attempt=attempt,
        watcher=None if quality is None else WatcherObservation(quality_score=quality),
        **fields,
    )


RETRIED = [
    # a failure passed on its retry: PASS, and both attempts are paid for
    result("flaky", 1, Status.FAIL, cost_usd=0.5, tokens_total=10, duration_secs=1.0),
    result("flaky", 2, Status.PASS, cost_usd=0.25, tokens_total=5, duration_secs=2.0),
    # retried twice, an error in the end; the attempts arrive out of order
    result("broken", 3, Status.ERROR, quality=4),
    result("broken", 1, Status.FAIL, quality=9),
    result("broken", 2, Status.FAIL),
    result("skipped", 1, Status.SKIP),
    result("plain", 1, Status.PASS, quality=8, duration_secs=0.5),
]


@pytest.mark.parametrize(
    ("results", "expected"),
    [
        ([], (0, 0, 0, 0, 0, None, None, None, None, None)),
        (
            RETRIED,
            # total, passed, failed, skipped, errored, pass rate, quality, cost, tokens, secs
            (4, 2, 1, 1, 1, 66.67, 6.0, 0.75, 15, 3.5),
        ),
        (
            [result(f"t{i}", 1, Status.PASS if i % 3 else Status.FAIL) for i in range(9)],
            (9, 6, 3, 0, 0, 66.67, None, None, None, None),
        ),
    ],
    ids=["empty", "retries", "no-retries"],
)
def test_the_last_attempt_decides_and_every_attempt_is_paid_for(
    db_url: str, results: list[TestResult], expected: tuple[Any, ...]
) -> None:
    engine = connect_engine(db_url)
    try:
        with engine.begin() as conn:
            row = create_or_join_run(conn, RunInfo(branch="main"), "stats")
            insert_rows(conn, row.id, [encode_result(r) for r in results], may_exist=False)
            stats = finish_run(conn, row.id, RunStatus.FINISHED)
    finally:
        engine.dispose()
    got = (
        stats.total_tests,
        stats.tests_passed,
        stats.tests_failed,
        stats.tests_skipped,
        stats.tests_errored,
        stats.pass_rate,
        stats.avg_watcher_quality,
        stats.total_cost_usd,
        stats.total_tokens,
        stats.duration_secs,
    )
    assert got == expected


def _plan_nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    nodes = [plan]
    for child in plan.get("Plans", []):
        nodes += _plan_nodes(child)
    return nodes


@pytest.mark.postgres
def test_statistics_plan_has_no_loop_per_result_on_a_run_just_written(pg_url: str) -> None:
    """History analysed, then a run written by COPY with no ANALYZE after it: the planner takes
    it for one row (every earlier run id is a most common value). The plans must still read
    the run once: no SubPlan, no nested loop, one scan of test_results."""
    engine = connect_engine(pg_url)
    tests = [result(f"tests/test_m.py::test_{i}", 1, Status.PASS) for i in range(300)]
    rows = [encode_result(r) for r in tests]
    try:
        with engine.begin() as conn:
            for key in ("h1", "h2", "h3"):
                earlier = create_or_join_run(conn, RunInfo(branch="main"), key)
                insert_rows(conn, earlier.id, rows, may_exist=False)
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE test_results")
            conn.commit()
        with engine.begin() as conn:
            new = create_or_join_run(conn, RunInfo(branch="main"), "new")
            retried = [*tests, result(tests[0].test_id, 2, Status.FAIL)]
            insert_rows(conn, new.id, [encode_result(r) for r in retried], may_exist=False)
        with engine.connect() as conn:
            for query in (stats_query(new.id), final_attempts_query(new.id)):
                sql = query.compile(
                    dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}
                )
                (plan,) = conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {sql}").scalar_one()
                nodes = _plan_nodes(plan["Plan"])
                kinds = [node["Node Type"] for node in nodes]
                assert not any(node.get("Parent Relationship") == "SubPlan" for node in nodes)
                assert "Nested Loop" not in kinds and "Hash Join" not in kinds, kinds
                scans = [node for node in nodes if node.get("Relation Name") == "test_results"]
                assert len(scans) == 1, kinds
            stats = compute_stats(conn, new.id)
        assert (stats.total_tests, stats.tests_passed, stats.tests_failed) == (300, 299, 1)
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_planner_statistics_are_refreshed_after_a_run_that_changes_the_table(
    pg_url: str,
) -> None:
    engine = connect_engine(pg_url)
    rows = [encode_result(result(f"t{i}", 1, Status.PASS)) for i in range(100)]
    try:
        with engine.begin() as conn:
            first = create_or_join_run(conn, RunInfo(branch="main"), "first")
            insert_rows(conn, first.id, rows, may_exist=False)
            # Never analysed: the first rows of a ledger are.
            assert refresh_planner_statistics(conn, len(rows))
        with engine.begin() as conn:
            known = conn.exec_driver_sql(
                "SELECT reltuples FROM pg_class WHERE oid = 'test_results'::regclass"
            ).scalar_one()
            assert known == 100
            # A run of a tenth of the table is left to autovacuum; one as large as it is not.
            assert not refresh_planner_statistics(conn, 10)
            assert refresh_planner_statistics(conn, 100)
            assert not refresh_planner_statistics(conn, 0)
    finally:
        engine.dispose()


def test_sqlite_never_analyses(tmp_path: Path) -> None:
    engine = connect_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        with engine.begin() as conn:
            assert not refresh_planner_statistics(conn, 1_000_000)
            assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
    finally:
        engine.dispose()
