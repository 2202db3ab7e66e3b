"""Summary-only files (a suite's ``summary.json``, a pytest-json-report written with
``--json-report-summary``): counts without results.

A summary sets the totals of the run it summarises when that run is in the ledger (the run
named by ``--run-key``, else the run of the same suite that started when the summary says, to
within a second): when the run holds fewer results than the summary counts (a report listing
only failures), its totals become the summary's; when it holds them all, its own counts stand
and a disagreement is a warning. Otherwise the summary is a run of its own with those totals and
no results, marked ``summary_only`` in its metadata: never a run that claims 0 tests (a summary
counting no test creates nothing). A real run of the same session imported later takes the
summary over (:func:`.reconcile.reconcile_run`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from testledger.common.jsondata import JsonData
from testledger.ingest.base import ParsedFile, RunTotals
from testledger.ingest.importer import ImportOptions, run_info
from testledger.ingest.reconcile import RECONSTRUCTED_PREFIX, SAME_START, set_totals
from testledger.model import RunInfo, RunStatus, utcnow
from testledger.store.runs import create_or_join_run, finish_run
from testledger.store.tables import test_results, test_runs

__all__ = ["SummaryOutcome", "apply_summary"]


@dataclass(slots=True)
class SummaryOutcome(JsonData):
    """What one summary did: the run it summarised, or the summary-only run it created."""

    path: Path
    format: str
    totals: RunTotals
    run_id: int | None = None
    created: bool = False
    totals_set: bool = False
    already_imported: bool = False
    warnings: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        counted = f"{self.totals.total} test(s), {self.totals.failed} failed"
        if self.run_id is None:
            what = "no run created"
        elif self.already_imported:
            what = f"already imported (run {self.run_id})"
        elif self.created:
            what = f"summary-only run {self.run_id} with those totals and no results"
        elif self.totals_set:
            what = f"totals of run {self.run_id} set from it"
        else:
            what = f"matched run {self.run_id}, whose results give its totals"
        return f"{self.path} ({self.format}): summary of {counted}: {what}"


def _totals(totals: RunTotals) -> dict[str, int]:
    counts: dict[str, int] = totals.as_json()
    return counts


def _summarised(connection: Connection, info: RunInfo, run_key: str | None) -> Any:
    query = sa.select(test_runs.c.id, test_runs.c.run_metadata)
    if run_key is not None:
        return connection.execute(query.where(test_runs.c.run_key == run_key)).first()
    started: datetime | None = info.started_at
    if started is None:
        return None
    return connection.execute(
        query.where(test_runs.c.suite == info.suite)
        .where(test_runs.c.started_at.between(started - SAME_START, started + SAME_START))
        .where(sa.not_(test_runs.c.run_key.startswith(RECONSTRUCTED_PREFIX)))
        .order_by(test_runs.c.id)
    ).first()


def _counts(connection: Connection, run_id: int) -> dict[str, int]:
    """The run's tests as its results give them (the last attempt of each)."""
    rows = connection.execute(
        sa.select(test_results.c.test_id, test_results.c.attempt, test_results.c.status).where(
            test_results.c.run_id == run_id
        )
    ).all()
    last: dict[str, tuple[int, str]] = {}
    for test_id, attempt, status in rows:
        if attempt >= last.get(test_id, (0, ""))[0]:
            last[test_id] = (attempt, status)
    statuses = [status for _, status in last.values()]
    return {
        "total": len(statuses),
        "passed": statuses.count("PASS"),
        "failed": statuses.count("FAIL") + statuses.count("ERROR"),
        "skipped": statuses.count("SKIP"),
    }


def _apply(connection: Connection, run: Any, totals: RunTotals, outcome: SummaryOutcome) -> None:
    stated = _totals(totals)
    metadata = dict(run.run_metadata or {})
    if metadata.get("summary_totals") == stated:
        outcome.already_imported = True
        return
    metadata.update(summary_totals=stated, summarised_by=str(outcome.path))
    connection.execute(
        sa.update(test_runs).where(test_runs.c.id == run.id).values(run_metadata=metadata)
    )
    have = _counts(connection, run.id)
    if have["total"] < totals.total:
        set_totals(connection, run.id, stated)
        outcome.totals_set = True
        return
    differ = [key for key in ("total", "passed", "failed", "skipped") if have[key] != stated[key]]
    if differ:
        said = ", ".join(f"{key}={stated[key]}" for key in differ)
        held = ", ".join(f"{key}={have[key]}" for key in differ)
        outcome.warnings.append(
            f"the summary says {said} but run {run.id}'s results give {held}: its results' "
            "counts are kept"
        )


def apply_summary(
    engine: Engine, parsed: ParsedFile, options: ImportOptions, content_run_key: str
) -> SummaryOutcome:
    """Apply one summary (see the module's docstring), in one transaction."""
    assert parsed.totals is not None
    totals = parsed.totals
    outcome = SummaryOutcome(parsed.path, parsed.format, totals, warnings=list(parsed.warnings))
    info = run_info(parsed, options)
    with engine.begin() as connection:
        target = _summarised(connection, info, options.run_key)
        if target is not None:
            outcome.run_id = int(target.id)
            _apply(connection, target, totals, outcome)
            return outcome
        if totals.total <= 0:
            outcome.warnings.append("the summary counts no test: no run of 0 tests is created")
            return outcome
        info.metadata.update(
            summary_only=True, summary_totals=_totals(totals), summarised_by=str(parsed.path)
        )
        info.notes = info.notes or "summary only: the totals of a run whose results are not kept"
        row = create_or_join_run(connection, info, options.run_key or content_run_key)
        outcome.run_id = row.id
        if row.existed:
            outcome.already_imported = True
            return outcome
        finish_run(connection, row.id, RunStatus.FINISHED, finished_at=info.started_at or utcnow())
        set_totals(connection, row.id, _totals(totals))
        outcome.created = outcome.totals_set = True
    return outcome
