"""``testledger sync``: load runs that only reached the JSON files into the database.

Each pending run is replayed from its ``results.jsonl`` in one transaction: the run row is
found by its key or created, results the database already holds (from before the outage) are
skipped by (test_id, attempt), the rest inserted, and the statistics recomputed. Syncing twice,
or syncing a run that had fully reached the database, changes nothing.

A ledger URL naming a testledger server (``http(s)://``: a CI job holding only the URL and a
write token) loads them through the server's ingest API instead (:func:`sync_runs_over_http`):
the run created or joined by its key, its results in batches under stable keys, the
observations attached later, then finished, which detects its issues on the server.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from testledger.common.jsondata import JsonData
from testledger.config import Settings
from testledger.errors import DatabaseUnavailable
from testledger.model import RunStatus, TestResult
from testledger.record.archive import (
    ArchivedRun,
    iter_archived_runs,
    read_events,
    write_atomically,
)
from testledger.store.encoding import ROW_COLUMNS, encode_json, encode_result
from testledger.store.engine import mask_url, mask_urls_in
from testledger.store.runs import create_or_join_run, finish_run
from testledger.store.writer import PendingObservation, insert_observations, insert_results

if TYPE_CHECKING:
    from testledger.record.http_sink import IngestClient

__all__ = ["SyncOutcome", "SyncReport", "pending_runs", "sync_runs", "sync_runs_over_http"]

_BATCH = 2000
#: Results per request when syncing through a server (its ingest API takes up to 10,000).
_HTTP_BATCH = 1000
#: ... and at most about this many characters of text (the server takes 32 MB bodies).
_HTTP_BATCH_CHARS = 8_000_000
_WATCHER_COLUMN = ROW_COLUMNS.index("watcher_observations")


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


def _said(exc: BaseException) -> str:
    """Why a run could not be loaded: the server's answer as the client says it (naming the
    server and what it answered), any other error with its type."""
    if isinstance(exc, DatabaseUnavailable) and str(exc).strip():
        return mask_urls_in(str(exc).strip().splitlines()[0])
    return _one_line(exc)


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
    another process: it is left alone unless ``include_unfinished``, which loads it as aborted
    (or as the database holds it, when its recorder finished it there before it was killed).
    With ``settings``, issue detection runs over each synced run, as it does after recording."""
    report = SyncReport()
    for run, status in _to_load(results_dir, include_unfinished, include_synced, report):
        if progress is not None:
            progress(run)
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


def _to_load(
    results_dir: Path, include_unfinished: bool, include_synced: bool, report: SyncReport
) -> Iterator[tuple[ArchivedRun, RunStatus]]:
    """The pending runs to load, oldest first, each with the status it is loaded as; runs still
    marked running are passed by (said in ``report``) unless ``include_unfinished``."""
    for run in pending_runs(results_dir, include_synced=include_synced):
        if run.status != RunStatus.RUNNING.value:
            yield run, RunStatus(run.status)
        elif include_unfinished:
            yield run, RunStatus.ABORTED
        else:
            report.skipped_unfinished.append(run.run_key)


def sync_runs_over_http(
    url: str,
    results_dir: Path,
    *,
    token: str | None,
    include_unfinished: bool = False,
    include_synced: bool = False,
    progress: Callable[[ArchivedRun], None] | None = None,
) -> SyncReport:
    """Sync pending runs through the ingest API of the testledger server at ``url``, as
    :func:`sync_runs` does into a database (see :func:`_sync_one_over_http`). The server
    detects each run's issues when it is finished. A failure every request would meet (the
    server away, the token refused) stops the sync: that run and the ones after it stay
    pending, each said in ``report.failed`` with the reason."""
    from testledger.record.http_sink import IngestClient, ServerUnavailable

    report = SyncReport()
    client = IngestClient(url, token)
    try:
        waiting = iter(_to_load(results_dir, include_unfinished, include_synced, report))
        for run, status in waiting:
            if progress is not None:
                progress(run)
            try:
                outcome = _sync_one_over_http(client, run, status)
            except ServerUnavailable as exc:
                reason = _said(exc)
                report.failed.append((run.run_key, reason))
                report.failed.extend((later.run_key, reason) for later, _ in waiting)
                break
            except Exception as exc:
                report.failed.append((run.run_key, _said(exc)))
                continue
            _mark_synced(run, outcome, url)
            report.synced.append(outcome)
    finally:
        client.close()
    return report


def _sync_one_over_http(client: IngestClient, run: ArchivedRun, status: RunStatus) -> SyncOutcome:
    """Replay one run through the ingest API: create or join it by its key, post its results
    in batches, then the observations attached to them later, and finish it.

    Each batch's key is made of its place in the run's file and a digest of its content: a
    sync that is retried, or run again (``--all``), sends the same batches under the same keys
    and the server stores nothing twice; a batch that grew since (a run synced while it was
    still being recorded) has another key. Results the server holds from before the outage
    (the run reached it in part) are not stored twice either: the server skips a result of a
    test and attempt the run holds. ``observations_written`` counts those attached later and
    those embedded in batches stored whole (the server does not say which of a batch stored in
    part were new)."""
    row = client.create_run(run.info, run.run_key)
    held_finished = row.status is not RunStatus.RUNNING
    written = observed = 0
    rows: list[tuple[Any, ...]] = []
    attached: list[PendingObservation] = []
    sent = 0

    def post_rows() -> None:
        nonlocal written, observed, sent
        if rows:
            sent += 1
            stored = client.post_rows(row.id, _batch_key("results", sent, rows), rows)
            written += stored
            if stored == len(rows):
                observed += sum(1 for encoded in rows if encoded[_WATCHER_COLUMN] is not None)
            rows.clear()

    size = 0
    for event in read_events(run.events_path):
        if isinstance(event, TestResult):
            encoded = encode_result(event)
            rows.append(encoded)
            # Long tracebacks and outputs: a batch stays well under the server's body limit.
            size += sum(len(value) for value in encoded if value.__class__ is str)
            if len(rows) >= _HTTP_BATCH or size >= _HTTP_BATCH_CHARS:
                post_rows()
                size = 0
        else:
            test_id, attempt, observation = event
            attached.append(PendingObservation(test_id, attempt, observation, True))
    post_rows()
    # After every result: an attachment names a result that may be in any batch.
    for start in range(0, len(attached), _HTTP_BATCH):
        chunk = attached[start : start + _HTTP_BATCH]
        digest_of = [(p.test_id, p.attempt, p.observation.as_json()) for p in chunk]
        key = _batch_key("observations", start // _HTTP_BATCH + 1, digest_of)
        observed += client.post_observations(row.id, key, chunk)
    nothing_new = written == 0 and observed == 0
    if held_finished and (nothing_new or run.status == RunStatus.RUNNING.value):
        # The server holds the run finished: a sync run again, or its recorder finished it
        # there before it was killed (as in _sync_one). It keeps the status it has.
        status = row.status
    if not (held_finished and nothing_new):
        # (Finished again with nothing new, its end would move to now - the ingest API's
        # finish takes no time - and its issues be detected again.)
        client.finish(
            row.id,
            status,
            None,
            _recorded_duration(run),
            detect_issues=True,
            finished_at=run.finished_at,
        )
    return SyncOutcome(run.run_key, row.id, written, observed, status.value)


def _batch_key(kind: str, number: int, content: Sequence[Any]) -> str:
    """A batch's key: what it holds, its place in the run, and a digest of its content."""
    digest = hashlib.sha256(encode_json(list(content)).encode("utf-8", "replace")).hexdigest()
    return f"sync-{kind}-{number}-{digest[:24]}"
