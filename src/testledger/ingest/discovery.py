"""Importers by format name: the built-ins, and third-party ones found through entry points.

An importer is anything satisfying :class:`~testledger.ingest.base.Importer`: a module (as the
built-ins are) or an object. A distribution adds one by an entry point of the group
``testledger.importers`` whose name is the format's (what ``--format`` takes), e.g. in its
pyproject.toml::

    [project.entry-points."testledger.importers"]
    acme = "acme_testledger.importer"

Third-party importers are found on first use, not when testledger is imported, so that commands
that import nothing never scan the installed distributions nor import a plugin. They come after
the built-ins, by name: detection asks testledger's own importers first, and a plugin cannot
change how a file in a built-in format is read. The built-ins are declared in testledger's
pyproject.toml too, yet known without their entry points, so that a source checkout that was
never installed still has them.

A third-party entry point that cannot be used (it fails to import, its object lacks what an
importer provides, its name is a format already taken) is skipped with a warning naming its
distribution: one broken plugin never stops the import of the formats that work.
"""

from __future__ import annotations

import functools
import inspect
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, distributions
from pathlib import Path
from typing import cast

from testledger.ingest.base import Importer
from testledger.ingest.formats import allure, ctrf, junit, pytest_json, reportlog
from testledger.ingest.tool_validation import results as exai

__all__ = [
    "BUILT_IN",
    "BUILT_IN_FORMATS",
    "ENTRY_POINT_GROUP",
    "FORMATS",
    "clear_cache",
    "sniffs",
]

ENTRY_POINT_GROUP = "testledger.importers"

#: The built-in importers in detection order. ``exai`` (the tool-validation suite's JSON) comes
#: before the generic JSON formats because its shapes are the most specific. (Typed as importers
#: so that mypy checks each module against the protocol.)
BUILT_IN: tuple[Importer, ...] = (junit, exai, ctrf, pytest_json, reportlog, allure)
_BUILT_IN_BY_NAME: dict[str, Importer] = {importer.FORMAT: importer for importer in BUILT_IN}
BUILT_IN_FORMATS: tuple[str, ...] = tuple(_BUILT_IN_BY_NAME)

#: testledger's own distribution, whose entry points are the built-ins above.
_OWN_DISTRIBUTION = "testledger"

log = logging.getLogger("testledger")


@dataclass(slots=True)
class _Found:
    importers: dict[str, Importer]
    #: format -> the distribution that provides it, for third-party importers only.
    distributions: dict[str, str]
    #: Third-party formats whose sniff failed and was reported (once each).
    sniff_failures: set[str] = field(default_factory=set)


def _distribution(entry: EntryPoint) -> str:
    dist = entry.dist
    return dist.name if dist is not None else "(unknown distribution)"


def _canonical(name: str) -> str:
    """A distribution's name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _group_entries() -> Iterator[EntryPoint]:
    """The group's entry points, distribution by distribution (the first of a name on sys.path,
    as importlib.metadata.entry_points does). That function fails as a whole on one
    distribution's malformed entry_points.txt, whatever its groups; here only that distribution
    is skipped, with a warning if it meant to declare an importer."""
    seen: set[str] = set()
    for dist in distributions():
        name = _canonical(dist.name or "")
        if name in seen:
            continue
        seen.add(name)
        try:
            yield from dist.entry_points.select(group=ENTRY_POINT_GROUP)
        except Exception as exc:
            if ENTRY_POINT_GROUP in (dist.read_text("entry_points.txt") or ""):
                log.warning(
                    "testledger: the importers of distribution %r skipped: its entry points "
                    "cannot be read (%s: %s)",
                    dist.name,
                    type(exc).__name__,
                    exc,
                )


def _third_party_entries() -> list[EntryPoint]:
    """The group's entry points but testledger's own, by name then distribution: a defined
    order whatever the order of sys.path (detection asks them in this order)."""
    return sorted(
        (
            entry
            for entry in _group_entries()
            if not (
                _canonical(_distribution(entry)) == _OWN_DISTRIBUTION
                and entry.name in _BUILT_IN_BY_NAME
            )
        ),
        key=lambda entry: (entry.name, _distribution(entry)),
    )


@functools.cache
def _discover() -> _Found:
    found = _Found(importers=dict(_BUILT_IN_BY_NAME), distributions={})
    for entry in _third_party_entries():
        importer = _load(entry, found)
        if importer is not None:
            found.importers[entry.name] = importer
            found.distributions[entry.name] = _distribution(entry)
    return found


def clear_cache() -> None:
    """Forget the importers found, so that the next use looks for them again (after a
    distribution was installed in this process, and in tests)."""
    _discover.cache_clear()


def _load(entry: EntryPoint, found: _Found) -> Importer | None:
    """The entry point's importer, or None after a warning saying why it cannot be used."""

    def skip(reason: str) -> None:
        log.warning(
            "testledger: importer %r of distribution %r (%s) skipped: %s",
            entry.name,
            _distribution(entry),
            entry.value,
            reason,
        )

    # A clash is decided before importing anything: the plugin's code never runs for nothing.
    if entry.name in _BUILT_IN_BY_NAME:
        skip(f"{entry.name!r} is a built-in format of testledger")
        return None
    if entry.name in found.importers:
        skip(f"format {entry.name!r} is already provided by {found.distributions[entry.name]!r}")
        return None
    try:
        loaded = entry.load()
    except Exception as exc:  # any error of third-party code at import time
        skip(f"cannot be loaded: {type(exc).__name__}: {exc}")
        return None
    problems = _problems(loaded, entry.name)
    if problems:
        skip("not an importer: " + "; ".join(problems))
        return None
    # _problems checked at run time what the Importer protocol declares.
    return cast(Importer, loaded)


#: The methods an importer has (parse_folder only when its folders hold several runs), with the
#: arguments they are called with.
_METHODS = {
    "sniff": ("path", "head"),
    "parse": ("path",),
    "parse_folder": ("path",),
}
_OPTIONAL = frozenset({"parse_folder"})


def _takes(function: Callable[..., object], count: int) -> bool:
    try:
        inspect.signature(function).bind(*[Path()] * count)
    except TypeError:
        return False
    except ValueError:  # no signature to inspect (some builtins): given the benefit of the doubt
        return True
    return True


def _problems(candidate: object, name: str) -> list[str]:
    """What ``candidate`` lacks of an importer for the format ``name`` (empty: nothing).

    The Importer protocol, checked at run time: a plugin is not type-checked with testledger, and
    one found wanting is better refused at discovery, once, than failing on every file."""
    problems = []
    format_name = getattr(candidate, "FORMAT", None)
    if not isinstance(format_name, str):
        problems.append("FORMAT is missing or not a string")
    elif format_name != name:
        problems.append(f"FORMAT {format_name!r} is not its entry point's name {name!r}")
    for flag in ("PARSE_AHEAD", "READS_FOLDERS"):
        if not isinstance(getattr(candidate, flag, None), bool):
            problems.append(f"{flag} is missing or not a bool")
    suffixes = getattr(candidate, "SUFFIXES", None)
    if not (isinstance(suffixes, tuple) and all(isinstance(end, str) and end for end in suffixes)):
        problems.append("SUFFIXES is missing or not a tuple of file name endings")
    for method, arguments in _METHODS.items():
        if method in _OPTIONAL and not hasattr(candidate, method):
            continue
        function = getattr(candidate, method, None)
        if not callable(function):
            problems.append(f"{method}() is missing")
        elif not _takes(function, len(arguments)):
            problems.append(f"{method}() does not take ({', '.join(arguments)})")
    return problems


def sniffs(importer: Importer, path: Path, head: bytes) -> bool:
    """``importer.sniff(path, head)``. A third-party sniff that raises is taken as a no, with a
    warning (once per format): every file met is asked, and a plugin's bug must not stop the
    import of files in other formats."""
    found = _discover()
    distribution = found.distributions.get(importer.FORMAT)
    if distribution is None:
        return importer.sniff(path, head)
    try:
        return bool(importer.sniff(path, head))
    except Exception as exc:
        if importer.FORMAT not in found.sniff_failures:
            found.sniff_failures.add(importer.FORMAT)
            log.warning(
                "testledger: importer %r of distribution %r failed on %s (%s: %s); the files it "
                "fails on are taken as not in its format",
                importer.FORMAT,
                distribution,
                path,
                type(exc).__name__,
                exc,
            )
        return False


class _Formats(Mapping[str, Importer]):
    """Every importer by format name, in detection order, found on first use."""

    def __getitem__(self, name: str) -> Importer:
        # A built-in is found without scanning the installed distributions: the parse-ahead
        # child looks its format up this way and must start in tens of milliseconds. (No plugin
        # can take a built-in's name, so the answer is the same.)
        built_in = _BUILT_IN_BY_NAME.get(name)
        return built_in if built_in is not None else _discover().importers[name]

    def __iter__(self) -> Iterator[str]:
        return iter(_discover().importers)

    def __len__(self) -> int:
        return len(_discover().importers)

    def __repr__(self) -> str:
        return f"<importers {', '.join(self)}>"


#: Every importer by format name (built-ins first, in detection order, then plugins by name).
FORMATS: Mapping[str, Importer] = _Formats()
