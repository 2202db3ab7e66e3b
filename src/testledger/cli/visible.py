"""Control characters written out, so that data never drives the reader's terminal."""

from __future__ import annotations

import re

__all__ = ["visible"]

_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def visible(text: str) -> str:
    """``text`` with its control characters (terminal escape sequences, NUL, bell...) written
    out as ``\\x1b``: shown to the reader, never sent raw to their terminal."""
    return _CONTROL_CHARACTERS.sub(lambda found: f"\\x{ord(found.group()):02x}", text)
