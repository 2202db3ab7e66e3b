"""Backfilling ``issues`` from hand-kept markdown (ISSUES_CHECKLIST*.md, PHASE_*_COMPLETE.md).

Parsing is ``ingest.checklist``'s; this writes the result. Backfilled and detected issues live in
the same table (``origin`` says which). Re-running the backfill updates rather than duplicates:
issues are matched by code, and an issue whose content is unchanged is left alone. An issue
edited in testledger since (``edited_at`` set by ``testledger issue CODE ...``) keeps those
edits unless ``force``. A code that belongs to a detected issue is never overwritten.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from testledger.analyze.issues.lifecycle import IssueStatus, add_event
from testledger.common.jsondata import JsonData
from testledger.ingest.tool_validation.checklist import (
    BackfilledIssue,
    merge_backfill,
    parse_checklist,
)
from testledger.model import utcnow
from testledger.store.tables import issues

__all__ = ["BackfillReport", "backfill_issues", "parse_backfill_files"]


@dataclass(slots=True)
class BackfillReport(JsonData):
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    kept_local_edits: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def parse_backfill_files(paths: Iterable[Path], warnings: list[str]) -> list[BackfilledIssue]:
    """Parse every file, then apply the PHASE files' fixes to the checklists' issues.

    Raises ImportFormatError (naming file and line) before anything is written."""
    found: list[BackfilledIssue] = []
    fixes: list[BackfilledIssue] = []
    for path in paths:
        for entry in parse_checklist(path, warnings):
            (fixes if entry.extra.get("format") == "phase_fixes" else found).append(entry)
    return merge_backfill(found, fixes, warnings)


def _content_hash(entry: BackfilledIssue) -> str:
    content = [
        entry.title,
        entry.description,
        entry.category,
        entry.priority,
        entry.status,
        entry.root_cause,
        entry.resolution,
        sorted(entry.affected_tools),
    ]
    return hashlib.sha256(json.dumps(content, ensure_ascii=False).encode()).hexdigest()[:32]


def _issue_values(entry: BackfilledIssue, digest: str, now: datetime) -> dict[str, Any]:
    """The columns an entry sets on its issue, whether created or updated."""
    return {
        "title": entry.title,
        "description": entry.description or entry.title,
        "category": entry.category,
        "priority": entry.priority,
        "status": entry.status,
        "root_cause": entry.root_cause,
        "resolution": entry.resolution,
        "affected_tools": sorted(entry.affected_tools),
        "backfill_source": f"{entry.source_file}:{entry.source_line}",
        "backfill_hash": digest,
        "details": {"backfill": entry.extra, "resolved_in": entry.resolved_in},
        "updated_at": now,
    }


def _create_issue(
    connection: Connection, entry: BackfilledIssue, values: dict[str, Any], now: datetime
) -> None:
    """Insert a new backfilled issue, with a ``backfilled`` event naming where it came from."""
    resolved = entry.status == IssueStatus.RESOLVED.value
    issue_id = connection.execute(
        sa.insert(issues)
        .values(
            issue_code=entry.issue_code,
            origin="backfill",
            created_at=now,
            resolved_at=now if resolved else None,
            **values,
        )
        .returning(issues.c.id)
    ).scalar_one()
    add_event(
        connection,
        issue_id,
        "backfilled",
        status_to=entry.status,
        note=f"from {entry.source_file}:{entry.source_line}",
        at=now,
    )


def _update_issue(
    connection: Connection,
    row: Any,
    entry: BackfilledIssue,
    values: dict[str, Any],
    now: datetime,
    force: bool,
) -> None:
    """Overwrite a backfilled issue with the entry's content, clearing ``edited_at`` (the
    local edits are replaced), with a ``backfill_updated`` event."""
    if entry.status != row.status:
        # resolved_at follows the status: set when it becomes RESOLVED (an earlier time is
        # kept), cleared when it becomes anything else.
        resolved = entry.status == IssueStatus.RESOLVED.value
        values["resolved_at"] = (row.resolved_at or now) if resolved else None
    connection.execute(
        sa.update(issues).where(issues.c.id == row.id).values(**values, edited_at=None)
    )
    add_event(
        connection,
        row.id,
        "backfill_updated",
        status_from=row.status,
        status_to=entry.status,
        note=f"from {entry.source_file}:{entry.source_line}" + (" (forced)" if force else ""),
        at=now,
    )


def backfill_issues(
    connection: Connection, entries: list[BackfilledIssue], *, force: bool = False
) -> BackfillReport:
    """Create or update the issues (in the caller's transaction)."""
    report = BackfillReport()
    now = utcnow()
    codes = [entry.issue_code for entry in entries]
    existing = {
        row.issue_code: row
        for row in connection.execute(sa.select(issues).where(issues.c.issue_code.in_(codes)))
    }
    for entry in entries:
        digest = _content_hash(entry)
        values = _issue_values(entry, digest, now)
        row = existing.get(entry.issue_code)
        if row is None:
            _create_issue(connection, entry, values, now)
            report.created.append(entry.issue_code)
        elif row.origin != "backfill":
            report.conflicts.append(entry.issue_code)
            report.warnings.append(
                f"{entry.source_file}:{entry.source_line}: code {entry.issue_code} belongs to a "
                f"{row.origin} issue: left as it is"
            )
        elif row.backfill_hash == digest:
            report.unchanged.append(entry.issue_code)
        elif row.edited_at is not None and not force:
            report.kept_local_edits.append(entry.issue_code)
        else:
            _update_issue(connection, row, entry, values, now, force)
            report.updated.append(entry.issue_code)
    return report
