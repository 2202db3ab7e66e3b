"""Helpers shared by the JSON-based importers (pytest-json, pytest-reportlog, CTRF, Allure).

Everything here is format-neutral: bounding long text with an explicit truncation marker,
epoch numbers to timezone-aware UTC datetimes, splitting ``"ExcType: message"``, splitting a
pytest node id into the proposal's ``tool_name`` / ``variation``, opening a possibly gzip-compressed
file and loading a whole JSON document with errors turned into :class:`ImportFormatError`.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import re
import zlib
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from testledger.ingest.base import ImportFormatError

# Re-exported: the importers of pytest's JSON formats split node ids as the plugin does.
from testledger.nodeids import split_nodeid

__all__ = [
    "GZIP_MAGIC",
    "MESSAGE_LIMIT",
    "OUTPUT_LIMIT",
    "TRACEBACK_LIMIT",
    "bounded",
    "epoch_ms_to_utc",
    "epoch_to_utc",
    "exception_from_longrepr",
    "head_text",
    "join_output",
    "load_json_document",
    "open_maybe_gzip",
    "opt_number",
    "opt_str",
    "split_exception",
    "split_nodeid",
]

#: Bounds (in UTF-8 bytes) of what an importer keeps of a traceback, an output excerpt and an
#: error message. Longer text keeps its head and tail around an explicit marker.
TRACEBACK_LIMIT = 64 * 1024
OUTPUT_LIMIT = 8 * 1024
MESSAGE_LIMIT = 8 * 1024

GZIP_MAGIC = b"\x1f\x8b"

_TRUNCATION_MARKER = "\n[... truncated {n} bytes]\n"


def bounded(text: str | None, limit: int) -> str | None:
    """``text`` cut to at most about ``limit`` UTF-8 bytes, never silently.

    A text over the limit keeps its first and last parts (a traceback's end says what was raised)
    joined by ``[... truncated N bytes]``, N being the number of bytes left out. Empty text is None.
    """
    if not text:
        return None
    if len(text) * 4 <= limit:  # cannot be over the limit: skip encoding the common short text
        return text
    data = text.encode("utf-8", errors="replace")
    if len(data) <= limit:
        return text
    # The marker itself is not counted against the limit: it is short and says what happened.
    head_len = limit // 2
    tail_len = limit - head_len
    head = data[:head_len].decode("utf-8", errors="ignore")
    tail = data[len(data) - tail_len :].decode("utf-8", errors="ignore")
    dropped = len(data) - len(head.encode("utf-8")) - len(tail.encode("utf-8"))
    return f"{head}{_TRUNCATION_MARKER.format(n=dropped)}{tail}"


def join_output(parts: Iterable[tuple[str, str]], limit: int = OUTPUT_LIMIT) -> str | None:
    """Captured output sections as one bounded excerpt, each under a ``----- title -----`` line."""
    chunks = [f"----- {title} -----\n{body}" for title, body in parts if body]
    if not chunks:
        return None
    return bounded("\n".join(chunks), limit)


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


_EXC_LINE = re.compile(r"^((?:[A-Za-z_]\w*\.)*[A-Z]\w*):(?:\s(.*))?$", re.DOTALL)


def split_exception(message: str | None) -> tuple[str | None, str | None]:
    """Split ``"ExcType: msg"`` (on its first line) into ``("ExcType", "msg...")``.

    A message without such a prefix (``"assert False"``) is returned whole with no type.
    Later lines stay part of the message.
    """
    if not message:
        return None, None
    first, sep, rest = message.partition("\n")
    match = _EXC_LINE.match(first.strip())
    if match is None:
        return None, message
    exc_type = match.group(1)
    text = (match.group(2) or "").strip()
    if sep:
        text = f"{text}\n{rest}" if text else rest
    return exc_type, text or None


_LONGREPR_E_LINE = re.compile(r"^E\s+(.*)$")
_LONGREPR_LOC_LINE = re.compile(r"^\S.*:\d+: ((?:[A-Za-z_]\w*\.)*[A-Z]\w*)$")


def exception_from_longrepr(text: str | None) -> tuple[str | None, str | None]:
    """The exception type and message a pytest long representation ends with, where it says.

    Looks for the last ``path:lineno: ExcType`` line, then the last ``E   ExcType: message`` line.
    """
    if not text:
        return None, None
    exc_type: str | None = None
    message: str | None = None
    lines = text.splitlines()
    for line in reversed(lines):
        loc = _LONGREPR_LOC_LINE.match(line)
        if loc is not None:
            exc_type = loc.group(1)
            break
    for line in reversed(lines):
        e_line = _LONGREPR_E_LINE.match(line)
        if e_line is not None:
            found_type, found_msg = split_exception(e_line.group(1))
            if found_type is not None:
                exc_type = exc_type or found_type
                message = found_msg
            else:
                message = found_msg
            break
    return exc_type, message


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
    number = float(value)
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
