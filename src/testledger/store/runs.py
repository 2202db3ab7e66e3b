"""Run rows: creating one idempotently by ``run_key``, and finishing it with its statistics."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from testledger.model import RunInfo, RunStats, RunStatus, utcnow
from testledger.store.tables import test_results, test_runs

__all__ = ["RunRow", "compute_stats", "create_or_join_run", "finish_run"]


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
    existing = connection.execute(
        sa.select(test_runs.c.id, test_runs.c.status).where(test_runs.c.run_key == run_key)
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
    inserted = connection.execute(
        sa.insert(test_runs).values(**values).returning(test_runs.c.id)
    ).scalar_one()
    return RunRow(int(inserted), run_key, False, RunStatus.RUNNING)


def compute_stats(
    connection: Connection,
    run_id: int,
    wall_clock_secs: float | None = None,
) -> RunStats:
    """Statistics over the run's results: the last attempt of each test decides its status;
    cost and tokens add up every attempt (retries are paid for)."""
    final = test_results.alias("final")
    last_attempt = (
        sa.select(sa.func.max(test_results.c.attempt))
        .where(test_results.c.run_id == run_id)
        .where(test_results.c.test_id == final.c.test_id)
        .scalar_subquery()
    )
    status = final.c.status

    def count(*statuses: str) -> sa.ColumnElement[Any]:
        return sa.func.coalesce(sa.func.sum(sa.case((status.in_(statuses), 1), else_=0)), 0)

    counts = connection.execute(
        sa.select(
            sa.func.count().label("total"),
            count("PASS").label("passed"),
            count("FAIL", "ERROR").label("failed"),
            count("SKIP").label("skipped"),
            count("ERROR").label("errored"),
            sa.func.avg(final.c.watcher_quality).label("quality"),
        )
        .where(final.c.run_id == run_id)
        .where(final.c.attempt == last_attempt)
    ).one()
    sums = connection.execute(
        sa.select(
            sa.func.sum(test_results.c.duration_secs).label("duration"),
            sa.func.sum(test_results.c.cost_usd).label("cost"),
            sa.func.sum(test_results.c.tokens_total).label("tokens"),
        ).where(test_results.c.run_id == run_id)
    ).one()
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
        values["notes"] = notes
    connection.execute(sa.update(test_runs).where(test_runs.c.id == run_id).values(**values))
    return stats
