"""Bounding long text, reading exceptions out of messages and pytest's long reports, and
writing out control characters before text reaches a terminal or a page.

Shared by the importers, the pytest plugin (which must not import SQLAlchemy or the importers)
and the interfaces.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

__all__ = [
    "ID_LIMIT",
    "MESSAGE_LIMIT",
    "OUTPUT_LIMIT",
    "TRACEBACK_LIMIT",
    "bounded",
    "bounded_id",
    "exception_from_longrepr",
    "join_output",
    "split_exception",
    "visible",
]

#: Bounds (in UTF-8 bytes) of what an importer keeps of a traceback, an output excerpt and an
#: error message. Longer text keeps its head and tail around an explicit marker.
TRACEBACK_LIMIT = 64 * 1024
OUTPUT_LIMIT = 8 * 1024
MESSAGE_LIMIT = 8 * 1024

_TRUNCATION_MARKER = "\n[... truncated {n} bytes]\n"

#: Bound (in UTF-8 bytes) of a test's identity: ``test_id``, ``tool_name``, ``variation``. Real
#: ones are far shorter (a long parametrized pytest id is a few hundred bytes); a generated
#: 50 MB name once took minutes and gigabytes to import, index and show.
ID_LIMIT = 4 * 1024
_ID_HASH_CHARS = 16


def bounded_id(text: str, limit: int = ID_LIMIT) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes, still telling tests apart.

    A longer identity keeps its head and ends in ``…#`` and the first 16 hex digits of the
    SHA-256 of the whole text: two long names that share their head stay two tests, and the same
    name is cut the same way every time (so its history stays one).
    """
    if len(text) * 4 <= limit:  # cannot be over the limit: skip encoding the common short id
        return text
    data = text.encode("utf-8", errors="surrogatepass")
    if len(data) <= limit:
        return text
    digest = hashlib.sha256(data).hexdigest()[:_ID_HASH_CHARS]
    suffix = f"…#{digest}"
    keep = limit - len(suffix.encode("utf-8"))
    return data[:keep].decode("utf-8", errors="ignore") + suffix


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


_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def visible(text: str) -> str:
    """``text`` with its control characters (terminal escape sequences, NUL, bell...) written
    out as ``\\x1b``: shown to the reader, never sent raw to their terminal."""
    return _CONTROL_CHARACTERS.sub(lambda found: f"\\x{ord(found.group()):02x}", text)
