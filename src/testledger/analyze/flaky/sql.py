"""SQL shared by the flaky rules: which runs count (scope and outages), the newest counted
runs, and per run and test the attempts that passed and failed (see
:mod:`testledger.analyze.flaky.finder`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from testledger.analyze.flaky.config import FlakyConfig
from testledger.store.tables import test_results, test_runs

__all__ = [
    "CHUNK",
    "FAILING",
    "chunks",
    "counted_runs",
    "horizon",
    "per_run",
    "ranked",
    "run_scope",
]

FAILING = ("FAIL", "ERROR")
_COUNTED_RUN_STATUSES = ("finished", "aborted")
#: Test ids per IN (...) list: well below SQLite's bound-parameter limit.
CHUNK = 500


def run_scope(
    config: FlakyConfig,
    suite: str | None,
    branch: str | None,
    as_of: tuple[datetime, int] | None,
) -> list[sa.ColumnElement[bool]]:
    """Which runs count: counted status, filters, no outage, and not after ``as_of``."""
    runs = test_runs.c
    executed = runs.total_tests - runs.tests_skipped
    outage = sa.and_(
        executed >= config.outage_min_tests,
        runs.tests_failed > sa.literal(float(config.outage_share)) * executed,
    )
    counted: sa.ColumnElement[bool] = runs.status.in_(_COUNTED_RUN_STATUSES)
    where: list[sa.ColumnElement[bool]] = [sa.not_(outage)]
    if as_of is not None:
        at, run_id = as_of
        # The run being judged counts even while it is still running.
        counted = sa.or_(counted, runs.id == run_id)
        where.append(
            sa.or_(runs.run_timestamp < at, sa.and_(runs.run_timestamp == at, runs.id <= run_id))
        )
    where.append(counted)
    if suite is not None:
        where.append(runs.suite == suite)
    if branch is not None:
        where.append(runs.branch_name == branch)
    return where


def horizon(connection: Connection, scope: list[sa.ColumnElement[bool]], runs: int) -> Any:
    """The timestamp of the ``runs``-th most recent counted run; None when there are fewer."""
    return connection.execute(
        sa.select(test_runs.c.run_timestamp)
        .where(*scope)
        .order_by(test_runs.c.run_timestamp.desc(), test_runs.c.id.desc())
        .offset(runs - 1)
        .limit(1)
    ).scalar()


def counted_runs(scope: list[sa.ColumnElement[bool]], since: Any) -> sa.CTE:
    """The runs that count (``scope``), from ``since`` on when given: the slice being read."""
    run_where = list(scope)
    if since is not None:
        run_where.append(test_runs.c.run_timestamp >= since)
    return (
        sa.select(
            test_runs.c.id,
            test_runs.c.run_timestamp.label("ts"),
            test_runs.c.commit_hash,
            test_runs.c.suite,
            test_runs.c.branch_name,
        )
        .where(*run_where)
        .cte("counted_runs")
    )


def per_run(runs: sa.CTE, test_ids: Sequence[str] | None) -> sa.Subquery:
    """Per counted run and test: its attempts, and which attempts passed and failed (to tell
    its final status and whether a retry passed after a failure)."""
    r = test_results.c
    failing = r.status.in_(FAILING)
    query = (
        sa.select(
            r.run_id,
            r.test_id,
            sa.func.count().label("attempts"),
            sa.func.max(r.attempt).label("last_attempt"),
            sa.func.max(sa.case((r.status == "PASS", r.attempt))).label("last_pass"),
            sa.func.min(sa.case((failing, r.attempt))).label("first_fail"),
            sa.func.max(sa.case((failing, r.attempt))).label("last_fail"),
            # Ids follow recording order, so the highest failing id is the latest failure.
            sa.func.max(sa.case((failing, r.id))).label("last_fail_id"),
        )
        .select_from(test_results.join(runs, runs.c.id == r.run_id))
        .group_by(r.run_id, r.test_id)
    )
    if test_ids is not None:
        query = query.where(r.test_id.in_(test_ids))
    return query.subquery("per_run")


def ranked(runs: sa.CTE, outcomes: sa.Subquery) -> sa.Subquery:
    """Each test's runs with a pass or fail final status, numbered newest first (``rn``) and
    counted (``n``) per suite and test."""
    p = outcomes.c
    # The last attempt decides, as in the run's own statistics.
    final = sa.case(
        (p.last_pass == p.last_attempt, "P"),
        (p.last_fail == p.last_attempt, "F"),
        else_="S",
    )
    test_key = (runs.c.suite, p.test_id)
    return (
        sa.select(
            runs.c.suite,
            p.test_id,
            p.run_id,
            runs.c.commit_hash,
            runs.c.branch_name,
            final.label("final"),
            p.attempts,
            p.last_pass,
            p.first_fail,
            p.last_fail_id,
            sa.func.row_number()
            .over(partition_by=test_key, order_by=(runs.c.ts.desc(), p.run_id.desc()))
            .label("rn"),
            sa.func.count().over(partition_by=test_key).label("n"),
        )
        .select_from(outcomes.join(runs, runs.c.id == p.run_id))
        .where(final != "S")
        .subquery("ranked")
    )


def chunks(test_ids: Sequence[str] | None) -> Iterator[Sequence[str] | None]:
    if test_ids is None:
        yield None
        return
    for start in range(0, len(test_ids), CHUNK):
        yield test_ids[start : start + CHUNK]
