"""Runs as data: the list of runs, and one run's summary with its failing tests.

Report functions return plain dataclasses; the CLI, the HTML report and the web dashboard only
render them (``as_json`` gives the ``--json`` shape).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from testledger.common.jsondata import JsonData
from testledger.errors import ConfigError, NotFound
from testledger.model import RunStatus
from testledger.store.tables import test_results, test_runs

__all__ = [
    "FailingTest",
    "RunDetail",
    "RunSummary",
    "find_run",
    "is_final_attempt",
    "list_runs",
    "parse_run_status",
    "run_duration_secs",
    "show_run",
]


@dataclass(frozen=True, slots=True)
class RunSummary(JsonData):
    id: int
    run_key: str
    suite: str
    branch: str
    commit: str | None
    status: str
    run_timestamp: datetime
    finished_at: datetime | None
    watcher_model: str
    total_tests: int
    tests_passed: int
    tests_failed: int
    tests_skipped: int
    tests_errored: int
    pass_rate: float | None
    avg_watcher_quality: float | None
    #: The wall-clock duration with fractions (the proposal's whole-second
    #: ``total_duration_secs`` for runs recorded without one).
    duration_secs: float | None
    total_cost_usd: float | None
    total_tokens: int | None
    source: str
    notes: str | None


def run_duration_secs() -> sa.ColumnElement[Any]:
    """A run's duration with its fractions, or the rounded ``total_duration_secs`` for runs recorded
    before ``duration_secs`` existed (migration 0007) or imported without it."""
    return sa.func.coalesce(test_runs.c.duration_secs, test_runs.c.total_duration_secs)


SUMMARY_COLUMNS = (
    test_runs.c.id,
    test_runs.c.run_key,
    test_runs.c.suite,
    test_runs.c.branch_name.label("branch"),
    test_runs.c.commit_hash.label("commit"),
    test_runs.c.status,
    test_runs.c.run_timestamp,
    test_runs.c.finished_at,
    test_runs.c.watcher_model,
    test_runs.c.total_tests,
    test_runs.c.tests_passed,
    test_runs.c.tests_failed,
    test_runs.c.tests_skipped,
    test_runs.c.tests_errored,
    test_runs.c.pass_rate,
    test_runs.c.avg_watcher_quality,
    run_duration_secs().label("duration_secs"),
    test_runs.c.total_cost_usd,
    test_runs.c.total_tokens,
    test_runs.c.source,
    test_runs.c.notes,
)


def summary_from_row(row: Any) -> RunSummary:
    return RunSummary(**row._asdict())


def parse_run_status(value: str) -> str:
    """A run status as stored (``running``, ``finished``, ``aborted``; any case). Raises
    ConfigError naming the known ones."""
    try:
        return RunStatus(value.strip().lower()).value
    except ValueError:
        known = ", ".join(status.value for status in RunStatus)
        raise ConfigError(f"unknown run status {value!r}: use one of {known}") from None


def list_runs(
    connection: Connection,
    *,
    branch: str | None = None,
    suite: str | None = None,
    limit: int = 20,
    status: str | None = None,
    since: datetime | None = None,
) -> list[RunSummary]:
    """Runs, newest first; with ``status``, only runs in that state, with ``since``, only runs
    started at or after it (a naive datetime is UTC). Raises ConfigError for an unknown status."""
    query = sa.select(*SUMMARY_COLUMNS).order_by(
        test_runs.c.run_timestamp.desc(), test_runs.c.id.desc()
    )
    if branch is not None:
        query = query.where(test_runs.c.branch_name == branch)
    if suite is not None:
        query = query.where(test_runs.c.suite == suite)
    if status is not None:
        query = query.where(test_runs.c.status == parse_run_status(status))
    if since is not None:
        if since.tzinfo is None:
            since = since.replace(tzinfo=timezone.utc)
        query = query.where(test_runs.c.run_timestamp >= since)
    return [summary_from_row(row) for row in connection.execute(query.limit(limit))]


def find_run(
    connection: Connection,
    ref: str | int | None = None,
    *,
    branch: str | None = None,
    suite: str | None = None,
) -> RunSummary:
    """A run by id, by run key, or (None / "latest") the latest one, optionally of a branch and
    suite. Raises NotFound."""
    query = sa.select(*SUMMARY_COLUMNS)
    if ref is None or ref == "latest":
        query = query.order_by(test_runs.c.run_timestamp.desc(), test_runs.c.id.desc())
        if branch is not None:
            query = query.where(test_runs.c.branch_name == branch)
        if suite is not None:
            query = query.where(test_runs.c.suite == suite)
        described = "no runs recorded yet" + (f" on branch {branch}" if branch else "")
    elif isinstance(ref, int) or str(ref).isdigit():
        query = query.where(
            sa.or_(test_runs.c.id == int(ref), test_runs.c.run_key == str(ref))
        ).order_by(sa.case((test_runs.c.run_key == str(ref), 0), else_=1))
        described = f"no run with id or key {ref}"
    else:
        query = query.where(test_runs.c.run_key == ref)
        described = f"no run with key {ref!r}"
    row = connection.execute(query.limit(1)).first()
    if row is None:
        raise NotFound(described)
    return summary_from_row(row)


@dataclass(frozen=True, slots=True)
class FailingTest:
    #: The result's id (``testledger explain RESULT_ID``).
    result_id: int
    test_id: str
    tool_name: str
    variation: str
    status: str
    attempt: int
    provider: str | None
    model: str | None
    error_type: str | None
    error_message: str | None
    watcher_quality: int | None
    duration_secs: float | None


@dataclass(frozen=True, slots=True)
class RunDetail(JsonData):
    run: RunSummary
    failing: list[FailingTest]
    retried_tests: int


def is_final_attempt() -> sa.ColumnElement[bool]:
    """A condition on ``test_results``: the row is its test's last attempt in its run."""
    later = test_results.alias("later")
    return ~(
        sa.select(later.c.id)
        .where(later.c.run_id == test_results.c.run_id)
        .where(later.c.test_id == test_results.c.test_id)
        .where(later.c.attempt > test_results.c.attempt)
        .exists()
    )


def show_run(
    connection: Connection,
    ref: str | int | None = None,
    *,
    branch: str | None = None,
    suite: str | None = None,
) -> RunDetail:
    """One run's summary and its failing tests (final attempts that are FAIL or ERROR)."""
    run = find_run(connection, ref, branch=branch, suite=suite)
    rows = connection.execute(
        sa.select(
            test_results.c.id.label("result_id"),
            test_results.c.test_id,
            test_results.c.tool_name,
            test_results.c.variation,
            test_results.c.status,
            test_results.c.attempt,
            test_results.c.provider,
            test_results.c.model,
            test_results.c.error_type,
            test_results.c.error_message,
            test_results.c.watcher_quality,
            test_results.c.duration_secs,
        )
        .where(test_results.c.run_id == run.id)
        .where(test_results.c.status.in_(("FAIL", "ERROR")))
        .where(is_final_attempt())
        .order_by(test_results.c.tool_name, test_results.c.variation)
    )
    failing = [FailingTest(**row._asdict()) for row in rows]
    retried = connection.execute(
        sa.select(sa.func.count(sa.distinct(test_results.c.test_id)))
        .where(test_results.c.run_id == run.id)
        .where(test_results.c.attempt > 1)
    ).scalar_one()
    return RunDetail(run=run, failing=failing, retried_tests=int(retried))
