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
    at least ``min_runs`` runs, counting changes between consecutive runs of one branch only (a
    test broken on a pull request's branch, whose runs come between the main branch's passes,
    does not flip).

Flaky status by these two rules expires: when its last ``expire_after_passes`` runs were all
clean passes (final PASS with no failing attempt - a pass on retry is not clean), whatever older
evidence says. A test that always fails has no mixed outcomes and no flips: it is broken, not
flaky.

A third rule, (c) the **score rule** of :mod:`testledger.analyze.flaky.score`, reads further
back: over the scope's last ``history`` counted runs, weighted by age (``half_life``), it
weighs the test's separate failure episodes against its own failure rate, leaving out the
failures shared with ``neighbour_share`` or more of the run's other tests; it fires at
``min_confidence`` and expires when the latest clean passes outlast the test's failure rate.
It finds low-rate flakes without same-commit or retry evidence (a 5% flake fails once or
twice in 30 runs: too few flips), and not the lookalikes: a bug's failing streak is one
episode, an outage's failures are shared, a branch's breakage is one episode of its branch.

Each flaky test lists the rules that fired (``rules``: ``same_commit``, ``retry``, ``flips``,
``score``), a sentence per rule (``reasons``), and the score rule's figures whichever rule
fired: ``confidence`` (0..1, how sure the score rule is), ``failure_rate`` (weighted),
``episodes``, ``independence``, ``history_runs``, ``history_failures`` and
``crowded_failures`` (left out: too many others failed with them).

The score (0..1) ranks flaky tests, using the rules that fired only, combined as their maximum:

* rule (a): the share of the test's commit groups, among those where mixed outcomes could be
  seen (two or more runs, or a run with retries), that did show both pass and fail;
* rule (b): ``flips / (runs_considered - 1)``, 1.0 meaning it changed on every run;
* rule (c): two changes per episode over the runs read, at most 1.

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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from testledger.analyze.flaky.config import FlakyConfig
from testledger.analyze.flaky.score import ScoreEvidence, SpanRun, read_span, score
from testledger.analyze.flaky.sql import (
    FAILING,
    chunks,
    counted_runs,
    horizon,
    per_run,
    ranked,
    run_scope,
)
from testledger.common.jsondata import JsonData
from testledger.errors import NotFound
from testledger.store.tables import test_results, test_runs

__all__ = [
    "FlakyTest",
    "find_flaky",
    "flaky_test_ids",
    "is_flaky_result",
]

#: The first pass covers this many windows of the most recent runs (see the module docstring).
_SLICE_WINDOWS = 4
_HEX_SHA = re.compile(r"[0-9a-fA-F]{12,}")


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
    #: The rules that fired: ``same_commit``, ``retry``, ``flips`` (recent window), ``score``.
    rules: list[str]
    #: The score rule's figures over the longer history (0 when the test did not fail there);
    #: ``confidence`` (0..1) is how sure that rule is, whichever rule fired.
    confidence: float
    failure_rate: float
    episodes: float
    independence: float
    history_runs: int
    history_failures: int
    crowded_failures: int


@dataclass(frozen=True, slots=True)
class _RunOutcome:
    """One counted run of one test, as the SQL returns it."""

    run_id: int
    commit: str | None
    branch: str
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


def _window_query(
    config: FlakyConfig,
    scope: list[sa.ColumnElement[bool]],
    since: Any,
    test_ids: Sequence[str] | None,
) -> sa.Select[Any]:
    """Per suite and test: its last ``config.keep`` counted runs, newest first, for tests with
    a failing attempt in their last ``config.window``; one row (with its run count ``n``) for
    every other test, so the caller knows whether the slice held its whole window."""
    runs = counted_runs(scope, since)
    k = ranked(runs, per_run(runs, test_ids)).c
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
    for chunk in chunks(test_ids):
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
                    branch=str(row.branch_name),
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
    for chunk in chunks(test_ids):
        query = (
            sa.select(test_runs.c.suite, test_results.c.test_id)
            .distinct()
            .select_from(test_results.join(test_runs, test_runs.c.id == test_results.c.run_id))
            .where(test_results.c.status.in_(FAILING), *scope)
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
    suite: str | None = None,
) -> dict[_Key, list[_RunOutcome]]:
    """Every suspect test's last ``keep`` counted runs, newest first.

    The first pass reads the most recent ``4 x keep`` runs. A test that ran fewer than ``keep``
    times there (a sharded suite, a test that stopped running) has a window reaching further
    back: if it ever failed, it is read again over four times as many runs, and so on until
    its window is full or the whole history was read. Tests that never failed are never
    re-read: nothing can make them flaky. Given tests of one suite whose windows the first
    pass filled are not even looked up (the ever-failed query reads every failure of the tests
    it is given: tens of milliseconds on a million results, for compare, summary and gate)."""
    suspects: dict[_Key, list[_RunOutcome]] = {}
    pending: set[_Key] | None = None  # None: every test, in the first pass
    ids = test_ids
    span = _SLICE_WINDOWS * config.keep
    while True:
        since = horizon(connection, scope, span)
        found, complete = _read_windows(connection, config, scope, since, ids)
        suspects.update(
            (key, runs) for key, runs in found.items() if pending is None or key in pending
        )
        if since is None:
            return suspects  # that pass read the whole history
        if pending is None:
            if suite is not None and test_ids is not None:
                unfilled = [t for t in test_ids if (suite, t) not in complete]
                pending = _ever_failed(connection, scope, unfilled) if unfilled else set()
            else:
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


@dataclass(slots=True)
class _WindowVerdict:
    """What the recent-window rules (a) and (b) found."""

    reasons: list[str]
    evidence: set[int]
    scores: list[float]
    rules: list[str]
    runs_considered: int
    flips: int


def _window_rules(newest_first: list[_RunOutcome], config: FlakyConfig) -> _WindowVerdict:
    window = list(reversed(newest_first[: config.window]))  # oldest first
    verdict = _WindowVerdict([], set(), [], [], len(window), 0)

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
            verdict.reasons.append(
                f"passed and failed on commit {_short(group[0].commit)} "
                f"({_runs_text(o.run_id for o in group)})"
            )
            verdict.evidence.update(o.run_id for o in group)
            if "same_commit" not in verdict.rules:
                verdict.rules.append("same_commit")
    retried = [o.run_id for o in window if o.retried_ok]
    if retried:
        verdict.reasons.append(f"failed then passed on retry in {_runs_text(retried)}")
        verdict.evidence.update(retried)
        verdict.rules.append("retry")
    if verdict.reasons:
        verdict.scores.append(mixed / observable)

    # Rule (b): changes between consecutive counted runs of one branch (a test broken on one
    # pull request's branch alternates with the main branch's passes without flipping).
    last_of_branch: dict[str, _RunOutcome] = {}
    flip_runs: list[tuple[int, int]] = []
    for outcome in window:
        before = last_of_branch.get(outcome.branch)
        if before is not None and before.final != outcome.final:
            flip_runs.append((before.run_id, outcome.run_id))
        last_of_branch[outcome.branch] = outcome
    verdict.flips = len(flip_runs)
    if len(window) >= config.min_runs and verdict.flips >= config.min_flips:
        verdict.reasons.append(f"flipped {verdict.flips} times in its last {len(window)} runs")
        verdict.evidence.update(run_id for pair in flip_runs for run_id in pair)
        verdict.scores.append(verdict.flips / (len(window) - 1))
        verdict.rules.append("flips")
    return verdict


def _span_window(span: Sequence[SpanRun], config: FlakyConfig) -> list[_RunOutcome]:
    """A test's newest runs as the window rules read them, from the span's reading (for a test
    whose failures are all older than its window: its recent runs are then all passes)."""
    return [
        _RunOutcome(
            run_id=r.run_id,
            commit=r.commit,
            branch=r.branch,
            final="F" if r.failed else "P",
            attempts=2 if r.retried_ok else 1,
            retried_ok=r.retried_ok,
            has_failure=r.has_failure,
            last_fail_result_id=r.last_fail_result_id,
        )
        for r in span[: config.keep]
    ]


def _judge(
    key: _Key,
    newest_first: list[_RunOutcome] | None,
    span: Sequence[SpanRun] | None,
    config: FlakyConfig,
) -> FlakyTest | None:
    """The verdict of every rule on one test: ``newest_first`` its recent window (None when it
    did not fail there), ``span`` its runs over the score rule's history (None: no failure)."""
    recent = newest_first if newest_first is not None else _span_window(span or [], config)
    consecutive = 0
    for outcome in recent:
        if not outcome.clean_pass:
            break
        consecutive += 1
    verdict = _window_rules(recent, config)
    if consecutive >= config.expire_after_passes:
        verdict = _WindowVerdict([], set(), [], [], verdict.runs_considered, verdict.flips)
    evidence = score(span, config) if span else None
    if evidence is not None and evidence.fired:
        verdict.reasons.append(evidence.sentence())
        verdict.evidence.update(evidence.evidence_run_ids)
        verdict.scores.append(evidence.flip_rate)
        verdict.rules.append("score")
    if not verdict.scores:
        return None
    last_failure = next((o for o in recent if o.last_fail_result_id is not None), None)
    if last_failure is None and span:
        last_span = next((r for r in span if r.last_fail_result_id is not None), None)
        if last_span is not None:
            last_failure = _span_window([last_span], config)[0]
    return FlakyTest(
        test_id=key[1],
        suite=key[0],
        score=round(max(verdict.scores), 4),
        reasons=verdict.reasons,
        evidence_run_ids=sorted(verdict.evidence),
        runs_considered=verdict.runs_considered,
        flips=verdict.flips,
        last_failure_run_id=None if last_failure is None else last_failure.run_id,
        last_failure_result_id=None if last_failure is None else last_failure.last_fail_result_id,
        consecutive_passes=consecutive,
        rules=verdict.rules,
        **_score_fields(evidence),
    )


def _score_fields(evidence: ScoreEvidence | None) -> dict[str, Any]:
    if evidence is None:
        return {
            "confidence": 0.0,
            "failure_rate": 0.0,
            "episodes": 0.0,
            "independence": 0.0,
            "history_runs": 0,
            "history_failures": 0,
            "crowded_failures": 0,
        }
    return {
        "confidence": evidence.confidence,
        "failure_rate": evidence.failure_rate,
        "episodes": evidence.episodes,
        "independence": evidence.independence,
        "history_runs": evidence.runs,
        "history_failures": evidence.failures,
        "crowded_failures": evidence.crowded,
    }


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
    scope = run_scope(config, suite, branch, as_of)
    windows = _collect(connection, config, scope, ids, suite)
    spans = read_span(connection, config, scope, ids)
    found = [
        judged
        for key in sorted(windows.keys() | spans.keys())
        if (judged := _judge(key, windows.get(key), spans.get(key), config)) is not None
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
