"""Retention: removing old runs from the database in small transactions.

A run's results go first, at most :data:`RESULTS_PER_BATCH` at a time, each batch in its own
short transaction together with the daily sums it leaves in ``test_daily_stats`` (added to the
day's row, so pruning a day in several goes adds up). Then the run rows go, up to
:data:`RUNS_PER_BATCH` in one transaction: the issues that name them keep their first and
last seen times and let go of the run (``first_detected_run_id`` and the others become NULL),
occurrences go with the run (ON DELETE CASCADE) and events keep the issue's history without it
(ON DELETE SET NULL).

No transaction is ever long, so that a recorder writing at the same time never waits long for
one: on PostgreSQL each takes its locks with a short ``lock_timeout``, and one that cannot get
them (or meets a detection in progress) is rolled back and tried again a little later, then
skipped for the next prune (a skipped run may have lost its results already: its row, still
finished and with its statistics, goes with the next prune). Between transactions the prune
rests (:data:`REST_FRACTION`). A run still ``running`` is never removed.

The run's JSON files are not this layer's business: ``on_removed`` hears each group of run
keys once their rows are gone (the record layer removes their folders).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from testledger.config import RetentionPolicy
from testledger.model import RunStatus, utcnow
from testledger.store.engine import dialect_insert
from testledger.store.tables import (
    issues,
    regression_baselines,
    test_daily_stats,
    test_results,
    test_runs,
    watcher_insights,
)

__all__ = [
    "RESULTS_PER_BATCH",
    "RUNS_PER_BATCH",
    "PruneProgress",
    "PruneTotals",
    "RunsRemoved",
    "prunable_runs",
    "prune_database",
]

#: Results removed (with their daily sums written) per transaction.
RESULTS_PER_BATCH = 5_000
#: At most this many runs have their results removed together (as long as their tests add up
#: to no more than RESULTS_PER_BATCH), and their rows then go in one transaction.
RUNS_PER_BATCH = 100
#: How long a prune transaction waits for a lock on PostgreSQL before it gives way.
LOCK_TIMEOUT_MS = 1_000
#: After each transaction the prune rests this fraction of the time it took, so that the
#: database keeps time for the recorders writing meanwhile (bench/prune.py measures them).
REST_FRACTION = 1.0
#: Tries of one transaction that met a lock (or a detection in progress), then it is skipped.
ATTEMPTS = 5
#: The advisory lock issue detection holds for each run it detects
#: (``testledger.analyze.pipeline.DETECTION_LOCK_KEY``, "detect" in ASCII): a prune takes it
#: to remove runs, so that it never changes an issue under a detection. It waits for a
#: detection under way at most LOCK_TIMEOUT_MS (then tries again later), and a detection
#: waits for it no longer than its transaction's few milliseconds.
DETECTION_LOCK_KEY = 0x646574656374
#: PostgreSQL's lock_not_available, deadlock_detected and serialization_failure.
_RETRYABLE_SQLSTATES = {"55P03", "40P01", "40001"}

#: Hears the keys of runs whose rows are gone (or would go, in a dry run); returns how many
#: files went (or would go) with them.
RunsRemoved = Callable[[Sequence[str]], int]


@dataclass(frozen=True, slots=True)
class PruneProgress:
    """How far a prune has come: runs done of the runs it found, results removed so far."""

    runs_done: int
    runs_total: int
    results_done: int


@dataclass(slots=True)
class PruneTotals:
    """What a prune removed (or, dry, would remove)."""

    runs: int = 0
    results: int = 0
    observations: int = 0
    files: int = 0
    #: (day, suite, branch, test) rows of test_daily_stats written or added to.
    aggregate_keys: set[tuple[Any, ...]] = field(default_factory=set)
    #: Issue links to removed runs set NULL (an issue may count for up to four).
    issue_links_cleared: int = 0
    #: Runs left for the next prune: locks they needed stayed taken.
    skipped_runs: list[str] = field(default_factory=list)


class _Busy(Exception):
    """A transaction gave way to locks (or a detection in progress) :data:`ATTEMPTS` times."""


@dataclass(frozen=True, slots=True)
class _Candidate:
    id: int
    run_key: str
    tests: int
    run_timestamp: datetime


def prunable_runs(
    connection: Connection, policy: RetentionPolicy, now: datetime | None = None
) -> list[_Candidate]:
    """The runs the policy removes, oldest first: finished or aborted runs of the policy's
    suite and branch beyond the ``keep_runs`` newest of their suite and/or older than
    ``older_than``. Running runs are neither removed nor counted among those kept.

    Cheap when nothing is due (the policy after each run): per suite, the newest kept run is
    found by walking ``keep_runs`` entries of the run time index, and only older runs are
    read; no window over every run of the ledger."""
    # Which runs count (among those kept, too), then which of them are old enough.
    counted: list[sa.ColumnElement[bool]] = [test_runs.c.status != RunStatus.RUNNING.value]
    if policy.branch is not None:
        counted.append(test_runs.c.branch_name == policy.branch)
    conditions = list(counted)
    if policy.older_than is not None:
        conditions.append(test_runs.c.run_timestamp < (now or utcnow()) - policy.older_than)
    if policy.keep_runs is None:
        if policy.suite is not None:
            conditions.append(test_runs.c.suite == policy.suite)
        return _candidates(connection, conditions)
    if policy.suite is not None:
        suites = [policy.suite]
    else:
        suites = [
            str(suite)
            for suite in connection.execute(sa.select(test_runs.c.suite).distinct()).scalars()
        ]
    found: list[_Candidate] = []
    for suite in suites:
        oldest_kept = connection.execute(
            sa.select(test_runs.c.run_timestamp, test_runs.c.id)
            .where(test_runs.c.suite == suite, *counted)
            .order_by(test_runs.c.run_timestamp.desc(), test_runs.c.id.desc())
            .offset(policy.keep_runs - 1)
            .limit(1)
        ).first()
        if oldest_kept is None:
            continue
        older = sa.or_(
            test_runs.c.run_timestamp < oldest_kept.run_timestamp,
            sa.and_(
                test_runs.c.run_timestamp == oldest_kept.run_timestamp,
                test_runs.c.id < oldest_kept.id,
            ),
        )
        found += _candidates(connection, [test_runs.c.suite == suite, *conditions, older])
    found.sort(key=lambda run: (run.run_timestamp, run.id))
    return found


def _candidates(
    connection: Connection, conditions: list[sa.ColumnElement[bool]]
) -> list[_Candidate]:
    query = (
        sa.select(
            test_runs.c.id, test_runs.c.run_key, test_runs.c.total_tests, test_runs.c.run_timestamp
        )
        .where(*conditions)
        .order_by(test_runs.c.run_timestamp, test_runs.c.id)
    )
    return [
        _Candidate(int(row.id), str(row.run_key), int(row.total_tests or 0), row.run_timestamp)
        for row in connection.execute(query)
    ]


def prune_database(
    engine: Engine,
    policy: RetentionPolicy,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
    on_removed: RunsRemoved | None = None,
    progress: Callable[[PruneProgress], None] | None = None,
) -> PruneTotals:
    """Remove the runs :func:`prunable_runs` finds, with their results, observations and
    occurrences, :data:`RUNS_PER_BATCH` runs at a time (see the module's docstring). With
    ``dry_run`` nothing is written: the totals count what would go."""
    with engine.connect() as connection:
        candidates = prunable_runs(connection, policy, now)
    totals = PruneTotals()
    done = 0
    for chunk in _chunks(candidates):
        if dry_run:
            _count_chunk(engine, chunk, policy.keep_aggregates, totals)
            removed = [run.run_key for run in chunk]
        else:
            removed = _prune_chunk(engine, chunk, policy.keep_aggregates, totals)
        if removed and on_removed is not None:
            totals.files += on_removed(removed)
        done += len(chunk)
        if progress is not None:
            progress(PruneProgress(done, len(candidates), totals.results))
    return totals


def _chunks(candidates: list[_Candidate]) -> Iterator[list[_Candidate]]:
    """The runs in groups of at most RUNS_PER_BATCH whose tests add up to no more than
    RESULTS_PER_BATCH (a larger run makes a group alone), in order."""
    chunk: list[_Candidate] = []
    tests = 0
    for run in candidates:
        if chunk and (len(chunk) == RUNS_PER_BATCH or tests + run.tests > RESULTS_PER_BATCH):
            yield chunk
            chunk, tests = [], 0
        chunk.append(run)
        tests += run.tests
    if chunk:
        yield chunk


def _prune_chunk(
    engine: Engine, chunk: list[_Candidate], keep_aggregates: bool, totals: PruneTotals
) -> list[str]:
    """Remove one group of runs; the keys of those removed (a group that stayed locked is
    skipped whole, and said in ``totals.skipped_runs``)."""
    run_ids = [run.id for run in chunk]
    try:
        while _retrying(engine, lambda c: _remove_results(c, run_ids, keep_aggregates, totals)):
            pass
        gone = _retrying(engine, lambda c: _remove_runs(c, run_ids, totals))
    except _Busy:
        totals.skipped_runs.extend(run.run_key for run in chunk)
        return []
    return [run.run_key for run in chunk if run.id in gone]


Result = TypeVar("Result")


def _retrying(engine: Engine, work: Callable[[Connection], Result]) -> Result:
    """``work`` in a transaction of its own, tried again after a pause when it gave way to a
    lock; _Busy after :data:`ATTEMPTS` tries."""
    for attempt in range(ATTEMPTS):
        started = time.monotonic()
        try:
            with engine.begin() as connection:
                if connection.dialect.name == "postgresql":
                    connection.execute(sa.text(f"SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}"))
                done = work(connection)
            time.sleep(REST_FRACTION * (time.monotonic() - started))
            return done
        except DBAPIError as exc:
            if not _gave_way(exc):
                raise
        time.sleep(0.1 * 2**attempt)
    raise _Busy


def _gave_way(exc: DBAPIError) -> bool:
    """Whether ``exc`` is a lock that stayed taken (PostgreSQL's lock_timeout, a deadlock
    broken by the server, SQLite's busy timeout): worth another try later."""
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate in _RETRYABLE_SQLSTATES:
        return True
    text = str(exc.orig).lower()
    return "database is locked" in text or "database is busy" in text


def _batch_of(run_ids: list[int], connection: Connection) -> sa.ColumnElement[bool] | None:
    """The next at most RESULTS_PER_BATCH results of ``run_ids``, lowest ids first, as a
    condition; None when none are left. (``id + 0`` keeps PostgreSQL from walking the whole
    primary key in id order looking for these runs' rows: their run index finds them.)"""
    first_ids = (
        sa.select(test_results.c.id)
        .where(test_results.c.run_id.in_(run_ids))
        .order_by(test_results.c.id + 0)
        .limit(RESULTS_PER_BATCH)
        .subquery()
    )
    highest = connection.execute(sa.select(sa.func.max(first_ids.c.id))).scalar()
    if highest is None:
        return None
    return sa.and_(test_results.c.run_id.in_(run_ids), test_results.c.id <= highest)


def _remove_results(
    connection: Connection, run_ids: list[int], keep_aggregates: bool, totals: PruneTotals
) -> bool:
    """One batch of the runs' results removed, with their daily sums kept; whether there may
    be more (the batch was full)."""
    batch = _batch_of(run_ids, connection)
    if batch is None:
        return False
    observations = _count_observations(connection, batch)
    keys: list[tuple[Any, ...]] = []
    if keep_aggregates:
        keys = [tuple(row) for row in connection.execute(_add_daily_stats(connection, batch))]
    removed = connection.execute(sa.delete(test_results).where(batch)).rowcount
    totals.results += removed
    totals.observations += observations
    totals.aggregate_keys.update(keys)
    return removed >= RESULTS_PER_BATCH


def _count_observations(connection: Connection, batch: sa.ColumnElement[bool]) -> int:
    ids = sa.select(test_results.c.id).where(batch)
    counted = sa.select(sa.func.count()).where(watcher_insights.c.test_result_id.in_(ids))
    return int(connection.execute(counted).scalar_one())


def _day(connection: Connection) -> sa.ColumnElement[Any]:
    """The UTC day of a run, as test_daily_stats keeps it."""
    if connection.dialect.name == "sqlite":  # ISO text: its first ten characters
        return sa.func.substr(test_runs.c.run_timestamp, 1, 10)
    return sa.cast(sa.func.timezone("UTC", test_runs.c.run_timestamp), sa.Date)


def _daily_sums(connection: Connection, batch: sa.ColumnElement[bool]) -> sa.Select[Any]:
    """The batch's results summed per day, suite, branch and test, in test_daily_stats'
    column order."""
    status = test_results.c.status

    def count_of(value: str) -> sa.ColumnElement[Any]:
        return sa.func.sum(sa.case((status == value, 1), else_=0))

    def count_known(column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        return sa.func.count(column)

    day = _day(connection)
    return (
        sa.select(
            day.label("day"),
            test_runs.c.suite,
            test_runs.c.branch_name,
            test_results.c.test_id,
            sa.func.max(test_results.c.tool_name).label("tool_name"),
            sa.func.count().label("results"),
            count_of("PASS").label("passed"),
            count_of("FAIL").label("failed"),
            count_of("SKIP").label("skipped"),
            count_of("ERROR").label("errored"),
            sa.func.sum(test_results.c.duration_secs).label("duration_secs_sum"),
            count_known(test_results.c.duration_secs).label("duration_count"),
            sa.func.sum(test_results.c.cost_usd).label("cost_usd_sum"),
            sa.func.sum(test_results.c.tokens_total).label("tokens_total_sum"),
            sa.func.sum(test_results.c.watcher_quality).label("watcher_quality_sum"),
            count_known(test_results.c.watcher_quality).label("watcher_quality_count"),
        )
        .select_from(test_results.join(test_runs, test_runs.c.id == test_results.c.run_id))
        .where(batch)
        .group_by(day, test_runs.c.suite, test_runs.c.branch_name, test_results.c.test_id)
    )


_KEY = ("day", "suite", "branch_name", "test_id")
_COUNTS = (
    "results",
    "passed",
    "failed",
    "skipped",
    "errored",
    "duration_count",
    "watcher_quality_count",
)
_SUMS = ("duration_secs_sum", "cost_usd_sum", "tokens_total_sum", "watcher_quality_sum")
_ISSUE_LINKS = ("first_detected_run_id", "last_seen_run_id", "resolved_run_id", "regressed_run_id")


def _add_daily_stats(connection: Connection, batch: sa.ColumnElement[bool]) -> Any:
    """INSERT ... SELECT of the batch's daily sums that adds to a row already there (the same
    statement on both databases: ON CONFLICT DO UPDATE), returning the rows' keys."""
    sums = _daily_sums(connection, batch)
    statement = dialect_insert(connection)(test_daily_stats).from_select(
        [column.name for column in sums.selected_columns], sums
    )
    table, new = test_daily_stats.c, statement.excluded
    added: dict[str, Any] = {name: table[name] + new[name] for name in _COUNTS}
    for name in _SUMS:  # NULL + x is NULL: keep whichever side is known
        added[name] = sa.func.coalesce(table[name] + new[name], table[name], new[name])
    return statement.on_conflict_do_update(index_elements=list(_KEY), set_=added).returning(
        *(table[name] for name in _KEY)
    )


def _remove_runs(connection: Connection, run_ids: list[int], totals: PruneTotals) -> set[int]:
    """The run rows removed, once no detection is under way (it could be changing the issues
    that name them); their issues keep when they were first and last seen. The ids removed."""
    if connection.dialect.name == "postgresql":  # waited for at most LOCK_TIMEOUT_MS
        connection.execute(
            sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": DETECTION_LOCK_KEY}
        )
    totals.issue_links_cleared += _detach_issues(connection, run_ids)
    # Regression baselines last folded by a removed run: built again from the series the next
    # time their test is detected (no foreign key: every run rewrites every baseline).
    connection.execute(
        sa.delete(regression_baselines).where(regression_baselines.c.last_run_id.in_(run_ids))
    )
    gone = connection.execute(
        sa.delete(test_runs)
        .where(test_runs.c.id.in_(run_ids))
        .where(test_runs.c.status != RunStatus.RUNNING.value)
        .returning(test_runs.c.id)
    )
    removed = {int(run_id) for run_id in gone.scalars()}
    totals.runs += len(removed)
    return removed


def _detach_issues(connection: Connection, run_ids: list[int]) -> int:
    """Let go of the runs in every issue that names one: the times stay (first_seen_at,
    last_seen_at, resolved_at, set from the run when still empty), the run ids become NULL."""

    def run_time(link: sa.Column[Any]) -> sa.ScalarSelect[Any]:
        return sa.select(test_runs.c.run_timestamp).where(test_runs.c.id == link).scalar_subquery()

    kept_times = {
        "first_detected_run_id": "first_seen_at",
        "last_seen_run_id": "last_seen_at",
        "resolved_run_id": "resolved_at",
        "regressed_run_id": None,
    }
    cleared = 0
    for link_name, time_name in kept_times.items():
        link = issues.c[link_name]
        values: dict[str, Any] = {link_name: None}
        if time_name is not None:
            values[time_name] = sa.func.coalesce(issues.c[time_name], run_time(link))
        updated = connection.execute(sa.update(issues).where(link.in_(run_ids)).values(values))
        cleared += updated.rowcount
    return cleared


def _count_chunk(
    engine: Engine, chunk: list[_Candidate], keep_aggregates: bool, totals: PruneTotals
) -> None:
    """What removing one group of runs would remove, counted without writing."""
    run_ids = [run.id for run in chunk]
    in_runs = test_results.c.run_id.in_(run_ids)
    with engine.connect() as connection:
        totals.runs += len(chunk)
        totals.results += int(
            connection.execute(sa.select(sa.func.count()).where(in_runs)).scalar_one()
        )
        totals.observations += _count_observations(connection, in_runs)
        if keep_aggregates:
            sums = _daily_sums(connection, in_runs).subquery()
            keys = connection.execute(sa.select(*(sums.c[name] for name in _KEY)))
            totals.aggregate_keys.update(tuple(row) for row in keys)
        totals.issue_links_cleared += sum(
            int(
                connection.execute(
                    sa.select(sa.func.count()).where(issues.c[name].in_(run_ids))
                ).scalar_one()
            )
            for name in _ISSUE_LINKS
        )
