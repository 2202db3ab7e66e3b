"""The views rewritten by migration 0007: ``v_flaky_evidence`` bounded to each suite and
branch's last 30 runs, and ``v_cost_by_model`` computed run by run with the same numbers as the
plain aggregate it replaced (NULL provider and model forming one group)."""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from testledger.store.database import connect_engine
from testledger.store.tables import test_results, test_runs

WINDOW = importlib.import_module(
    "testledger.store.migrations.versions.0007_bounded_views_run_duration"
).FLAKY_EVIDENCE_RUNS
START = datetime(2025, 3, 1, tzinfo=timezone.utc)

# One test result: (test_id, attempt, status, provider, model, cost, tokens).
Result = tuple[str, int, str, str | None, str | None, float | None, int | None]


@pytest.fixture
def conn(db_url: str) -> Iterator[Connection]:
    engine = connect_engine(db_url)
    try:
        with engine.begin() as connection:
            yield connection
    finally:
        engine.dispose()


def add_run(
    conn: Connection,
    number: int,
    commit: str,
    results: Sequence[Result],
    *,
    branch: str = "main",
    status: str = "finished",
) -> int:
    when = START + timedelta(hours=number)
    run_id = conn.execute(
        sa.insert(test_runs)
        .values(
            run_timestamp=when,
            created_at=when,
            branch_name=branch,
            commit_hash=commit,
            watcher_model="none",
            total_tests=len(results),
            tests_passed=0,
            tests_failed=0,
            tests_skipped=0,
            tests_errored=0,
            run_key=f"{branch}-{number}",
            suite="s",
            status=status,
            source="test",
        )
        .returning(test_runs.c.id)
    ).scalar_one()
    for test_id, attempt, result_status, provider, model, cost, tokens in results:
        conn.execute(
            sa.insert(test_results).values(
                run_id=run_id,
                test_id=test_id,
                tool_name=test_id,
                variation="x",
                attempt=attempt,
                status=result_status,
                provider=provider,
                model=model,
                cost_usd=cost,
                tokens_total=tokens,
                created_at=when,
            )
        )
    return int(run_id)


def passing(test_id: str = "t") -> list[Result]:
    return [(test_id, 1, "PASS", None, None, None, None)]


def evidence(conn: Connection) -> list[tuple[str, str, str | None, int, int]]:
    rows = conn.exec_driver_sql(
        "SELECT test_id, evidence, commit_hash, runs, failed_runs FROM v_flaky_evidence"
        " ORDER BY evidence, test_id, commit_hash"
    ).all()
    return [(r[0], r[1], r[2], int(r[3]), int(r[4])) for r in rows]


@pytest.mark.parametrize(
    ("clean_runs_after", "expected"),
    [
        # Both runs on commit c0 and the retry are within the last 30 runs.
        (
            WINDOW - 3,
            [("t", "retry", "c1", 1, 1), ("t", "same_commit", "c0", 2, 1)],
        ),
        # The retry's run is the 30th newest; the first run on c0 fell out of the window.
        (WINDOW - 2, [("t", "retry", "c1", 1, 1)]),
        # Everything fell out: 30 clean runs since.
        (WINDOW, []),
    ],
)
def test_flaky_evidence_covers_the_last_runs_of_each_suite_and_branch(
    conn: Connection, clean_runs_after: int, expected: list[tuple[str, str, str, int, int]]
) -> None:
    add_run(conn, 0, "c0", passing())
    add_run(conn, 1, "c0", [("t", 1, "FAIL", None, None, None, None)])
    add_run(
        conn,
        2,
        "c1",
        [("t", 1, "FAIL", None, None, None, None), ("t", 2, "PASS", None, None, None, None)],
    )
    for number in range(3, 3 + clean_runs_after):
        add_run(conn, number, f"c{number}", passing())
    # Another branch's runs and a run still in progress take no place in main's window.
    for number in range(100, 100 + WINDOW):
        add_run(conn, number, f"d{number}", passing(), branch="develop")
    add_run(conn, 500, "c500", passing(), status="running")
    assert evidence(conn) == expected


COST_BY_MODEL_COLUMNS = (
    "run_id, suite, branch_name, provider, model, results, passed, cost_usd, tokens_total,"
    " cost_per_passing_result"
)


def test_cost_by_model_matches_the_plain_aggregate(conn: Connection) -> None:
    add_run(
        conn,
        0,
        "c0",
        [
            ("a", 1, "FAIL", "glm", "glm-4.5", 0.25, 100),
            ("a", 2, "PASS", "glm", "glm-4.5", 0.25, 100),  # retries are paid for
            ("b", 1, "PASS", "glm", "glm-4.6", 0.5, 10),
            ("c", 1, "PASS", None, None, None, None),
            ("d", 1, "SKIP", None, None, None, None),
            ("e", 1, "FAIL", "openai", "gpt-4o", 1.0, 7),  # no pass: no cost per pass
        ],
    )
    add_run(conn, 1, "c1", [("a", 1, "PASS", "glm", "glm-4.5", 0.125, 50)])
    add_run(conn, 2, "c2", [])  # a run without results has no row
    plain = importlib.import_module("testledger.store.migrations.versions.0004_report_views")
    # (NULLs sort first on SQLite, last on PostgreSQL: put them last on both)
    order = " ORDER BY run_id, CASE WHEN provider IS NULL THEN 1 ELSE 0 END, provider, model"
    rewritten = conn.exec_driver_sql(
        f"SELECT {COST_BY_MODEL_COLUMNS} FROM v_cost_by_model{order}"
    ).all()
    aggregate = conn.exec_driver_sql(
        f"SELECT {COST_BY_MODEL_COLUMNS} FROM ({plain._COST_BY_MODEL}) v{order}"
    ).all()
    assert [tuple(row) for row in rewritten] == [tuple(row) for row in aggregate]
    assert [(r.run_id, r.provider, r.model, r.results, r.passed) for r in rewritten] == [
        (1, "glm", "glm-4.5", 2, 1),
        (1, "glm", "glm-4.6", 1, 1),
        (1, "openai", "gpt-4o", 1, 0),
        (1, None, None, 2, 1),
        (2, "glm", "glm-4.5", 1, 1),
    ]
    assert rewritten[2].cost_per_passing_result is None
    newest_first = conn.exec_driver_sql(
        "SELECT run_id FROM v_cost_by_model ORDER BY run_timestamp DESC, run_id DESC LIMIT 1"
    ).scalar_one()
    assert newest_first == 2
