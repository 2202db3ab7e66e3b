"""Bulk writes of results and watcher observations: COPY on PostgreSQL, executemany on SQLite.

These functions bypass SQLAlchemy's per-row parameter processing on purpose: they build plain
tuples once and hand them to the driver (psycopg's COPY, sqlite3's executemany), inside the
caller's SQLAlchemy transaction. ``bench/record.py`` measures them against the raw drivers.

Two insert modes:

* a *new* run cannot already hold any of the rows, so PostgreSQL uses COPY (fastest);
* a run that already exists (the same ``run_key`` recorded again, a spool being synced, a
  second worker joining) inserts with ``ON CONFLICT DO NOTHING`` on (run_id, test_id, attempt),
  so a row that is already there is never written twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from testledger.model import TestResult, WatcherObservation, utcnow
from testledger.store.encoding import (
    RESULT_COLUMNS,
    ROW_COLUMNS,
    encode_json,
    encode_result,
    format_utc,
    json_column,
    observation_without_nul,
    text_without_nul,
)
from testledger.store.tables import watcher_insights

__all__ = [
    "RESULT_COLUMNS",
    "ROW_COLUMNS",
    "PendingObservation",
    "encode_json",
    "encode_result",
    "insert_observations",
    "insert_results",
    "insert_rows",
    "result_ids",
]

INSIGHT_COLUMNS: tuple[str, ...] = (
    "test_result_id",
    "quality_score",
    "strengths",
    "weaknesses",
    "anomalies",
    "recommendations",
    "confidence_level",
    "confidence",
    "watcher",
    "watcher_error",
    "raw_observation",
    "created_at",
    "watcher_model",
    "watcher_input_tokens",
    "watcher_output_tokens",
    "watcher_cost_usd",
    "truncated",
)


def _stamp(value: datetime | None, sqlite: bool) -> Any:
    if value is None or not sqlite:
        return value
    return format_utc(value)


def _placeholders(count: int, style: str) -> str:
    return ", ".join([style] * count)


def insert_rows(
    connection: Connection,
    run_id: int,
    rows: Sequence[tuple[Any, ...]],
    *,
    may_exist: bool,
) -> list[int]:
    """Insert encoded rows (see :func:`encode_result`) into ``run_id`` in the caller's
    transaction; returns the positions of the rows that were new. ``may_exist`` selects the
    conflict-tolerant path (see module docstring): rows whose (test_id, attempt) the run already
    holds are left out, so that their watcher observations are not stored twice either."""
    positions = list(range(len(rows)))
    if rows and may_exist:
        present = result_ids(connection, run_id, ((row[0], row[1]) for row in rows))
        positions = [i for i in positions if (rows[i][0], rows[i][1]) not in present]
    if not positions:
        return positions
    now = format_utc(utcnow())
    full = [(run_id, *rows[i], now) for i in positions]
    columns = ", ".join(RESULT_COLUMNS)
    driver = connection.connection.driver_connection
    assert driver is not None
    if connection.dialect.name == "sqlite":
        verb = "INSERT OR IGNORE" if may_exist else "INSERT"
        marks = _placeholders(len(RESULT_COLUMNS), "?")
        driver.executemany(f"{verb} INTO test_results ({columns}) VALUES ({marks})", full)
        return positions
    with driver.cursor() as cursor:
        if may_exist:
            cursor.executemany(
                f"INSERT INTO test_results ({columns}) "
                f"VALUES ({_placeholders(len(RESULT_COLUMNS), '%s')}) "
                "ON CONFLICT (run_id, test_id, attempt) DO NOTHING",
                full,
            )
            return positions
        with cursor.copy(f"COPY test_results ({columns}) FROM STDIN") as copy:
            for row in full:
                copy.write_row(row)
    return positions


def insert_results(
    connection: Connection,
    run_id: int,
    results: Sequence[TestResult],
    *,
    may_exist: bool,
) -> list[TestResult]:
    """Encode and insert results (attempt numbers already assigned); returns the new ones."""
    rows = [encode_result(result) for result in results]
    return [results[i] for i in insert_rows(connection, run_id, rows, may_exist=may_exist)]


def result_ids(
    connection: Connection, run_id: int, keys: Iterable[tuple[str, int]]
) -> dict[tuple[str, int], int]:
    """Database ids of the results with these (test_id, attempt) keys in ``run_id``."""
    wanted = set(keys)
    if not wanted:
        return {}
    sqlite = connection.dialect.name == "sqlite"
    style = "?" if sqlite else "%s"
    driver = connection.connection.driver_connection
    assert driver is not None
    found: dict[tuple[str, int], int] = {}
    test_ids = sorted({test_id for test_id, _ in wanted})
    cursor = driver.cursor()
    try:
        for start in range(0, len(test_ids), 500):
            chunk = test_ids[start : start + 500]
            cursor.execute(
                "SELECT id, test_id, attempt FROM test_results "
                f"WHERE run_id = {style} AND test_id IN ({_placeholders(len(chunk), style)})",
                (run_id, *chunk),
            )
            for result_id, test_id, attempt in cursor.fetchall():
                if (test_id, attempt) in wanted:
                    found[(test_id, attempt)] = result_id
    finally:
        cursor.close()
    return found


@dataclass(frozen=True, slots=True)
class PendingObservation:
    """A watcher observation waiting to be written for the result (test_id, attempt)."""

    test_id: str
    attempt: int
    observation: WatcherObservation
    update_result: bool


def insert_observations(
    connection: Connection,
    run_id: int,
    pending: Sequence[PendingObservation],
    *,
    may_exist: bool = False,
) -> int:
    """Write observations into ``watcher_insights`` and keep ``test_results.watcher_quality`` and
    ``watcher_observations`` consistent with the latest one. Returns how many were written.

    Observations for results that are not in the run are dropped. With ``may_exist`` (a spool
    being replayed) an observation the database already holds, known by its result and its
    ``created_at``, is not written again.
    """
    if not pending:
        return 0
    # Looked up as stored: a NUL in a test id was replaced when its result was written.
    ids = result_ids(
        connection, run_id, ((text_without_nul(p.test_id), p.attempt) for p in pending)
    )
    sqlite = connection.dialect.name == "sqlite"
    style = "?" if sqlite else "%s"
    now = utcnow()
    stored = _stored_observations(connection, ids.values()) if may_exist else set()
    insight_rows: list[tuple[Any, ...]] = []
    updates: list[tuple[Any, ...]] = []
    for item in pending:
        result_id = ids.get((text_without_nul(item.test_id), item.attempt))
        if result_id is None:
            continue
        obs = observation_without_nul(item.observation)
        if obs.created_at is not None and (result_id, format_utc(obs.created_at)) in stored:
            continue
        insight_rows.append(
            (
                result_id,
                obs.quality_score,
                *(
                    _array(values, sqlite)
                    for values in (obs.strengths, obs.weaknesses, obs.anomalies)
                ),
                _array(obs.recommendations, sqlite),
                obs.confidence_level,
                obs.confidence,
                obs.watcher,
                obs.error,
                json_column(obs.raw),
                _stamp(obs.created_at or now, sqlite),
                obs.watcher_model,
                obs.watcher_input_tokens,
                obs.watcher_output_tokens,
                obs.watcher_cost_usd,
                bool(obs.truncated),
            )
        )
        if item.update_result:
            updates.append((obs.quality_score, json_column(obs.as_json()), result_id))
    if not insight_rows:
        return 0
    driver = connection.connection.driver_connection
    assert driver is not None
    cursor = driver.cursor()
    try:
        cursor.executemany(
            f"INSERT INTO watcher_insights ({', '.join(INSIGHT_COLUMNS)}) "
            f"VALUES ({_placeholders(len(INSIGHT_COLUMNS), style)})",
            insight_rows,
        )
        if updates:
            cursor.executemany(
                f"UPDATE test_results SET watcher_quality = {style}, "
                f"watcher_observations = {style} WHERE id = {style}",
                updates,
            )
    finally:
        cursor.close()
    return len(insight_rows)


def _stored_observations(connection: Connection, result_ids: Iterable[int]) -> set[tuple[int, str]]:
    wanted = sorted(set(result_ids))
    found: set[tuple[int, str]] = set()
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        rows = connection.execute(
            sa.select(watcher_insights.c.test_result_id, watcher_insights.c.created_at).where(
                watcher_insights.c.test_result_id.in_(chunk)
            )
        )
        found.update((int(result_id), format_utc(created)) for result_id, created in rows)
    return found


def _array(values: list[str], sqlite: bool) -> Any:
    return json.dumps(values, ensure_ascii=False) if sqlite else list(values)
