"""Run rows: creating one idempotently by ``run_key``, and finishing it with its statistics."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from testledger.model import RunInfo, RunStats, RunStatus, utcnow
from testledger.store.encoding import NUL_REPLACEMENT, values_without_nul
from testledger.store.tables import test_results, test_runs

__all__ = [
    "RunRow",
    "compute_stats",
    "create_or_join_run",
    "final_attempts_query",
    "finish_run",
    "refresh_planner_statistics",
    "stats_query",
]

#: A run that adds at least this share of test_results' rows has PostgreSQL's planner
#: statistics refreshed after it (see refresh_planner_statistics).
ANALYZE_SHARE = 0.2


@dataclass(frozen=True, slots=True)
class RunRow:
    """The run a recorder writes into: its id, and whether it already existed."""

    id: int
    run_key: str
    existed: bool
    status: RunStatus


def create_or_join_run(connection: Connection, info: RunInfo, run_key: str) -> RunRow:
    """Insert the run, or find the one already recorded under ``run_key``.

    The same run recorded or imported twice is one run: a second start with a known key joins
    the existing row instead of creating another.
    """
    stored_key = run_key.replace("\x00", NUL_REPLACEMENT)  # as values_without_nul stores it
    existing = connection.execute(
        sa.select(test_runs.c.id, test_runs.c.status).where(test_runs.c.run_key == stored_key)
    ).first()
    if existing is not None:
        return RunRow(int(existing.id), run_key, True, RunStatus(existing.status))
    started = info.started_at or utcnow()
    values: dict[str, Any] = {
        "run_key": run_key,
        "run_timestamp": started,
        "started_at": started,
        "created_at": utcnow(),
        "branch_name": info.branch,
        "commit_hash": info.commit,
        "watcher_model": info.watcher_model,
        "suite": info.suite,
        "status": RunStatus.RUNNING.value,
        "total_tests": 0,
        "tests_passed": 0,
        "tests_failed": 0,
        "tests_skipped": 0,
        "tests_errored": 0,
        "notes": info.notes,
        "ci_provider": info.ci_provider,
        "ci_job_url": info.ci_job_url,
        "host": info.host,
        "source": info.source,
        "run_metadata": info.metadata or None,
    }
    # A NUL in any of the run's text (PostgreSQL refuses it): replaced alike on both databases.
    values = values_without_nul(values, note_in="run_metadata")
    inserted = connection.execute(
        sa.insert(test_runs).values(**values).returning(test_runs.c.id)
    ).scalar_one()
    return RunRow(int(inserted), run_key, False, RunStatus.RUNNING)


def _outcome_columns(
    status: sa.ColumnElement[Any], quality: sa.ColumnElement[Any], final: sa.ColumnElement[bool]
) -> list[sa.Label[Any]]:
    """Counts by status and the average watcher quality over the rows where ``final`` holds."""

    def count(*statuses: str) -> sa.ColumnElement[Any]:
        where = sa.and_(final, status.in_(statuses)) if statuses else final
        return sa.func.coalesce(sa.func.sum(sa.case((where, 1), else_=0)), 0)

    return [
        count().label("total"),
        count("PASS").label("passed"),
        count("FAIL", "ERROR").label("failed"),
        count("SKIP").label("skipped"),
        count("ERROR").label("errored"),
        sa.func.avg(sa.case((final, quality))).label("quality"),
    ]


def stats_query(run_id: int) -> sa.Select[Any]:
    """The first query of :func:`compute_stats`, for its plan to be checked (see
    :func:`_stats_statement`)."""
    return _stats_statement().params(run_id=run_id)


def final_attempts_query(run_id: int) -> sa.Select[Any]:
    """The second query of :func:`compute_stats` (see :func:`_final_attempts_statement`)."""
    return _final_attempts_statement().params(run_id=run_id)


# The statements are built once per process, with the run as a parameter: building them took
# more of a run's finish than running them (their compiled form is cached by SQLAlchemy).


@functools.cache
def _stats_statement() -> sa.Select[Any]:
    """One aggregate over the run's rows (no join, no sort), counting them as though every
    row were its test's last attempt, with how many rows are retries (attempt > 1) and the
    sums over every attempt.

    No correlated "max(attempt) of this test" subquery: that is a nested loop whose plan
    depends on the planner's statistics, which a run just written by COPY does not have yet
    (on PostgreSQL a 5,000-test run looped 5,000 times over 5,000 rows, and 300,000 results
    ran for minutes). A plan without a join cannot be made worse than linear by an estimate."""
    always = sa.true()
    return sa.select(
        *_outcome_columns(test_results.c.status, test_results.c.watcher_quality, always),
        sa.func.coalesce(sa.func.sum(sa.case((test_results.c.attempt > 1, 1), else_=0)), 0).label(
            "retries"
        ),
        sa.func.sum(test_results.c.duration_secs).label("duration"),
        sa.func.sum(test_results.c.cost_usd).label("cost"),
        sa.func.sum(test_results.c.tokens_total).label("tokens"),
    ).where(test_results.c.run_id == sa.bindparam("run_id"))


@functools.cache
def _final_attempts_statement() -> sa.Select[Any]:
    """The counts over each test's last attempt, for a run with retries: one window pass in
    (test_id, attempt) order, where ``lead(attempt)`` is NULL on a test's last attempt."""
    attempts = (
        sa.select(
            test_results.c.status,
            test_results.c.watcher_quality,
            sa.func.lead(test_results.c.attempt)
            .over(partition_by=test_results.c.test_id, order_by=test_results.c.attempt)
            .label("next_attempt"),
        )
        .where(test_results.c.run_id == sa.bindparam("run_id"))
        .subquery("attempts")
    )
    final = attempts.c.next_attempt.is_(None)
    return sa.select(*_outcome_columns(attempts.c.status, attempts.c.watcher_quality, final))


def compute_stats(
    connection: Connection,
    run_id: int,
    wall_clock_secs: float | None = None,
) -> RunStats:
    """Statistics over the run's results: the last attempt of each test decides its status;
    cost and tokens add up every attempt (retries are paid for). Linear in the run's results
    and independent of the rest of the ledger: one aggregate pass, and a second (a window) only
    when the run holds retries (see :func:`stats_query`)."""
    run = {"run_id": run_id}
    sums = counts = connection.execute(_stats_statement(), run).one()
    if counts.retries:
        counts = connection.execute(_final_attempts_statement(), run).one()
    total, passed, failed, skipped, errored = (
        int(counts.total),
        int(counts.passed),
        int(counts.failed),
        int(counts.skipped),
        int(counts.errored),
    )
    executed = total - skipped
    pass_rate = round(100.0 * passed / executed, 2) if executed else None
    quality = round(float(counts.quality), 2) if counts.quality is not None else None
    duration = wall_clock_secs if wall_clock_secs is not None else sums.duration
    return RunStats(
        total_tests=total,
        tests_passed=passed,
        tests_failed=failed,
        tests_skipped=skipped,
        tests_errored=errored,
        pass_rate=pass_rate,
        avg_watcher_quality=quality,
        total_duration_secs=None if duration is None else round(float(duration)),
        total_cost_usd=None if sums.cost is None else round(float(sums.cost), 4),
        total_tokens=None if sums.tokens is None else int(sums.tokens),
        duration_secs=None if duration is None else round(float(duration), 3),
    )


def finish_run(
    connection: Connection,
    run_id: int,
    status: RunStatus,
    *,
    finished_at: datetime | None = None,
    wall_clock_secs: float | None = None,
    notes: str | None = None,
) -> RunStats:
    """Compute and store the run's statistics and final status."""
    stats = compute_stats(connection, run_id, wall_clock_secs)
    values: dict[str, Any] = {
        "status": status.value,
        "finished_at": finished_at or utcnow(),
        "total_tests": stats.total_tests,
        "tests_passed": stats.tests_passed,
        "tests_failed": stats.tests_failed,
        "tests_skipped": stats.tests_skipped,
        "tests_errored": stats.tests_errored,
        "pass_rate": stats.pass_rate,
        "avg_watcher_quality": stats.avg_watcher_quality,
        "total_duration_secs": stats.total_duration_secs,
        "duration_secs": stats.duration_secs,
        "total_cost_usd": stats.total_cost_usd,
        "total_tokens": stats.total_tokens,
    }
    if notes is not None:
        values["notes"] = notes.replace("\x00", NUL_REPLACEMENT)  # an exception's message
    connection.execute(sa.update(test_runs).where(test_runs.c.id == run_id).values(**values))
    return stats


def refresh_planner_statistics(connection: Connection, run_rows: int) -> bool:
    """``ANALYZE test_results`` on PostgreSQL after a run that changed the table's make-up:
    the first rows of a ledger, or a run of at least ANALYZE_SHARE of its rows (a large import,
    a 300,000-test run). True when it ran.

    Until autovacuum gets to it, the planner takes a run written since the last ANALYZE for
    one row (when every earlier run is in the statistics' most common values, any other run id
    is "rare"), and picks nested loops over it. testledger's own queries of one run have no
    join for that to hurt (:func:`stats_query`), but reports and detection read the new run
    first. Not after every run: ANALYZE samples 30,000 rows whatever the run's size (about a
    second on a 100 MB table), so ordinary runs leave it to autovacuum."""
    if connection.dialect.name != "postgresql" or run_rows <= 0:
        return False
    known = connection.exec_driver_sql(
        "SELECT reltuples FROM pg_class WHERE oid = 'test_results'::regclass"
    ).scalar()
    # reltuples is -1 (PostgreSQL 14+) or 0 before the first ANALYZE or VACUUM.
    if known is not None and known > 0 and run_rows < ANALYZE_SHARE * float(known):
        return False
    connection.exec_driver_sql("ANALYZE test_results")
    return True
