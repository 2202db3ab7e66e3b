"""Flaky-test detection: which tests pass and fail without a change that explains it.

Every decision is made from stored results and can be explained with run ids. A test is one
``test_id`` within one suite. Its *evidence* is its last ``window`` runs that count:

* only runs with status ``finished`` or ``aborted`` (a running run is incomplete), within the
  optional suite and branch filters;
* never an outage run: a run in which more than ``outage_share`` of its executed tests
  (``total_tests - tests_skipped``) failed, counting only runs that executed at least
  ``outage_min_tests`` tests (a run of one failing test says nothing about infrastructure);
* never a run in which the test's final status (its last attempt) is SKIP: skips are neither
  passes nor failures, so they can be neither flips nor evidence.

Within that evidence a test is flaky when either rule holds:

(a) **mixed outcomes on one commit**: its final statuses on the same ``commit_hash`` include
    both PASS and FAIL/ERROR (runs without a commit are never grouped), or within one run an
    attempt FAILed/ERRORed and a later attempt PASSed (a retry);
(b) **flips**: its final status changed between pass and fail at least ``min_flips`` times, over
    at least ``min_runs`` runs.

Flaky status expires: when its last ``expire_after_passes`` runs were all clean passes (final
PASS with no failing attempt - a pass on retry is not clean), the test is not flaky, whatever
older evidence says. A test that always fails has no mixed outcomes and no flips: it is broken,
not flaky.

The score (0..1) ranks flaky tests, using the rules that fired only, combined as their maximum:

* rule (a): the share of the test's commit groups, among those where mixed outcomes could be
  seen (two or more runs, or a run with retries), that did show both pass and fail;
* rule (b): ``flips / (runs_considered - 1)``, 1.0 meaning it changed on every run.

The SQL does the heavy lifting on both SQLite and PostgreSQL: per run and test, the final
status and retry facts come from one GROUP BY; a window function keeps each test's last
``max(window, expire_after_passes)`` runs, and only tests with a failing attempt within their
window come back with all their rows, so Python sees at most that many rows per suspect test.
To spare scanning a long history, that query first covers the most recent runs only; tests
that did not run often enough there to fill their window (and ever failed) are read again over
a span four times longer, until their window is full (see ``_collect``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from itertools import pairwise
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from testledger.common.jsondata import JsonData
from testledger.errors import ConfigError, NotFound
from testledger.store.tables import test_results, test_runs

__all__ = [
    "FlakyConfig",
    "FlakyTest",
    "find_flaky",
    "flaky_test_ids",
    "is_flaky_result",
]

_FAILING = ("FAIL", "ERROR")
_COUNTED_RUN_STATUSES = ("finished", "aborted")
#: The first pass covers this many windows of the most recent runs (see the module docstring).
_SLICE_WINDOWS = 4
#: Test ids per IN (...) list: well below SQLite's bound-parameter limit.
_CHUNK = 500
_HEX_SHA = re.compile(r"[0-9a-fA-F]{12,}")


@dataclass(frozen=True)
class FlakyConfig:
    """``[tool.testledger.flaky]``; see the module docstring for what each knob means."""

    window: int = 30
    min_flips: int = 3
    min_runs: int = 5
    outage_share: float = 0.5
    expire_after_passes: int = 30
    outage_min_tests: int = 5

    def __post_init__(self) -> None:
        for name in ("window", "min_flips", "min_runs", "expire_after_passes", "outage_min_tests"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"flaky.{name} must be an integer, not {value!r}")
        share = self.outage_share
        if isinstance(share, bool) or not isinstance(share, (int, float)):
            raise ConfigError(f"flaky.outage_share must be a number, not {share!r}")
        # A flip needs two runs, so a window of one could never show one.
        if self.window < 2:
            raise ConfigError("flaky.window must be at least 2")
        if not 1 <= self.min_flips < self.window:
            raise ConfigError("flaky.min_flips must be at least 1 and less than flaky.window")
        if not 2 <= self.min_runs <= self.window:
            raise ConfigError("flaky.min_runs must be between 2 and flaky.window")
        if not 0 < share <= 1:
            raise ConfigError("flaky.outage_share must be greater than 0 and at most 1")
        if self.expire_after_passes < 1:
            raise ConfigError("flaky.expire_after_passes must be at least 1")
        if self.outage_min_tests < 1:
            raise ConfigError("flaky.outage_min_tests must be at least 1")

    @classmethod
    def from_settings(cls, tool_table: Mapping[str, Any]) -> FlakyConfig:
        """The config from the ``[tool.testledger]`` table (``Settings.tool``): its ``flaky``
        sub-table, every key optional. The sub-table itself is accepted too (callers pass
        either): a mapping without a ``flaky`` key that names any flaky option is taken as
        the sub-table. Raises ConfigError on unknown keys or bad values."""
        known = {f.name for f in fields(cls)}
        if "flaky" in tool_table:
            table = tool_table["flaky"]
        elif known.intersection(tool_table):
            table = tool_table
        else:
            table = {}  # a [tool.testledger] table without a flaky section
        if not isinstance(table, Mapping):
            raise ConfigError("[tool.testledger.flaky] must be a table")
        unknown = sorted(str(key) for key in table if key not in known)
        if unknown:
            raise ConfigError(f"unknown [tool.testledger.flaky] key(s): {', '.join(unknown)}")
        return cls(**{str(key): value for key, value in table.items()})

    @property
    def keep(self) -> int:
        """Runs read per test: enough for the window and for the expiry check."""
        return max(self.window, self.expire_after_passes)


@dataclass(frozen=True)
class FlakyTest(JsonData):
    """One flaky test with the evidence that makes it so (run ids are ``test_runs.id``)."""

    test_id: str
    suite: str
    score: float
    reasons: list[str]
    evidence_run_ids: list[int]
    runs_considered: int
    flips: int
    last_failure_run_id: int | None
    last_failure_result_id: int | None
    consecutive_passes: int


@dataclass(frozen=True, slots=True)
class _RunOutcome:
    """One counted run of one test, as the SQL returns it."""

    run_id: int
    commit: str | None
    final: str  # "P" or "F": SKIP finals never come back
    attempts: int
    retried_ok: bool  # a failing attempt followed by a passing one
    has_failure: bool  # any failing attempt
    last_fail_result_id: int | None

    @property
    def clean_pass(self) -> bool:
        return self.final == "P" and not self.has_failure


_Key = tuple[str, str]  # (suite, test_id)


# -- SQL ----------------------------------------------------------------------------------------


def _scope(
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


def _horizon(connection: Connection, scope: list[sa.ColumnElement[bool]], runs: int) -> Any:
    """The timestamp of the ``runs``-th most recent counted run; None when there are fewer."""
    return connection.execute(
        sa.select(test_runs.c.run_timestamp)
        .where(*scope)
        .order_by(test_runs.c.run_timestamp.desc(), test_runs.c.id.desc())
        .offset(runs - 1)
        .limit(1)
    ).scalar()


def _counted_runs(scope: list[sa.ColumnElement[bool]], since: Any) -> sa.CTE:
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
        )
        .where(*run_where)
        .cte("counted_runs")
    )


def _per_run(runs: sa.CTE, test_ids: Sequence[str] | None) -> sa.Subquery:
    """Per counted run and test: its attempts, and which attempts passed and failed (to tell
    its final status and whether a retry passed after a failure)."""
    r = test_results.c
    failing = r.status.in_(_FAILING)
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


def _ranked(runs: sa.CTE, per_run: sa.Subquery) -> sa.Subquery:
    """Each test's runs with a pass or fail final status, numbered newest first (``rn``) and
    counted (``n``) per suite and test."""
    p = per_run.c
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
        .select_from(per_run.join(runs, runs.c.id == p.run_id))
        .where(final != "S")
        .subquery("ranked")
    )


def _window_query(
    config: FlakyConfig,
    scope: list[sa.ColumnElement[bool]],
    since: Any,
    test_ids: Sequence[str] | None,
) -> sa.Select[Any]:
    """Per suite and test: its last ``config.keep`` counted runs, newest first, for tests with
    a failing attempt in their last ``config.window``; one row (with its run count ``n``) for
    every other test, so the caller knows whether the slice held its whole window."""
    runs = _counted_runs(scope, since)
    k = _ranked(runs, _per_run(runs, test_ids)).c
    failed_in_window = sa.case((sa.and_(k.rn <= config.window, k.first_fail.is_not(None)), 1))
    kept = (
        sa.select(
            *k,
            sa.func.max(failed_in_window).over(partition_by=(k.suite, k.test_id)).label("suspect"),
        )
        .where(k.rn <= config.keep)
        .subquery("kept")
    )
    return (
        sa.select(kept)
        .where(sa.or_(kept.c.suspect == 1, kept.c.rn == 1))
        .order_by(kept.c.suite, kept.c.test_id, kept.c.rn)
    )


def _chunks(test_ids: Sequence[str] | None) -> Iterator[Sequence[str] | None]:
    if test_ids is None:
        yield None
        return
    for start in range(0, len(test_ids), _CHUNK):
        yield test_ids[start : start + _CHUNK]


def _read_windows(
    connection: Connection,
    config: FlakyConfig,
    scope: list[sa.ColumnElement[bool]],
    since: Any,
    test_ids: Sequence[str] | None,
) -> tuple[dict[_Key, list[_RunOutcome]], set[_Key]]:
    """Suspect tests' runs (newest first), and the tests whose ``keep`` runs were all seen."""
    suspects: dict[_Key, list[_RunOutcome]] = {}
    complete: set[_Key] = set()
    for chunk in _chunks(test_ids):
        for row in connection.execute(_window_query(config, scope, since, chunk)):
            key = (str(row.suite), str(row.test_id))
            if row.n >= config.keep:
                complete.add(key)
            if row.suspect != 1:
                continue
            suspects.setdefault(key, []).append(
                _RunOutcome(
                    run_id=int(row.run_id),
                    commit=row.commit_hash,
                    final=str(row.final),
                    attempts=int(row.attempts),
                    retried_ok=row.first_fail is not None
                    and row.last_pass is not None
                    and row.first_fail < row.last_pass,
                    has_failure=row.first_fail is not None,
                    last_fail_result_id=None if row.last_fail_id is None else int(row.last_fail_id),
                )
            )
    return suspects, complete


def _ever_failed(
    connection: Connection,
    scope: list[sa.ColumnElement[bool]],
    test_ids: Sequence[str] | None,
) -> set[_Key]:
    """Tests with a failing attempt in any counted run (read through the status index)."""
    found: set[_Key] = set()
    for chunk in _chunks(test_ids):
        query = (
            sa.select(test_runs.c.suite, test_results.c.test_id)
            .distinct()
            .select_from(test_results.join(test_runs, test_runs.c.id == test_results.c.run_id))
            .where(test_results.c.status.in_(_FAILING), *scope)
        )
        if chunk is not None:
            query = query.where(test_results.c.test_id.in_(chunk))
        found.update((str(s), str(t)) for s, t in connection.execute(query))
    return found


def _collect(
    connection: Connection,
    config: FlakyConfig,
    scope: list[sa.ColumnElement[bool]],
    test_ids: Sequence[str] | None,
) -> dict[_Key, list[_RunOutcome]]:
    """Every suspect test's last ``keep`` counted runs, newest first.

    The first pass reads the most recent ``4 x keep`` runs. A test that ran fewer than ``keep``
    times there (a sharded suite, a test that stopped running) has a window reaching further
    back: if it ever failed, it is read again over four times as many runs, and so on until
    its window is full or the whole history was read. Tests that never failed are never
    re-read: nothing can make them flaky."""
    suspects: dict[_Key, list[_RunOutcome]] = {}
    pending: set[_Key] | None = None  # None: every test, in the first pass
    ids = test_ids
    span = _SLICE_WINDOWS * config.keep
    while True:
        since = _horizon(connection, scope, span)
        found, complete = _read_windows(connection, config, scope, since, ids)
        suspects.update(
            (key, runs) for key, runs in found.items() if pending is None or key in pending
        )
        if since is None:
            return suspects  # that pass read the whole history
        if pending is None:
            pending = _ever_failed(connection, scope, test_ids)
        pending -= complete
        for key in pending:
            suspects.pop(key, None)  # judged on a partial window so far
        if not pending:
            return suspects
        ids = sorted({test_id for _, test_id in pending})
        span *= _SLICE_WINDOWS


# -- the rules ------------------------------------------------------------------------------------


def _short(commit: str) -> str:
    return commit[:7] if _HEX_SHA.fullmatch(commit) else commit


def _runs_text(run_ids: Iterable[int]) -> str:
    ids = sorted(set(run_ids))
    return ("run " if len(ids) == 1 else "runs ") + ", ".join(str(i) for i in ids)


def _judge(key: _Key, newest_first: list[_RunOutcome], config: FlakyConfig) -> FlakyTest | None:
    consecutive = 0
    for outcome in newest_first:
        if not outcome.clean_pass:
            break
        consecutive += 1
    if consecutive >= config.expire_after_passes:
        return None
    window = list(reversed(newest_first[: config.window]))  # oldest first
    reasons: list[str] = []
    evidence: set[int] = set()
    scores: list[float] = []

    # Rule (a): group by commit; a run without a commit is a group of its own.
    groups: dict[str | int, list[_RunOutcome]] = {}
    for outcome in window:
        groups.setdefault(outcome.commit or outcome.run_id, []).append(outcome)
    observable = mixed = 0
    for group in groups.values():
        if len(group) < 2 and group[0].attempts < 2:
            continue  # one run, one attempt: no way to see mixed outcomes
        observable += 1
        finals = {o.final for o in group}
        if len(finals) == 2 or any(o.retried_ok for o in group):
            mixed += 1
        if len(finals) == 2 and group[0].commit is not None:
            reasons.append(
                f"passed and failed on commit {_short(group[0].commit)} "
                f"({_runs_text(o.run_id for o in group)})"
            )
            evidence.update(o.run_id for o in group)
    retried = [o.run_id for o in window if o.retried_ok]
    if retried:
        reasons.append(f"failed then passed on retry in {_runs_text(retried)}")
        evidence.update(retried)
    if reasons:
        scores.append(mixed / observable)

    # Rule (b): changes between consecutive counted runs.
    flip_runs = [
        (before.run_id, after.run_id)
        for before, after in pairwise(window)
        if before.final != after.final
    ]
    flips = len(flip_runs)
    if len(window) >= config.min_runs and flips >= config.min_flips:
        reasons.append(f"flipped {flips} times in its last {len(window)} runs")
        evidence.update(run_id for pair in flip_runs for run_id in pair)
        scores.append(flips / (len(window) - 1))

    if not scores:
        return None
    last_failure = next((o for o in newest_first if o.last_fail_result_id is not None), None)
    return FlakyTest(
        test_id=key[1],
        suite=key[0],
        score=round(max(scores), 4),
        reasons=reasons,
        evidence_run_ids=sorted(evidence),
        runs_considered=len(window),
        flips=flips,
        last_failure_run_id=None if last_failure is None else last_failure.run_id,
        last_failure_result_id=None if last_failure is None else last_failure.last_fail_result_id,
        consecutive_passes=consecutive,
    )


# -- API --------------------------------------------------------------------------------------


def _find(
    connection: Connection,
    config: FlakyConfig,
    suite: str | None,
    branch: str | None,
    test_ids: Iterable[str] | None,
    as_of: tuple[datetime, int] | None = None,
) -> list[FlakyTest]:
    ids = None if test_ids is None else sorted(set(test_ids))
    if ids is not None and not ids:
        return []
    scope = _scope(config, suite, branch, as_of)
    found = [
        judged
        for key, runs in _collect(connection, config, scope, ids).items()
        if (judged := _judge(key, runs, config)) is not None
    ]
    found.sort(key=lambda f: (-f.score, f.test_id, f.suite))
    return found


def find_flaky(
    connection: Connection,
    *,
    config: FlakyConfig | None = None,
    suite: str | None = None,
    branch: str | None = None,
    test_ids: Iterable[str] | None = None,
) -> list[FlakyTest]:
    """The flaky tests (of one suite and branch, or all), by score descending then test_id."""
    return _find(connection, config or FlakyConfig(), suite, branch, test_ids)


def flaky_test_ids(
    connection: Connection,
    test_ids: Iterable[str],
    suite: str | None = None,
    config: FlakyConfig | None = None,
    *,
    branch: str | None = None,
) -> set[str]:
    """Which of ``test_ids`` are flaky now (in ``suite``, or in any suite when None)."""
    return {f.test_id for f in _find(connection, config or FlakyConfig(), suite, branch, test_ids)}


def is_flaky_result(
    connection: Connection, result_id: int, config: FlakyConfig | None = None
) -> bool:
    """Whether the test of result ``result_id`` was flaky as of that result's run: its suite's
    history up to and including that run (all branches), so the answer never changes later."""
    row = connection.execute(
        sa.select(
            test_results.c.test_id,
            test_runs.c.id,
            test_runs.c.suite,
            test_runs.c.run_timestamp,
        )
        .select_from(test_results.join(test_runs, test_runs.c.id == test_results.c.run_id))
        .where(test_results.c.id == result_id)
    ).first()
    if row is None:
        raise NotFound(f"no test result with id {result_id}")
    found = _find(
        connection,
        config or FlakyConfig(),
        row.suite,
        None,
        [row.test_id],
        as_of=(row.run_timestamp, int(row.id)),
    )
    return bool(found)
