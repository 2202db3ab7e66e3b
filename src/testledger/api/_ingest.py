"""Recording a run piece by piece, as the HTTP ingest API receives it: start (or join) a run,
add results in keyed batches (a batch sent again is stored once), attach watcher
observations, finish it (statistics and issue detection, as the runner does).

Each call is one transaction: a batch that cannot be stored leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from testledger.analyze.pipeline import detect_after_recording
from testledger.api._ingest_rows import ROW_BATCH_COLUMNS, decode_rows, without_nul
from testledger.common.jsondata import JsonData
from testledger.common.run_keys import new_run_key
from testledger.common.text import (
    MESSAGE_LIMIT,
    OUTPUT_LIMIT,
    TRACEBACK_LIMIT,
    bounded,
    bounded_id,
)
from testledger.errors import ConfigError
from testledger.model import (
    RunInfo,
    RunStats,
    RunStatus,
    Status,
    TestResult,
    WatcherObservation,
    utcnow,
)
from testledger.record.ledger import Ledger
from testledger.store import ingest_batches as batches
from testledger.store.encoding import (
    NUL_REPLACEMENT,
    ROW_COLUMNS,
    format_utc,
    json_column,
    replace_nul,
)
from testledger.store.runs import create_or_join_run, finish_run
from testledger.store.writer import PendingObservation, encode_result, insert_observations
from testledger.store.writer import insert_rows as _insert_rows

__all__ = [
    "MAX_BATCH_KEY_CHARS",
    "MAX_BATCH_RESULTS",
    "ROW_BATCH_COLUMNS",
    "IngestBatch",
    "IngestFinish",
    "IngestObservation",
    "IngestRun",
    "ingest_finish_run",
    "ingest_observations",
    "ingest_result_rows",
    "ingest_results",
    "ingest_start_run",
    "set_expected_tests",
]

#: Results in one batch at most: a larger batch is refused (send it in parts).
MAX_BATCH_RESULTS = 10_000
MAX_BATCH_KEY_CHARS = 200
#: Observation batch keys live beside result batch keys in ``ingest_batches``; the two kinds
#: are told apart by this mark, so that a result batch and an observation batch may share a
#: key without one hiding the other.
_OBSERVATION_KEY_MARK = "observations:"
_RESULT_KEY_MARK = "results:"

#: A batch's rows and its watcher observations by position.
_Encoded = tuple[list[tuple[Any, ...]], list[tuple[int, WatcherObservation]]]
#: Builds them in the batch's transaction (numbering attempts reads the run).
_Encoder = Callable[[Connection], _Encoded]


@dataclass(frozen=True, slots=True)
class IngestRun(JsonData):
    """The run results are to be posted into. ``existed``: a run of that key was there."""

    run_id: int
    run_key: str
    status: str
    existed: bool


@dataclass(frozen=True, slots=True)
class IngestBatch(JsonData):
    """What became of one posted batch. ``duplicate``: a batch of that key was stored before
    and nothing was written now. ``stored``: rows written (results already held under the same
    test and attempt are not written twice)."""

    run_id: int
    batch_key: str | None
    received: int
    stored: int
    duplicate: bool


@dataclass(frozen=True, slots=True)
class IngestFinish(JsonData):
    """A finished run with its statistics."""

    run_id: int
    run_key: str
    status: str
    stats: RunStats


@dataclass(frozen=True, slots=True)
class IngestObservation:
    """A watcher observation for the result ``test_id`` (``attempt`` None: its latest)."""

    test_id: str
    observation: WatcherObservation
    attempt: int | None = None


def ingest_start_run(
    ledger: Ledger,
    info: RunInfo,
    *,
    expected_tests: int | None = None,
) -> IngestRun:
    """Create the run ``info`` describes, or join the one already recorded under its
    ``run_key`` (a new key is made when it has none). Nothing is read from this machine's git
    or CI: the caller says what it knows."""
    if info.run_key is None:
        info.run_key = new_run_key(info.started_at or utcnow())
    _check_expected(expected_tests)
    _scrub_fields(info)
    with ledger.engine().begin() as connection:
        row = create_or_join_run(connection, info, info.run_key)
        if expected_tests is not None:
            batches.set_expected_tests(connection, row.id, expected_tests)
    return IngestRun(row.id, row.run_key, row.status.value, row.existed)


def set_expected_tests(ledger: Ledger, run_id: int, expected_tests: int | None) -> None:
    """Note how many tests the run is expected to hold (a live run's progress). Raises
    NotFound."""
    _check_expected(expected_tests)
    with ledger.engine(create=False).begin() as connection:
        batches.run_by_id(connection, run_id)
        batches.set_expected_tests(connection, run_id, expected_tests)


def _without_nul(value: Any) -> Any:
    """``value`` with every NUL and lone surrogate in its strings (and its lists' and dicts')
    replaced, as the result rows' NULs are (PostgreSQL refuses NUL in text, arrays and jsonb
    alike; neither database takes text that is no UTF-8)."""
    if isinstance(value, str):
        if "\x00" in value:
            value = value.replace("\x00", NUL_REPLACEMENT)
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                value = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return value
    if isinstance(value, list):
        return [_without_nul(item) for item in value]
    if isinstance(value, dict):
        return {_without_nul(key): _without_nul(item) for key, item in value.items()}
    return value


def _scrub_fields(record: RunInfo | WatcherObservation) -> None:
    """Replace NUL in every text field of ``record``, in place."""
    for field in dataclasses.fields(record):
        value = getattr(record, field.name)
        if isinstance(value, (str, list, dict)):
            setattr(record, field.name, _without_nul(value))


def _check_expected(expected_tests: int | None) -> None:
    if expected_tests is not None and not 0 <= expected_tests <= 2**31 - 1:
        raise ConfigError(f"expected_tests must be a count (0 or more), got {expected_tests}")


def _check_batch_key(batch_key: str) -> None:
    if not batch_key or len(batch_key) > MAX_BATCH_KEY_CHARS or "\x00" in batch_key:
        raise ConfigError(
            f"a batch key is 1 to {MAX_BATCH_KEY_CHARS} characters, without NUL: "
            "the same for every retry of the same batch"
        )


def ingest_results(
    ledger: Ledger,
    run_id: int,
    batch_key: str,
    results: Sequence[TestResult | Mapping[str, Any]],
    *,
    expected_tests: int | None = None,
) -> IngestBatch:
    """Store a batch of results into ``run_id`` once: the same ``batch_key`` sent again writes
    nothing (``duplicate``). Each result is a TestResult, or its fields by name (a mapping of
    TestResult's fields, ``watcher`` a WatcherObservation: what a server that validated them
    passes, without building a TestResult for each). A result without an attempt number is the
    next attempt of its test in the run. Messages, tracebacks and output are bounded as the
    recorders bound them. Raises NotFound for an unknown run, ConfigError for a bad key or
    batch, ValueError for a bad result."""
    _check_batch_key(batch_key)
    _check_expected(expected_tests)
    if len(results) > MAX_BATCH_RESULTS:
        raise ConfigError(
            f"a batch holds at most {MAX_BATCH_RESULTS} results, this one {len(results)}: "
            "send it in parts"
        )
    return _store_batch(
        ledger,
        run_id,
        batch_key,
        len(results),
        lambda connection: _encode(connection, run_id, results),
        expected_tests,
    )


def ingest_result_rows(
    ledger: Ledger,
    run_id: int,
    batch_key: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    expected_tests: int | None = None,
) -> IngestBatch:
    """:func:`ingest_results` for a batch in the compact form: the column names once
    (``ROW_BATCH_COLUMNS``; ``test_id`` and ``status`` required) and each result as a list of
    values in that order. Metrics and details are JSON objects or their JSON text; a
    ``watcher`` value is a WatcherObservation. Every value is checked a column at a time (see
    ``api._ingest_rows``) before anything is written: a bad one raises ValueError naming its
    row and column, and the batch is refused whole. Raises NotFound, ConfigError as
    :func:`ingest_results` does."""
    _check_batch_key(batch_key)
    _check_expected(expected_tests)
    if len(rows) > MAX_BATCH_RESULTS:
        raise ConfigError(
            f"a batch holds at most {MAX_BATCH_RESULTS} results, this one {len(rows)}: "
            "send it in parts"
        )
    values, attempts, watchers, may_hold_nul = decode_rows(columns, rows)
    for index, watcher in enumerate(watchers):
        if watcher is not None:
            _scrub_fields(watcher)
            if watcher.created_at is None:
                watcher.created_at = utcnow()
            row = values[index]
            observed = (watcher.quality_score, json_column(watcher.as_json()))
            values[index] = (*row[:_QUALITY], *observed, *row[_OBSERVATION + 1 :])
    watched = [(i, w) for i, w in enumerate(watchers) if w is not None]

    def encode(connection: Connection) -> _Encoded:
        unnumbered = {values[i][0] for i, attempt in enumerate(attempts) if attempt is None}
        numbered = values
        if unnumbered:
            latest = batches.latest_attempts(connection, run_id, unnumbered)
            numbered = []
            for row, attempt in zip(values, attempts, strict=True):
                previous = latest.get(row[0], 0)
                number = previous + 1 if attempt is None else attempt
                latest[row[0]] = max(previous, number)
                numbered.append((row[0], number, *row[2:]))
        return ([without_nul(row) for row in numbered] if may_hold_nul else numbered), watched

    return _store_batch(ledger, run_id, batch_key, len(rows), encode, expected_tests)


def _store_batch(
    ledger: Ledger,
    run_id: int,
    batch_key: str,
    received: int,
    encode: _Encoder,
    expected_tests: int | None,
) -> IngestBatch:
    """Store a batch once under its key, in one transaction (see :func:`ingest_results`)."""
    engine = ledger.engine(create=False)

    def store(*, may_exist: bool) -> IngestBatch:
        try:
            return _store_results(
                engine, run_id, batch_key, received, encode, expected_tests, may_exist=may_exist
            )
        except UnicodeEncodeError:
            # A lone surrogate (JSON's "\ud800") is no UTF-8: the rare batch holding one is
            # stored again with it replaced, as NUL is, rather than refused.
            return _store_results(
                engine,
                run_id,
                batch_key,
                received,
                encode,
                expected_tests,
                may_exist=may_exist,
                clean=True,
            )

    try:
        return store(may_exist=False)
    except _integrity_errors():
        # Some of these results (test and attempt) are in the run already, from another batch
        # or a run recorded again under its key: store the others, as the runner does.
        return store(may_exist=True)


def _integrity_errors() -> tuple[type[BaseException], ...]:
    psycopg = sys.modules.get("psycopg")
    errors: tuple[type[BaseException], ...] = (sa.exc.IntegrityError, sqlite3.IntegrityError)
    return errors if psycopg is None else (*errors, psycopg.errors.IntegrityError)


def _store_results(
    engine: Engine,
    run_id: int,
    batch_key: str,
    received: int,
    encode: _Encoder,
    expected_tests: int | None,
    *,
    may_exist: bool,
    clean: bool = False,
) -> IngestBatch:
    with engine.begin() as connection:
        batches.run_by_id(connection, run_id)
        if not batches.claim_batch(connection, run_id, _RESULT_KEY_MARK + batch_key, received):
            return IngestBatch(run_id, batch_key, received, 0, duplicate=True)
        if expected_tests is not None:
            batches.set_expected_tests(connection, run_id, expected_tests)
        rows, watched = encode(connection)
        if clean:
            rows = [tuple(_without_nul(value) for value in row) for row in rows]
        inserted = _insert_rows(connection, run_id, rows, may_exist=may_exist)
        new = set(inserted)
        embedded = [
            PendingObservation(rows[position][0], rows[position][1], watcher, update_result=False)
            for position, watcher in watched
            if position in new
        ]
        insert_observations(connection, run_id, embedded)
    return IngestBatch(run_id, batch_key, received, len(inserted), duplicate=False)


def _encode(
    connection: Connection, run_id: int, results: Sequence[TestResult | Mapping[str, Any]]
) -> tuple[list[tuple[Any, ...]], list[tuple[int, WatcherObservation]]]:
    """The batch's rows, attempts numbered (the run's latest attempt of a test without one is
    read first) and texts bounded; and the watcher observations that came with them, by
    position."""
    unnumbered = {_field(r, "test_id") for r in results if _field(r, "attempt") is None}
    latest = batches.latest_attempts(connection, run_id, unnumbered) if unnumbered else {}
    rows: list[tuple[Any, ...]] = []
    watched: list[tuple[int, WatcherObservation]] = []
    for result in results:
        if isinstance(result, TestResult):
            test_id, attempt, watcher = _clean_id(result.test_id), result.attempt, result.watcher
        else:
            test_id = _clean_id(result["test_id"])
            attempt, watcher = result.get("attempt"), result.get("watcher")
        previous = latest.get(test_id, 0)
        if attempt is None:
            attempt = previous + 1
        latest[test_id] = max(previous, attempt)
        if watcher is not None:
            _scrub_fields(watcher)
            if watcher.created_at is None:
                watcher.created_at = utcnow()
            watched.append((len(rows), watcher))
        if isinstance(result, TestResult):
            result.attempt = attempt
            result.error_message = bounded(result.error_message, MESSAGE_LIMIT)
            result.traceback = bounded(result.traceback, TRACEBACK_LIMIT)
            result.output_excerpt = bounded(result.output_excerpt, OUTPUT_LIMIT)
            rows.append(encode_result(result))
        else:
            rows.append(_row_of_fields(result, test_id, attempt, watcher))
    return rows, watched


def _field(result: TestResult | Mapping[str, Any], name: str) -> Any:
    if name == "test_id":
        return _clean_id(result.test_id if isinstance(result, TestResult) else result[name])
    return getattr(result, name) if isinstance(result, TestResult) else result.get(name)


def _clean_id(test_id: str) -> str:
    """A test id as the row holds it: bounded, and text a database takes."""
    test_id = bounded_id(test_id)
    return test_id if test_id.isascii() else _without_nul(test_id)


def _row_of_fields(
    fields: Mapping[str, Any], test_id: str, attempt: int, watcher: WatcherObservation | None
) -> tuple[Any, ...]:
    """The row ``encode_result(TestResult(**fields))`` gives (with the texts bounded), built
    from the fields directly, checked as TestResult checks them."""
    if not test_id:
        raise ValueError("a test result needs a non-empty test_id")
    if attempt < 1:
        raise ValueError(f"attempt numbers start at 1, got {attempt}")
    metrics = fields.get("metrics") or {}
    for name, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"custom metric {name!r} must be a number, got {value!r}")
    get = fields.get
    memory = get("memory_mb")
    started = get("started_at")
    # In ROW_COLUMNS' order, as encode_result writes it (a test compares the two).
    row = (
        test_id,
        attempt,
        bounded_id(fields["tool_name"]),
        bounded_id(fields["variation"]),
        get("provider"),
        get("model"),
        _STATUS_TEXT.get(fields["status"]) or Status.parse(fields["status"]).value,
        get("execution_status"),
        get("duration_secs"),
        None if memory is None else round(memory),
        get("cpu_percent"),
        get("tokens_total"),
        get("tokens_input"),
        get("tokens_output"),
        get("cost_usd"),
        None if watcher is None else watcher.quality_score,
        None if watcher is None else json_column(watcher.as_json()),
        get("error_type"),
        bounded(get("error_message"), MESSAGE_LIMIT),
        bounded(get("traceback"), TRACEBACK_LIMIT),
        bounded(get("output_excerpt"), OUTPUT_LIMIT),
        json_column(metrics),
        json_column(get("details") or {}),
        None if started is None else format_utc(started),
    )
    for value in row:
        if value.__class__ is str and ("\x00" in value or "\\u0000" in value):
            return replace_nul(row)
    return row


_QUALITY = ROW_COLUMNS.index("watcher_quality")
_OBSERVATION = ROW_COLUMNS.index("watcher_observations")

#: The stored spellings of the statuses, read without Status.parse (an enum's ``value`` costs
#: a microsecond a result: a tenth of the server's work on a batch).
_STATUS_TEXT = {status.value: status.value for status in Status}


def ingest_observations(
    ledger: Ledger,
    run_id: int,
    observations: Sequence[IngestObservation],
    *,
    batch_key: str | None = None,
) -> IngestBatch:
    """Attach watcher observations to results of ``run_id`` (each becomes the result's latest
    observation). With ``batch_key``, the same batch sent again writes nothing. Observations
    for results the run does not hold are dropped (``stored`` counts the others). Raises
    NotFound for an unknown run."""
    if batch_key is not None:
        _check_batch_key(batch_key)
    if len(observations) > MAX_BATCH_RESULTS:
        raise ConfigError(f"a batch holds at most {MAX_BATCH_RESULTS} observations")
    with ledger.engine(create=False).begin() as connection:
        batches.run_by_id(connection, run_id)
        if batch_key is not None and not batches.claim_batch(
            connection, run_id, _OBSERVATION_KEY_MARK + batch_key, len(observations)
        ):
            return IngestBatch(run_id, batch_key, len(observations), 0, duplicate=True)
        # Named as the results' rows name them (bounded, as UTF-8).
        test_ids = [_clean_id(item.test_id) for item in observations]
        unnumbered = {
            test_id
            for test_id, item in zip(test_ids, observations, strict=True)
            if item.attempt is None
        }
        latest = batches.latest_attempts(connection, run_id, unnumbered) if unnumbered else {}
        pending = []
        for test_id, item in zip(test_ids, observations, strict=True):
            attempt = item.attempt if item.attempt is not None else latest.get(test_id)
            if attempt is None:
                continue
            _scrub_fields(item.observation)
            if item.observation.created_at is None:
                item.observation.created_at = utcnow()
            pending.append(
                PendingObservation(test_id, attempt, item.observation, update_result=True)
            )
        stored = insert_observations(connection, run_id, pending, may_exist=True)
    return IngestBatch(run_id, batch_key, len(observations), stored, duplicate=False)


def ingest_finish_run(
    ledger: Ledger,
    run_id: int,
    status: RunStatus = RunStatus.FINISHED,
    *,
    notes: str | None = None,
    wall_clock_secs: float | None = None,
    finished_at: datetime | None = None,
    detect_issues: bool = True,
) -> IngestFinish:
    """Compute and store the run's statistics and status, then detect its issues (as a run
    recorded through the runner API is). Finishing a run again recomputes them. Raises
    NotFound."""
    if status is RunStatus.RUNNING:
        raise ConfigError("a run is finished as finished or aborted, not running")
    if wall_clock_secs is not None and not 0 <= wall_clock_secs < 10**9:
        raise ConfigError(f"wall_clock_secs must be a duration in seconds, got {wall_clock_secs}")
    engine = ledger.engine(create=False)
    with engine.begin() as connection:
        row = batches.run_by_id(connection, run_id)
        stats = finish_run(
            connection,
            run_id,
            status,
            finished_at=finished_at or utcnow(),
            wall_clock_secs=wall_clock_secs,
            notes=notes,
        )
    if detect_issues:
        detect_after_recording(engine, ledger.settings, [run_id])
    return IngestFinish(run_id, row.run_key, status.value, stats)
