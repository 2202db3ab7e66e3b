"""What an issue is called: its failure's error type and the line that says what went wrong.

A failed comparison keeps a part where its two sides differ. pytest writes ``assert LEFT ==
RIGHT`` with each side cut to about thirty characters around ``...`` (its ``saferepr``), so
two values that differ in the middle read the same on that line - ``assert {'people':
['...': ['London']} == {'people': ['...': ['London']}`` - while the lines after it say what
differs ("Differing items:", "At index 30 diff: 1 != 2", a drill-down into an attribute, or a
diff of two strings). Such a title keeps the left side and takes the first of those lines
instead of the copy. And a title longer than the limit is cut around the first difference of
its comparison's sides rather than at its end, where both sides may still read the same.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["TITLE_LIMIT", "failure_title", "headline"]

TITLE_LIMIT = 200

_CODE_LIKE = re.compile(r"^(self\s*=|def |>|E\s|\s)")
_EXCEPTION_LINE = re.compile(r"^[\w.]*(Error|Exception|Failure|Exit|Interrupt)\b")
_ASSERT = "assert "
_EQUALS = " == "
_DIFFERS = " != "
_LABEL = re.compile(r"[A-Za-z_][\w ]*: ")
#: Characters of the common part kept before a difference, for the reader to see where it is.
_CONTEXT = 12


def headline(error_message: str | None, traceback: str | None) -> str:
    """The line that says what went wrong: the message's first line, unless the message is
    a dump of code (some JUnit writers put the whole traceback there), then the traceback's
    (or message's) last exception-looking line."""
    lines = [line for line in (error_message or "").splitlines() if line.strip()]
    if lines and not _CODE_LIKE.match(lines[0]):
        return lines[0].strip()
    source = traceback or error_message or ""
    for line in reversed(source.splitlines()):
        text = line.strip().removeprefix("E").strip()
        if _EXCEPTION_LINE.match(text):
            return text
    return lines[0].strip() if lines else ""


def failure_title(
    error_type: str | None,
    error_message: str | None,
    traceback: str | None,
    fallback: str,
    limit: int = TITLE_LIMIT,
) -> str:
    """``ERROR_TYPE: headline`` (``fallback`` when there is neither), with a comparison whose
    sides read the same made to show what differs, at most ``limit`` characters."""
    message = headline(error_message, traceback)
    if error_type and message.startswith(error_type):
        message = message[len(error_type) :].lstrip(": ")
    lead = f"{error_type}: " if error_type and message else error_type or ""
    comparison = _differing(message, error_message or "") or _comparison(message)
    if comparison is None:
        title = lead + message or fallback
        return title if len(title) <= limit else title[: limit - 1] + "…"
    return comparison.fit(lead, limit)


@dataclass(frozen=True, slots=True)
class _Comparison:
    """``prefix LEFT operator RIGHT``: a title's comparison, to be cut around its difference."""

    prefix: str
    left: str
    operator: str
    right: str

    def fit(self, lead: str, limit: int) -> str:
        """The title at most ``limit`` characters: when too long, both sides from a little
        before their first difference, each in half of the room the prefix leaves."""
        prefix = lead + self.prefix
        title = prefix + self.left + self.operator + self.right
        if len(title) <= limit:
            return title
        room = limit - len(prefix) - len(self.operator)
        if room >= 2 * (_CONTEXT + 8):
            return prefix + _around_difference(self.left, self.right, room // 2, self.operator)
        return title[: limit - 1] + "…"


def _around_difference(left: str, right: str, per_side: int, operator: str) -> str:
    """``left operator right``, each side at most ``per_side`` characters, from ``_CONTEXT``
    characters before where the two first differ."""
    same = 0
    for a, b in zip(left, right, strict=False):
        if a != b:
            break
        same += 1
    start = max(0, same - _CONTEXT)

    def side(text: str) -> str:
        shown = ("…" if start else "") + text[start:]
        return shown if len(shown) <= per_side else shown[: per_side - 1] + "…"

    return side(left) + operator + side(right)


def _comparison(message: str) -> _Comparison | None:
    """``assert A == B`` (or ``!=``), or a message that is ``A != B`` (unittest's)."""
    start = message.find(_ASSERT)
    body_at = 0 if start < 0 else start + len(_ASSERT)
    for operator in (_EQUALS, _DIFFERS) if start >= 0 else (_DIFFERS,):
        at = message.find(operator, body_at)
        if at > body_at:
            left, right = message[body_at:at], message[at + len(operator) :]
            return _Comparison(message[:body_at], left, operator, right)
    return None


# -- a comparison whose sides read the same ------------------------------------------------


def _same_sides(line: str) -> str | None:
    """``line`` up to and with its left side when it is ``... assert X == X``, else None."""
    start = line.find(_ASSERT)
    if start < 0:
        return None
    body_at = start + len(_ASSERT)
    body = line[body_at:]
    # A side may hold " == " itself: any split into two equal halves will do.
    for match in re.finditer(re.escape(_EQUALS), body):
        if body[: match.start()] == body[match.end() :]:
            return line[: body_at + match.start()]
    return None


def _differing(message: str, error_message: str) -> _Comparison | None:
    """For ``assert X == X``, pytest's first statement of what differs, from the lines after
    the assertion: a line ``A != B`` (dicts, sequences, attributes; with its header, e.g.
    "Differing items:"), or the first lines of a diff of two strings (``+`` is the left side,
    ``-`` the right). None when the sides differ or nothing says how."""
    left = _same_sides(message)
    if left is None:
        return None
    lines = [line.strip() for line in error_message.splitlines()[1:]]
    prefix = f"{left}{_EQUALS}…, "
    plus = minus = None
    for number, text in enumerate(lines):
        at = text.find(_DIFFERS)
        if at > 0:
            header = lines[number - 1] if number else ""
            if header.endswith(":") and not header.startswith("Drill down"):
                text, at = f"{header} {text}", at + len(header) + 1
            # A label before the left side ("Differing items: ", "At index 30 diff: ", "city: ")
            # stays whole when the title is cut.
            label = _LABEL.match(text)
            begin = label.end() if label and label.end() <= at else 0
            right = text[at + len(_DIFFERS) :]
            return _Comparison(prefix + text[:begin], text[begin:at], _DIFFERS, right)
        if text.startswith("+ ") and plus is None:
            plus = text[2:]
        elif text.startswith("- ") and minus is None:
            minus = text[2:]
    if plus is not None and minus is not None:
        return _Comparison(prefix + "differs: ", plus, _DIFFERS, minus)
    return None
