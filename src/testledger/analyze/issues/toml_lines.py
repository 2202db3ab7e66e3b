"""Where things are in the raw text of a TOML file: the line of every table header and key.

tomllib gives no positions for values, so a light scan of the text finds them, for error
messages that name the line. It only has to agree with tomllib on what it finds, not parse TOML.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TypeAlias

__all__ = ["KeyPath", "line_of", "locate_keys"]
# tomllib gives no positions for values, so a light scan of the text finds the line of every
# table header and key. It only has to agree with tomllib on what it finds, not parse TOML.

_KEY_PART = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')"""
_DOTTED = rf"{_KEY_PART}(?:\s*\.\s*{_KEY_PART})*"
_ARRAY_HEADER = re.compile(rf"\s*\[\[\s*({_DOTTED})\s*\]\]")
_TABLE_HEADER = re.compile(rf"\s*\[\s*({_DOTTED})\s*\]")
_KEY_LINE = re.compile(rf"\s*({_DOTTED})\s*=")
_PART = re.compile(_KEY_PART)

KeyPath: TypeAlias = tuple["str | int", ...]


def _split_key(dotted: str) -> tuple[str, ...]:
    # Escapes inside quoted key names are left as written: no rules key needs them.
    return tuple(p[1:-1] if p[0] in "\"'" else p for p in _PART.findall(dotted))


def locate_keys(text: str) -> dict[KeyPath, int]:
    """The 1-based line of every table and key of a TOML text, by key path.

    The n-th ``[[rule]]`` header (from 0) is ``("rule", n)``, a key in it ``("rule", n, "name")``,
    ``[rule.match]`` after it ``("rule", n, "match")`` and its keys
    ``("rule", n, "match", "message")``. Dotted keys also record their prefixes. Keys inside
    inline tables are not located: look them up with ``line_of``, which falls back to the
    nearest enclosing key that was found.
    """
    found: dict[KeyPath, int] = {}
    array_counts: dict[KeyPath, int] = {}
    current: KeyPath = ()
    open_string: str | None = None  # the delimiter of a multi-line string being skipped

    def resolve(parts: tuple[str, ...]) -> KeyPath:
        # An array-of-tables name inside a header means its latest element: [rule.match].
        path: list[str | int] = []
        for position, part in enumerate(parts):
            path.append(part)
            if position < len(parts) - 1 and tuple(path) in array_counts:
                path.append(array_counts[tuple(path)])
        return tuple(path)

    # TOML ends lines at \n only: str.splitlines() would also split at \x85, \u2028 and others,
    # which strings may hold, and count lines differently from tomllib.
    for number, line in enumerate(text.split("\n"), start=1):
        if open_string is not None:
            if line.count(open_string) % 2 == 1:
                open_string = None
            continue
        if match := _ARRAY_HEADER.match(line):
            table = resolve(_split_key(match[1]))
            array_counts[table] = array_counts.get(table, -1) + 1
            current = (*table, array_counts[table])
            found.setdefault(current, number)
        elif match := _TABLE_HEADER.match(line):
            current = resolve(_split_key(match[1]))
            found.setdefault(current, number)
        elif match := _KEY_LINE.match(line):
            key = (*current, *_split_key(match[1]))
            for length in range(len(current) + 1, len(key) + 1):
                found.setdefault(key[:length], number)
            rest = line[match.end() :]
            for delimiter in ('"""', "'''"):
                if rest.count(delimiter) % 2 == 1:
                    open_string = delimiter
                    break
    return found


def line_of(found: Mapping[KeyPath, int], path: KeyPath) -> int:
    """The line of ``path``, or of its nearest located ancestor; 0 when none is known."""
    for length in range(len(path), 0, -1):
        line = found.get(path[:length])
        if line is not None:
            return line
    return 0
