"""Importing parsed report files into the ledger: streaming, idempotent, all or nothing.

Each file's rows are written in ONE transaction, in batches as the parser streams them: a file
that turns out to be malformed half-way is rolled back whole, and memory stays flat however
large the file.

Idempotency: a run imported from a file gets a run key derived from the file's content
(``import-<format>-<sha256 prefix>``), so importing the same file again finds the run and adds
nothing. An explicit ``run_key`` merges several files (the shards of one CI run) into one run;
re-importing them skips the results the run already holds.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from testledger.common.environment import detect_ci, detect_git
from testledger.common.jsondata import JsonData
from testledger.ingest import parse_ahead
from testledger.ingest.base import ParsedFile
from testledger.ingest.rows import AttemptNumbers, EncodedResults
from testledger.model import RunInfo, RunStatus, TestResult, WatcherObservation, utcnow
from testledger.store.encoding import text_without_nul
from testledger.store.runs import create_or_join_run, finish_run
from testledger.store.tables import test_results, test_runs
from testledger.store.types import format_utc
from testledger.store.writer import (
    RESULT_COLUMNS,
    PendingObservation,
    encode_result,
    insert_observations,
    insert_rows,
)

__all__ = ["ImportOptions", "ImportOutcome", "content_key", "import_parsed", "run_info"]

_BATCH = 5000
#: SQLite page cache (KiB) while a file is imported. The default 2 MB cannot hold the pages of
#: test_results' seven indexes once a run has some 20,000 rows, so inserts keep re-reading
#: index pages from the OS. Measured (100,000 rows, executemany in one transaction): ~50,000
#: rows/s with 2 MB, ~74,000 with 16 MB, ~76,000 with 64 MB. 16 MB is the bound on the memory
#: this costs (pages are allocated as used; the connection gets its own size back after).
_SQLITE_IMPORT_CACHE_KIB = 16_384
#: How many recent test ids are remembered to number repeats of a test as attempts. Retries
#: follow the attempt they repeat closely in every format seen; a repeat further away than this
#: is still caught by the database's unique index, and numbered then (see _insert_batch).
_RECENT_TESTS = 20_000


@dataclass(frozen=True, slots=True)
class ImportOptions:
    """What the command line says that a file cannot: these win over the file's own values."""

    branch: str | None = None
    commit: str | None = None
    suite: str | None = None
    run_key: str | None = None
    at: datetime | None = None
    watcher_model: str | None = None
    detect_environment: bool = True
    #: Evidence of one session is at most this far apart (reconstructed runs; see
    #: ingest.placement). None: ``[tool.testledger.import] session_gap_minutes``, else 30 min.
    session_gap: timedelta | None = None


@dataclass(slots=True)
class ImportOutcome(JsonData):
    path: Path
    format: str
    run_key: str
    run_id: int | None = None
    results: int = 0
    observations: int = 0
    already_imported: bool = False
    warnings: list[str] = field(default_factory=list)
    #: Results reconstructed earlier from its tests' evidence, now matched by the run's own.
    matched_reconstructed: int = 0


def content_key(path: Path, format_name: str) -> str:
    """A run key from the content of a file (or of every file of a results folder)."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode())
        with file.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return f"import-{format_name}-{digest.hexdigest()[:24]}"


def run_info(parsed: ParsedFile, options: ImportOptions) -> RunInfo:
    """The run a parsed file describes, with the command line's options and the environment
    filled in (as ``import_parsed`` writes it)."""
    info = parsed.run
    info.source = f"import:{parsed.format}"
    if options.at is not None:
        info.started_at = options.at
    if options.suite:
        info.suite = options.suite
    if options.watcher_model:
        info.watcher_model = options.watcher_model
    if options.branch:
        info.branch = options.branch
    if options.commit:
        info.commit = options.commit
    if options.detect_environment and (info.branch in (None, "", "unknown") or not info.commit):
        ci = detect_ci()
        git = detect_git()
        if info.branch in (None, "", "unknown"):
            info.branch = ci.branch or git.branch or "unknown"
        info.commit = info.commit or ci.commit or git.commit
        info.ci_provider = info.ci_provider or ci.provider
        info.ci_job_url = info.ci_job_url or ci.job_url
    info.metadata.setdefault("imported_from", str(parsed.path))
    return info


_UNIQUE_VIOLATIONS: tuple[type[BaseException], ...] = (sqlite3.IntegrityError,)
try:  # psycopg is the optional ``postgres`` extra
    import psycopg
except ImportError:  # pragma: no cover
    pass
else:
    _UNIQUE_VIOLATIONS = (*_UNIQUE_VIOLATIONS, psycopg.errors.UniqueViolation)


def _renumber_far_repeats(connection: Connection, run_id: int, batch: list[TestResult]) -> None:
    """Give results whose (test_id, attempt) the run already holds the next free attempt."""
    stored_ids = [text_without_nul(r.test_id) for r in batch]  # as stored, NUL replaced
    test_ids = sorted(set(stored_ids))
    highest: dict[str, int] = {}
    for start in range(0, len(test_ids), 500):
        rows = connection.execute(
            sa.select(test_results.c.test_id, sa.func.max(test_results.c.attempt))
            .where(test_results.c.run_id == run_id)
            .where(test_results.c.test_id.in_(test_ids[start : start + 500]))
            .group_by(test_results.c.test_id)
        )
        highest.update((test_id, int(attempt)) for test_id, attempt in rows)
    for result, test_id in zip(batch, stored_ids, strict=True):
        top = highest.get(test_id, 0)
        if (result.attempt or 1) <= top:
            result.attempt = top + 1
        highest[test_id] = max(top, result.attempt or 1)


def _insert_batch(
    connection: Connection, run_id: int, batch: list[TestResult], *, may_exist: bool
) -> tuple[int, int]:
    """Insert one batch and its watcher observations; returns (results, observations) written."""
    rows = [encode_result(r) for r in batch]
    if may_exist:
        inserted = insert_rows(connection, run_id, rows, may_exist=True)
    else:
        try:
            with connection.begin_nested():
                inserted = insert_rows(connection, run_id, rows, may_exist=False)
        except _UNIQUE_VIOLATIONS:
            # A test repeated further apart than _RECENT_TESTS: number it after what the run
            # already holds, then write the batch again.
            _renumber_far_repeats(connection, run_id, batch)
            rows = [encode_result(r) for r in batch]
            inserted = insert_rows(connection, run_id, rows, may_exist=False)
    observations = [
        PendingObservation(batch[i].test_id, batch[i].attempt or 1, watcher, update_result=False)
        for i in inserted
        if (watcher := batch[i].watcher) is not None
    ]
    return len(inserted), insert_observations(connection, run_id, observations)


def _imported_files(connection: Connection, run_id: int) -> list[str]:
    metadata = connection.execute(
        sa.select(test_runs.c.run_metadata).where(test_runs.c.id == run_id)
    ).scalar_one()
    return list((metadata or {}).get("imported_files", []))


def _set_imported_files(connection: Connection, run_id: int, keys: list[str]) -> None:
    metadata = connection.execute(
        sa.select(test_runs.c.run_metadata).where(test_runs.c.id == run_id)
    ).scalar_one()
    updated = dict(metadata or {}, imported_files=keys)
    connection.execute(
        sa.update(test_runs).where(test_runs.c.id == run_id).values(run_metadata=updated)
    )


#: Rows handed to SQLite's executemany at a time when a new run is streamed: small, so that the
#: results die young instead of piling up for the garbage collector to scan again and again.
_SQLITE_CHUNK = 500


@contextmanager
def _new_rows_writer(
    connection: Connection, run_id: int
) -> Iterator[Callable[[tuple[Any, ...]], None]]:
    """A function that writes one encoded result (``encode_result``) of the new run ``run_id``:
    into one COPY on PostgreSQL, in small :func:`insert_rows` chunks on SQLite (the last one
    flushed on exit)."""
    if connection.dialect.name != "sqlite":
        driver = connection.connection.driver_connection
        assert driver is not None
        now = format_utc(utcnow())
        columns = ", ".join(RESULT_COLUMNS)
        with (
            driver.cursor() as cursor,
            cursor.copy(f"COPY test_results ({columns}) FROM STDIN") as copy,
        ):
            write_row = copy.write_row
            yield lambda row: write_row((run_id, *row, now))
        return
    chunk: list[tuple[Any, ...]] = []

    def write(row: tuple[Any, ...]) -> None:
        chunk.append(row)
        if len(chunk) >= _SQLITE_CHUNK:
            insert_rows(connection, run_id, chunk, may_exist=False)
            chunk.clear()

    yield write
    if chunk:
        insert_rows(connection, run_id, chunk, may_exist=False)


def _stream_new_run(
    connection: Connection,
    run_id: int,
    parsed: ParsedFile,
    attempts: AttemptNumbers,
    outcome: ImportOutcome,
    progress: Callable[[int], None] | None,
    *,
    ahead: bool,
) -> float:
    """Write a new run's results as they are parsed, holding none of them; returns their total
    duration. A large file is parsed by a second process when ``ahead`` (see
    :mod:`testledger.ingest.parse_ahead`). Watcher observations are written after, as they
    need the rows' ids. A test repeated further apart than attempts can number raises the
    unique violation (the caller then writes the file again in batches)."""
    if ahead and parse_ahead.wanted(parsed):
        close = getattr(parsed.results, "close", None)
        if close is not None:
            close()  # the child reads the file for itself
        return _stream_parsed_ahead(connection, run_id, parsed, outcome, progress)
    rows = EncodedResults(parsed.results, attempts)
    with _new_rows_writer(connection, run_id) as write:
        for row in rows:
            write(row)
            if progress is not None and rows.count % 1000 == 0:
                progress(1000)
    if progress is not None and rows.count % 1000:
        progress(rows.count % 1000)
    outcome.results = rows.count
    _write_observations(connection, run_id, rows.watched, outcome)
    return rows.total_duration


def _stream_parsed_ahead(
    connection: Connection,
    run_id: int,
    parsed: ParsedFile,
    outcome: ImportOutcome,
    progress: Callable[[int], None] | None,
) -> float:
    with (
        parse_ahead.ParseAhead(parsed.path, parsed.format, _RECENT_TESTS) as ahead,
        _new_rows_writer(connection, run_id) as write,
    ):
        for chunk in ahead.chunks():
            for row in chunk:
                write(row)
            if progress is not None:
                progress(len(chunk))
    outcome.results = ahead.count
    parsed.warnings.extend(ahead.warnings)
    _write_observations(connection, run_id, ahead.watched, outcome)
    return ahead.total_duration


def _write_observations(
    connection: Connection,
    run_id: int,
    observed: list[tuple[str, int, WatcherObservation]],
    outcome: ImportOutcome,
) -> None:
    watched = [PendingObservation(t, a, w, False) for t, a, w in observed]
    for start in range(0, len(watched), _BATCH):
        outcome.observations += insert_observations(
            connection, run_id, watched[start : start + _BATCH]
        )


def _existing_attempts(connection: Connection, run_id: int) -> dict[str, int]:
    rows = connection.execute(
        sa.select(test_results.c.test_id, sa.func.max(test_results.c.attempt))
        .where(test_results.c.run_id == run_id)
        .group_by(test_results.c.test_id)
        .limit(_RECENT_TESTS)
    )
    return {test_id: int(attempt) for test_id, attempt in rows}


@contextmanager
def _large_sqlite_cache(connection: Connection) -> Iterator[None]:
    """A larger page cache on this SQLite connection for the duration of the block."""
    if connection.dialect.name != "sqlite":
        yield
        return
    previous = connection.exec_driver_sql("PRAGMA cache_size").scalar_one()
    connection.exec_driver_sql(f"PRAGMA cache_size = -{_SQLITE_IMPORT_CACHE_KIB}")
    try:
        yield
    finally:
        connection.exec_driver_sql(f"PRAGMA cache_size = {int(previous)}")


def _batches(results: Iterator[TestResult], size: int) -> Iterator[list[TestResult]]:
    batch: list[TestResult] = []
    for result in results:
        batch.append(result)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def import_parsed(
    engine: Engine,
    parsed: ParsedFile,
    options: ImportOptions,
    *,
    content_run_key: str,
    progress: Callable[[int], None] | None = None,
    reparse: Callable[[], ParsedFile] | None = None,
) -> ImportOutcome:
    """Write one parsed file as a run (or into the run named by ``options.run_key``).

    A new run is streamed: through ONE COPY on PostgreSQL, so the server stores rows while the
    file is still being parsed, and in small executemany chunks on SQLite, so no batch of
    results is held (measured by ``bench/import.py``). ``reparse`` (parsing the same file again)
    is needed for that, as the rare far-apart repeat of a test makes the stream fail and the
    file is then written again in batches that renumber it.

    Raises ImportFormatError (nothing of the file written) when the file turns out malformed
    while its results are read."""
    run_key = options.run_key or content_run_key
    outcome = ImportOutcome(parsed.path, parsed.format, run_key)
    info = run_info(parsed, options)
    info.metadata["imported_files"] = [content_run_key]
    with engine.begin() as connection, _large_sqlite_cache(connection):
        row = create_or_join_run(connection, info, run_key)
        outcome.run_id = row.id
        if row.existed:
            # The run's metadata lists the files (by content) already imported into it: the
            # same file again adds nothing; another file (a shard, a re-run job) adds its
            # results, a test already present becoming its next attempt.
            imported = _imported_files(connection, row.id)
            if content_run_key in imported or options.run_key is None:
                outcome.already_imported = True
                return outcome
            _set_imported_files(connection, row.id, [*imported, content_run_key])
        attempts = AttemptNumbers(
            _existing_attempts(connection, row.id) if row.existed else {}, _RECENT_TESTS
        )
        total_duration = None
        ahead = True
        while reparse is not None and not row.existed:
            try:
                with connection.begin_nested():
                    total_duration = _stream_new_run(
                        connection, row.id, parsed, attempts, outcome, progress, ahead=ahead
                    )
            except parse_ahead.ParseAheadFailed as exc:
                # Not the file's fault (that is an ImportFormatError): stream it from here.
                outcome.warnings.append(f"parsed in this process instead: {exc}")
                parsed, ahead = reparse(), False
                attempts = AttemptNumbers({}, _RECENT_TESTS)
                outcome.results = outcome.observations = 0
                continue
            except _UNIQUE_VIOLATIONS:
                parsed = reparse()
                attempts = AttemptNumbers({}, _RECENT_TESTS)
                outcome.results = outcome.observations = 0
            break
        if total_duration is None:
            total_duration = 0.0
            for batch in _batches(parsed.results, _BATCH):
                for result in batch:
                    attempts.assign(result)
                    total_duration += result.duration_secs or 0.0
                written, observed = _insert_batch(connection, row.id, batch, may_exist=row.existed)
                outcome.results += written
                outcome.observations += observed
                if progress is not None:
                    progress(len(batch))
        _finish(connection, row.id, info.started_at, parsed.finished_at, total_duration)
    outcome.warnings.extend(parsed.warnings)
    return outcome


def _finish(
    connection: Connection,
    run_id: int,
    started: datetime | None,
    finished: datetime | None,
    total_duration: float,
) -> None:
    """The run finished with its statistics. A file without a time of its own is dated by its
    import (run_timestamp = now); it ended its results' durations after it started, unless the
    file says when it ended: that gives the run's wall clock (its results' durations may not add
    up to it: scripts whose tests have no duration of their own)."""
    wall_clock = None
    if finished is not None and started is not None:
        wall_clock = max((finished - started).total_seconds(), 0.0)
    elif started is not None:
        finished = started + timedelta(seconds=total_duration)
    finish_run(
        connection, run_id, RunStatus.FINISHED, finished_at=finished, wall_clock_secs=wall_clock
    )
