"""Sentry-style failure fingerprints: which failing results are the same issue.

A fingerprint is a hash made by a *fingerprint algorithm*: a named, documented strategy
registered under a version number, which is stored beside every hash it makes. Version 1
(``ComponentsV1``) hashes ordered, normalised *components* of a failure:

1. ``exception_type``: ``TestResult.error_type``, else parsed from the message
   (``"KeyError: ..."``) or from the traceback's last exception line (``E   KeyError``).
2. ``message``: the message normalised by ``normalize.normalize_message`` (ports, temp paths,
   ids, durations... replaced by placeholders), its first lines only.
3. ``frame``: up to ``MAX_APP_FRAMES`` innermost APPLICATION frames of the traceback, each as
   ``file-basename:function``. No line numbers (they move with every edit above them), no
   directories (checkouts live in different places), and no library frames (site-packages,
   the standard library, pytest/pluggy, node_modules...), which are the same for every bug.

The test's identity does NOT contribute when there is a message or a frame: the same error
raised in two tests is one issue, as in Sentry (one broken fixture failing 40 tests is one
problem). Only when a failure carries nothing but its status does ``test_id`` + status
contribute, so unrelated unexplained failures do not all merge into one issue.

Versions, as Sentry's grouping configs: a registered algorithm's hashes never change (the
snapshot tests pin version 1's), so changing what is hashed means registering a new algorithm
under a new version and selecting it as CURRENT, with the one it replaces as SECONDARY
(``select_algorithms``; ``CURRENT_VERSION`` / ``SECONDARY_VERSION`` are the shipped choice).
The shipped choice is version 2 (``origin.RaisedAtV2``: type, message and the innermost project
frame it was raised in, not the frames of the path to it, which split one bug by caller) with
version 1 as its secondary. What every version builds on (components, the hash, the base class,
traceback reading) is in ``algorithm``.
New failures are hashed with the current algorithm; detection (``analyze.detect``) looks a
failure's issue up by that hash and, when no issue has it, by the failure's secondary hash, and
the issue found that way learns the new hash. So a new version moves open issues over as they
fail again instead of splitting each into a new one; once they have, the secondary can go.
Before the first detection with a new version (and a secondary), the issues carrying other
versions' fingerprints are re-fingerprinted once (``refingerprint``): their latest failures are
hashed with it and the hashes linked, so that a cause the older version split over several
issues (one per call path) joins one of them by a path none of them has seen.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

from testledger.analyze.issues.algorithm import (
    _FRAME_STYLES,
    _LIBRARY,
    _PY_FRAME,
    Component,
    ExplainedComponent,
    Fingerprint,
    FingerprintAlgorithm,
    hash_components,
    read_failure,
)
from testledger.analyze.issues.normalize import normalize_first_lines, normalize_message
from testledger.analyze.issues.origin import RaisedAtV2
from testledger.errors import NotFound
from testledger.model import Status, TestResult

__all__ = [
    "CURRENT_VERSION",
    "MAX_APP_FRAMES",
    "SECONDARY_VERSION",
    "Component",
    "ComponentsV1",
    "ExplainedComponent",
    "Explanation",
    "Fingerprint",
    "FingerprintAlgorithm",
    "current_algorithm",
    "explain",
    "fingerprint",
    "get_algorithm",
    "hash_components",
    "register_algorithm",
    "registered_algorithms",
    "secondary_algorithm",
    "select_algorithms",
    "unregister_algorithm",
]

#: The shipped selection: new failures are hashed with CURRENT_VERSION; SECONDARY_VERSION (the
#: version CURRENT replaced, while its open issues move over, else None) is looked up second.
CURRENT_VERSION = 2
SECONDARY_VERSION: int | None = 1

MAX_APP_FRAMES = 3
#: The message component keeps this many non-empty normalised lines, each cut to this length.
_MESSAGE_LINES = 3
_MESSAGE_LINE_CHARS = 200


class _Parsed(NamedTuple):
    """What a failure is made of, parsed once: the components are built from it on demand."""

    exception_type: str
    message: str  # raw, without a leading "KeyError: " that only repeats the type
    normalized_message: str
    frames: list[tuple[str, str]]  # (raw frame line, "basename:function"), innermost first
    test_id: str
    status: Status  # its .value (an enum property, slow-ish) only when the status contributes

    @property
    def explained(self) -> bool:
        return bool(self.exception_type or self.message or self.frames)


# --- version 1's frames ------------------------------------------------------------------------

# Frame (file, function) -> component text, or "" for library frames. Real suites fail in the
# same few hundred frames over and over, so this saves the library test and the basename.
_frame_cache: dict[tuple[str, str], str] = {}
# A Python traceback's text up to its last frame line -> its app frames (read-only lists).
_py_frames_cache: dict[str, list[tuple[str, str]]] = {}


def _frame_text(path: str, func: str) -> str:
    if _LIBRARY.search(path) or _LIBRARY.search(func):
        text = ""
    else:
        cut = max(path.rfind("/"), path.rfind("\\"))
        text = f"{path[cut + 1 :]}:{func}"
    if len(_frame_cache) > 65536:  # bounded: a pathological stream cannot grow it forever
        _frame_cache.clear()
    _frame_cache[path, func] = text
    return text


def _frames(tail: str) -> list[tuple[str, str]]:
    """App frames as (raw, "basename:function"), innermost first, at most MAX_APP_FRAMES.

    The first style that finds an app frame wins (a traceback is in one language)."""
    cache = _frame_cache
    last = tail.rfind('File "')
    if last >= 0:  # CPython, the common case: innermost (last) frames first
        # The same bug fails through the same frames (files, lines, source) run after run:
        # the text up to the end of the last frame line decides the frames, so it is the key.
        end = tail.find("\n", last)
        key = tail[: end if end >= 0 else len(tail)]
        known = _py_frames_cache.get(key)
        if known:
            return known
        found: list[tuple[str, str]] = []
        for path, line, func in reversed(_PY_FRAME.findall(key)):
            text = cache.get((path, func))
            if text is None:
                text = _frame_text(path, func)
            if text:
                found.append((f'File "{path}", line {line}, in {func}', text))
                if len(found) == MAX_APP_FRAMES:
                    break
        if len(_py_frames_cache) > 4096:  # keys are ~1 KB: bounded to a few MB
            _py_frames_cache.clear()
        _py_frames_cache[key] = found
        if found:
            return found
    for pattern, marker, innermost_first in _FRAME_STYLES:
        if marker not in tail:
            continue
        found = []
        for match in pattern.finditer(tail):
            path, func = match.group("file"), match.group("func") or "<anonymous>"
            text = cache.get((path, func))
            if text is None:
                text = _frame_text(path, func)
            if text:
                found.append((match.group().strip(), text))
        if found:
            if not innermost_first:
                found.reverse()
            return found[:MAX_APP_FRAMES]
    return []


# --- version 1 ---------------------------------------------------------------------------------


_new = tuple.__new__  # builds a NamedTuple without its Python-level __new__: hot path


def _parse(result: TestResult) -> _Parsed:
    exc_type, message, tail = read_failure(result)
    normalized = ""
    if message:
        lines = normalize_first_lines(message, _MESSAGE_LINES)
        if len(lines) == 1 and len(lines[0]) <= _MESSAGE_LINE_CHARS:
            normalized = lines[0]
        else:
            normalized = "\n".join([line[:_MESSAGE_LINE_CHARS] for line in lines])
    frames = _frames(tail) if tail else []
    return _new(_Parsed, (exc_type, message, normalized, frames, result.test_id, result.status))


def _components_of(parsed: _Parsed) -> list[Component]:
    exc_type, message, normalized, frames, test_id, status_enum = parsed
    status = status_enum.value
    components = [_new(Component, ("exception_type", exc_type, exc_type, bool(exc_type)))]
    if message:
        components.append(_new(Component, ("message", message, normalized, True)))
    for raw, text in frames:
        components.append(_new(Component, ("frame", raw, text, True)))
    # The test's identity only decides when nothing else does (see the module docstring);
    # parametrisation ids are normalised, so test_x[1] and test_x[2] failing silently are one
    # (normalised only when it counts: ``explain`` shows the rules either way).
    explained = parsed.explained
    normalized_id = test_id if explained else normalize_message(test_id)
    components.append(_new(Component, ("test_id", test_id, normalized_id, not explained)))
    components.append(_new(Component, ("status", status, status, not explained)))
    return components


class ComponentsV1(FingerprintAlgorithm):
    """Exception type, normalised message and innermost application frames.

    The components listed in this module's docstring: the exception type, the message's first
    lines normalised, up to three innermost application frames as ``file:function``, and only
    when a failure carries none of these, its normalised test id and status.
    """

    version = 1
    name = "components"

    def components(self, result: TestResult) -> list[Component]:
        return _components_of(_parse(result))

    def fingerprint(self, result: TestResult) -> Fingerprint:
        parsed = _parse(result)
        exc_type, message, normalized, frames, test_id, status = parsed
        # The bytes ``hash_components`` would hash, built without the components: hot path.
        parts = [f"exception_type\x1f{exc_type}"] if exc_type else []
        if message:
            parts.append(f"message\x1f{normalized}")
        for _, text in frames:
            parts.append(f"frame\x1f{text}")
        if not (exc_type or message or frames):
            parts.append(f"test_id\x1f{normalize_message(test_id)}")
            parts.append(f"status\x1f{status.value}")
        digest = hashlib.sha1(
            "\x1e".join(parts).encode("utf-8", "surrogatepass"), usedforsecurity=False
        ).hexdigest()
        return _new(Fingerprint, (digest, 1, self, result))


# --- the registry ------------------------------------------------------------------------------


class _Registry:
    """The registered algorithms by version, and the current and secondary ones."""

    def __init__(self, *algorithms: FingerprintAlgorithm) -> None:
        self.algorithms = {algorithm.version: algorithm for algorithm in algorithms}
        self.current = self.get(CURRENT_VERSION)
        self.secondary = None if SECONDARY_VERSION is None else self.get(SECONDARY_VERSION)

    def get(self, version: int) -> FingerprintAlgorithm:
        found = self.algorithms.get(version)
        if found is None:
            known = ", ".join(str(v) for v in sorted(self.algorithms))
            raise NotFound(f"no fingerprint algorithm version {version} (known: {known})")
        return found


_REGISTRY = _Registry(ComponentsV1(), RaisedAtV2())


def register_algorithm(algorithm: FingerprintAlgorithm) -> None:
    """Make an algorithm available under its version; ``select_algorithms`` puts it to use."""
    version = getattr(algorithm, "version", None)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(f"a fingerprint algorithm's version is an int >= 1, not {version!r}")
    if not getattr(algorithm, "name", "") or not algorithm.description:
        raise ValueError(f"fingerprint algorithm {version} needs a name and a docstring")
    known = _REGISTRY.algorithms.get(version)
    if known is not None and known is not algorithm:
        raise ValueError(f"fingerprint algorithm version {version} is taken by {known.name!r}")
    _REGISTRY.algorithms[version] = algorithm


def unregister_algorithm(version: int) -> None:
    """Forget an algorithm that is neither current nor secondary."""
    selected = (_REGISTRY.current, _REGISTRY.secondary)
    if any(algorithm is not None and algorithm.version == version for algorithm in selected):
        raise ValueError(f"fingerprint algorithm {version} is selected: select others first")
    _REGISTRY.algorithms.pop(version, None)


def select_algorithms(current: int, secondary: int | None = None) -> tuple[int, int | None]:
    """Hash new failures with algorithm ``current``; with ``secondary`` (the one it replaces),
    a failure whose current hash no issue has joins the issue that has its secondary hash.
    Returns the selection replaced, as ``(current, secondary)``, to restore it."""
    if current == secondary:
        raise ValueError(f"fingerprint algorithm {current} cannot be its own secondary")
    chosen = _REGISTRY.get(current)
    second = None if secondary is None else _REGISTRY.get(secondary)
    old = _REGISTRY.secondary
    before = (_REGISTRY.current.version, None if old is None else old.version)
    _REGISTRY.current, _REGISTRY.secondary = chosen, second
    return before


def get_algorithm(version: int) -> FingerprintAlgorithm:
    return _REGISTRY.get(version)


def current_algorithm() -> FingerprintAlgorithm:
    return _REGISTRY.current


def secondary_algorithm() -> FingerprintAlgorithm | None:
    return _REGISTRY.secondary


def registered_algorithms() -> list[FingerprintAlgorithm]:
    return [_REGISTRY.algorithms[version] for version in sorted(_REGISTRY.algorithms)]


# --- fingerprint and explain -------------------------------------------------------------------


def fingerprint(result: TestResult, version: int | None = None) -> Fingerprint:
    """The fingerprint of one failing result (deterministic: same input, same hash), made by
    the current algorithm or by the one registered under ``version``."""
    algorithm = _REGISTRY.current if version is None else _REGISTRY.get(version)
    return algorithm.fingerprint(result)


@dataclass(frozen=True, slots=True)
class Explanation:
    """How a fingerprint is made: by which algorithm, from which components. Iterating it
    yields the components."""

    hash: str
    version: int
    algorithm: str
    description: str
    components: tuple[ExplainedComponent, ...]

    def __iter__(self) -> Iterator[ExplainedComponent]:
        return iter(self.components)

    def __len__(self) -> int:
        return len(self.components)


def explain(result: TestResult, version: int | None = None) -> Explanation:
    """``fingerprint(result, version)``: the algorithm that made it, and its components with
    the normalisation rules that fired on each."""
    made = fingerprint(result, version)
    algorithm = made.algorithm
    parts = tuple(ExplainedComponent(*c, algorithm.rules(c)) for c in made.components)
    return Explanation(made.hash, made.version, algorithm.name, algorithm.description, parts)
