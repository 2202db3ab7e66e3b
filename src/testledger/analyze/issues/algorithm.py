"""What every fingerprint algorithm builds on: components, the hash, the algorithm base class,
and the traceback reading they share (frame styles, library frames, the exception line).

Kept apart from ``fingerprint`` (version 1 and the registry) so that other versions
(``origin``, version 2) can build on it and be registered by ``fingerprint`` without a cycle.
"""

from __future__ import annotations

import abc
import hashlib
import inspect
import re
from collections.abc import Iterable
from typing import ClassVar, NamedTuple

from testledger.analyze.issues.normalize import normalize_with_trace
from testledger.model import TestResult

__all__ = [
    "MAX_TRACEBACK_LINES",
    "Component",
    "ExplainedComponent",
    "Fingerprint",
    "FingerprintAlgorithm",
    "hash_components",
    "read_failure",
]

#: Only the end of a traceback is read: the innermost frames and the exception are there
#: (the last 64 lines of at most 8 KB; a traceback under 2 KB is read whole).
MAX_TRACEBACK_LINES = 64
_MAX_TRACEBACK_CHARS = 8192
_SMALL_TRACEBACK_CHARS = 2048


class Component(NamedTuple):
    """One input to the hash; ``contributes`` False ones are shown by explain only."""

    name: str
    raw: str
    normalized: str
    contributes: bool


class ExplainedComponent(NamedTuple):
    name: str
    raw: str
    normalized: str
    contributes: bool
    rules: tuple[str, ...]  # normalisation rules that fired on this component


class Fingerprint(NamedTuple):
    """A failure's grouping hash. A named tuple, not a dataclass: one is built per failure on
    the hot path, and ``components`` (for ``explain``) is only built when asked for."""

    hash: str  # hex SHA-1 of the contributing components
    version: int  # the version of the algorithm that made it
    algorithm: FingerprintAlgorithm
    result: TestResult

    @property
    def components(self) -> tuple[Component, ...]:
        return tuple(self.algorithm.components(self.result))


def hash_components(components: Iterable[Component]) -> str:
    """The hash of components: SHA-1 over ``name\\x1fnormalized`` of each contributing one,
    joined by ``\\x1e``."""
    payload = "\x1e".join(f"{c.name}\x1f{c.normalized}" for c in components if c.contributes)
    data = payload.encode("utf-8", "surrogatepass")
    return hashlib.sha1(data, usedforsecurity=False).hexdigest()


class FingerprintAlgorithm(abc.ABC):
    """A way of grouping failures: a named strategy registered under a version number.

    A subclass sets ``version`` and ``name``, says in its docstring what it hashes (the first
    paragraph is its ``description``, which ``explain`` shows) and lists a failure's
    ``components``; its hash is ``hash_components`` of them. ``fingerprint`` may be overridden
    for speed, never to hash anything else.
    """

    version: ClassVar[int]
    name: ClassVar[str]

    @property
    def description(self) -> str:
        doc = inspect.cleandoc(type(self).__doc__ or "")
        return " ".join(doc.split("\n\n", 1)[0].split())

    @abc.abstractmethod
    def components(self, result: TestResult) -> list[Component]:
        """Every input of the hash, in order (those not contributing are shown only)."""

    def fingerprint(self, result: TestResult) -> Fingerprint:
        return Fingerprint(hash_components(self.components(result)), self.version, self, result)

    def rules(self, component: Component) -> tuple[str, ...]:
        """The normalisation rules that fired on a component, for ``explain``."""
        if component.name in ("message", "test_id"):
            return tuple(normalize_with_trace(component.raw)[1])
        return ()


# --- traceback parsing -------------------------------------------------------------------------

# One regex per frame style. CPython's ``File "..."`` has a literal prefix, which the regex
# engine finds at C speed, so the common case scans 1 KB in well under a microsecond; the
# other styles are only tried when a cheap substring test says they may be there.
_PY_FRAME = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<func>\S+)')
_PYTEST_FRAME = re.compile(r"^(?P<file>[^\s:][^:\n]*\.py):\d+: in (?P<func>\S+)", re.MULTILINE)
_JVM_FRAME = re.compile(r"^\s+at (?P<func>[\w$.<>]+)\((?P<file>[\w$.-]+):\d+\)", re.MULTILINE)
_JS_FRAME = re.compile(
    r"^\s+at (?:(?P<func>[^\s(]+) \()?(?P<file>[^\s()]+?):\d+:\d+\)?$", re.MULTILINE
)
_GO_FRAME = re.compile(r"^(?P<func>[\w./*()-]+)\(.*\)\n\t(?P<file>\S+\.go):\d+", re.MULTILINE)
# (pattern, substring that must be present, innermost frame listed first?)
_FRAME_STYLES: tuple[tuple[re.Pattern[str], str, bool], ...] = (
    (_PYTEST_FRAME, ": in ", False),
    (_JVM_FRAME, "at ", True),
    (_JS_FRAME, "at ", True),
    (_GO_FRAME, ".go:", True),
)

# Library code: the same for every bug, so it never identifies one.
_LIBRARY = re.compile(
    r"""site-packages|dist-packages|[/\\]lib[/\\]python\d|[/\\]Lib[/\\]|<frozen|^<
    |[/\\]_?pytest[/\\]|[/\\]pluggy[/\\]|^_?pytest[/\\]|node_modules|^node:|^internal[/\\]
    |/usr/local/go/src|/go/pkg/mod/|^(?:java|javax|jdk|sun|kotlin|org\.junit|junit|org\.gradle)\.
    |^(?:runtime|testing)\.""",
    re.VERBOSE,
)

# The exception line: "E   KeyError: 'x'" (pytest), "KeyError: 'x'" (CPython's last line),
# "pkg.errors.Oops" alone. An exception name is CamelCase or dotted ending in one.
_EXC_LINE = re.compile(r"^(?:E\s+)?((?:[A-Za-z_]\w*\.)*[A-Z]\w*)(?::\s|:$|$)")
_PYTEST_ASSERT = re.compile(r"^E\s+assert\b")


def _exception_line(tail: str) -> tuple[str, str]:
    """(type, message) from the traceback's last exception line, or ("", "")."""
    lines = tail.rstrip().split("\n")
    for line in reversed(lines[-16:]):
        line = line.strip()
        if not line:
            continue
        match = _EXC_LINE.match(line)
        if match:
            return match.group(1), line[match.end() :].strip()
        if _PYTEST_ASSERT.match(line):
            return "AssertionError", line[1:].strip()
    return "", ""


def read_failure(result: TestResult) -> tuple[str, str, str]:
    """(exception type, message, traceback tail) of a failure, as every version reads them.
    The type comes from ``error_type``, else from the message's "KeyError: ..." head (then
    dropped from the message, so a result carrying error_type separately hashes the same), else
    from the traceback's exception line, which also gives the message when there is none."""
    message = result.error_message or ""
    traceback = result.traceback or ""
    tail = _tail(traceback) if traceback else ""
    exc_type = (result.error_type or "").strip()
    tb_type, tb_message = _exception_line(tail) if tail and not (exc_type and message) else ("", "")
    if message:
        head = _EXC_LINE.match(message)
        if head and message.startswith(head.group(1)):
            exc_type = exc_type or head.group(1)
            if exc_type == head.group(1):
                message = message[head.end() :]
    else:
        message = tb_message
    return exc_type or tb_type, message, tail


def _tail(traceback: str) -> str:
    if len(traceback) > _MAX_TRACEBACK_CHARS:
        traceback = traceback[-_MAX_TRACEBACK_CHARS:]
    if len(traceback) <= _SMALL_TRACEBACK_CHARS or traceback.count("\n") <= MAX_TRACEBACK_LINES:
        return traceback  # the common case: a small traceback is read whole
    cut = len(traceback)
    for _ in range(MAX_TRACEBACK_LINES):
        cut = traceback.rfind("\n", 0, cut)
    return traceback[cut + 1 :]
