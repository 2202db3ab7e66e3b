"""Keeping what a tool answers small enough for an agent's context, and saying what was cut.

Three bounds, applied in this order: every list a tool returns holds at most the number of items
asked for (each tool's ``limit``, itself capped), and the tool's ``truncated`` map says how many
were left out under the list's name; every long text keeps its head and tail around a
``[... truncated N bytes]`` marker (a traceback's end says what was raised); and a whole answer
over :data:`MAX_ANSWER_BYTES` of JSON has its longest lists halved until it fits, again counted
in ``truncated``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from testledger.common.text import bounded

__all__ = [
    "MAX_ANSWER_BYTES",
    "MAX_LIMIT",
    "MESSAGE_BYTES",
    "REPRESENTATIVE_BYTES",
    "SUMMARY_CHARS",
    "TRACEBACK_BYTES",
    "cut",
    "first_line",
    "fit",
    "json_size",
    "take",
]

#: The most items any list of an answer holds, whatever the limit asked for.
MAX_LIMIT = 100
#: An error message in a list (a comparison's new failures, a test's outcomes).
MESSAGE_BYTES = 300
#: The message of a failure group's representative, and its traceback.
REPRESENTATIVE_BYTES = 2_000
TRACEBACK_BYTES = 4_000
#: The most JSON one answer carries (about 15,000 tokens).
MAX_ANSWER_BYTES = 60_000
#: The most characters of an answer's summary (it names a few tests, which may be long).
SUMMARY_CHARS = 1_000

T = TypeVar("T")


def cut(text: str | None, limit: int = MESSAGE_BYTES) -> str | None:
    """``text`` within about ``limit`` UTF-8 bytes: its head and tail around a marker saying
    how many bytes were left out. None and empty text stay None."""
    return bounded(text, limit)


def first_line(text: str | None, limit: int = MESSAGE_BYTES) -> str | None:
    """The first line of ``text`` within ``limit`` characters (the rest counted in a marker):
    enough to tell failures apart in a list, and one line in a summary."""
    if not text or not text.strip():
        return None
    line = text.strip().splitlines()[0].strip()
    if len(line) <= limit:
        return line
    return f"{line[:limit]} [... {len(line) - limit} more characters]"


def take(items: Sequence[T], limit: int, name: str, truncated: dict[str, int]) -> list[T]:
    """The first ``limit`` items; how many were left out goes into ``truncated[name]``."""
    if len(items) > limit:
        truncated[name] = truncated.get(name, 0) + len(items) - limit
    return list(items[:limit])


def json_size(data: Any) -> int:
    """The size of ``data`` as the compact JSON an answer carries, in UTF-8 bytes."""
    return len(json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def _lists(data: dict[str, Any]) -> Iterable[tuple[str, list[Any]]]:
    return ((key, value) for key, value in data.items() if isinstance(value, list) and value)


def fit(data: dict[str, Any], limit: int = MAX_ANSWER_BYTES) -> dict[str, Any]:
    """``data`` (a tool's answer, with its ``truncated`` map) within ``limit`` bytes of JSON: its
    summary within :data:`SUMMARY_CHARS`, then the top-level list that weighs most halved until
    it fits or no list is left to halve."""
    data["summary"] = first_line(data["summary"], SUMMARY_CHARS) or ""
    truncated: dict[str, int] = data.setdefault("truncated", {})
    while json_size(data) > limit:
        heaviest = max(_lists(data), key=lambda item: json_size(item[1]), default=None)
        if heaviest is None:
            break
        name, items = heaviest
        keep = len(items) // 2
        truncated[name] = truncated.get(name, 0) + len(items) - keep
        data[name] = items[:keep]
    return data
