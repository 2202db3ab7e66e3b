"""Watching a recorded run: load its results and their histories, ask a watcher, store the
observations, and recompute the run's average watcher quality.

The ledger is read once up front and written per chunk, so no transaction stays open while an
LLM watcher waits on the network.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from testledger.analyze.watcher.base import RecentHistory, Watcher
from testledger.analyze.watcher.history import DEFAULT_HISTORY_RUNS, load_histories, load_results
from testledger.common.jsondata import JsonData
from testledger.errors import NotFound
from testledger.model import NO_WATCHER, WatcherObservation, utcnow
from testledger.store.runs import compute_stats
from testledger.store.tables import test_results, test_runs
from testledger.store.writer import PendingObservation, insert_observations

__all__ = ["RecordedObservation", "WatchSummary", "record_observation", "watch_run"]

#: Results handed to the watcher, and written, at a time.
CHUNK = 500


@dataclass(frozen=True, slots=True)
class WatchSummary(JsonData):
    """What ``watch_run`` did."""

    run_id: int
    watcher: str
    considered: int
    watched: int
    not_watched: int
    failed: int
    anomalies: int
    avg_watcher_quality: float | None
    watcher_cost_usd: float
    watcher_tokens: int


def _update_run(engine: Engine, run_id: int, judged_by: str | None) -> float | None:
    """The run's average watcher quality recomputed and stored; returned."""
    with engine.begin() as connection:
        quality = compute_stats(connection, run_id).avg_watcher_quality
        connection.execute(
            sa.update(test_runs).where(test_runs.c.id == run_id).values(avg_watcher_quality=quality)
        )
        if judged_by is not None:
            # test_runs.watcher_model says who judged the run; a run recorded without a watcher
            # says "none" until one has judged it (errors alone are no judgement).
            connection.execute(
                sa.update(test_runs)
                .where(test_runs.c.id == run_id, test_runs.c.watcher_model == NO_WATCHER)
                .values(watcher_model=judged_by)
            )
    return quality


def watch_run(
    engine: Engine,
    run_id: int,
    watcher: Watcher,
    *,
    only_missing: bool = False,
    history_runs: int = DEFAULT_HISTORY_RUNS,
    progress: Callable[[int, int], None] | None = None,
) -> WatchSummary:
    """Watch the last attempt of every test of the run. ``only_missing`` skips results that
    already have an observation from this watcher. ``progress(done, total)`` is called after
    each chunk. Results the watcher has nothing to say about (skipped tests, a spent budget)
    get no observation and count as ``not_watched``. An observation that is only an error (no
    score) is stored but leaves the result's quality as it was."""
    with engine.connect() as connection:
        results = load_results(
            connection, run_id, missing_for=watcher.name if only_missing else None
        )
        histories = (
            load_histories(
                connection,
                run_id,
                runs=history_runs,
                with_observations=watcher.wants_observations,
            )
            if results
            else {}
        )
    empty = RecentHistory()
    watched = failed = anomalies = judged = 0
    total = len(results)
    if progress is not None:
        progress(0, total)
    for start in range(0, total, CHUNK):
        chunk = results[start : start + CHUNK]
        answers = watcher.watch([(r, histories.get(r.test_id, empty)) for r in chunk])
        pending: list[PendingObservation] = []
        for result, observation in zip(chunk, answers, strict=True):
            if observation is None:
                continue
            if observation.created_at is None:
                observation.created_at = utcnow()
            if observation.watcher is None:
                observation.watcher = watcher.name
            watched += 1
            failed += observation.quality_score is None
            anomalies += len(observation.anomalies)
            # A watcher's error is kept in watcher_insights but is not a verdict: the result's
            # quality (and so the run's average) stays that of the last watcher that judged it,
            # rather than None because an endpoint failed.
            verdict = observation.quality_score is not None or observation.error is None
            pending.append(
                PendingObservation(
                    result.test_id, result.attempt, observation, update_result=verdict
                )
            )
            judged += verdict
        if pending:
            with engine.begin() as connection:
                insert_observations(connection, run_id, pending)
        if progress is not None:
            progress(min(start + CHUNK, total), total)
    quality = _update_run(engine, run_id, watcher.name if judged else None)
    cost, tokens = watcher.spend()
    return WatchSummary(
        run_id=run_id,
        watcher=watcher.name,
        considered=total,
        watched=watched,
        not_watched=total - watched,
        failed=failed,
        anomalies=anomalies,
        avg_watcher_quality=quality,
        watcher_cost_usd=round(cost, 6),
        watcher_tokens=tokens,
    )


@dataclass(frozen=True, slots=True)
class RecordedObservation(JsonData):
    """An observation written for one result, and its run's average watcher quality after it."""

    result_id: int
    run_id: int
    test_id: str
    attempt: int
    watcher: str | None
    quality_score: int | None
    error: str | None
    avg_watcher_quality: float | None


def record_observation(
    engine: Engine, result_id: int, observation: WatcherObservation
) -> RecordedObservation:
    """Write ``observation`` for result ``result_id`` in one transaction, as ``watch_run`` writes
    a watcher's: the result's watcher quality becomes its score, and the run's average watcher
    quality is recomputed. Raises NotFound."""
    if observation.created_at is None:
        observation.created_at = utcnow()
    with engine.begin() as connection:
        row = connection.execute(
            sa.select(test_results.c.run_id, test_results.c.test_id, test_results.c.attempt).where(
                test_results.c.id == result_id
            )
        ).first()
        if row is None:
            raise NotFound(f"no result with id {result_id}")
        run_id = int(row.run_id)
        pending = PendingObservation(row.test_id, int(row.attempt), observation, update_result=True)
        insert_observations(connection, run_id, [pending])
        quality = compute_stats(connection, run_id).avg_watcher_quality
        connection.execute(
            sa.update(test_runs).where(test_runs.c.id == run_id).values(avg_watcher_quality=quality)
        )
    return RecordedObservation(
        result_id=result_id,
        run_id=run_id,
        test_id=row.test_id,
        attempt=int(row.attempt),
        watcher=observation.watcher,
        quality_score=observation.quality_score,
        error=observation.error,
        avg_watcher_quality=quality,
    )
