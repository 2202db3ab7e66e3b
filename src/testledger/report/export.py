"""Exports of the ledger's tables: CSV, JSON, JSON Lines and Parquet, streamed.

Rows are read with a server-side cursor (``stream_results``) in chunks and written as they
come, so exporting a million results takes no more memory than exporting a thousand. JSON
columns are written as JSON (nested objects in JSON/JSONL/Parquet-as-text, JSON text in CSV),
timestamps as ISO-8601 UTC.

SQLite already stores timestamps as fixed-width ISO-8601 UTC text, so that text is read as it is
and written out after a slice, instead of being parsed into a datetime and formatted back for
every timestamp of every row (which cost more than the rest of the row together).

Parquet needs pyarrow (``pip install "testledger[parquet]"``); it is the one format testledger
does not write with the standard library, so it stays an optional extra.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from testledger.common.jsondata import JsonData
from testledger.errors import ConfigError
from testledger.store.tables import (
    issue_occurrences,
    issues,
    test_results,
    test_runs,
    watcher_insights,
)
from testledger.store.types import UtcDateTime, parse_utc

__all__ = ["EXPORT_FORMATS", "EXPORT_TABLES", "ExportSummary", "export_table", "iter_rows"]

EXPORT_FORMATS = ("csv", "json", "jsonl", "parquet")
EXPORT_TABLES = {
    "runs": test_runs,
    "results": test_results,
    "issues": issues,
    "occurrences": issue_occurrences,
    "insights": watcher_insights,
}
_CHUNK = 5000


@dataclass(frozen=True, slots=True)
class ExportSummary(JsonData):
    table: str
    format: str
    rows: int
    path: str


def _table(table_name: str) -> sa.Table:
    try:
        return EXPORT_TABLES[table_name]
    except KeyError:
        known = ", ".join(EXPORT_TABLES)
        raise ConfigError(f"unknown table {table_name!r}: choose one of {known}") from None


def _query(
    table_name: str, run_from: int | None, run_to: int | None, *, raw_timestamps: bool
) -> sa.Select[Any]:
    """The table's rows in id order; with ``raw_timestamps``, timestamps as their stored text."""
    table = _table(table_name)
    selected = [
        sa.type_coerce(column, sa.Text()).label(column.name)
        if raw_timestamps and isinstance(column.type, UtcDateTime)
        else column
        for column in table.columns
    ]
    query = sa.select(*selected).order_by(table.c.id)
    if table is test_runs:
        run_column: Any = test_runs.c.id
    elif table is watcher_insights:
        run_column = (
            sa.select(test_results.c.run_id)
            .where(test_results.c.id == watcher_insights.c.test_result_id)
            .scalar_subquery()
        )
    elif table is issues:
        # Issues are not of one run: in a range, those that occurred in it.
        in_range = sa.select(issue_occurrences.c.issue_id)
        if run_from is not None:
            in_range = in_range.where(issue_occurrences.c.run_id >= run_from)
        if run_to is not None:
            in_range = in_range.where(issue_occurrences.c.run_id <= run_to)
        if run_from is not None or run_to is not None:
            query = query.where(issues.c.id.in_(in_range))
        return query
    else:
        run_column = table.c.run_id
    if run_from is not None:
        query = query.where(run_column >= run_from)
    if run_to is not None:
        query = query.where(run_column <= run_to)
    return query


def _iso(value: datetime) -> str:
    """ISO-8601 UTC with a ``Z``; whole seconds without a fraction (``datetime.isoformat``)."""
    return value.isoformat().replace("+00:00", "Z")


# testledger's stored form: 2025-10-07T13:47:15.894173Z (types.format_utc).
_STORED_LENGTH = len("2025-10-07T13:47:15.894173Z")


def _iso_from_text(text: str) -> str:
    """A timestamp SQLite holds as text, written exactly as ``_iso`` writes it once parsed: the
    stored fixed-width form is that already, but for whole seconds' zero fraction. Text in any
    other form (written by another tool) is parsed."""
    if len(text) == _STORED_LENGTH and text[10] == "T" and text[-1] == "Z":
        return text[:19] + "Z" if text.endswith(".000000Z") else text
    return _iso(parse_utc(text))


def _rows(
    connection: Connection, table_name: str, run_from: int | None, run_to: int | None
) -> tuple[list[str], Iterator[list[Any]]]:
    """The table's column names, and its rows as lists of plain values (timestamps as text)."""
    table = _table(table_name)
    raw = connection.dialect.name == "sqlite"
    convert: Callable[[Any], str] = _iso_from_text if raw else _iso
    stamps = [i for i, column in enumerate(table.columns) if isinstance(column.type, UtcDateTime)]
    query = _query(table_name, run_from, run_to, raw_timestamps=raw)

    def rows() -> Iterator[list[Any]]:
        streamed = connection.execution_options(stream_results=True, yield_per=_CHUNK)
        for row in streamed.execute(query):
            values = list(row)
            for position in stamps:
                if values[position] is not None:
                    values[position] = convert(values[position])
            yield values

    return [column.name for column in table.columns], rows()


def iter_rows(
    connection: Connection,
    table_name: str,
    *,
    run_from: int | None = None,
    run_to: int | None = None,
) -> Iterator[dict[str, Any]]:
    """The table's rows (of runs ``run_from``..``run_to`` when given), oldest first, streamed."""
    names, rows = _rows(connection, table_name, run_from, run_to)
    for values in rows:
        yield dict(zip(names, values, strict=True))


def _write_csv(names: list[str], rows: Iterator[list[Any]], out: IO[str]) -> int:
    count = 0
    writer = csv.writer(out)
    for values in rows:
        if count == 0:
            writer.writerow(names)
        writer.writerow(
            [
                json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) else value
                for value in values
            ]
        )
        count += 1
    return count


def _write_jsonl(rows: Iterator[dict[str, Any]], out: IO[str]) -> int:
    count = 0
    for row in rows:
        out.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
        count += 1
    return count


def _write_json(rows: Iterator[dict[str, Any]], out: IO[str]) -> int:
    count = 0
    out.write("[")
    for row in rows:
        out.write(
            ("\n" if count == 0 else ",\n") + json.dumps(row, ensure_ascii=False, default=str)
        )
        count += 1
    out.write("\n]\n" if count else "]\n")
    return count


def _arrow_schema(table_name: str) -> Any:
    """Numbers stay numbers; timestamps (ISO-8601 UTC), JSON and arrays are text."""
    import pyarrow as pa

    fields = []
    for column in EXPORT_TABLES[table_name].columns:
        kind = column.type
        if isinstance(kind, sa.Boolean):
            arrow: Any = pa.bool_()
        elif isinstance(kind, sa.Integer):
            arrow = pa.int64()
        elif isinstance(kind, sa.Numeric):
            arrow = pa.float64()
        else:
            arrow = pa.string()
        fields.append((column.name, arrow))
    return pa.schema(fields)


def _write_parquet(rows: Iterator[dict[str, Any]], path: Path, table_name: str) -> int:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ConfigError(
            'Parquet export needs pyarrow: pip install "testledger[parquet]"'
        ) from None
    schema = _arrow_schema(table_name)
    text_columns = {field.name for field in schema if field.type == pa.string()}
    count = 0
    batch: list[dict[str, Any]] = []
    with pq.ParquetWriter(str(path), schema) as writer:

        def flush() -> None:
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
            batch.clear()

        for row in rows:
            batch.append(
                {
                    key: (
                        json.dumps(value, ensure_ascii=False)
                        if isinstance(value, (dict, list))
                        else (str(value) if key in text_columns and value is not None else value)
                    )
                    for key, value in row.items()
                }
            )
            count += 1
            if len(batch) >= _CHUNK:
                flush()
        if batch:
            flush()
    return count


def export_table(
    connection: Connection,
    table_name: str,
    format_name: str,
    path: Path | None,
    *,
    run_from: int | None = None,
    run_to: int | None = None,
    stdout: IO[str] | None = None,
) -> ExportSummary:
    """Write one table in one format to ``path`` (or ``stdout`` for the text formats).

    Written to a temporary file first and renamed, so a failed export leaves no half file."""
    if format_name not in EXPORT_FORMATS:
        raise ConfigError(
            f"unknown format {format_name!r}: choose one of {', '.join(EXPORT_FORMATS)}"
        )
    rows = iter_rows(connection, table_name, run_from=run_from, run_to=run_to)
    if format_name == "parquet":
        if path is None:
            raise ConfigError("Parquet is binary: give --output FILE")
        temporary = path.with_name(path.name + ".partial")
        try:
            count = _write_parquet(rows, temporary, table_name)
            temporary.replace(path)
        finally:
            temporary.unlink(missing_ok=True)
        return ExportSummary(table_name, format_name, count, str(path))

    def writer(out: IO[str]) -> int:
        if format_name == "csv":
            # Lists straight to csv.writer: no dict per row for DictWriter to take apart again.
            return _write_csv(*_rows(connection, table_name, run_from, run_to), out)
        return (_write_json if format_name == "json" else _write_jsonl)(rows, out)

    if path is None:
        assert stdout is not None
        return ExportSummary(table_name, format_name, writer(stdout), "-")
    temporary = path.with_name(path.name + ".partial")
    try:
        with temporary.open("w", encoding="utf-8", newline="") as out:
            count = writer(out)
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)
    return ExportSummary(table_name, format_name, count, str(path))
