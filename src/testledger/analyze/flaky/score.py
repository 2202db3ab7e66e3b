"""The score rule of flaky detection: failures that come back on their own, weighed over a long,
decaying history (rule (c) of :mod:`testledger.analyze.flaky.finder`).

A flaky test fails now and then, and each failure is over by the next run: its failures come
in many short *episodes*. What looks like it without being flaky fails otherwise:

* a test that fails while a bug exists fails in one long streak, then passes once it is fixed:
  one episode for many failures;
* a test hit by an infrastructure outage fails with a large share of the run's other tests;
* a test broken on one pull request's branch fails in that branch's runs only.

So, over a test's last ``history`` counted runs of the scope (``age`` 0 is the newest), each run
weighs ``0.5 ** (age / half_life)``, and:

* a failing run in which ``neighbour_share`` or more of the run's other executed tests failed
  is left out (it says nothing about the test); below that, its failure counts
  ``1 - share / neighbour_share`` of its weight (the *isolation* of the failure);
* an *episode* starts at a failing run (final FAIL/ERROR, or a failed attempt passed on retry)
  whose previous counted run of the same branch passed, or that is its branch's first: a test
  broken on its own branch, or during a bug, makes one episode however long it fails;
* a commit that both passed and failed, or a pass on retry, adds one more episode of its weight:
  it is the direct evidence that the same code does both.

With ``F`` the weighted failures and ``W`` the weighted runs, the failure rate is ``f = F / W``;
independent failures at that rate would start ``F * (1 - f)`` episodes. The *independence* is
the episodes seen over that expectation (at most 1): about 1 for a flaky test, 1/L for a streak
of L failures. The confidence is ``independence * (1 - 0.5 ** (episodes - 1))``: one episode is
no evidence, two give 0.5, three 0.75, four 0.875. The rule fires at ``min_confidence``.

It expires on its own terms: when the test's latest clean passes make a streak that a test
failing at its rate before them would show less than once in a hundred times
(``(1 - f_before) ** streak < 0.01``).
A test failing 5% of the time passes 30 runs in a row one time in five, so the recent-window
rules' ``expire_after_passes`` would end a low-rate flake on its quiet spells.

Reads are bounded: the scope's last ``history`` counted runs (one query), the tests that failed
in them (through the status index), and those tests' outcomes in those runs only.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import product
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from testledger.analyze.flaky.config import FlakyConfig
from testledger.analyze.flaky.sql import CHUNK, FAILING, chunks
from testledger.store.tables import test_results, test_runs

__all__ = ["ScoreEvidence", "SpanRun", "read_span", "score"]

_Key = tuple[str, str]  # (suite, test_id)
#: A clean-pass streak less likely than this for a test failing at its rate ends the rule.
_EXPIRY_CHANCE = 0.01


@dataclass(frozen=True, slots=True)
class SpanRun:
    """One counted run of one test within the scope's last ``history`` runs."""

    run_id: int
    age: int  # 0: the newest counted run of the scope
    branch: str
    commit: str | None
    failed: bool  # final status FAIL or ERROR
    retried_ok: bool  # a failing attempt followed by a passing one
    has_failure: bool  # any failing attempt
    others_failing: float  # share of the run's other executed tests whose final status failed
    last_fail_result_id: int | None


@dataclass(frozen=True, slots=True)
class ScoreEvidence:
    """What the score rule saw of one test, and whether it fired."""

    fired: bool
    confidence: float
    failure_rate: float  # weighted, among the runs that count
    episodes: float  # weighted, direct evidence included
    independence: float
    runs: int  # counted runs of the test in the span, crowded failures left out
    failures: int  # failing runs among them (a pass on retry included)
    crowded: int  # failing runs left out: too many of the run's other tests failed too
    same_commit: int  # commits that both passed and failed
    retries: int  # runs passed on retry
    clean_streak: int  # latest runs passed cleanly in a row
    expired: bool
    evidence_run_ids: tuple[int, ...]  # the runs that started an episode

    @property
    def flip_rate(self) -> float:
        """Changes between pass and fail per run (two per episode), comparable with the flip
        rule's score."""
        return 0.0 if self.runs < 2 else min(1.0, 2.0 * self.episodes / self.runs)

    def sentence(self) -> str:
        crowded = f"; {self.crowded} more with many other tests failing" if self.crowded else ""
        direct = []
        if self.same_commit:
            direct.append(f"{self.same_commit} commit(s) passed and failed")
        if self.retries:
            direct.append(f"{self.retries} pass(es) on retry")
        return (
            f"failed in {self.failures} of its last {self.runs} runs "
            f"(weighted rate {self.failure_rate:.1%}), {self.episodes:.1f} separate times"
            + (f" ({', '.join(direct)})" if direct else "")
            + f", independence {self.independence:.2f}{crowded}: "
            f"confidence {self.confidence:.2f}"
        )


# -- reading -----------------------------------------------------------------------------------


def _span_runs(
    connection: Connection, scope: list[sa.ColumnElement[bool]], history: int
) -> list[Any]:
    runs = test_runs.c
    return list(
        connection.execute(
            sa.select(
                runs.id,
                runs.run_timestamp,
                runs.suite,
                runs.branch_name,
                runs.commit_hash,
                runs.tests_failed,
                (runs.total_tests - runs.tests_skipped).label("executed"),
            )
            .where(*scope)
            .order_by(runs.run_timestamp.desc(), runs.id.desc())
            .limit(history)
        ).all()
    )


def _id_chunks(run_ids: Sequence[int]) -> Iterator[Sequence[int]]:
    for start in range(0, len(run_ids), CHUNK):
        yield run_ids[start : start + CHUNK]


def _failed_tests(connection: Connection, run_ids: Sequence[int]) -> list[str]:
    """Tests with a failing attempt in ``run_ids`` (through the index on status and run)."""
    r = test_results.c
    found: set[str] = set()
    for runs in _id_chunks(run_ids):
        query = sa.select(r.test_id).distinct().where(r.status.in_(FAILING), r.run_id.in_(runs))
        found.update(str(test_id) for test_id in connection.execute(query).scalars())
    return sorted(found)


#: One test's attempts in one run, folded as they come: [last attempt, last passing attempt,
#: first failing attempt, last failing attempt, last failing result id] (0: none).
_Attempts = list[int]


def _attempts(
    connection: Connection, run_ids: Sequence[int], test_ids: Sequence[str], results: int
) -> dict[tuple[int, str], _Attempts]:
    """Per (run, test) of the span: its attempts. Plain rows folded here: a GROUP BY with
    window functions over them costs SQLite five times as much as reading them. When the
    runs hold fewer results (``results``) than one seek per run and test would cost, every
    result of the runs is read and the other tests are dropped here."""
    r = test_results.c
    folded: dict[tuple[int, str], _Attempts] = {}
    wanted = set(test_ids)
    every = results < len(run_ids) * len(test_ids)
    for runs, chunk in product(_id_chunks(run_ids), [None] if every else chunks(test_ids)):
        query = sa.select(r.run_id, r.test_id, r.attempt, r.status, r.id).where(r.run_id.in_(runs))
        if chunk is not None:
            query = query.where(r.test_id.in_(chunk))
        for run_id, test_id, attempt, status, result_id in connection.execute(query).all():
            if every and test_id not in wanted:
                continue
            seen = folded.get((run_id, test_id))
            if seen is None:
                seen = folded[(run_id, test_id)] = [0, 0, 0, 0, 0]
            if attempt > seen[0]:
                seen[0] = attempt
            if status == "PASS":
                seen[1] = max(seen[1], attempt)
            elif status in FAILING:
                seen[2] = min(seen[2], attempt) if seen[2] else attempt
                seen[3] = max(seen[3], attempt)
                seen[4] = max(seen[4], result_id)
    return folded


def read_span(
    connection: Connection,
    config: FlakyConfig,
    scope: list[sa.ColumnElement[bool]],
    test_ids: Sequence[str] | None,
) -> dict[_Key, list[SpanRun]]:
    """Each test that failed in the scope's last ``history`` counted runs (of ``test_ids``
    when given) where most of the other tests passed: its runs there, newest first."""
    span = _span_runs(connection, scope, config.history)
    if not span:
        return {}
    # (age, suite, branch, commit, failed tests, other executed tests) of each run.
    facts = {
        int(r.id): (
            age,
            str(r.suite),
            str(r.branch_name),
            r.commit_hash,
            int(r.tests_failed or 0),
            int(r.executed or 0) - 1,
        )
        for age, r in enumerate(span)
    }
    # Failures in a run where too many other tests failed are never evidence: only the other
    # runs can make a test worth reading.
    alone = [
        run_id
        for run_id, (*_, failed_tests, others) in facts.items()
        if failed_tests - 1 < config.neighbour_share * others
    ]
    # Tests named by the caller (detection: the failing tests of one run) are read directly:
    # asking which of them failed first would search their whole history by test id.
    ids = sorted(set(test_ids)) if test_ids is not None else _failed_tests(connection, alone)
    found: dict[_Key, list[SpanRun]] = {}
    if not ids:
        return {}
    results = sum(others + 1 for *_, others in facts.values())
    for (run_id, test_id), (last, last_pass, first_fail, last_fail, fail_id) in _attempts(
        connection, list(facts), ids, results
    ).items():
        fact = facts.get(run_id)
        if fact is None or last not in (last_pass, last_fail):
            continue  # beyond the span (a tie of its boundary), or a SKIP final
        age, suite, branch, commit, failed_tests, others = fact
        failed = last_fail == last
        share = (failed_tests - failed) / others if others > 0 else 0.0
        found.setdefault((suite, str(test_id)), []).append(
            SpanRun(
                run_id=run_id,
                age=age,
                branch=branch,
                commit=commit,
                failed=failed,
                retried_ok=0 < first_fail < last_pass,
                has_failure=first_fail > 0,
                others_failing=min(max(share, 0.0), 1.0),
                last_fail_result_id=fail_id or None,
            )
        )
    for runs_ in found.values():
        runs_.sort(key=lambda r: r.age)
    return {key: runs_ for key, runs_ in found.items() if any(r.has_failure for r in runs_)}


# -- the rule ----------------------------------------------------------------------------------


def _direct_evidence(
    counted: Iterable[SpanRun], weight: dict[int, float]
) -> tuple[float, int, int, list[int]]:
    """(weighted episodes, mixed commits, retries, runs) of the direct evidence: commits that
    both passed and failed, and passes on retry."""
    by_commit: dict[str, list[SpanRun]] = {}
    extra = 0.0
    retries = 0
    runs: list[int] = []
    for run in counted:
        if run.commit:
            by_commit.setdefault(run.commit, []).append(run)
        if run.retried_ok:
            retries += 1
            extra += weight[run.run_id]
            runs.append(run.run_id)
    mixed = 0
    for group in by_commit.values():
        failing = [r for r in group if r.failed]
        if failing and len(failing) < len(group):
            mixed += 1
            extra += max(weight[r.run_id] for r in failing)
            runs += [r.run_id for r in group]
    return extra, mixed, retries, runs


def score(newest_first: Sequence[SpanRun], config: FlakyConfig) -> ScoreEvidence:
    """The score rule over one test's runs of the span (see the module docstring)."""
    limit = config.neighbour_share
    counted = [r for r in newest_first if not (r.has_failure and r.others_failing >= limit)]
    crowded = len(newest_first) - len(counted)
    weight = {r.run_id: 0.5 ** (r.age / config.half_life) for r in counted}
    total = failures = episodes = 0.0
    starts: list[int] = []
    previous: dict[str, bool] = {}  # each branch's last outcome: failed or not
    for run in reversed(counted):
        w = weight[run.run_id]
        total += w
        if run.failed or run.retried_ok:
            isolated = w * (1.0 - run.others_failing / limit)
            failures += isolated
            if not previous.get(run.branch, False):  # its branch's first, or after a pass
                episodes += isolated
                starts.append(run.run_id)
        previous[run.branch] = run.failed
    extra, mixed, retries, direct_runs = _direct_evidence(counted, weight)
    rate = failures / total if total > 0 else 0.0
    expected = failures * (1.0 - rate)
    independence = 1.0 if expected <= 0 else min(1.0, episodes / expected)
    all_episodes = episodes + extra
    confidence = independence * max(0.0, 1.0 - 0.5 ** (all_episodes - 1.0))
    streak = 0
    quiet = 0.0  # the weight of the streak's runs
    for run in counted:
        if run.has_failure:
            break
        streak += 1
        quiet += weight[run.run_id]
    # The rate before the streak: the streak itself would dilute it into its own excuse.
    before = failures / (total - quiet) if total > quiet else 0.0
    expired = before > 0 and (1.0 - min(before, 1.0)) ** streak < _EXPIRY_CHANCE
    fired = config.score_rule and not expired and confidence >= config.min_confidence
    return ScoreEvidence(
        fired=fired,
        confidence=round(confidence, 4),
        failure_rate=round(rate, 4),
        episodes=round(all_episodes, 3),
        independence=round(independence, 4),
        runs=len(counted),
        failures=sum(1 for r in counted if r.failed or r.retried_ok),
        crowded=crowded,
        same_commit=mixed,
        retries=retries,
        clean_streak=streak,
        expired=expired,
        evidence_run_ids=tuple(sorted(set(starts) | set(direct_runs))),
    )
