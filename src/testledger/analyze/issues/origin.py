"""Fingerprint algorithm version 2, ``raised-at``: a failure is its exception type, its
normalised message and WHERE IT WAS RAISED, not the path that led there.

As failure-reason clustering in Chromium's LUCI Analysis, and unlike version 1 (which hashes
up to three innermost application frames, so that one bug reached from different callers, or
raised right under a test function, becomes one issue per caller or per test), version 2 hashes:

1. ``exception_type``: as version 1 (the result's ``error_type``, else parsed).
2. ``message``: the first lines, normalised by ``normalize_message`` after a pre-pass that
   keeps what a careful reader reads as the meaning (``normalize_origin_message``):

   * an assertion's string literals (``assert 'sonnet-4' == 'sonnet-4.5'`` is not ``assert
     'haiku-3.5' == 'sonnet-4'``), with only unmistakable volatile values inside them (UUIDs,
     addresses, long hex and numbers, temp paths, timestamps, host:port) replaced;
   * an HTTP status as its class (``500 Server Error: Internal Server Error`` and ``503 Server
     Error: Service Unavailable`` are ``5xx Server Error``; a ``404`` is ``4xx``);
   * a file path: a temp path is ``<tmp_path>``; a repository path is ``<repo>/`` and the path
     from its project root (after ``src/``, from ``tests/``, else its last two parts), so a
     missing repository file is not a missing temp upload, whatever directory the checkout is
     in.
3. ``raised_in``: the innermost frame of the project's own code (not site-packages, the
   standard library, pytest or other library frames) as ``module:function``, the module being
   the file's path from its project root, without line numbers.

``call_path`` (every project frame from the test down, as ``module:function``) is shown by
``explain`` as evidence and does not contribute. Only when a failure has no type, message or
frame do its test id and status contribute, as in version 1.
"""

from __future__ import annotations

import hashlib
import re
from typing import NamedTuple

from testledger.analyze.issues.algorithm import (
    _FRAME_STYLES,
    _LIBRARY,
    _PY_FRAME,
    Component,
    Fingerprint,
    FingerprintAlgorithm,
    read_failure,
)
from testledger.analyze.issues.normalize import (
    MAX_MESSAGE_CHARS,
    normalize_first_lines,
    normalize_message,
    normalize_with_trace,
)
from testledger.model import Status, TestResult

__all__ = ["RaisedAtV2", "normalize_origin_message", "project_module"]

_MESSAGE_LINES = 3
_MESSAGE_LINE_CHARS = 200
#: Project frames shown in ``call_path`` (innermost kept when there are more).
_PATH_FRAMES = 12
#: A string literal longer than this in an assertion is data, not a name: normalised as usual.
_LITERAL_CHARS = 80

# --- where: the project module of a frame ------------------------------------------------------

_module_cache: dict[str, str] = {}
_TEST_DIR = re.compile(r"(?:^|/)(tests?/)")


def project_module(path: str) -> str:
    """A source file's path from its project root, the same in every checkout: after the last
    ``src/``, else from the last ``tests/`` (``test/``), else a relative path as it is, else
    its last two parts (``/builds/acme/app/pkg/mod.py`` -> ``pkg/mod.py``)."""
    known = _module_cache.get(path)
    if known is not None:
        return known
    clean = path.replace("\\", "/")
    cut = clean.rfind("/src/")
    if cut >= 0:
        module = clean[cut + 5 :]
    elif clean.startswith("src/"):
        module = clean[4:]
    else:
        tests = [m.start(1) for m in _TEST_DIR.finditer(clean)]
        if tests:
            module = clean[tests[-1] :]
        elif not clean.startswith("/") and not re.match(r"[A-Za-z]:/", clean):
            module = clean
        else:
            module = "/".join(clean.rsplit("/", 2)[-2:])
    if len(_module_cache) > 65536:  # bounded, as fingerprint's frame cache
        _module_cache.clear()
    _module_cache[path] = module
    return module


class _Frame(NamedTuple):
    raw: str
    module: str
    function: str

    @property
    def text(self) -> str:
        return f"{self.module}:{self.function}"


# pytest's long format: each entry's source, then "path.py:LINE: " (an inner call) or
# "path.py:LINE: ExceptionType" (the raising entry). Its function is its source's "def".
_PYTEST_LOCATION = re.compile(r"^(?P<file>[^\s:][^:\n]*\.py):\d+:(?: [\w.]*)?$", re.MULTILINE)
_DEF = re.compile(r"^\s*(?:async\s+)?def\s+(\w+)\s*\(", re.MULTILINE)

_frames_cache: dict[str, list[_Frame]] = {}


# A file or function name -> not a library's. ``_LIBRARY`` has no literal to scan for, so a
# search costs ~10 us; a suite fails in the same few hundred files over and over, and a
# traceback whose line numbers moved misses the frames cache, but not this one.
_not_library_cache: dict[str, bool] = {}


def _not_library(name: str) -> bool:
    known = _not_library_cache.get(name)
    if known is None:
        known = _LIBRARY.search(name) is None
        if len(_not_library_cache) > 65536:  # bounded, as the module cache
            _not_library_cache.clear()
        _not_library_cache[name] = known
    return known


def _project(path: str, func: str) -> bool:
    return _not_library(path) and _not_library(func)


def _python_frames(key: str) -> list[_Frame]:
    # A Python frame is the project's by its file alone: '<module>' (an import raising) is a
    # function name here, not a '<frozen ...>' or '<string>' file.
    return [
        _Frame(f'File "{path}", line {line}, in {func}', project_module(path), func)
        for path, line, func in reversed(_PY_FRAME.findall(key))
        if _not_library(path)
    ]


def _pytest_long_frames(tail: str) -> list[_Frame]:
    frames: list[_Frame] = []
    start = 0
    for match in _PYTEST_LOCATION.finditer(tail):
        defs = _DEF.findall(tail, start, match.start())
        start = match.end()
        path = match.group("file")
        if _project(path, ""):
            frames.append(_Frame(match.group(), project_module(path), defs[-1] if defs else ""))
    frames.reverse()
    return frames


def _other_frames(tail: str) -> list[_Frame]:
    for pattern, marker, innermost_first in _FRAME_STYLES:
        if marker not in tail:
            continue
        found: list[_Frame] = []
        for match in pattern.finditer(tail):
            path, func = match.group("file"), match.group("func") or "<anonymous>"
            if not _project(path, func):
                continue
            if path.endswith((".java", ".kt", ".scala")) and "." in func:
                module, _, func = func.rpartition(".")  # com.acme.Pool.take
            else:
                module = project_module(path)
            found.append(_Frame(match.group().strip(), module, func))
        if found:
            if not innermost_first:
                found.reverse()
            return found
    return []


def _frames(tail: str) -> list[_Frame]:
    """The project frames of a traceback's tail, innermost first (at most ``_PATH_FRAMES``)."""
    last = tail.rfind('File "')
    if last >= 0:
        end = tail.find("\n", last)
        key = tail[: end if end >= 0 else len(tail)]
    else:
        key = tail
    known = _frames_cache.get(key)
    if known is not None:
        return known
    found = _python_frames(key) if last >= 0 else []
    if not found:
        found = _other_frames(tail) or _pytest_long_frames(tail)
    found = found[:_PATH_FRAMES]
    if len(_frames_cache) > 4096:
        _frames_cache.clear()
    _frames_cache[key] = found
    return found


#: A Python traceback's text up to its last frame line -> ``_raised_in`` of it.
_raised_in_cache: dict[str, str] = {}


def _raised_in(tail: str) -> str:
    """``module:function`` of ``_frames(tail)[0]`` ("" when there is none), for the hash: in
    the common case (a Python traceback with a project frame) without building the whole call
    path, which only ``explain`` shows. Tracebacks whose line numbers moved miss the cache."""
    last = tail.rfind('File "')
    if last >= 0:
        end = tail.find("\n", last)
        key = tail[: end if end >= 0 else len(tail)]
        known = _raised_in_cache.get(key)
        if known is not None:
            return known
        for path, _line, func in reversed(_PY_FRAME.findall(key)):
            if _not_library(path):
                text = f"{project_module(path)}:{func}"
                if len(_raised_in_cache) > 4096:  # keys are ~1 KB: bounded to a few MB
                    _raised_in_cache.clear()
                _raised_in_cache[key] = text
                return text
    frames = _frames(tail)  # other styles, or a Python traceback of library frames only
    return f"{frames[0].module}:{frames[0].function}" if frames else ""


# --- what: the message -------------------------------------------------------------------------

_HTTP_REASON = re.compile(
    r"\b([1-5])\d\d (Client|Server) Error\b(?::[^\n]*?(?= for url:|$))?", re.MULTILINE
)
_HTTP_STATUS = re.compile(
    r"\b(HTTP(?:/\d(?:\.\d)?)?|[Ss]tatus(?:[ _]code)?)([ =:]+)([1-5])\d\d\b(?![.\d])"
)
# An absolute path; or one this pre-pass already made ("<repo>/..."), kept as it is, so that
# normalising twice changes nothing.
_PATH = re.compile(
    r"""<repo>/[^\s'"():,<>]*|(?<![\w.:/~>-])(?:/|[A-Za-z]:\\)[^\s'"():,<>]*[^\s'"():,<>.]"""
)
# The same without Windows paths, for a message with no backslash (nearly all): each branch
# starts with a literal ('<', '/'; the lookbehind moved after the '/'), so the engine scans to
# the next '<' or '/' at C speed instead of trying a drive letter at every letter.
_POSIX_PATH = re.compile(r"""<repo>/[^\s'"():,<>]*|/(?<![\w.:/~>-]/)[^\s'"():,<>]*[^\s'"():,<>.]""")
_TMP = re.compile(r"^/(?:private/)?(?:tmp|var/folders|var/tmp|dev/shm)/|\\AppData\\Local\\Temp")
_ASSERT = re.compile(r"^\s*(?:AssertionError:\s*)?assert\b")
_LITERAL = re.compile(r"""'(?:[^'\\\n]|\\.){0,80}'|"(?:[^"\\\n]|\\.){0,80}\"""")
_STRONG = re.compile(
    r"""(?P<uuid>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})
    |(?P<tmp_path>/(?:private/)?(?:tmp|var/folders|var/tmp|dev/shm)/\S*)
    |(?P<timestamp>\d{4}-\d\d-\d\d[T\ ]\d\d:\d\d(?::\d\d(?:[.,]\d+)?)?(?:Z|[+-]\d\d:?\d\d)?)
    |(?P<host_port>(?:localhost|\d{1,3}(?:\.\d{1,3}){3}):\d{1,5})
    |(?P<hex>0[xX][0-9a-fA-F]+|\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{8,}\b)
    |(?P<num>\d{5,})""",
    re.VERBOSE,
)
#: Marks a kept part's token while the message is normalised around it: a private-use
#: character (not a word character, not whitespace) inside '<...>', which no rule matches into.
_MARK = "\ue000"


def _token(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(97 + rest) + letters
    return f"<kept{_MARK}{letters}>"


_TOKENS = [_token(index) for index in range(32)]  # a message keeps a few parts: made once


class _Kept:
    """Parts of a message kept as the pre-pass decided, behind tokens normalisation ignores."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.rules: list[str] = []

    def keep(self, text: str, rule: str) -> str:
        if rule not in self.rules:
            self.rules.append(rule)
        self.parts.append(text)
        index = len(self.parts) - 1
        return _TOKENS[index] if index < len(_TOKENS) else _token(index)

    def restore(self, text: str) -> str:
        if _MARK in text:
            for index in range(len(self.parts) - 1, -1, -1):
                token = _TOKENS[index] if index < len(_TOKENS) else _token(index)
                text = text.replace(token, self.parts[index])
        return text


def _literal(match: re.Match[str], kept: _Kept) -> str:
    text = match.group()
    inner = _STRONG.sub(lambda m: f"<{m.lastgroup}>", text)
    return kept.keep(inner, "assert_literal")


def _path(match: re.Match[str], kept: _Kept) -> str:
    path = match.group()
    if path.startswith("<repo>/"):
        return kept.keep(path, "repo_path")
    if _TMP.search(path):
        return kept.keep("<tmp_path>", "tmp_path")
    if path.count("/") + path.count("\\") < 2:
        return path  # "/x": too short to be a file
    return kept.keep("<repo>/" + project_module(path), "repo_path")


def _prepass(message: str, kept: _Kept) -> str:
    text = message[:MAX_MESSAGE_CHARS]
    if _MARK in text:
        text = text.replace(_MARK, "")
    if "Error" in text:
        text = _HTTP_REASON.sub(
            lambda m: kept.keep(f"{m[1]}xx {m[2]} Error", "http_status_class"), text
        )
    if "tatus" in text or "HTTP" in text:
        text = _HTTP_STATUS.sub(
            lambda m: m[1] + m[2] + kept.keep(f"{m[3]}xx", "http_status_class"), text
        )
    if _ASSERT.match(text):  # an assertion's first line: its literals are its meaning
        first, newline, rest = text.partition("\n")
        text = _LITERAL.sub(lambda m: _literal(m, kept), first) + newline + rest
    if "\\" in text:
        text = _PATH.sub(lambda m: _path(m, kept), text)
    elif "/" in text:
        text = _POSIX_PATH.sub(lambda m: _path(m, kept), text)
    return text


def normalize_origin_message(message: str) -> tuple[str, list[str]]:
    """Version 2's normalised message (its first lines) and the rules that fired."""
    kept = _Kept()
    text = _prepass(message, kept)
    lines = normalize_first_lines(text, _MESSAGE_LINES)
    if kept.parts:
        out = "\n".join(kept.restore(line)[:_MESSAGE_LINE_CHARS] for line in lines)
    elif len(lines) == 1:  # the common case: one line, nothing kept
        out = lines[0][:_MESSAGE_LINE_CHARS]
    else:
        out = "\n".join([line[:_MESSAGE_LINE_CHARS] for line in lines])
    return out, kept.rules


#: Message -> version 2's normalised message. The same message recurs (one cause failing in
#: many tests, retries, runs after runs) and normalising is most of a fingerprint's cost.
#: Bounded, and only short messages are keys (a megabyte message is not kept alive).
_normalized_cache: dict[str, str] = {}
_CACHED_MESSAGE_CHARS = 1024


def _normalized(message: str) -> str:
    known = _normalized_cache.get(message)
    if known is not None:
        return known
    normalized = normalize_origin_message(message)[0]
    if len(message) <= _CACHED_MESSAGE_CHARS:
        if len(_normalized_cache) > 8192:
            _normalized_cache.clear()
        _normalized_cache[message] = normalized
    return normalized


# --- the algorithm -----------------------------------------------------------------------------

_new = tuple.__new__  # builds a NamedTuple without its Python-level __new__: hot path


class _Parsed(NamedTuple):
    exception_type: str
    message: str
    normalized: str
    frames: list[_Frame]
    test_id: str
    status: Status


def _parse(result: TestResult) -> _Parsed:
    exc_type, message, tail = read_failure(result)
    normalized = _normalized(message) if message else ""
    frames = _frames(tail) if tail else []
    return _Parsed(exc_type, message, normalized, frames, result.test_id, result.status)


class RaisedAtV2(FingerprintAlgorithm):
    """Exception type, normalised message and the innermost project frame it was raised in.

    See ``analyze.issues.origin``: the message keeps an assertion's string literals, HTTP
    statuses become their class and paths are repository paths or ``<tmp_path>``; the raising
    frame is ``module:function`` of the innermost frame of the project's own code. The call path
    that led there is shown, not hashed.
    """

    version = 2
    name = "raised-at"

    def components(self, result: TestResult) -> list[Component]:
        parsed = _parse(result)
        exc_type = parsed.exception_type
        components = [Component("exception_type", exc_type, exc_type, bool(exc_type))]
        if parsed.message:
            components.append(Component("message", parsed.message, parsed.normalized, True))
        if parsed.frames:
            raising = parsed.frames[0]
            components.append(Component("raised_in", raising.raw, raising.text, True))
            path = " > ".join(frame.text for frame in reversed(parsed.frames))
            components.append(Component("call_path", path, path, False))
        explained = bool(exc_type or parsed.message or parsed.frames)
        test_id = parsed.test_id
        normalized_id = test_id if explained else normalize_message(test_id)
        components.append(Component("test_id", test_id, normalized_id, not explained))
        status = parsed.status.value
        components.append(Component("status", status, status, not explained))
        return components

    def fingerprint(self, result: TestResult) -> Fingerprint:
        # The bytes ``hash_components`` would hash, built without the components: hot path.
        exc_type, message, tail = read_failure(result)
        parts = [f"exception_type\x1f{exc_type}"] if exc_type else []
        if message:
            parts.append(f"message\x1f{_normalized(message)}")
        raised_in = _raised_in(tail) if tail else ""
        if raised_in:
            parts.append(f"raised_in\x1f{raised_in}")
        if not parts:  # no type, message or frame: the test and its status decide
            parts.append(f"test_id\x1f{normalize_message(result.test_id)}")
            parts.append(f"status\x1f{result.status.value}")
        digest = hashlib.sha1(
            "\x1e".join(parts).encode("utf-8", "surrogatepass"), usedforsecurity=False
        ).hexdigest()
        return _new(Fingerprint, (digest, self.version, self, result))

    def rules(self, component: Component) -> tuple[str, ...]:
        if component.name == "message":
            kept = _Kept()
            text = _prepass(component.raw, kept)
            return tuple(kept.rules + normalize_with_trace(text)[1])
        if component.name == "test_id":
            return tuple(normalize_with_trace(component.raw)[1])
        return ()
