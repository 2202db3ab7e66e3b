"""Results as plain rows, without SQLAlchemy: what the database writers, the JSON files and an
import's parse-ahead process (which must start fast) share.

A result is encoded once into a row of :data:`ROW_COLUMNS` (JSON columns as JSON text,
timestamps as ISO-8601 UTC text), which both PostgreSQL and SQLite accept as they are.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timezone
from typing import Any

from testledger.model import TestResult, WatcherObservation

__all__ = [
    "RESULT_COLUMNS",
    "ROW_COLUMNS",
    "encode_json",
    "encode_result",
    "format_utc",
    "json_column",
    "observation_without_nul",
    "parse_utc",
    "replace_nul",
    "result_without_nul",
    "text_without_nul",
    "values_without_nul",
    "without_nul",
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
    row = (
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
    for value in row:
        # A NUL is the rare case; finding one costs a scan of each text value.
        if value.__class__ is str and ("\x00" in value or "\\u0000" in value):
            return replace_nul(row)
    return row


#: What a NUL byte in text is stored as. PostgreSQL refuses NUL in text and in JSON (jsonb),
#: SQLite would keep it: replacing it before either store sees it keeps both alike, and the
#: replacement character shows plainly where a byte was lost.
NUL_REPLACEMENT = "\ufffd"
_JSON_COLUMNS = frozenset(("watcher_observations", "metrics", "details"))
_DETAILS = ROW_COLUMNS.index("details")


def _without_nul(value: Any) -> tuple[Any, bool]:
    """``value`` (decoded JSON) with every NUL in its strings and keys replaced; and whether
    there was one."""
    if isinstance(value, str):
        return (value.replace("\x00", NUL_REPLACEMENT), True) if "\x00" in value else (value, False)
    if isinstance(value, list):
        pairs = [_without_nul(item) for item in value]
        return [item for item, _ in pairs], any(changed for _, changed in pairs)
    if isinstance(value, dict):
        cleaned: dict[str, Any] = {}
        changed = False
        for key, item in value.items():
            new_key, key_changed = _without_nul(key)
            cleaned[new_key], item_changed = _without_nul(item)
            changed = changed or key_changed or item_changed
        return cleaned, changed
    return value, False


def replace_nul(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """An encoded row (of ``ROW_COLUMNS``) with every NUL replaced by U+FFFD, the columns
    that held one named in ``details["nul_replaced"]`` (so that the loss is on record)."""
    values = list(row)
    replaced: list[str] = []
    for index, name in enumerate(ROW_COLUMNS):
        value = values[index]
        if value.__class__ is not str:
            continue
        if name in _JSON_COLUMNS:
            # In JSON text a NUL is the escape \u0000; decoding tells it apart from an
            # escaped backslash followed by "u0000".
            if "\\u0000" not in value:
                continue
            decoded, changed = _without_nul(json.loads(value))
            if changed:
                values[index] = encode_json(decoded)
                replaced.append(name)
        elif "\x00" in value:
            values[index] = value.replace("\x00", NUL_REPLACEMENT)
            replaced.append(name)
    if replaced:
        details_text = values[_DETAILS]
        details = json.loads(details_text) if details_text else {}
        if not isinstance(details, dict):
            details = {"value": details}
        details["nul_replaced"] = replaced
        values[_DETAILS] = encode_json(details)
    return tuple(values)


def without_nul(value: Any) -> Any:
    """``value`` (text, or JSON-ready lists and dicts) with every NUL replaced by U+FFFD."""
    return _without_nul(value)[0]


def text_without_nul(text: str) -> str:
    """``text`` as it is stored: a NUL replaced by U+FFFD (a test id to look a row up by)."""
    return text.replace("\x00", NUL_REPLACEMENT) if "\x00" in text else text


def values_without_nul(values: dict[str, Any], *, note_in: str) -> dict[str, Any]:
    """A row's ``values`` (text, and JSON-ready lists and dicts, by column) with every NUL
    replaced by U+FFFD, as a result's are; the columns that held one are named in the JSON
    column ``note_in`` under ``nul_replaced``. A run's own fields (branch, notes, metadata...)
    go through here: PostgreSQL refused the whole run for one NUL in them."""
    replaced: list[str] = []
    cleaned = dict(values)
    for name, value in values.items():
        if isinstance(value, (str, list, dict)):
            cleaned[name], changed = _without_nul(value)
            if changed:
                replaced.append(name)
    if replaced:
        note = cleaned.get(note_in)
        cleaned[note_in] = {**(note if isinstance(note, dict) else {}), "nul_replaced": replaced}
    return cleaned


#: The fields of a watcher observation that hold text (strings, lists of them, raw JSON).
_OBSERVATION_TEXT = tuple(
    field.name
    for field in dataclasses.fields(WatcherObservation)
    if field.name not in ("quality_score", "confidence", "created_at", "truncated")
    and not field.name.endswith(("_tokens", "_usd"))
)


def _has_nul(value: Any) -> bool:
    kind = value.__class__
    if kind is str:
        return "\x00" in value
    if kind is list:
        for item in value:
            if _has_nul(item):
                return True
    elif kind is dict:
        for key, item in value.items():
            if _has_nul(key) or _has_nul(item):
                return True
    return False


def observation_without_nul(observation: WatcherObservation) -> WatcherObservation:
    """``observation`` with every NUL in its text, lists and raw JSON replaced by U+FFFD (a new
    one; the same when it held none), the fields that held one named in its ``raw`` under
    ``nul_replaced``: PostgreSQL refuses NUL in text, text arrays and jsonb alike."""
    for name in _OBSERVATION_TEXT:
        if _has_nul(getattr(observation, name)):
            break
    else:
        return observation  # nearly always: a look at each value, nothing rebuilt
    changes: dict[str, Any] = {}
    for name in _OBSERVATION_TEXT:
        cleaned, changed = _without_nul(getattr(observation, name))
        if changed:
            changes[name] = cleaned
    raw = changes.get("raw", observation.raw)
    changes["raw"] = {**(raw if isinstance(raw, dict) else {}), "nul_replaced": list(changes)}
    return dataclasses.replace(observation, **changes)


def result_without_nul(result: TestResult) -> None:
    """Replace, in ``result`` itself, every NUL in its text, metrics, details and watcher
    observation by U+FFFD, the fields that held one named in ``details["nul_replaced"]`` (as
    :func:`encode_result` does to a row): for code that looks rows up by a result's fields
    before it is written (an import placing loose evidence), which PostgreSQL would refuse."""
    replaced: list[str] = []
    for field in dataclasses.fields(result):
        value = getattr(result, field.name)
        if field.name != "details" and isinstance(value, (str, list, dict)):
            cleaned, changed = _without_nul(value)
            if changed:
                setattr(result, field.name, cleaned)
                replaced.append(field.name)
    details, changed = _without_nul(result.details)
    if changed:
        replaced.append("details")
    if replaced:
        result.details = {**details, "nul_replaced": replaced}
    if result.watcher is not None:
        result.watcher = observation_without_nul(result.watcher)
