"""Loose evidence into the ledger: each item (a watcher observation, a saved API call; see
:class:`~testledger.ingest.base.LooseResult`) onto the result it belongs to, or reconstructed.

In time order, each item is

1. *already imported* when a result of its test holds it (the same call id; an observation of
   the same time, or saying the same when it has no time): importing the evidence again adds
   nothing;
2. *attached* to the result it belongs to when that is in the ledger (:func:`.reconcile.best_match`:
   the same suite and test, at that time; a watcher observation's ``previous_run`` rules out
   results before it);
3. otherwise *reconstructed*: the result the evidence tells is written into the reconstructed
   run of its session, the one whose results are at most the session gap apart from it
   (default 30 minutes, ``[tool.testledger.import] session_gap_minutes`` or
   ``ImportOptions.session_gap``), else a new one. Evidence without a time goes to one undated
   run of its file, dated by the latest dated evidence of the same file (else the template's
   ``started_at``, else the file's modification time).

Reconstructed runs are keyed ``reconstructed-<suite>-<start>`` (undated ones by their file's
content), carry ``reconstructed: true`` in their metadata and a note saying from what; their
results say from what in ``details["reconstructed_from"]``. A real run imported later takes
their results over (:func:`.reconcile.reconcile_run`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from testledger.common.jsondata import JsonData
from testledger.ingest.base import LooseResult, ParsedFile
from testledger.ingest.importer import ImportOptions, content_key, run_info
from testledger.ingest.reconcile import (
    RECONSTRUCTED_PREFIX,
    Candidate,
    best_match,
    candidates,
    holds,
    merge_into,
    refresh_run,
)
from testledger.model import RunInfo
from testledger.store.encoding import result_without_nul, text_without_nul, without_nul
from testledger.store.runs import create_or_join_run
from testledger.store.tables import test_results, test_runs
from testledger.store.types import format_utc
from testledger.store.writer import PendingObservation, insert_observations, insert_results

__all__ = ["DEFAULT_SESSION_GAP", "PlacementOutcome", "place_loose"]

DEFAULT_SESSION_GAP = timedelta(minutes=30)


@dataclass(slots=True)
class PlacementOutcome(JsonData):
    """What became of one file's (or folder's) loose evidence."""

    path: Path
    format: str
    kind: str
    items: int = 0
    attached: int = 0
    reconstructed: int = 0
    already_imported: int = 0
    #: The reconstructed runs it created, and every run it added to (created ones included).
    runs_created: list[int] = field(default_factory=list)
    runs_updated: list[int] = field(default_factory=list)
    reconstructed_runs: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        where = f" in {len(self.reconstructed_runs)} reconstructed run(s)"
        return (
            f"{self.path} ({self.format}): {self.items} {self.kind}(s): {self.attached} attached "
            f"to results in the ledger, {self.reconstructed} reconstructed"
            + (where if self.reconstructed else "")
            + f", {self.already_imported} already imported"
        )


class _Sessions:
    """The suite's reconstructed runs, found or created as evidence needs them."""

    def __init__(
        self, connection: Connection, parsed: ParsedFile, template: RunInfo, gap: timedelta
    ) -> None:
        self.connection = connection
        self.parsed = parsed
        self.template = template
        self.gap = gap
        self.created: list[int] = []
        self.joined: set[int] = set()
        self.undated: int | None = None
        rows = connection.execute(
            sa.select(
                test_runs.c.id, test_runs.c.started_at, test_runs.c.finished_at,
                test_runs.c.run_metadata,
            )
            .where(test_runs.c.suite == template.suite)
            .where(test_runs.c.run_key.startswith(RECONSTRUCTED_PREFIX))
        ).all()  # fmt: skip
        self.spans: dict[int, list[datetime]] = {
            int(row.id): [row.started_at, row.finished_at or row.started_at]
            for row in rows
            if not (row.run_metadata or {}).get("undated") and row.started_at is not None
        }

    def run_for(self, at: datetime | None) -> int:
        if at is None:
            return self._undated()
        near = [
            (min(abs(at - low), abs(at - high)), run_id)
            for run_id, (low, high) in self.spans.items()
            if low - self.gap <= at <= high + self.gap
        ]
        if near:
            run_id = min(near)[1]
            self._joined(run_id)
        else:
            run_id = self._create(f"{self.template.suite}-{format_utc(at)}", at, undated=False)
            self.spans[run_id] = [at, at]
        span = self.spans[run_id]
        span[0], span[1] = min(span[0], at), max(span[1], at)
        return run_id

    def _joined(self, run_id: int) -> None:
        """A run of the session another file of evidence joins: its metadata and note name
        every file it was reconstructed from."""
        if run_id in self.created or run_id in self.joined:
            return
        self.joined.add(run_id)
        metadata = self.connection.execute(
            sa.select(test_runs.c.run_metadata).where(test_runs.c.id == run_id)
        ).scalar_one()
        metadata = dict(metadata or {})
        sources = metadata.get("reconstructed_from")
        sources = sources if isinstance(sources, list) else [sources] if sources else []
        source = self.template.metadata.get("reconstructed_from", str(self.parsed.path))
        if source in sources:
            return
        metadata["reconstructed_from"] = [*sources, source]
        notes = "reconstructed from " + ", ".join(str(s) for s in metadata["reconstructed_from"])
        self.connection.execute(
            sa.update(test_runs)
            .where(test_runs.c.id == run_id)
            .values(run_metadata=metadata, notes=notes)
        )

    def _undated(self) -> int:
        if self.undated is None:
            path = self.parsed.path
            # The file holds its undated evidence beside dated evidence written no later: the
            # latest of that is the best bound on when it was written (the import is no time
            # of the suite's).
            dated = [item.at for item in self.parsed.loose or [] if item.at is not None]
            at = max(dated, default=None) or self.template.started_at
            if at is None:
                at = datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc)
            key = f"undated-{content_key(path, self.parsed.format)}"
            self.undated = self._create(key, at, undated=True)
        return self.undated

    def _create(self, key: str, at: datetime, *, undated: bool) -> int:
        metadata = dict(self.template.metadata, reconstructed=True)
        metadata["session_gap_secs"] = self.gap.total_seconds()
        if undated:
            metadata["undated"] = True
        source = metadata.get("reconstructed_from", str(self.parsed.path))
        metadata["reconstructed_from"] = [source]
        notes = f"reconstructed from {source}" + (
            " (its evidence carries no time: dated by the latest it is known to hold)"
            if undated
            else ""
        )
        info = dataclasses.replace(self.template, started_at=at, metadata=metadata, notes=notes)
        row = create_or_join_run(self.connection, info, RECONSTRUCTED_PREFIX + key)
        if not row.existed:
            self.created.append(row.id)
        return row.id


def _next_attempt(connection: Connection, run_id: int, test_id: str) -> int:
    highest = connection.execute(
        sa.select(sa.func.max(test_results.c.attempt))
        .where(test_results.c.run_id == run_id)
        .where(test_results.c.test_id == test_id)
    ).scalar()
    return int(highest or 0) + 1


def _reconstruct(
    connection: Connection, sessions: _Sessions, item: LooseResult, found: list[Candidate]
) -> int:
    """The result the evidence tells, written into the reconstructed run of its session."""
    run_id = sessions.run_for(item.at)
    result = item.result
    if item.call is not None:
        result.details = {**result.details, "api_calls": [item.call]}
    result.attempt = _next_attempt(connection, run_id, result.test_id)
    insert_results(connection, run_id, [result], may_exist=False)
    if result.watcher is not None:
        pending = PendingObservation(result.test_id, result.attempt, result.watcher, False)
        insert_observations(connection, run_id, [pending])
    # The new result is a candidate for the evidence that follows (its observation, its call).
    found[:] = candidates(connection, sessions.template.suite, [result.test_id])[result.test_id]
    return run_id


def place_loose(
    engine: Engine,
    parsed: ParsedFile,
    options: ImportOptions,
    gap: timedelta = DEFAULT_SESSION_GAP,
) -> PlacementOutcome:
    """Place a file's loose evidence (see the module's docstring), in one transaction."""
    items = sorted(
        parsed.loose or [],
        key=lambda i: (i.at is None, i.at or datetime.min.replace(tzinfo=timezone.utc)),
    )
    kinds = sorted({item.kind for item in items}) or ["item"]
    outcome = PlacementOutcome(parsed.path, parsed.format, " / ".join(kinds), len(items))
    template = run_info(parsed, options)
    # Evidence is looked up by its test and suite before it is written: as stored, with a NUL
    # replaced (which PostgreSQL would refuse in a query's parameters too).
    template.suite = text_without_nul(template.suite)
    for item in items:
        result_without_nul(item.result)
        if item.call is not None:
            item.call = without_nul(item.call)
    touched: set[int] = set()
    rebuilt: set[int] = set()
    with engine.begin() as connection:
        sessions = _Sessions(connection, parsed, template, gap)
        found = candidates(connection, template.suite, {i.result.test_id for i in items})
        for item in items:
            group = found[item.result.test_id]
            if any(holds(candidate, item) for candidate in group):
                outcome.already_imported += 1
                continue
            target = best_match(group, item.at, item.not_before) if item.at else None
            if target is not None:
                merge_into(connection, target, item)
                touched.add(target.run_id)
                outcome.attached += 1
            else:
                rebuilt.add(_reconstruct(connection, sessions, item, group))
                outcome.reconstructed += 1
        for run_id in sorted(touched | rebuilt):
            refresh_run(connection, run_id)
    outcome.runs_created = sessions.created
    outcome.runs_updated = sorted(touched | rebuilt)
    outcome.reconstructed_runs = sorted(rebuilt)
    outcome.warnings = list(parsed.warnings)
    return outcome
