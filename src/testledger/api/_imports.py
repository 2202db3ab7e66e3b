"""Getting runs into the ledger: report files imported, spooled runs synced."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from testledger.analyze.pipeline import detect_after_recording
from testledger.common.urls import is_http_url
from testledger.errors import DatabaseUnavailable
from testledger.ingest.importer import ImportOptions
from testledger.ingest.paths import ImportFailure, ImportProgress, ImportReport
from testledger.ingest.paths import import_paths as _import_paths
from testledger.ingest.registry import FORMATS
from testledger.record.archive import ArchivedRun
from testledger.record.http_sink import ENV_TOKEN
from testledger.record.ledger import Ledger
from testledger.record.pruning import prune_after_run
from testledger.record.sync import SyncReport, pending_runs, sync_runs, sync_runs_over_http
from testledger.store.database import database_errors
from testledger.store.engine import normalize_url

__all__ = [
    "ImportFailure",
    "ImportOptions",
    "ImportProgress",
    "ImportReport",
    "import_formats",
    "import_paths",
    "sync",
]


def import_formats() -> list[str]:
    """The names ``format_name`` accepts, in the order formats are detected."""
    return list(FORMATS)


def import_paths(
    ledger: Ledger,
    paths: Sequence[str | Path],
    options: ImportOptions | None = None,
    *,
    format_name: str | None = None,
    progress: ImportProgress | None = None,
) -> ImportReport:
    """Import report files, folders (searched for reports) and globs, one run per file (or all
    into ``options.run_key``), then detect the new runs' issues oldest first. A bad file is in
    ``errors`` with none of its rows written; importing a file again adds nothing."""
    report = _import_paths(
        ledger.engine(),
        ledger.settings,
        paths,
        options,
        format_name=format_name,
        progress=progress,
    )
    if report.new_runs():  # [tool.testledger.retention], if any (warns, never raises)
        prune_after_run(ledger.engine(), ledger.settings)
    return report


def sync(
    ledger: Ledger,
    *,
    include_unfinished: bool = False,
    include_synced: bool = False,
    progress: Callable[[ArchivedRun], None] | None = None,
) -> SyncReport:
    """Load the runs recorded while the database was away (the JSON spool in the results
    folder) into the database, and detect them. Raises DatabaseUnavailable, saying how many
    runs stay in the spool. A ledger URL naming a testledger server (http(s)://) loads them
    through its ingest API with the write token in ``TESTLEDGER_TOKEN``; the server detects
    them, and a server away or a refused token leaves them pending, said in ``failed``."""
    settings = ledger.settings
    if is_http_url(settings.database_url):
        return sync_runs_over_http(
            settings.database_url,
            settings.results_dir,
            token=os.environ.get(ENV_TOKEN) or None,
            include_unfinished=include_unfinished,
            include_synced=include_synced,
            progress=progress,
        )
    normalize_url(settings.database_url)  # a mistyped URL is said now, not when runs wait
    waiting = sum(1 for _ in pending_runs(settings.results_dir, include_synced=include_synced))
    if not waiting:
        _complete_detection(ledger)
        return SyncReport()
    try:
        engine = ledger.engine()
    except DatabaseUnavailable as exc:
        raise DatabaseUnavailable(f"{exc}; {waiting} run(s) stay in the spool") from None
    report = sync_runs(
        engine,
        settings.database_url,
        settings.results_dir,
        include_unfinished=include_unfinished,
        include_synced=include_synced,
        progress=progress,
        settings=settings,
    )
    if not report.synced:  # each synced run's detection completes the others' (pipeline)
        detect_after_recording(engine, settings, [])
    else:  # [tool.testledger.retention], if any (warns, never raises)
        prune_after_run(engine, settings)
    return report


def _complete_detection(ledger: Ledger) -> None:
    """Detect the runs whose detection was lost: a sync killed after loading a run and before
    detecting it marked the run synced, so the next sync finds nothing else to do. Best effort:
    a sync with nothing to load has never needed the database, and still does not."""
    try:
        engine = ledger.engine(create=False)
    except database_errors():
        return
    detect_after_recording(engine, ledger.settings, [])
