"""Issues: detection, the board, one issue's evidence, changing an issue, backfill."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from testledger.analyze.detect import DetectionReport
from testledger.analyze.issues import lifecycle
from testledger.analyze.issues.fingerprint import current_algorithm
from testledger.analyze.issues.lifecycle import IssueStatus
from testledger.analyze.options import detection_settings
from testledger.analyze.pipeline import detect_runs
from testledger.errors import ConfigError
from testledger.ingest.backfill import BackfillReport, backfill_issues, parse_backfill_files
from testledger.record.ledger import Ledger
from testledger.report import issues as issue_reports
from testledger.report.explain import FingerprintExplanation, find_result_id
from testledger.report.explain import explain_result as _explain_result
from testledger.report.runs import find_run

__all__ = [
    "FingerprintExplanation",
    "IssueChange",
    "IssueFilter",
    "backfill",
    "detect",
    "explain_result",
    "issue_detail",
    "list_issues",
    "update_issue",
]


def detect(
    ledger: Ledger,
    run: str | int | None = None,
    *,
    all_runs: bool = False,
    rules_path: Path | None = None,
) -> list[DetectionReport]:
    """Group a run's failures into issues and move their lifecycle (default: the latest run;
    ``all_runs``: every run, oldest first), with any earlier run whose detection was lost to a
    crash. Detecting a run again changes nothing."""
    rules, config = detection_settings(ledger.settings, rules_path)
    engine = ledger.engine(create=False)
    run_ids: list[int] | None = None
    if not all_runs:
        with engine.connect() as connection:
            run_ids = [find_run(connection, run).id]
    return detect_runs(engine, run_ids, rules, config, catch_up=True)


@dataclass(frozen=True, slots=True)
class IssueFilter:
    """Which issues to list (each list: any of its values; empty: no filter) and their order."""

    statuses: Sequence[str] = ()
    priorities: Sequence[str] = ()
    categories: Sequence[str] = ()
    tool: str | None = None
    sort: str = "priority"
    limit: int | None = None
    #: Issues seen on this branch (in one of its runs).
    branch: str | None = None


def list_issues(
    ledger: Ledger, where: IssueFilter | None = None
) -> list[issue_reports.IssueSummary]:
    """Issues, detected and backfilled alike. Raises TestledgerError for an unknown status or
    sort."""
    where = where or IssueFilter()
    statuses = [IssueStatus.parse(status).value for status in where.statuses]
    priorities = [priority.strip().upper() for priority in where.priorities]
    unknown = [p for p in priorities if p not in lifecycle.PRIORITIES]
    if unknown:
        known = ", ".join(lifecycle.PRIORITIES)
        raise ConfigError(f"unknown priority {unknown[0]!r}: use one of {known}")
    with ledger.engine(create=False).connect() as connection:
        return issue_reports.list_issues(
            connection,
            statuses=statuses,
            priorities=priorities,
            categories=list(where.categories),
            tool=where.tool,
            sort=where.sort,
            limit=where.limit,
            branch=where.branch,
        )


def issue_detail(ledger: Ledger, code: str, *, occurrences: int = 50) -> issue_reports.IssueDetail:
    """One issue with its history, occurrences and affected tests. Raises NotFound."""
    with ledger.engine(create=False).connect() as connection:
        return issue_reports.issue_detail(connection, code, occurrences=occurrences)


@dataclass(frozen=True, slots=True)
class IssueChange:
    """What a person changes on an issue; None leaves a field as it is. ``note`` alone adds a
    note to the issue's history. ``link_fingerprint`` is ``HASH`` or ``HASH:VERSION`` (see
    :func:`explain_result`): later failures with it join the issue."""

    status: str | None = None
    note: str | None = None
    root_cause: str | None = None
    resolution: str | None = None
    title: str | None = None
    priority: str | None = None
    link_fingerprint: str | None = None
    link_rule: str | None = None
    actor: str = "user"


def _fingerprint_link(value: str) -> tuple[str, int]:
    """``HASH`` (made by the current algorithm) or ``HASH:VERSION``."""
    hash_, _, version = value.partition(":")
    if not hash_ or (version and not version.isdigit()):
        raise ConfigError(f"--link-fingerprint: expected HASH or HASH:VERSION, got {value!r}")
    return hash_, int(version) if version else current_algorithm().version


def update_issue(ledger: Ledger, code: str, change: IssueChange) -> issue_reports.IssueDetail:
    """Change an issue in one transaction (every change is kept in its history) and return it
    as it now is. Raises NotFound, or TestledgerError for a bad status or fingerprint."""
    link = _fingerprint_link(change.link_fingerprint) if change.link_fingerprint else None
    target = IssueStatus.parse(change.status) if change.status else None
    engine = ledger.engine(create=False)
    with engine.begin() as connection:
        if target is not None or change.note is not None:
            if target is None:
                target = IssueStatus(lifecycle.find_issue(connection, code).status)
            lifecycle.set_status(connection, code, target, note=change.note, actor=change.actor)
        lifecycle.edit_issue(
            connection,
            code,
            actor=change.actor,
            root_cause=change.root_cause,
            resolution=change.resolution,
            title=change.title,
            priority=change.priority,
        )
        if link is not None:
            lifecycle.link_fingerprint(connection, code, link[0], link[1], actor=change.actor)
        if change.link_rule is not None:
            lifecycle.link_rule(connection, code, change.link_rule, actor=change.actor)
    return issue_detail(ledger, code)


def explain_result(
    ledger: Ledger, result: int | str, *, run: str | int | None = None
) -> FingerprintExplanation:
    """How a failure's fingerprint is made. ``result`` is a result's id, or a test (its id,
    tool/variation or a unique part of its id) whose last attempt in ``run`` (default the
    latest run) is meant. Raises NotFound, AmbiguousTest, or TestledgerError for a result that
    did not fail."""
    with ledger.engine(create=False).connect() as connection:
        if isinstance(result, str) and not result.isdigit():
            result = find_result_id(connection, result, run)
        return _explain_result(connection, int(result))


def backfill(ledger: Ledger, paths: Sequence[Path], *, force: bool = False) -> BackfillReport:
    """Create or update issues from hand-kept markdown checklists (ISSUES_CHECKLIST*.md,
    PHASE_*_COMPLETE.md). Every file is read before anything is written; issues edited since in
    testledger keep those edits unless ``force``."""
    warnings: list[str] = []
    entries = parse_backfill_files(paths, warnings)
    with ledger.engine().begin() as connection:
        report = backfill_issues(connection, entries, force=force)
    report.warnings[:0] = warnings
    return report
