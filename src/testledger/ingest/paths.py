"""Importing what a user names (files, folders, globs): each source's runs written, then
detected oldest first.

This is the whole of ``testledger import`` below its rendering: paths are expanded, files found
in folders that are not reports are skipped, each parsed run is written under a run key taken
from its content (or the caller's), and the runs that were new are detected in the order they
happened, as detection must follow time.

A source may also give a summary (totals without results: :mod:`.summaries`) or loose evidence
(watcher observations, API call logs: :mod:`.placement`); a real run takes over what was
reconstructed of its tests before it came (:mod:`.reconcile`). The report ends with a closing
summary of it all (:meth:`ImportReport.closing_lines`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Protocol

from sqlalchemy.engine import Engine

from testledger.analyze.pipeline import detect_after_recording
from testledger.common.jsondata import JsonData
from testledger.config import Settings
from testledger.errors import ConfigError
from testledger.ingest.base import ImportFormatError, ParsedFile, Skipped, checked
from testledger.ingest.importer import ImportOptions, ImportOutcome, content_key, import_parsed
from testledger.ingest.placement import DEFAULT_SESSION_GAP, PlacementOutcome, place_loose
from testledger.ingest.reconcile import reconcile_run
from testledger.ingest.registry import FORMATS, expand_paths, is_report, parse_source
from testledger.ingest.summaries import SummaryOutcome, apply_summary

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
    """What one import did: runs written, sources already imported, skipped and failed; the
    summaries applied, the loose evidence placed, and every file skipped with its reason
    (``skipped_not_reports`` lists the paths of those found in folders that are no report)."""

    imported: list[ImportOutcome] = field(default_factory=list)
    already_imported: list[ImportOutcome] = field(default_factory=list)
    skipped_not_reports: list[Path] = field(default_factory=list)
    errors: list[ImportFailure] = field(default_factory=list)
    summaries: list[SummaryOutcome] = field(default_factory=list)
    placed: list[PlacementOutcome] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def new_runs(self) -> list[int]:
        """Every run this import created: imported, summary-only and reconstructed."""
        runs = [o.run_id for o in self.imported if o.run_id is not None]
        runs += [s.run_id for s in self.summaries if s.created and s.run_id is not None]
        return runs + [run for p in self.placed for run in p.runs_created]

    def closing_lines(self) -> list[str]:
        """The summaries and placements one line each (with their warnings), then the whole
        import in a few lines: runs created or matched, results, watcher observations, API
        calls, files skipped and why."""
        lines: list[str] = []
        for outcome in self.summaries:
            lines += [str(outcome), *(f"  warning: {w}" for w in outcome.warnings)]
        for placed in self.placed:
            lines += [str(placed), *(f"  warning: {w}" for w in placed.warnings)]
        observations = [p for p in self.placed if "observation" in p.kind]
        calls = [p for p in self.placed if "call" in p.kind]
        matched = len(self.already_imported) + sum(
            1 for s in self.summaries if s.run_id is not None and not s.created
        )
        lines.append(
            f"runs: {len(self.new_runs())} created, {matched} matched in the ledger; results: "
            f"{sum(o.results for o in self.imported)} imported, "
            f"{sum(p.reconstructed for p in self.placed)} reconstructed; "
            f"{sum(o.matched_reconstructed for o in self.imported)} reconstructed before "
            "now matched by their run"
        )
        if observations or any(o.observations for o in self.imported):
            lines.append(
                f"watcher observations: {sum(o.observations for o in self.imported)} in the "
                f"runs' files, {sum(p.attached for p in observations)} attached, "
                f"{sum(p.reconstructed for p in observations)} reconstructed, "
                f"{sum(p.already_imported for p in observations)} already imported"
            )
        if calls:
            lines.append(
                f"API calls: {sum(p.attached for p in calls)} matched to results, "
                f"{sum(p.reconstructed for p in calls)} reconstructed, "
                f"{sum(p.already_imported for p in calls)} already imported"
            )
        reasons: dict[str, int] = {}
        for skipped in self.skipped:
            reasons[skipped.reason] = reasons.get(skipped.reason, 0) + 1
        lines += [f"skipped {count} file(s): {reason}" for reason, count in reasons.items()]
        return lines


def _error(exc: ImportFormatError) -> ImportFailure:
    return ImportFailure(path=str(exc.path), line=exc.line, reason=exc.reason)


def _reparser(parsed: ParsedFile, format_name: str | None) -> Callable[[], ParsedFile]:
    """Parses the same file again (see import_parsed)."""
    return lambda: checked(parsed.path, FORMATS[format_name or parsed.format].parse)


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
        raise ConfigError(f"unknown format {format_name!r} ({known})")
    options = options or ImportOptions()
    gap = _session_gap(settings, options)
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
            report.skipped.append(Skipped(found.path, "not a test report testledger knows"))
            continue
        try:
            for parsed in parse_source(found.path, format_name):
                _import_one(engine, parsed, options, gap, report, advance, format_name)
        except ImportFormatError as exc:
            report.errors.append(_error(exc))
    if detect:
        detect_after_recording(engine, settings, report.new_runs())
    return report


def _session_gap(settings: Settings, options: ImportOptions) -> timedelta:
    """How far apart evidence of one session may be: the option, else
    ``[tool.testledger.import] session_gap_minutes``, else 30 minutes."""
    if options.session_gap is not None:
        return options.session_gap
    table = settings.tool.get("import", {})
    minutes = table.get("session_gap_minutes") if isinstance(table, dict) else None
    if minutes is None:
        return DEFAULT_SESSION_GAP
    if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or minutes <= 0:
        raise ConfigError("[tool.testledger.import] session_gap_minutes must be a number > 0")
    return timedelta(minutes=minutes)


def _import_one(
    engine: Engine,
    parsed: ParsedFile,
    options: ImportOptions,
    gap: timedelta,
    report: ImportReport,
    advance: Callable[[int], None],
    format_name: str | None,
) -> None:
    """One parsed source: a run written (then what was reconstructed of its tests taken
    over), a summary applied, or loose evidence placed."""
    report.skipped.extend(parsed.skipped)
    if parsed.loose is not None:
        report.placed.append(place_loose(engine, parsed, options, gap))
        return
    # A results folder gives several runs, each keyed by its own files.
    key = content_key(parsed.path, parsed.format)
    if parsed.totals is not None:
        report.summaries.append(apply_summary(engine, parsed, options, key))
        return
    outcome = import_parsed(
        engine,
        parsed,
        options,
        content_run_key=key,
        progress=advance,
        reparse=_reparser(parsed, format_name),
    )
    if outcome.run_id is not None:
        outcome.matched_reconstructed, deleted = reconcile_run(engine, outcome.run_id)
        # Runs this import reconstructed or made of a summary, then took over whole: gone.
        for placed in report.placed:
            placed.runs_created = [r for r in placed.runs_created if r not in deleted]
            placed.reconstructed_runs = [r for r in placed.reconstructed_runs if r not in deleted]
        for summary in report.summaries:
            if summary.run_id in deleted:
                summary.created = summary.totals_set = False
                summary.run_id = outcome.run_id
    target = report.already_imported if outcome.already_imported else report.imported
    target.append(outcome)
