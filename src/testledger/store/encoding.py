"""Results as plain rows, without SQLAlchemy: what the database writers, the JSON files and an
import's parse-ahead process (which must start fast) share.

A result is encoded once into a row of :data:`ROW_COLUMNS` (JSON columns as JSON text,
timestamps as ISO-8601 UTC text), which both PostgreSQL and SQLite accept as they are.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from testledger.model import TestResult

__all__ = [
    "RESULT_COLUMNS",
    "ROW_COLUMNS",
    "encode_json",
    "encode_result",
    "format_utc",
    "json_column",
    "parse_utc",
]

RESULT_COLUMNS: tuple[str, ...] = (
    "run_id",
    "test_id",
    "attempt",
    "tool_name",
    "variation",
    "provider",
    "model",
    "status",
    "execution_status",
    "duration_secs",
    "memory_mb",
    "cpu_percent",
    "tokens_total",
    "tokens_input",
    "tokens_output",
    "cost_usd",
    "watcher_quality",
    "watcher_observations",
    "error_type",
    "error_message",
    "traceback",
    "output_excerpt",
    "metrics",
    "details",
    "started_at",
    "created_at",
)

#: The columns of a result row as the recorder encodes it once, for both stores: the JSON
#: files write it as it is, the database writers add ``run_id`` and ``created_at`` around it.
ROW_COLUMNS: tuple[str, ...] = RESULT_COLUMNS[1:-1]

_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str, separators=(",", ":"))
_c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
if _c_make_encoder is not None:
    # JSONEncoder.encode builds a new C encoder per call, costing as much as the encoding; the
    # recorder encodes every result, so one C encoder is made here and reused (same output).
    _c_encoder = _c_make_encoder(
        None, str, json.encoder.encode_basestring, None, ":", ",", False, False, True
    )

    def encode_json(value: Any) -> str:
        """Compact JSON, as every JSON column and results line is written."""
        return "".join(_c_encoder(value, 0))

else:  # pragma: no cover - other Python implementations

    def encode_json(value: Any) -> str:
        return _ENCODER.encode(value)


def json_column(value: Any) -> str | None:
    """A JSON column's value: NULL for nothing (None or an empty object), else compact JSON."""
    if value is None or value == {}:
        return None
    return encode_json(value)


def format_utc(value: datetime) -> str:
    """Fixed-width ISO-8601 UTC text, as SQLite stores every timestamp."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_utc(value: str) -> datetime:
    """Read any ISO-8601 text back as an aware UTC datetime (naive text is taken as UTC)."""
    text = value.strip().replace(" ", "T", 1)
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def encode_result(result: TestResult) -> tuple[Any, ...]:
    """A result as a row of ``ROW_COLUMNS``: plain JSON-ready values (JSON columns as JSON
    text, timestamps as ISO-8601 UTC text), which both PostgreSQL and SQLite accept."""
    watcher = result.watcher
    memory = result.memory_mb
    started = result.started_at
    return (
        result.test_id,
        result.attempt or 1,
        result.tool_name,
        result.variation,
        result.provider,
        result.model,
        result.status.value,
        result.execution_status,
        result.duration_secs,
        None if memory is None else round(memory),
        result.cpu_percent,
        result.tokens_total,
        result.tokens_input,
        result.tokens_output,
        result.cost_usd,
        watcher.quality_score if watcher else None,
        json_column(watcher.as_json()) if watcher else None,
        result.error_type,
        result.error_message,
        result.traceback,
        result.output_excerpt,
        json_column(result.metrics),
        json_column(result.details),
        None if started is None else format_utc(started),
    )
