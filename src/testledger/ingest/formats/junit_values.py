"""JUnit XML's values as written by the many tools that write it: durations in odd units and
locales, timestamps with or without zones (and the placeholder dates of writers that had none).
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone

__all__ = ["int_or_none", "parse_duration", "parse_timestamp"]

#: JUnit writers put dates 0001-01-01 (Go's zero time) or the epoch where they had none.
_SENTINEL_BEFORE = datetime(1971, 1, 1, tzinfo=timezone.utc)


def int_or_none(text: str | None) -> int | None:
    """A whole-number attribute (``line``) or None when missing or not a number."""
    try:
        return int(text.strip()) if text else None
    except ValueError:
        return None


_DURATION = re.compile(r"^([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*([a-zµ]*)$")
_THOUSANDS = re.compile(r"^\d{1,3}(?:,\d{3})+(?:\.\d*)?$")
_UNITS = {"": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9, "m": 60.0, "h": 3600.0}
_UNITS.update(dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1.0))
_UNITS.update(min=60.0)


def parse_duration(text: str | None) -> float | None:
    """A JUnit ``time`` in seconds: ``"1.5"``, ``"1,234.5"``, ``"1.5s"``, ``"250ms"``...

    None for missing, empty, unparseable, non-finite or negative values. A comma is a thousands
    separator when it groups digits by three (Surefire's ``"1,234.5"``), else a decimal comma
    (``"0,25"`` from a writer in a European locale).
    """
    if text is None:
        return None
    try:
        # The common case by far, a plain number of seconds, without the regexes.
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    value = text.strip().lower()
    if not value:
        return None
    number_part = value.rstrip("abcdefghijklmnopqrstuvwxyzµ ")
    if "," in number_part:
        if _THOUSANDS.match(number_part):
            value = value.replace(",", "")
        elif number_part.count(",") == 1 and "." not in number_part:
            value = value.replace(",", ".")
        else:
            return None
    match = _DURATION.match(value)
    if match is None or match.group(2) not in _UNITS:
        return None
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds


_TIMESTAMP = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?"
    r"\s*(Z|[+-]\d{2}(?::?\d{2})?)?$"
)


def parse_timestamp(text: str | None) -> datetime | None:
    """An ISO 8601 ``timestamp`` as an aware UTC datetime (naive ones are taken as UTC).

    None for missing or unparseable values and for the placeholder dates writers put when they had
    no time (Go's 0001-01-01, the 1970 epoch).
    """
    if not text:
        return None
    match = _TIMESTAMP.match(text.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    if int(year) < 1971:
        return None
    try:
        micro = int((fraction or "0")[:6].ljust(6, "0"))
        stamp = datetime(
            int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0),
            micro, tzinfo=timezone.utc,
        )  # fmt: skip
    except ValueError:
        return None
    if zone and zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
        stamp -= sign * offset
    return None if stamp < _SENTINEL_BEFORE else stamp
