"""Helpers shared by the JSON-based importers (pytest-json, pytest-reportlog, CTRF, Allure).

Everything here is format-neutral: bounding long text with an explicit truncation marker,
epoch numbers to timezone-aware UTC datetimes, splitting ``"ExcType: message"``, splitting a
pytest node id into ``tool_name`` / ``variation``, opening a possibly gzip-compressed file and
loading a whole JSON document with errors turned into :class:`ImportFormatError`.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import zlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from testledger.ingest.base import ImportFormatError

__all__ = [
    "GZIP_MAGIC",
    "epoch_ms_to_utc",
    "epoch_to_utc",
    "head_text",
    "load_json_document",
    "open_maybe_gzip",
    "opt_number",
    "opt_str",
]

GZIP_MAGIC = b"\x1f\x8b"


def epoch_to_utc(value: object) -> datetime | None:
    """Seconds since the epoch (int or float) as an aware UTC datetime; None for anything else."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if not math.isfinite(value) or value <= 0:
        return None
    try:
        return datetime.fromtimestamp(value, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def epoch_ms_to_utc(value: object) -> datetime | None:
    """Milliseconds since the epoch as an aware UTC datetime; None for anything else."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return epoch_to_utc(value / 1000.0)


def opt_str(value: object) -> str | None:
    """``value`` if it is a non-empty string, else None (numbers are written as text)."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return str(value)
    return None


def opt_number(value: object) -> float | None:
    """``value`` as a finite float if it is a number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer beyond any float: no finite number either
        return None
    return number if math.isfinite(number) else None


def open_maybe_gzip(path: Path) -> io.BufferedIOBase:
    """``path`` opened for binary reading, decompressed on the fly when it starts with gzip's magic.

    The check is on the bytes, not the name: ``report.jsonl`` that is really gzip works, and so does
    ``report.jsonl.gz`` that is not compressed at all.
    """
    try:
        raw = path.open("rb")
        if raw.read(2) != GZIP_MAGIC:
            raw.seek(0)
            return raw
        raw.close()
        return gzip.open(path, "rb")
    except OSError as exc:
        raise ImportFormatError(path, f"cannot open: {exc.strerror or exc}") from None


def head_text(head: bytes) -> str:
    """The first bytes of a file as text for sniffing: gunzipped if compressed, BOM stripped."""
    if head.startswith(GZIP_MAGIC):
        try:
            head = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head)
        except zlib.error:
            return ""
    text = head.decode("utf-8", errors="ignore")
    return text.lstrip("\ufeff \t\r\n")


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def load_json_document(path: Path, what: str) -> Any:
    """The whole JSON document in ``path`` (gzip transparently), errors as ImportFormatError.

    This holds the document in memory: the standard library has no streaming JSON parser.
    ``what`` names the format in the messages (``"a CTRF report"``).
    """
    try:
        with open_maybe_gzip(path) as stream:
            data = stream.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise ImportFormatError(path, f"cannot read {what}: {exc}") from None
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if not data.strip():
        raise ImportFormatError(path, f"empty file: expected {what}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ImportFormatError(
            path, f"invalid UTF-8 at byte {exc.start}", _line_of(data, exc.start)
        ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImportFormatError(path, f"invalid JSON ({exc.msg})", exc.lineno) from None
    except RecursionError:
        raise ImportFormatError(path, "invalid JSON (nested too deeply)") from None
