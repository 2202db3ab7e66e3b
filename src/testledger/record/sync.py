"""``testledger sync``: load runs that only reached the JSON files into the database.

Each pending run is replayed from its ``results.jsonl`` in one transaction: the run row is
found by its key or created, results the database already holds (from before the outage) are
skipped by (test_id, attempt), the rest inserted, and the statistics recomputed. Syncing twice,
or syncing a run that had fully reached the database, changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from testledger.common.jsondata import JsonData
from testledger.config import Settings
from testledger.model import RunStatus, TestResult
from testledger.record.archive import (
    ArchivedRun,
    iter_archived_runs,
    read_events,
    write_atomically,
)
from testledger.store.engine import mask_url, mask_urls_in
from testledger.store.runs import create_or_join_run, finish_run
from testledger.store.writer import PendingObservation, insert_observations, insert_results

__all__ = ["SyncOutcome", "SyncReport", "pending_runs", "sync_runs"]

_BATCH = 2000


@dataclass(frozen=True, slots=True)
class SyncOutcome:
    run_key: str
    run_id: int
    results_written: int
    observations_written: int
    status: str


@dataclass(slots=True)
class SyncReport(JsonData):
    synced: list[SyncOutcome] = field(default_factory=list)
    skipped_unfinished: list[str] = field(default_factory=list)
    #: Runs that could not be loaded, as (run key, why): they stay pending in the spool.
    failed: list[tuple[str, str]] = field(default_factory=list)
    #: Runs another ``sync`` running at the same time loaded first.
    already_loaded: list[str] = field(default_factory=list)


def pending_runs(results_dir: Path, *, include_synced: bool = False) -> Iterator[ArchivedRun]:
    for run in iter_archived_runs(results_dir):
        if include_synced or run.database_state != "synced":
            yield run


def _sync_one(engine: Engine, run: ArchivedRun, status: RunStatus) -> SyncOutcome:
    written = observed = 0
    with engine.begin() as connection:
        row = create_or_join_run(connection, run.info, run.run_key)
        # Files that still say "running" whose run the database holds finished (or aborted):
        # its recorder was killed after finishing it there and before rewriting its files. The
        # run keeps the status, time and statistics its recorder gave it; loaded "as aborted"
        # it would turn a whole run into an aborted one.
        finished_there = (
            row.status is not RunStatus.RUNNING and run.status == RunStatus.RUNNING.value
        )
        if finished_there:
            status = row.status
        batch: list[TestResult] = []
        attached: list[PendingObservation] = []

        def write() -> None:
            nonlocal written, observed
            inserted = insert_results(connection, row.id, batch, may_exist=True)
            written += len(inserted)
            # Observations embedded in results came with them: only the new results' are
            # new. Those attached later may or may not have reached the database before the
            # outage; insert_observations knows them by their result and timestamp.
            embedded = [
                PendingObservation(r.test_id, r.attempt or 1, r.watcher, update_result=False)
                for r in inserted
                if r.watcher is not None
            ]
            observed += insert_observations(connection, row.id, embedded)
            observed += insert_observations(connection, row.id, attached, may_exist=True)
            batch.clear()
            attached.clear()

        for event in read_events(run.events_path):
            if isinstance(event, TestResult):
                batch.append(event)
                if len(batch) >= _BATCH:
                    write()
            else:
                test_id, attempt, observation = event
                attached.append(PendingObservation(test_id, attempt, observation, True))
        write()
        if not (finished_there and written == 0 and observed == 0):
            finish_run(
                connection,
                row.id,
                status,
                finished_at=run.finished_at,
                wall_clock_secs=_recorded_duration(run),
            )
    return SyncOutcome(run.run_key, row.id, written, observed, status.value)


def _load(
    engine: Engine, run: ArchivedRun, status: RunStatus, report: SyncReport
) -> tuple[SyncOutcome, bool] | None:
    """Load one run: its outcome, and whether another process had loaded it first; None when
    it cannot be loaded, said in ``report.failed``: one run that cannot be
    loaded (a bad row, a value the database refuses) must not keep every later run in the
    spool. It is rolled back and passed by."""
    try:
        return _sync_one(engine, run, status), False
    except IntegrityError:
        # Another sync of the same spool inserted the run or its rows between this one's look
        # and its insert, and has committed them by now: joined, nothing is left to write.
        pass
    except Exception as exc:
        report.failed.append((run.run_key, _one_line(exc)))
        return None
    try:
        joined = _sync_one(engine, run, status)
    except Exception as exc:
        report.failed.append((run.run_key, _one_line(exc)))
        return None
    return joined, not (joined.results_written or joined.observations_written)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    return mask_urls_in(f"{type(exc).__name__}: {first}" if first else type(exc).__name__)


def _recorded_duration(run: ArchivedRun) -> float | None:
    stats = run.raw.get("stats") or {}
    # Archives written before runs kept fractions have only the rounded figure.
    value = stats.get("duration_secs")
    if value is None:
        value = stats.get("total_duration_secs")
    return float(value) if value is not None else None


def _mark_synced(run: ArchivedRun, outcome: SyncOutcome, url: str) -> None:
    data = dict(run.raw)
    data["status"] = outcome.status
    data["database"] = {"state": "synced", "run_id": outcome.run_id, "url": mask_url(url)}
    write_atomically(run.folder / "run.json", json.dumps(data, indent=2))


def sync_runs(
    engine: Engine,
    url: str,
    results_dir: Path,
    *,
    include_unfinished: bool = False,
    include_synced: bool = False,
    progress: Callable[[ArchivedRun], None] | None = None,
    settings: Settings | None = None,
) -> SyncReport:
    """Sync pending runs, oldest first. A run still marked ``running`` may be in progress in
    another process: it is left alone unless ``include_unfinished``, which loads it as aborted.
    With ``settings``, issue detection runs over each synced run, as it does after recording."""
    report = SyncReport()
    for run in pending_runs(results_dir, include_synced=include_synced):
        if progress is not None:
            progress(run)
        if run.status == RunStatus.RUNNING.value:
            if not include_unfinished:
                report.skipped_unfinished.append(run.run_key)
                continue
            status = RunStatus.ABORTED
        else:
            status = RunStatus(run.status)
        loaded = _load(engine, run, status, report)
        if loaded is None:
            continue
        outcome, already = loaded
        _mark_synced(run, outcome, url)
        if already:
            report.already_loaded.append(run.run_key)
            continue
        report.synced.append(outcome)
        if settings is not None:
            from testledger.analyze.pipeline import detect_after_recording

            detect_after_recording(engine, settings, [outcome.run_id])
    return report
