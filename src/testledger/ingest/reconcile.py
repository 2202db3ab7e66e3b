"""One result per test execution, whatever order its evidence is imported in.

A test's execution can reach the ledger several ways: in a run report (a real run), and as loose
evidence (a watcher observation file, a saved API call; see :mod:`.placement`), which becomes a
*reconstructed* result when its run is not in the ledger. This module holds what both
directions share:

* finding the result a piece of evidence belongs to (:func:`candidates`, :func:`best_match`):
  same suite and test, the result's own time window holding the evidence's time, else a real
  run's window (from 60 s before it started to 10 minutes after it ended: the watcher writes
  after the test). Real results are preferred to reconstructed ones, then the nearest in time;
* merging evidence into a result (:func:`merge_into`): an API call joins
  ``details["api_calls"]`` and fills the model, provider, tokens and duration the result lacks;
* :func:`reconcile_run`: a real run imported after evidence of its tests was reconstructed
  takes those results over (their observations and calls move onto its own results, the
  reconstructed ones are deleted, and a reconstructed run left empty with them), so importing a
  run after its call logs matches its results rather than doubling them; it takes over a
  summary-only run of its session too, and gets the totals of its summary when its results are
  fewer;
* keeping run statistics right after such changes (:func:`refresh_run`).

Reconstructed runs are known by their run key's prefix (``reconstructed-``) and say so in their
metadata (``reconstructed: true``); summary-only runs by ``summary_only: true``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from testledger.ingest.base import LooseResult, verdict
from testledger.model import RunStatus, WatcherObservation
from testledger.store.runs import finish_run
from testledger.store.tables import issues, test_results, test_runs, watcher_insights
from testledger.store.types import format_utc
from testledger.store.writer import PendingObservation, insert_observations

__all__ = [
    "AFTER",
    "BEFORE",
    "RECONSTRUCTED_PREFIX",
    "Candidate",
    "best_match",
    "candidates",
    "holds",
    "merge_into",
    "reconcile_run",
    "refresh_run",
    "set_totals",
]

RECONSTRUCTED_PREFIX = "reconstructed-"
#: How far before a result (or run) started, and after it ended, its evidence may be stamped.
BEFORE = timedelta(seconds=60)
AFTER = timedelta(minutes=10)
#: A summary is of the run that started at its own start, to within this.
SAME_START = timedelta(seconds=1)
#: The result columns an API call fills when the result lacks them.
_FILLED = ("model", "provider", "tokens_total", "tokens_input", "tokens_output", "duration_secs")


@dataclass(slots=True)
class Candidate:
    """A result already in the ledger that evidence of its test may belong to."""

    id: int
    run_id: int
    test_id: str
    attempt: int
    started: datetime | None
    duration: float | None
    details: dict[str, Any]
    values: dict[str, Any]
    latest_observation: datetime | None
    run_started: datetime | None
    run_finished: datetime | None
    reconstructed: bool
    undated: bool
    times: set[str] = field(default_factory=set)
    verdicts: set[tuple[object, ...]] = field(default_factory=set)

    @property
    def start(self) -> datetime | None:
        return self.started or self.run_started


def _is_reconstructed(run_key: str) -> bool:
    return run_key.startswith(RECONSTRUCTED_PREFIX)


def _observation_time(observations: Any) -> datetime | None:
    if not isinstance(observations, dict) or not observations.get("created_at"):
        return None
    return WatcherObservation.from_json(observations).created_at


def candidates(
    connection: Connection, suite: str, test_ids: Iterable[str], *, run_id: int | None = None
) -> dict[str, list[Candidate]]:
    """The ledger's results of these tests in runs of ``suite`` (or of the one run ``run_id``),
    with the times and verdicts of their watcher observations."""
    wanted = sorted(set(test_ids))
    found: dict[str, list[Candidate]] = {test_id: [] for test_id in wanted}
    r, t = test_results, test_runs
    columns = [r.c[name] for name in _FILLED]
    for start in range(0, len(wanted), 500):
        query = (
            sa.select(
                r.c.id, r.c.run_id, r.c.test_id, r.c.attempt, r.c.started_at, r.c.details,
                r.c.watcher_observations, t.c.started_at.label("run_started"),
                t.c.finished_at, t.c.run_key, t.c.run_metadata, *columns,
            )
            .select_from(r.join(t, t.c.id == r.c.run_id))
            .where(t.c.suite == suite)
            .where(r.c.test_id.in_(wanted[start : start + 500]))
        )  # fmt: skip
        if run_id is not None:
            query = query.where(r.c.run_id == run_id)
        for row in connection.execute(query):
            found[row.test_id].append(_candidate(row))
    _load_observations(connection, [c for group in found.values() for c in group])
    return found


def _candidate(row: Any) -> Candidate:
    metadata = row.run_metadata or {}
    return Candidate(
        id=int(row.id),
        run_id=int(row.run_id),
        test_id=row.test_id,
        attempt=int(row.attempt),
        started=row.started_at,
        duration=row.duration_secs,
        details=dict(row.details or {}),
        values={name: getattr(row, name) for name in _FILLED},
        latest_observation=_observation_time(row.watcher_observations),
        run_started=row.run_started,
        run_finished=row.finished_at,
        reconstructed=_is_reconstructed(row.run_key),
        undated=bool(metadata.get("undated")),
    )


def _load_observations(connection: Connection, found: list[Candidate]) -> None:
    by_id = {c.id: c for c in found}
    ids = sorted(by_id)
    w = watcher_insights
    for start in range(0, len(ids), 500):
        rows = connection.execute(
            sa.select(
                w.c.test_result_id, w.c.created_at, w.c.quality_score, w.c.watcher_error,
                w.c.anomalies, w.c.recommendations,
            ).where(w.c.test_result_id.in_(ids[start : start + 500]))
        )  # fmt: skip
        for row in rows:
            candidate = by_id[int(row.test_result_id)]
            candidate.times.add(format_utc(row.created_at))
            candidate.verdicts.add(
                (
                    row.quality_score,
                    row.watcher_error,
                    tuple(row.anomalies or ()),
                    tuple(row.recommendations or ()),
                )
            )


def holds(candidate: Candidate, item: LooseResult) -> bool:
    """Whether the result already holds this evidence (imported before)."""
    if item.call is not None:
        calls = candidate.details.get("api_calls") or []
        return any(isinstance(c, dict) and c.get("id") == item.call.get("id") for c in calls)
    watcher = item.result.watcher
    if watcher is None:
        return False
    if watcher.created_at is not None:
        return format_utc(watcher.created_at) in candidate.times
    return verdict(watcher) in candidate.verdicts


def best_match(
    found: list[Candidate], at: datetime, not_before: datetime | None = None
) -> Candidate | None:
    """The result evidence stamped ``at`` belongs to: a real one before a reconstructed one,
    its own window before its run's, then the nearest start."""
    best: tuple[tuple[bool, int, float], Candidate] | None = None
    for candidate in found:
        start = candidate.start
        if candidate.undated or start is None or (not_before and start <= not_before):
            continue
        took = timedelta(seconds=candidate.duration or 0.0)
        own = candidate.started is not None and (
            candidate.started - BEFORE <= at <= candidate.started + took + AFTER
        )
        run_start = candidate.run_started or start
        run_end = candidate.run_finished or run_start
        in_run = not candidate.reconstructed and run_start - BEFORE <= at <= run_end + AFTER
        if not (own or in_run):
            continue
        distance = abs((at - start).total_seconds()) if start else math.inf
        key = (candidate.reconstructed, 0 if own else 1, distance)
        if best is None or key < best[0]:
            best = (key, candidate)
    return best[1] if best else None


def merge_into(connection: Connection, target: Candidate, item: LooseResult) -> None:
    """Evidence onto the result it belongs to: the watcher observation into its insights (and
    as the result's own when it is the latest), the API call into ``details["api_calls"]``
    with what the result lacks of it (model, provider, tokens, duration)."""
    watcher = item.result.watcher
    if watcher is not None:
        _attach_observation(connection, target, watcher)
    calls = [item.call] if item.call is not None else []
    _merge_calls(connection, target, calls, {k: getattr(item.result, k) for k in _FILLED})


def _attach_observation(
    connection: Connection, target: Candidate, watcher: WatcherObservation
) -> None:
    latest = target.latest_observation
    newer = latest is None or (watcher.created_at is not None and watcher.created_at >= latest)
    pending = PendingObservation(target.test_id, target.attempt, watcher, update_result=newer)
    insert_observations(connection, target.run_id, [pending])
    if watcher.created_at is not None:
        target.times.add(format_utc(watcher.created_at))
    target.verdicts.add(verdict(watcher))
    if newer:
        target.latest_observation = watcher.created_at


def _merge_calls(
    connection: Connection,
    target: Candidate,
    calls: list[dict[str, Any]],
    evidence: dict[str, Any],
) -> None:
    """``calls`` into the result's ``details["api_calls"]``; ``evidence`` (column -> value)
    fills the columns the result has nothing in."""
    if not calls:
        return
    known = {c.get("id") for c in target.details.get("api_calls") or [] if isinstance(c, dict)}
    new = [c for c in calls if c.get("id") not in known]
    if not new:
        return
    target.details["api_calls"] = [*(target.details.get("api_calls") or []), *new]
    values: dict[str, Any] = {"details": target.details}
    for name in _FILLED:
        if target.values.get(name) is None and evidence.get(name) is not None:
            values[name] = target.values[name] = evidence[name]
    connection.execute(sa.update(test_results).where(test_results.c.id == target.id).values(values))


# --------------------------------------------------------------------------- run statistics


def set_totals(connection: Connection, run_id: int, totals: dict[str, int]) -> None:
    """A run's counts as its summary states them (``total``, ``passed``, ``failed``,
    ``skipped``, ``errored``), with the pass rate they give."""
    executed = totals["total"] - totals["skipped"]
    rate = round(100.0 * totals["passed"] / executed, 2) if executed > 0 else None
    connection.execute(
        sa.update(test_runs)
        .where(test_runs.c.id == run_id)
        .values(
            total_tests=totals["total"],
            tests_passed=totals["passed"],
            tests_failed=totals["failed"],
            tests_skipped=totals["skipped"],
            tests_errored=totals.get("errored", 0),
            pass_rate=rate,
        )
    )


def refresh_run(connection: Connection, run_id: int) -> bool:
    """A run's statistics again after results were added, merged or moved. A reconstructed
    run spans its results' times, and is deleted when none is left (False returned); another
    run keeps its wall clock, and the totals of its summary when its results are fewer."""
    run = connection.execute(
        sa.select(
            test_runs.c.run_key, test_runs.c.status, test_runs.c.started_at,
            test_runs.c.finished_at, test_runs.c.duration_secs, test_runs.c.run_metadata,
        ).where(test_runs.c.id == run_id)
    ).one()  # fmt: skip
    if not _is_reconstructed(run.run_key):
        if run.status == RunStatus.RUNNING.value:
            return True  # its recorder finishes it, with its statistics
        stats = finish_run(
            connection,
            run_id,
            RunStatus(run.status),
            finished_at=run.finished_at or run.started_at,
            wall_clock_secs=run.duration_secs,
        )
        totals = (run.run_metadata or {}).get("summary_totals")
        if isinstance(totals, dict) and totals.get("total", 0) > stats.total_tests:
            set_totals(connection, run_id, totals)
        return True
    rows = connection.execute(
        sa.select(test_results.c.started_at, test_results.c.duration_secs).where(
            test_results.c.run_id == run_id
        )
    ).all()
    if not rows:
        _delete_run(connection, run_id, None)
        return False
    starts = [start for start, _ in rows if start is not None]
    ends = [start + timedelta(seconds=took or 0.0) for start, took in rows if start is not None]
    started = min(starts, default=run.started_at)
    finished = max(ends, default=started)
    connection.execute(
        sa.update(test_runs)
        .where(test_runs.c.id == run_id)
        .values(started_at=started, run_timestamp=started)
    )
    wall = (finished - started).total_seconds() if starts else None
    finish_run(connection, run_id, RunStatus.FINISHED, finished_at=finished, wall_clock_secs=wall)
    return True


def _delete_run(connection: Connection, run_id: int, heir: int | None) -> None:
    """Delete a run left empty (or summarised by ``heir``). The issues that name it name
    ``heir`` instead, the run that now holds its results, or none."""
    for column in ("first_detected_run_id", "resolved_run_id", "regressed_run_id",
                   "last_seen_run_id"):  # fmt: skip
        connection.execute(
            sa.update(issues).where(issues.c[column] == run_id).values({column: heir})
        )
    connection.execute(sa.delete(test_runs).where(test_runs.c.id == run_id))


# --------------------------------------------------------------------------- absorbing


def reconcile_run(engine: Engine, run_id: int) -> tuple[int, list[int]]:
    """After a real run is imported: take over what was reconstructed of its tests before it
    came (results of reconstructed runs of its suite, in its time window, of tests it holds),
    and a summary-only run of its session; give it its summary's totals when its results are
    fewer. Returns how many reconstructed results it took over, and the runs deleted because
    it took all they held."""
    with engine.begin() as connection:
        run = connection.execute(
            sa.select(
                test_runs.c.suite, test_runs.c.run_key, test_runs.c.started_at,
                test_runs.c.finished_at, test_runs.c.run_metadata,
            ).where(test_runs.c.id == run_id)
        ).one()  # fmt: skip
        metadata = dict(run.run_metadata or {})
        if _is_reconstructed(run.run_key) or metadata.get("summary_only") or not run.started_at:
            return 0, []
        deleted = _absorb_summary(connection, run_id, run.suite, run.started_at, metadata)
        low, high = run.started_at - BEFORE, (run.finished_at or run.started_at) + AFTER
        taken, touched = _absorb_results(connection, run_id, run.suite, low, high)
        deleted += [other for other in sorted(touched) if not refresh_run(connection, other)]
        if taken or "summary_totals" in metadata:
            refresh_run(connection, run_id)
        return taken, deleted


def _absorb_summary(
    connection: Connection,
    run_id: int,
    suite: str,
    started: datetime,
    metadata: dict[str, Any],
) -> list[int]:
    """A summary-only run of this run's session gives it its summary, and goes."""
    rows = connection.execute(
        sa.select(test_runs.c.id, test_runs.c.run_metadata)
        .where(test_runs.c.suite == suite)
        .where(test_runs.c.id != run_id)
        .where(test_runs.c.started_at.between(started - SAME_START, started + SAME_START))
    ).all()
    deleted = []
    for other, other_metadata in rows:
        if not (other_metadata or {}).get("summary_only"):
            continue
        for key in ("summary", "summary_totals", "summarised_by"):
            if key in other_metadata:
                metadata.setdefault(key, other_metadata[key])
        connection.execute(
            sa.update(test_runs).where(test_runs.c.id == run_id).values(run_metadata=metadata)
        )
        _delete_run(connection, other, run_id)
        deleted.append(int(other))
        refresh_run(connection, run_id)
    return deleted


def _absorb_results(
    connection: Connection, run_id: int, suite: str, low: datetime, high: datetime
) -> tuple[int, set[int]]:
    r, t = test_results, test_runs
    reconstructed = connection.execute(
        sa.select(r.c.id, r.c.run_id, r.c.test_id, r.c.started_at)
        .select_from(r.join(t, t.c.id == r.c.run_id))
        .where(t.c.suite == suite)
        .where(t.c.run_key.startswith(RECONSTRUCTED_PREFIX))
        .where(r.c.started_at.between(low, high))
    ).all()
    if not reconstructed:
        return 0, set()
    own = candidates(connection, suite, {row.test_id for row in reconstructed}, run_id=run_id)
    taken, touched = 0, set()
    for row in reconstructed:
        target = best_match(own.get(row.test_id, []), row.started_at)
        if target is not None:
            _take_over(connection, target, int(row.id))
            taken += 1
            touched.add(int(row.run_id))
    return taken, touched


def _take_over(connection: Connection, target: Candidate, result_id: int) -> None:
    """A reconstructed result's evidence onto ``target`` (its observations and calls, which
    ``target`` does not hold yet), then the reconstructed result deleted."""
    r, w = test_results, watcher_insights
    row = connection.execute(
        sa.select(
            r.c.details, r.c.watcher_quality, r.c.watcher_observations,
            *[r.c[name] for name in _FILLED],
        ).where(r.c.id == result_id)
    ).one()  # fmt: skip
    insights = connection.execute(
        sa.select(w.c.id, w.c.created_at).where(w.c.test_result_id == result_id)
    ).all()
    for insight_id, created in insights:
        stamp = format_utc(created)
        if stamp not in target.times:  # else the same observation: it goes with the result
            connection.execute(
                sa.update(w).where(w.c.id == insight_id).values(test_result_id=target.id)
            )
            target.times.add(stamp)
    seen = _observation_time(row.watcher_observations)
    latest = target.latest_observation
    if row.watcher_observations and (latest is None or (seen is not None and seen >= latest)):
        connection.execute(
            sa.update(r)
            .where(r.c.id == target.id)
            .values(
                watcher_quality=row.watcher_quality,
                watcher_observations=row.watcher_observations,
            )
        )
        target.latest_observation = seen
    calls = (row.details or {}).get("api_calls") or []
    _merge_calls(connection, target, calls, {name: getattr(row, name) for name in _FILLED})
    connection.execute(sa.delete(r).where(r.c.id == result_id))
