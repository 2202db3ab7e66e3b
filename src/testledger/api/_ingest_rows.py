"""The compact batch format of the ingest API: the column names once, then each result as a
list of values in that order (``{"columns": ["test_id", "status", ...], "rows": [[...], ...]}``).

Checked a column at a time rather than a result at a time, so that a batch of a thousand
results costs a few milliseconds to validate, not a model per result: every value is checked
(type, range, a known status, JSON objects of finite numbers) and the first bad one refuses the
whole batch with where it is and what was wrong. What passes becomes the rows the runner's COPY
path writes (``ROW_COLUMNS``), texts bounded as the recorders bound them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from itertools import repeat
from typing import Any, NamedTuple

from testledger.common.jsondata import is_finite_json
from testledger.common.nodeids import split_nodeid
from testledger.common.text import (
    ID_LIMIT,
    MESSAGE_LIMIT,
    OUTPUT_LIMIT,
    TRACEBACK_LIMIT,
    bounded,
    bounded_id,
)
from testledger.model import Status, WatcherObservation
from testledger.store.encoding import (
    ROW_COLUMNS,
    format_utc,
    json_column,
    parse_utc,
    replace_nul,
)

__all__ = ["ROW_BATCH_COLUMNS", "DecodedRows", "check_columns", "decode_rows", "without_nul"]

_TEXT = 4096  # a result's short names (provider, model, error type...) at most this long
_INT32 = 2**31 - 1

#: The columns a compact batch may name: the stored result's, its watcher observation as one
#: column ``watcher`` (``watcher_quality`` is read from it). ``test_id`` and ``status`` are
#: required; ``tool_name`` and ``variation`` default to the halves of ``test_id``; ``attempt``
#: left out or null: the test's next attempt in the run.
ROW_BATCH_COLUMNS: tuple[str, ...] = tuple(
    "watcher" if name == "watcher_observations" else name
    for name in ROW_COLUMNS
    if name != "watcher_quality"
)
_REQUIRED = ("test_id", "status")
_STATUS_TEXT = {status.value: status.value for status in Status}


class _Bad(ValueError):
    """A value refused, said without the value (a megabyte string is not echoed back)."""


def _text(limit: int | None) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if value.__class__ is not str:
            raise _Bad("must be a string or null")
        if limit is not None and len(value) > limit:
            raise _Bad(f"is longer than {limit} characters")
        return value

    return check


def _bounded_text(limit: int) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if value.__class__ is not str:
            raise _Bad("must be a string or null")
        return bounded(value, limit)

    return check


def _number(low: float, high: float, *, integer: bool = False) -> Callable[[Any], Any]:
    """Finite, ``low <= value < high`` (``<= high`` for integers); never a boolean."""

    def check(value: Any) -> Any:
        kind = value.__class__
        if kind is int:
            if not low <= value <= high:
                raise _Bad(f"must be between {low:g} and {high:g}")
            return value
        if kind is not float or integer:
            raise _Bad("must be an integer or null" if integer else "must be a number or null")
        if not low <= value < high:  # NaN fails both comparisons
            raise _Bad(f"must be a finite number from {low:g} to below {high:g}")
        return value

    return check


def _status(value: Any) -> Any:
    if value.__class__ is not str:
        raise _Bad("must be a status string")
    known = _STATUS_TEXT.get(value)
    if known is not None:
        return known
    try:
        return Status.parse(value).value
    except ValueError:
        raise _Bad("must be PASS, FAIL, SKIP or ERROR (or a synonym: passed, failed...)") from None


def _test_id(value: Any) -> Any:
    if value.__class__ is not str or not value:
        raise _Bad("must be a non-empty string")
    return value


def _refuse_constant(name: str) -> Any:
    raise _Bad(f"holds {name}, which is no JSON number")


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def _decoded(text: str) -> Any:
    """``text`` read as JSON by the C scanner alone (the full reader's whitespace handling
    costs as much again), the full reader for text with spaces around it or an error."""
    try:
        decoded, end = _SCAN(text, 0)
    except (StopIteration, ValueError):
        end = -1
    if end == len(text):
        return decoded
    try:
        return _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise _Bad(f"is no JSON text: {exc.msg} at character {exc.pos}") from None


_SCAN: Callable[[str, int], tuple[Any, int]] = _DECODER.scan_once  # type: ignore[attr-defined]


def _finite(value: Any) -> None:
    if not is_finite_json(value):
        raise _Bad("holds NaN or Infinity, which are no JSON numbers")


def _json_object(check_items: Callable[[dict[str, Any]], None]) -> Callable[[Any], Any]:
    """A JSON object, given as one or as its JSON text; stored as compact JSON text (NULL when
    empty). Text that escapes nothing is stored as sent, without encoding it again."""

    def check(value: Any) -> Any:
        if value.__class__ is str:
            if value == "{}":
                return None
            decoded = _decoded(value)
            if not isinstance(decoded, dict):
                raise _Bad("must be a JSON object (or its JSON text)")
            check_items(decoded)
            # An escape may hide NUL or a lone surrogate, which the databases refuse: such text
            # is encoded again from what it decodes to, and cleaned as any other text is.
            return (json_column(decoded) if "\\u" in value else value) if decoded else None
        if not isinstance(value, dict):
            raise _Bad("must be a JSON object (or its JSON text)")
        _finite(value)
        check_items(value)
        return json_column(value)

    return check


def _metric_values(metrics: dict[str, Any]) -> None:
    for value in metrics.values():
        if value.__class__ not in (int, float) or not math.isfinite(value):
            raise _Bad("must map each metric name to a finite number")


def _any_items(details: dict[str, Any]) -> None:
    _finite(details)


def _started_at(value: Any) -> Any:
    if value.__class__ is not str or len(value) > 64:
        raise _Bad("must be an ISO-8601 date and time")
    try:
        return format_utc(parse_utc(value))
    except (ValueError, OverflowError):
        raise _Bad("must be an ISO-8601 date and time") from None


def _watcher(value: Any) -> Any:
    if not isinstance(value, WatcherObservation):
        raise _Bad("must be a watcher observation")
    return value


_CHECKS: dict[str, Callable[[Any], Any]] = {
    "test_id": _test_id,
    "attempt": _number(1, _INT32, integer=True),
    "tool_name": _text(None),
    "variation": _text(None),
    "provider": _text(_TEXT),
    "model": _text(_TEXT),
    "status": _status,
    "execution_status": _text(_TEXT),
    "duration_secs": _number(0, 10**7),
    "memory_mb": _number(0, _INT32),
    "cpu_percent": _number(0, 1000),
    "tokens_total": _number(0, _INT32, integer=True),
    "tokens_input": _number(0, _INT32, integer=True),
    "tokens_output": _number(0, _INT32, integer=True),
    "cost_usd": _number(0, 10**4),
    "watcher": _watcher,
    "error_type": _text(_TEXT),
    "error_message": _bounded_text(MESSAGE_LIMIT),
    "traceback": _bounded_text(TRACEBACK_LIMIT),
    "output_excerpt": _bounded_text(OUTPUT_LIMIT),
    "metrics": _json_object(_metric_values),
    "details": _json_object(_any_items),
    "started_at": _started_at,
}
assert tuple(_CHECKS) == ROW_BATCH_COLUMNS


_NONE = type(None)
_TEXTS = frozenset((str, _NONE))
_INTS = frozenset((int, _NONE))
_NUMBERS = frozenset((int, float, _NONE))


def _plain_text(limit: int | None) -> Callable[[tuple[Any, ...]], bool]:
    """Whether every value is text within ``limit`` (or null), read with C loops alone."""

    def plain(values: tuple[Any, ...]) -> bool:
        if not set(map(type, values)) <= _TEXTS:
            return False
        return limit is None or max(map(len, filter(None, values)), default=0) <= limit

    return plain


def _short_text(limit: int) -> Callable[[tuple[Any, ...]], bool]:
    """Whether every value is text (or null) that ``bounded`` leaves as it is."""

    def short(values: tuple[Any, ...]) -> bool:
        if not set(map(type, values)) <= _TEXTS or "" in values:
            return False
        return max(map(len, filter(None, values)), default=0) * 4 <= limit

    return short


def _plain_numbers(low: float, high: float, *, integer: bool) -> Callable[[tuple[Any, ...]], bool]:
    """Whether every value is a finite number in range (or null), read with C loops alone."""
    kinds = _INTS if integer else _NUMBERS

    def plain(values: tuple[Any, ...]) -> bool:
        if not set(map(type, values)) <= kinds:
            return False
        numbers = [value for value in values if value is not None]
        if not numbers:
            return True
        if not integer and not math.isfinite(sum(numbers)):  # NaN and Infinity carry over
            return False
        top = max(numbers)
        return bool(min(numbers) >= low and (top <= high if integer else top < high))

    return plain


def _known_statuses(values: tuple[Any, ...]) -> bool:
    return set(map(type, values)) == {str} and set(values) <= _STATUS_TEXT.keys()


def _plain_ids(values: tuple[Any, ...]) -> bool:
    return set(map(type, values)) == {str} and "" not in values


#: For the common batch, a check of a whole column that finds every value as it is to be
#: stored (a tenth of the cost of checking each value); a column it does not pass is checked
#: value by value, which says which one is wrong or converts it (a synonym, a long text).
_PLAIN: dict[str, Callable[[tuple[Any, ...]], bool]] = {
    "test_id": _plain_ids,
    "attempt": _plain_numbers(1, _INT32, integer=True),
    "tool_name": _plain_text(None),
    "variation": _plain_text(None),
    "provider": _plain_text(_TEXT),
    "model": _plain_text(_TEXT),
    "status": _known_statuses,
    "execution_status": _plain_text(_TEXT),
    "duration_secs": _plain_numbers(0, 10**7, integer=False),
    "memory_mb": _plain_numbers(0, _INT32, integer=False),
    "cpu_percent": _plain_numbers(0, 1000, integer=False),
    "tokens_total": _plain_numbers(0, _INT32, integer=True),
    "tokens_input": _plain_numbers(0, _INT32, integer=True),
    "tokens_output": _plain_numbers(0, _INT32, integer=True),
    "cost_usd": _plain_numbers(0, 10**4, integer=False),
    "error_type": _plain_text(_TEXT),
    "error_message": _short_text(MESSAGE_LIMIT),
    "traceback": _short_text(TRACEBACK_LIMIT),
    "output_excerpt": _short_text(OUTPUT_LIMIT),
}
#: The columns a NUL may hide in (as the character, or as JSON's escape).
_TEXT_COLUMNS = (
    "test_id",
    "tool_name",
    "variation",
    "provider",
    "model",
    "execution_status",
    "error_type",
    "error_message",
    "traceback",
    "output_excerpt",
    "metrics",
    "details",
)


def check_columns(columns: Sequence[str]) -> None:
    """Refuse (ValueError) a column list naming an unknown column, one twice, or lacking
    ``test_id`` or ``status``."""
    unknown = [name for name in columns if name not in _CHECKS]
    if unknown:
        raise ValueError(
            f"unknown column {str(unknown[0])[:100]!r}: the columns are "
            + ", ".join(ROW_BATCH_COLUMNS)
        )
    if len(set(columns)) != len(columns):
        raise ValueError("a column is named twice")
    missing = [name for name in _REQUIRED if name not in columns]
    if missing:
        raise ValueError(f"the columns must include {' and '.join(missing)}")


def _checked_column(name: str, values: tuple[Any, ...]) -> Sequence[Any]:
    plain = _PLAIN.get(name)
    if plain is not None and plain(values):
        return values
    if name not in _REQUIRED and values.count(None) == len(values):
        return values  # a column of nulls (none of these details, say)
    check = _CHECKS[name]
    checked = list(values)
    for index, value in enumerate(values):
        if value is not None:
            try:
                checked[index] = check(value)
            except _Bad as exc:
                raise ValueError(f"row {index}, column {name!r}: {exc}") from None
        elif name in _REQUIRED:
            raise ValueError(f"row {index}, column {name!r}: must not be null")
    return checked


def _split_test_id(test_id: str) -> tuple[str, str]:
    """As the object format's results default them: ``path::name`` (pytest) at its last
    ``::``; ``tool/variation`` at its last ``/``; anything else is its own tool."""
    if "::" in test_id:
        return split_nodeid(test_id)
    tool, _, variation = test_id.rpartition("/")
    return (tool, variation) if tool and variation else (test_id, test_id)


class DecodedRows(NamedTuple):
    """A checked batch: its values in ``ROW_COLUMNS`` order (a tuple per row, ``attempt``
    None where the run's next attempt is to be numbered, the watcher columns None), the
    attempts as sent, each row's watcher observation, and whether a text may hold NUL."""

    rows: list[tuple[Any, ...]]
    attempts: Sequence[int | None]
    watchers: Sequence[WatcherObservation | None]
    may_hold_nul: bool


def decode_rows(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> DecodedRows:
    """The batch checked (see :class:`DecodedRows`). Raises ValueError naming the first bad
    row and column."""
    check_columns(columns)
    width = len(columns)
    for index, row in enumerate(rows):
        if not isinstance(row, (list, tuple)) or len(row) != width:
            raise ValueError(f"row {index}: must be a list of {width} values, one per column")
    count = len(rows)
    given = dict(zip(columns, zip(*rows, strict=True), strict=True)) if count else {}
    checked = {name: _checked_column(name, values) for name, values in given.items()}
    test_ids = _bounded_ids(checked.get("test_id", ()))
    checked["test_id"] = test_ids
    if (
        "tool_name" not in checked
        or "variation" not in checked
        or None in checked["tool_name"]
        or None in checked["variation"]
    ):
        _default_names(checked, test_ids)
    for name in ("tool_name", "variation"):
        checked[name] = _bounded_ids(checked[name])
    memory = checked.get("memory_mb")
    if memory is not None and not set(map(type, memory)) <= _INTS:
        checked["memory_mb"] = [None if v is None else round(v) for v in memory]
    # The observation's columns are filled by the caller, once it has completed each one.
    watchers = checked.get("watcher") or [None] * count
    nothing = list(repeat(None, count))
    ordered = [checked.get(name, nothing) for name in ROW_COLUMNS]
    built = list(zip(*ordered, strict=True)) if count else []
    return DecodedRows(built, checked.get("attempt", nothing), watchers, _may_hold_nul(checked))


def _bounded_ids(values: Sequence[Any]) -> Sequence[Any]:
    """``bounded_id`` of each, skipped for a column of short ids (the common one)."""
    if max(map(len, values), default=0) * 4 <= ID_LIMIT:
        return values
    return [bounded_id(text) for text in values]


def _may_hold_nul(checked: dict[str, Sequence[Any]]) -> bool:
    """Whether a text of the batch holds NUL or JSON's escape of it: one search per column."""
    for name in _TEXT_COLUMNS:
        values = checked.get(name)
        if values:
            joined = "".join(filter(None, values))
            if "\x00" in joined or "\\u0000" in joined:
                return True
    return False


def _default_names(checked: dict[str, Sequence[Any]], test_ids: Sequence[str]) -> None:
    tools = list(checked.get("tool_name") or [None] * len(test_ids))
    variations = list(checked.get("variation") or [None] * len(test_ids))
    for index, test_id in enumerate(test_ids):
        if tools[index] is None or variations[index] is None:
            tool, variation = _split_test_id(test_id)
            tools[index] = tool if tools[index] is None else tools[index]
            variations[index] = variation if variations[index] is None else variations[index]
    checked["tool_name"], checked["variation"] = tools, variations


def without_nul(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """The row as stored: NUL (and JSON's ``\\u0000``) replaced, as the recorders replace it."""
    for value in row:
        if value.__class__ is str and ("\x00" in value or "\\u0000" in value):
            return replace_nul(row)
    return row
