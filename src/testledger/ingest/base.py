"""What every importer provides and returns, and the error it raises for input it cannot read.

An importer is anything satisfying :class:`Importer`: a module (as the built-ins are:
``ingest/formats/junit.py``, ``ingest/formats/ctrf.py``...) or an object. Importers are found by
format name through the entry point group ``testledger.importers`` (:mod:`.discovery`), and a
file's format by asking each importer's ``sniff`` in turn (:mod:`.registry`).

Parsing errors are raised as :class:`ImportFormatError` (naming the file and, where known, the
line) from ``parse`` or while the results iterator is consumed; the importer writes a file's
rows in one transaction, so a late error leaves nothing of that file behind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from testledger.common.jsondata import JsonData
from testledger.errors import TestledgerError
from testledger.model import RunInfo, TestResult, WatcherObservation

__all__ = [
    "FolderHistoryImporter",
    "ImportFormatError",
    "Importer",
    "LooseResult",
    "ParsedFile",
    "RunTotals",
    "Skipped",
    "checked",
    "checked_results",
    "unexpected_error",
    "verdict",
]


class ImportFormatError(TestledgerError):
    """A file could not be read as the format it claims (or any known format)."""

    def __init__(self, path: Path | str, reason: str, line: int | None = None) -> None:
        self.path = Path(path)
        self.reason = reason
        self.line = line
        where = f"{self.path}:{line}" if line is not None else str(self.path)
        super().__init__(f"{where}: {reason}")


@dataclass(frozen=True, slots=True)
class RunTotals(JsonData):
    """A run's counts as a summary states them (``failed`` includes ``errored``, as in
    ``test_runs``)."""

    total: int
    passed: int
    failed: int
    skipped: int
    errored: int = 0

    @property
    def pass_rate(self) -> float | None:
        """100 * passed / (total - skipped), as RunStats computes it; None when nothing ran."""
        executed = self.total - self.skipped
        return round(100.0 * self.passed / executed, 2) if executed > 0 else None


@dataclass(slots=True)
class LooseResult:
    """A result known from evidence kept outside any run report: a watcher observation file,
    a saved API call. The import places it on the result it belongs to when that is in the
    ledger (same suite and test, at that time), and otherwise reconstructs the result in a run
    of its session (see :mod:`testledger.ingest.placement`).

    ``result`` is the result as the evidence tells it (its status, times, ``watcher``);
    ``at`` when it happened (None: the evidence has no time, and it is kept in an undated run of
    its file); ``not_before`` a time the result it belongs to must be later than (a watcher
    observation's ``previous_run``); ``call`` an API call record kept in the result's
    ``details["api_calls"]``, whose ``id`` says it is already there.
    """

    result: TestResult
    at: datetime | None
    kind: str
    not_before: datetime | None = None
    call: dict[str, Any] | None = None


def verdict(observation: WatcherObservation) -> tuple[object, ...]:
    """What a watcher observation says, whatever file it was read from (its JSON file, a row of
    a CSV of analyses): two observations of one test that say the same are one."""
    return (
        observation.quality_score,
        observation.error,
        tuple(observation.anomalies),
        tuple(observation.recommendations),
    )


@dataclass(frozen=True, slots=True)
class Skipped(JsonData):
    """A file a results folder holds that the import did not read, and why."""

    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass(slots=True)
class ParsedFile:
    """One imported file: what it says about its run, and its results, lazily.

    ``path`` is the file (or results folder) the run was read from and ``format`` the importer's
    ``FORMAT``: the import command derives the idempotent run key from that file's content and
    format, and records the run's source as ``import:<format>``. ``run`` holds what the file
    itself tells (start time, host, suite name...); the import command fills the rest (branch,
    commit, run key) from its options, git and the CI environment. ``results`` is consumed once.
    ``warnings`` are what the importer noticed without failing (a count that disagrees with the
    results, data it could not attribute); they are shown with the import's outcome.

    Three kinds of file are not a run of results, and say so:

    * a summary (``totals`` set, no results): it sets the totals of the run it summarises when
      that run is in the ledger, else it is a run of those totals marked summary-only;
    * loose evidence (``loose`` set, no results): each item is placed on its result, or
      reconstructed (see :class:`LooseResult`); ``run`` is then the template of any run
      reconstructed from it;
    * ``skipped``: files of a results folder the importer did not read, with the reason.

    ``finished_at`` is when the run ended, when the file says so (default: the start plus the
    results' durations).
    """

    path: Path
    format: str
    run: RunInfo
    results: Iterator[TestResult]
    warnings: list[str] = field(default_factory=list)
    finished_at: datetime | None = None
    totals: RunTotals | None = None
    loose: list[LooseResult] | None = None
    skipped: list[Skipped] = field(default_factory=list)


class Importer(Protocol):
    """What an importer provides: a module with these names, or an object with these attributes.

    Attributes are read-only properties here so that a module's constants (``FORMAT = "junit"``)
    and an object's properties both satisfy the protocol.
    """

    @property
    def FORMAT(self) -> str:
        """Its name for ``--format`` (``"junit"``, ``"ctrf"``...), stored as the run's source
        ``import:<FORMAT>``; a third-party importer's entry point has this name."""
        ...

    @property
    def PARSE_AHEAD(self) -> bool:
        """Whether ``parse`` streams one run's results from a file, so that a large file is worth
        parsing in a second process while this one writes (:mod:`.parse_ahead`). False for a
        format that loads its whole document: parsing it in a child would hold it twice."""
        ...

    @property
    def READS_FOLDERS(self) -> bool:
        """Whether ``sniff`` and ``parse`` accept a folder (an Allure results folder). Only such
        importers are asked about a folder; a folder one of them recognises is one source, not
        searched for report files."""
        ...

    @property
    def SUFFIXES(self) -> tuple[str, ...]:
        """How its files' names end (``(".xml",)``): a folder is searched for files so named, or
        a gzip of one (``.gz``). Files named on the command line are read whatever their name."""
        ...

    def sniff(self, path: Path, head: bytes) -> bool:
        """Whether ``path`` looks like this format, from ``head``: its first 4 KiB (decompressed
        when gzip; empty for a folder). Must be cheap and should not raise: every file met is
        asked (a third-party sniff that raises is taken as a no, with a warning)."""
        ...

    def parse(self, path: Path) -> ParsedFile:
        """The run's header, and its results as a *lazy* iterator, so that a file of a million
        testcases is never held in memory at once."""
        ...


@runtime_checkable
class FolderHistoryImporter(Importer, Protocol):
    """An importer whose results folders hold several runs (the tool-validation suite's, with
    its archived history): a folder gives all of them, where ``parse`` gives one file's run."""

    def parse_folder(self, path: Path) -> Iterator[ParsedFile]:
        """The folder's runs, oldest first."""
        ...


def unexpected_error(path: Path, exc: Exception) -> ImportFormatError:
    """An error no importer meant to raise, as the ImportFormatError it stands for."""
    text = str(exc).strip()
    detail = text.splitlines()[0][:200] if text else ""
    reason = f"unreadable input ({type(exc).__name__}{': ' + detail if detail else ''})"
    return ImportFormatError(path, reason)


def checked_results(path: Path, results: Iterator[TestResult]) -> Iterator[TestResult]:
    """``results``, any exception but ImportFormatError raised as one (see :func:`checked`)."""
    try:
        yield from results
    except ImportFormatError:
        raise
    except Exception as exc:
        raise unexpected_error(path, exc) from exc


def checked(path: Path, parse: Callable[[Path], ParsedFile]) -> ParsedFile:
    """``parse(path)``, with every error an input can cause ending as ImportFormatError.

    The importers raise ImportFormatError for what they expect to be malformed; fuzzing found
    inputs they did not expect (an XML declaration naming no codec, a JSON object where a
    string belongs) and a plugin's importer may meet more. Whatever escapes a parser is still
    a file it could not read: said in one line naming the file, never a traceback mid-import.
    """
    try:
        parsed = parse(path)
    except ImportFormatError:
        raise
    except Exception as exc:
        raise unexpected_error(path, exc) from exc
    parsed.results = checked_results(parsed.path, parsed.results)
    return parsed
