"""The runner API: record a run from any custom test runner.

    import testledger

    with testledger.open_ledger("sqlite:///.testledger/ledger.db") as ledger:
        with ledger.start_run(branch="main", commit="abc123", watcher_model="glm-4.5-air") as run:
            ref = run.record(tool_name="chat", variation="basic_glm", status="PASS",
                             provider="glm", model="glm-4.5-air", duration_secs=2.1)
            run.attach_watcher(ref, testledger.WatcherObservation(quality_score=8))
        # leaving the block finishes the run (or marks it aborted on an exception)

Every result goes to the run's JSON files first and to the database in batches (one transaction
per batch, never per result). If the database cannot be reached when the run starts, or stops
answering during it, recording carries on into the JSON files alone with one warning; nothing
is raised into the test runner, and ``testledger sync`` loads the run later.

The ledger handle that starts runs (``open_ledger``, ``Ledger``) is
:mod:`testledger.record.ledger`, which a report imports without this module and its writers.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from testledger.common.log_marks import SAID_BY_SUMMARY
from testledger.common.run_keys import new_run_key
from testledger.common.urls import is_http_url
from testledger.errors import SchemaError, TestledgerError
from testledger.model import (
    RunInfo,
    RunStats,
    RunStatus,
    TestResult,
    WatcherObservation,
    utcnow,
)
from testledger.record.archive import RunArchive, stats_from_events
from testledger.record.background import BackgroundWriter, Batch, InlineWriter, make_writer
from testledger.store.database import database_errors
from testledger.store.engine import mask_urls_in
from testledger.store.runs import (
    RunRow,
    create_or_join_run,
    finish_run,
    refresh_planner_statistics,
)
from testledger.store.writer import (
    PendingObservation,
    encode_result,
    insert_observations,
    insert_rows,
)

if TYPE_CHECKING:
    from pathlib import Path

    from sqlalchemy.engine import Engine

    from testledger.config import Settings
    from testledger.record.http_sink import HttpSink

__all__ = ["LedgerHandle", "ResultRef", "Run"]

log = logging.getLogger("testledger")

#: A batch is written at the latest this long after its first result was recorded.
FLUSH_INTERVAL_SECS = 1.0


class LedgerHandle(Protocol):
    """What a run uses of its ledger: :class:`testledger.record.ledger.Ledger`, which starts
    runs (and is defined there, so that a report imports it without this module)."""

    settings: Settings

    @property
    def url(self) -> str: ...

    @property
    def results_dir(self) -> Path: ...

    def engine(self, *, create: bool = True) -> Engine: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class ResultRef:
    """Names one recorded result (one attempt of one test) within its run."""

    test_id: str
    attempt: int


class Run:
    """One run being recorded. Use it as a context manager, or call :meth:`finish`."""

    #: Set before finish() to leave issue detection and retention to run_deferred().
    defer_after_finish = False
    _deferred = False
    _deferred_rows = 0

    def __init__(
        self,
        ledger: LedgerHandle,
        info: RunInfo,
        batch_size: int,
        *,
        detect_issues: bool = True,
        offline: str | None = None,
    ) -> None:
        self.ledger = ledger
        self.info = info
        self.run_key = info.run_key or new_run_key(info.started_at or utcnow())
        info.run_key = self.run_key
        self.batch_size = batch_size
        self.detect_issues = detect_issues
        self.watcher: str | None = None
        self.status = RunStatus.RUNNING
        self.stats: RunStats | None = None
        self.spool_reason: str | None = None
        self._row: RunRow | None = None
        self._rows: list[tuple[Any, ...]] = []
        self._watched: list[tuple[int, TestResult]] = []
        self._observations: list[PendingObservation] = []
        self._preexisting: set[tuple[str, int]] = set()
        self._attempts: dict[str, int] = {}
        self._clock = self._last_flush = time.monotonic()
        self._writer: BackgroundWriter[Batch] | InlineWriter | None = None
        #: Set for a ledger URL naming a testledger server: the database side goes over HTTP.
        self._remote: HttpSink | None = None
        self.archive = RunArchive(ledger.results_dir, self.run_key)
        self.archive.write_run(info, status=RunStatus.RUNNING.value)
        if offline is not None:
            self.spool_reason = offline
            return
        self._open_in_database()

    def _open_in_database(self) -> None:
        """Create (or join) the run's row and start its writer; the spool on an outage."""
        ledger = self.ledger
        if is_http_url(ledger.settings.database_url):
            from testledger.record.http_sink import HttpSink

            self._remote = HttpSink(ledger.settings.database_url)
        try:
            if self._remote is not None:
                self._row = self._remote.open(self.info, self.run_key)
            else:
                with ledger.engine().begin() as connection:
                    self._row = create_or_join_run(connection, self.info, self.run_key)
        except database_errors() as exc:
            self._go_to_spool(exc)
        else:
            self._writer = (
                BackgroundWriter(self._write_batch, self._go_to_spool)
                if self._remote is not None  # a network's round trips, as PostgreSQL's
                else make_writer(ledger.engine(), self._write_batch, self._go_to_spool)
            )

    def expect_tests(self, count: int) -> None:
        """Note how many tests the run is expected to hold (pytest's collected count), for a
        live run's progress. Best effort: never raised into the test runner."""
        if self.spooled or self._row is None:
            return
        from testledger.store.ingest_batches import set_expected_tests

        try:
            if self._remote is not None:
                self._remote.expect(self._row.id, count)
                return
            with self.ledger.engine().begin() as connection:
                set_expected_tests(connection, self._row.id, count)
        except database_errors() as exc:
            log.debug("testledger: expected test count not stored: %s", exc)

    # -- state ---------------------------------------------------------------------------

    @property
    def run_id(self) -> int | None:
        """The run's database id; None while it is recorded into the spool only."""
        return None if self.spooled or self._row is None else self._row.id

    @property
    def spooled(self) -> bool:
        return self.spool_reason is not None

    def _go_to_spool(self, exc: BaseException) -> None:
        """Stop writing to the database; the JSON files carry the rest of the run. Called on
        the recording thread, or on the writer thread when a batch fails."""
        if self.spooled:
            return
        if not isinstance(exc, database_errors()):
            # Not an outage but a fault of ours: still never raised into the test runner,
            # but named plainly so that it gets reported.
            log.error("testledger: unexpected %s while writing", type(exc).__name__, exc_info=exc)
        reason = mask_urls_in(str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc))
        self.spool_reason = reason
        if isinstance(exc, SchemaError):
            # The database is there but its schema cannot take runs: a fix for its owner,
            # which calling it "unavailable" would send looking at the network instead.
            log.error(
                "testledger: database %s cannot take runs: %s; run %s goes on in %s - "
                "load it with `testledger sync` once the schema is fixed",
                self.ledger.url,
                reason,
                self.run_key,
                self.archive.folder,
            )
            return
        log.warning(
            "testledger: database %s unavailable (%s); run %s goes on in %s - "
            "load it later with `testledger sync`",
            self.ledger.url,
            reason,
            self.run_key,
            self.archive.folder,
            extra={SAID_BY_SUMMARY: True},
        )

    # -- recording -----------------------------------------------------------------------

    def record(self, result: TestResult | None = None, /, **fields: Any) -> ResultRef:
        """Record one result: a TestResult, or its fields as keywords (``test_id`` defaults to
        ``tool_name/variation``). Recording the same test_id again in this run records a retry:
        the next attempt number."""
        if self.status is not RunStatus.RUNNING:
            raise TestledgerError(f"run {self.run_key} is already {self.status.value}")
        if result is None:
            if "test_id" not in fields:
                fields["test_id"] = f"{fields.get('tool_name')}/{fields.get('variation')}"
            result = TestResult(**fields)
        elif fields:
            raise TypeError("pass either a TestResult or keyword fields, not both")
        previous = self._attempts.get(result.test_id, 0)
        if result.attempt is None or result.attempt <= previous:
            result.attempt = previous + 1
        self._attempts[result.test_id] = result.attempt
        if result.watcher is not None and result.watcher.created_at is None:
            result.watcher.created_at = utcnow()
        # Encoded once, for both stores.
        row = encode_result(result)
        self._append(row, result if result.watcher is not None else None)
        return ResultRef(result.test_id, result.attempt)

    def record_row(self, row: tuple[Any, ...]) -> ResultRef:
        """Record one result already encoded as a row of ``ROW_COLUMNS`` (see
        :func:`~testledger.store.writer.encode_result`); an attempt (``row[1]``) of None is
        numbered here as :meth:`record` would. For recorders on a hot path (the pytest
        plugin's passing tests), which build the row without a TestResult; a watcher
        observation needs :meth:`record`."""
        if self.status is not RunStatus.RUNNING:
            raise TestledgerError(f"run {self.run_key} is already {self.status.value}")
        test_id, attempt = row[0], row[1]
        previous = self._attempts.get(test_id, 0)
        if attempt is None or attempt <= previous:
            attempt = previous + 1
        self._attempts[test_id] = attempt
        if attempt != row[1]:
            row = (test_id, attempt, *row[2:])
        self._append(row, None)
        return ResultRef(test_id, attempt)

    def _append(self, row: tuple[Any, ...], watched: TestResult | None) -> None:
        self.archive.append_row(row)
        if not self.spooled:
            self._rows.append(row)
            if watched is not None:
                self._watched.append((len(self._rows) - 1, watched))
            # A batch goes when it is full, or when the oldest result in it has waited
            # FLUSH_INTERVAL: fast runs write few large transactions (on SQLite each commit
            # rewrites the index pages it touched), slow runs still reach the database
            # within a second.
            if len(self._rows) >= self.batch_size or (
                time.monotonic() - self._last_flush >= FLUSH_INTERVAL_SECS
            ):
                self.flush()

    def attach_watcher(self, ref: ResultRef | str, observation: WatcherObservation) -> None:
        """Attach a watcher observation to a recorded result (a ResultRef, or a test_id meaning
        its latest attempt). It is stored in ``watcher_insights`` and reflected in the result's
        ``watcher_quality`` and ``watcher_observations``."""
        if isinstance(ref, str):
            if ref not in self._attempts:
                raise TestledgerError(f"no result for test {ref!r} in run {self.run_key}")
            ref = ResultRef(ref, self._attempts[ref])
        if observation.created_at is None:
            # The observation's identity when a spool is replayed (see insert_observations).
            observation.created_at = utcnow()
        self.archive.append_watcher(ref.test_id, ref.attempt, observation)
        if self.spooled:
            return
        self._observations.append(
            PendingObservation(ref.test_id, ref.attempt, observation, update_result=True)
        )

    def flush(self, *, wait: bool = False) -> None:
        """Hand the buffered results to the database writer as one batch (and push the JSON
        files to the OS). With ``wait``, return only once the database has them."""
        self.archive.flush()
        self._last_flush = time.monotonic()
        if self._writer is None:
            return
        if not self.spooled and (self._rows or self._observations):
            self._writer.submit(Batch(self._rows, self._watched, self._observations))
            self._rows = []
            self._watched = []
            self._observations = []
        if wait:
            self._writer.drain()

    def _write_batch(self, batch: Batch) -> None:
        """On the writer thread: one transaction per batch."""
        if self.spooled or self._row is None:
            return
        if self._remote is not None:
            self._remote.write(self._row.id, batch.rows, batch.observations)
            return
        with self.ledger.engine().begin() as connection:
            inserted = set(
                insert_rows(connection, self._row.id, batch.rows, may_exist=self._row.existed)
            )
            embedded = [
                PendingObservation(r.test_id, r.attempt or 1, r.watcher, update_result=False)
                for position, r in batch.watched
                if position in inserted and r.watcher is not None
            ]
            attached = batch.observations
            if len(inserted) < len(batch.rows):
                # A run recorded again under its key: results it already held were skipped,
                # and so are observations attached to them (the originals have theirs).
                self._preexisting.update(
                    (row[0], row[1]) for i, row in enumerate(batch.rows) if i not in inserted
                )
            if self._preexisting:
                attached = [o for o in attached if (o.test_id, o.attempt) not in self._preexisting]
            insert_observations(connection, self._row.id, embedded + attached)

    def finish(
        self,
        status: RunStatus = RunStatus.FINISHED,
        notes: str | None = None,
        *,
        wall_clock_secs: float | None = None,
    ) -> RunStats:
        """Flush, compute and store the run's statistics, and close its JSON files.

        ``wall_clock_secs``: the run's duration as its caller measured it, for a caller that
        started before this Run did (the pytest plugin's writer process starts the Run while
        the tests already run); by default, the time since this Run started."""
        if self.status is not RunStatus.RUNNING:
            assert self.stats is not None
            return self.stats
        self.flush()
        if self._writer is not None:
            self._writer.close()
        finished_at = utcnow()
        wall_clock = (
            wall_clock_secs if wall_clock_secs is not None else time.monotonic() - self._clock
        )
        stats = self._finish_in_database(status, notes, finished_at, wall_clock)
        if stats is None:
            # The database did not get the run: its statistics come from its JSON files.
            self.archive.flush()
            stats = stats_from_events(
                self.archive.events_path, wall_clock, missing_ok=self.archive.failed is not None
            )
        if notes is not None:
            self.info.notes = notes
        database: dict[str, Any] = {"url": self.ledger.url}
        if self.spooled:
            database.update(state="pending", error=self.spool_reason)
        else:
            assert self._row is not None
            database.update(state="synced", run_id=self._row.id)
        self.archive.write_run(
            self.info,
            status=status.value,
            stats=stats,
            finished_at=finished_at,
            database=database,
        )
        self.archive.close()
        self.archive.publish_latest()
        self.status = status
        self.stats = stats
        return stats

    def _finish_in_database(
        self, status: RunStatus, notes: str | None, finished_at: datetime, wall_clock: float
    ) -> RunStats | None:
        """The database's side of finishing: statistics, watcher, issue detection, retention.
        None when the database did not get the run (its JSON files tell the statistics)."""
        if self._remote is not None:
            return self._finish_remotely(self._remote, status, notes, wall_clock)
        stats: RunStats | None = None
        if not self.spooled and self._row is not None:
            try:
                with self.ledger.engine().begin() as connection:
                    stats = finish_run(
                        connection,
                        self._row.id,
                        status,
                        finished_at=finished_at,
                        wall_clock_secs=None if self._row.existed else wall_clock,
                        notes=notes,
                    )
            except database_errors() as exc:
                self._go_to_spool(exc)
        if stats is not None and self._row is not None and self.watcher:
            # Lazily imported: most sessions watch nothing.
            from testledger.analyze.watcher import load_watcher, watch_run

            watched = watch_run(
                self.ledger.engine(),
                self._row.id,
                load_watcher(self.watcher, self.ledger.settings.tool),
            )
            stats = replace(stats, avg_watcher_quality=watched.avg_watcher_quality)
        if stats is not None and self._row is not None:
            self._deferred_rows = stats.total_tests
            if self.defer_after_finish:
                self._deferred = True
            else:
                self._after_finish()
        return stats

    def _after_finish(self) -> None:
        """What follows a run finished in the database: the planner's statistics after a run
        that changed the table's make-up, issue detection and retention."""
        assert self._row is not None
        try:
            with self.ledger.engine().begin() as connection:
                refresh_planner_statistics(connection, self._deferred_rows)
        except database_errors() as exc:
            log.warning("testledger: ANALYZE after run %s failed: %s", self._row.id, exc)
        if self.detect_issues:
            # Lazily imported: the pytest plugin imports this module on every session.
            from testledger.analyze.pipeline import detect_after_recording

            detect_after_recording(self.ledger.engine(), self.ledger.settings, [self._row.id])
        # [tool.testledger.retention], if any: warns, never raises; nothing without it.
        from testledger.record.pruning import prune_after_run

        prune_after_run(self.ledger.engine(), self.ledger.settings)

    @property
    def deferred(self) -> bool:
        """Whether finish() left issue detection and retention to :meth:`run_deferred`."""
        return self._deferred

    def run_deferred(self) -> None:
        """Run what finish() left with ``defer_after_finish`` set (the pytest plugin's writer
        process: the session is told the run is finished first, and does not wait for issue
        detection, which reads the history). Should it never run, the run keeps
        ``detected_at`` NULL and the next detection completes it (analyze.pipeline)."""
        if self._deferred:
            self._deferred = False
            self._after_finish()

    def _finish_remotely(
        self, remote: HttpSink, status: RunStatus, notes: str | None, wall_clock: float
    ) -> RunStats | None:
        """The server finishes the run (statistics, issue detection, retention)."""
        stats: RunStats | None = None
        if not self.spooled and self._row is not None:
            try:
                stats = remote.finish(
                    self._row,
                    status,
                    notes,
                    wall_clock,
                    detect_issues=self.detect_issues,
                    watcher=self.watcher,
                )
            except database_errors() as exc:
                self._go_to_spool(exc)
        remote.close()
        return stats

    def abort(self, reason: str) -> RunStats:
        """Finish the run as aborted, keeping what was recorded."""
        return self.finish(RunStatus.ABORTED, notes=reason)

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.status is not RunStatus.RUNNING:
            return
        if exc_type is None:
            self.finish()
        else:
            self.abort(f"aborted: {exc_type.__name__}: {exc}")
