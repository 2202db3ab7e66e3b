"""Importing what a user names (files, folders, globs): each source's runs written, then
detected oldest first.

This is the whole of ``testledger import`` below its rendering: paths are expanded, files found
in folders that are not reports are skipped, each parsed run is written under a run key taken
from its content (or the caller's), and the runs that were new are detected in the order they
happened, as detection must follow time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from sqlalchemy.engine import Engine

from testledger.analyze.pipeline import detect_after_recording
from testledger.common.jsondata import JsonData
from testledger.config import Settings
from testledger.errors import ConfigError
from testledger.ingest.base import ImportFormatError, ParsedFile
from testledger.ingest.importer import ImportOptions, ImportOutcome, content_key, import_parsed
from testledger.ingest.registry import FORMATS, expand_paths, is_report, parse_source

__all__ = ["ImportFailure", "ImportProgress", "ImportReport", "import_paths"]


class ImportProgress(Protocol):
    """What a long import tells its caller as it goes (a progress bar, a log, an SSE stream)."""

    def file_started(self, path: Path, index: int, total: int) -> None:
        """Source ``index`` (0-based) of ``total`` is being imported."""

    def results_written(self, total: int) -> None:
        """``total`` results have been written so far, over every source."""


@dataclass(frozen=True, slots=True)
class ImportFailure(JsonData):
    """A source that could not be imported; nothing of it was written."""

    path: str
    line: int | None
    reason: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else self.path
        return f"{where}: {self.reason}"


@dataclass(slots=True)
class ImportReport(JsonData):
    """What one import did: runs written, sources already imported, skipped and failed."""

    imported: list[ImportOutcome] = field(default_factory=list)
    already_imported: list[ImportOutcome] = field(default_factory=list)
    skipped_not_reports: list[Path] = field(default_factory=list)
    errors: list[ImportFailure] = field(default_factory=list)


def _error(exc: ImportFormatError) -> ImportFailure:
    return ImportFailure(path=str(exc.path), line=exc.line, reason=exc.reason)


def _reparser(parsed: ParsedFile, format_name: str | None) -> Callable[[], ParsedFile]:
    """Parses the same file again (see import_parsed)."""
    return lambda: FORMATS[format_name or parsed.format].parse(parsed.path)


def import_paths(
    engine: Engine,
    settings: Settings,
    paths: Sequence[str | Path],
    options: ImportOptions | None = None,
    *,
    format_name: str | None = None,
    progress: ImportProgress | None = None,
    detect: bool = True,
) -> ImportReport:
    """Import report files, folders (searched for reports) and globs; then detect the new runs.

    A bad source is reported in ``errors`` with none of its rows written; the others still
    import. Importing the same file again adds nothing (``already_imported``)."""
    if format_name is not None and format_name not in FORMATS:
        known = ", ".join(FORMATS)
        raise ConfigError(f"unknown format {format_name!r}: use one of {known}")
    options = options or ImportOptions()
    report = ImportReport()
    sources = list(expand_paths([str(path) for path in paths]))
    written = 0

    def advance(count: int) -> None:
        nonlocal written
        written += count
        if progress is not None:
            progress.results_written(written)

    for index, found in enumerate(sources):
        if isinstance(found, ImportFormatError):
            report.errors.append(_error(found))
            continue
        if progress is not None:
            progress.file_started(found.path, index, len(sources))
        if not found.explicit and format_name is None and not is_report(found.path):
            report.skipped_not_reports.append(found.path)
            continue
        try:
            for parsed in parse_source(found.path, format_name):
                # A results folder's history gives several runs, each keyed by its own files.
                keyed = parsed.path if parsed.path != found.path else found.path
                outcome = import_parsed(
                    engine,
                    parsed,
                    options,
                    content_run_key=content_key(keyed, parsed.format),
                    progress=advance,
                    reparse=_reparser(parsed, format_name),
                )
                target = report.already_imported if outcome.already_imported else report.imported
                target.append(outcome)
        except ImportFormatError as exc:
            report.errors.append(_error(exc))
    if detect:
        new_runs = [o.run_id for o in report.imported if o.run_id is not None]
        detect_after_recording(engine, settings, new_runs)
    return report
