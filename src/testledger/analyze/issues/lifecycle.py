"""An issue's life: statuses, events, codes, auto-resolution, and edits by people.

Every change is an ``issue_events`` row (kind, run, status from/to, note, actor), so that
``testledger issue CODE`` can show why an issue is where it is.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from testledger.analyze.issues.rules import Rule, RuleSet
from testledger.errors import NotFound, TestledgerError
from testledger.model import Status, utcnow
from testledger.store.tables import (
    issue_events,
    issue_fingerprints,
    issue_occurrences,
    issues,
    test_results,
    test_runs,
)

__all__ = [
    "PRIORITIES",
    "PRIORITY_RANK",
    "IssueStatus",
    "add_event",
    "auto_resolve",
    "edit_issue",
    "find_issue",
    "link_fingerprint",
    "link_rule",
    "mark_auto_resolved",
    "new_issue_code",
    "set_status",
]

DETECTOR = "testledger"
PRIORITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW")
#: An issue's priority as a number to sort by, most urgent first (an unknown one last).
PRIORITY_RANK = sa.case(
    {priority: rank for rank, priority in enumerate(PRIORITIES)},
    value=issues.c.priority,
    else_=len(PRIORITIES),
)


class IssueStatus(str, enum.Enum):
    OPEN = "OPEN"
    IN_PROGRESS = "IN_PROGRESS"
    RESOLVED = "RESOLVED"
    WONT_FIX = "WONT_FIX"

    @classmethod
    def parse(cls, value: str) -> IssueStatus:
        key = value.strip().upper().replace("-", "_").replace(" ", "_")
        try:
            return cls(key)
        except ValueError:
            known = ", ".join(status.value for status in cls)
            raise TestledgerError(f"unknown issue status {value!r}: use one of {known}") from None


def add_event(
    connection: Connection,
    issue_id: int,
    kind: str,
    *,
    run_id: int | None = None,
    status_from: str | None = None,
    status_to: str | None = None,
    note: str | None = None,
    actor: str = DETECTOR,
    at: datetime | None = None,
) -> None:
    connection.execute(
        sa.insert(issue_events).values(
            issue_id=issue_id,
            run_id=run_id,
            kind=kind,
            status_from=status_from,
            status_to=status_to,
            note=note,
            actor=actor,
            created_at=at or utcnow(),
        )
    )


def mark_auto_resolved(
    connection: Connection, issue_id: int, run: Any, note: str, at: datetime
) -> None:
    """Resolve an OPEN issue as of ``run`` (the detector's doing, with its reason in ``note``):
    a failure's issue whose tests passed, a regression whose metric came back."""
    connection.execute(
        sa.update(issues)
        .where(issues.c.id == issue_id)
        .values(
            status=IssueStatus.RESOLVED.value,
            resolved_run_id=run.id,
            resolved_at=run.run_timestamp,
            updated_at=at,
        )
    )
    add_event(
        connection,
        issue_id,
        "auto_resolved",
        run_id=run.id,
        status_from=IssueStatus.OPEN.value,
        status_to=IssueStatus.RESOLVED.value,
        note=note,
        at=at,
    )


def new_issue_code(
    connection: Connection,
    rules: RuleSet,
    rule: Rule | None,
    *,
    category: str,
    priority: str,
) -> str:
    """The first free code of the rule's (or the defaults') template, counting ``seq`` up."""
    taken = set(connection.execute(sa.select(issues.c.issue_code)).scalars())
    template_owner: Any = rule if rule is not None else rules.defaults
    seq = 1
    while True:
        code = rules.format_code(template_owner, seq, category=category, priority=priority)
        if code not in taken:
            return code
        seq += 1


def _final_statuses(
    connection: Connection, run_ids: list[int], test_ids: Iterable[str]
) -> dict[tuple[int, str], str]:
    """The last attempt's status of each (run, test)."""
    wanted = sorted(set(test_ids))
    final: dict[tuple[int, str], tuple[int, str]] = {}
    for start in range(0, len(wanted), 500):
        rows = connection.execute(
            sa.select(
                test_results.c.run_id,
                test_results.c.test_id,
                test_results.c.attempt,
                test_results.c.status,
            )
            .where(test_results.c.run_id.in_(run_ids))
            .where(test_results.c.test_id.in_(wanted[start : start + 500]))
        )
        for run_id, test_id, attempt, status in rows:
            key = (int(run_id), test_id)
            if key not in final or final[key][0] < attempt:
                final[key] = (attempt, status)
    return {key: status for key, (_, status) in final.items()}


def _branch_is(scope: tuple[str | None] | None) -> sa.ColumnElement[bool]:
    if scope is None:
        return sa.true()
    [branch] = scope
    return issues.c.branch_name.is_(None) if branch is None else issues.c.branch_name == branch


def auto_resolve(
    connection: Connection,
    run: Any,
    *,
    after_runs: int,
    seen: set[int],
    at: datetime,
    branch_scope: tuple[str | None] | None = None,
) -> list[str]:
    """Resolve OPEN issues whose tests ran in the last ``after_runs`` runs of the run's suite
    and branch (this run included) without the issue being seen, at least one of them passing
    in each run (a single-test issue: its test passed). Returns codes.
    ``branch_scope``: only issues whose ``branch_name`` is the one given (None: the default
    branch's issues); no scope: any issue seen on the run's branch."""
    if after_runs < 1:
        return []
    recent = [
        int(run_id)
        for run_id in connection.execute(
            sa.select(test_runs.c.id)
            .where(test_runs.c.suite == run.suite)
            .where(test_runs.c.branch_name == run.branch_name)
            .where(test_runs.c.run_timestamp <= run.run_timestamp)
            .where(test_runs.c.status != "running")
            .order_by(test_runs.c.run_timestamp.desc(), test_runs.c.id.desc())
            .limit(after_runs)
        ).scalars()
    ]
    if len(recent) < after_runs or recent[0] != run.id:
        return []
    candidates = _open_issues_of(connection, run, seen, branch_scope)
    if not candidates:
        return []
    seen_recently = set(
        connection.execute(
            sa.select(issue_occurrences.c.issue_id)
            .where(issue_occurrences.c.run_id.in_(recent))
            .where(issue_occurrences.c.issue_id.in_(list(candidates)))
        ).scalars()
    )
    tests: dict[int, set[str]] = {}
    for issue_id, test_id in connection.execute(
        sa.select(issue_occurrences.c.issue_id, issue_occurrences.c.test_id)
        .where(issue_occurrences.c.issue_id.in_(list(candidates)))
        .where(issue_occurrences.c.test_id.is_not(None))
        .distinct()
    ):
        tests.setdefault(int(issue_id), set()).add(test_id)
    final = _final_statuses(connection, recent, (t for ids in tests.values() for t in ids))
    resolved: list[str] = []
    for issue_id, code in sorted(candidates.items()):
        if issue_id in seen_recently or issue_id not in tests:
            continue
        # Its tests ran without it: one of them at least passed in each run, and none failed
        # with it (it was not seen). A test of a large issue (an outage, a broken fixture)
        # failing later for another reason is that other issue's, and keeps this one open no
        # more.
        ran_per_run = (
            [final[(run_id, t)] for t in tests[issue_id] if (run_id, t) in final]
            for run_id in recent
        )
        if not all(Status.PASS.value in ran for ran in ran_per_run):
            continue
        runs_text = ", ".join(str(r) for r in reversed(recent))
        mark_auto_resolved(
            connection,
            issue_id,
            run,
            f"its tests ran and passed in {after_runs} consecutive runs ({runs_text})",
            at,
        )
        resolved.append(code)
    return resolved


def _open_issues_of(
    connection: Connection,
    run: Any,
    seen: set[int],
    branch_scope: tuple[str | None] | None,
) -> dict[int, str]:
    """The OPEN issues (id -> code) seen on the run's suite and branch, in ``branch_scope``,
    that this run did not see."""
    in_scope = (
        sa.select(issue_occurrences.c.issue_id)
        .join(test_runs, test_runs.c.id == issue_occurrences.c.run_id)
        .where(test_runs.c.suite == run.suite)
        .where(test_runs.c.branch_name == run.branch_name)
    )
    return {
        int(issue_id): code
        for issue_id, code in connection.execute(
            sa.select(issues.c.id, issues.c.issue_code)
            .where(issues.c.status == IssueStatus.OPEN.value)
            .where(issues.c.id.in_(in_scope))
            .where(_branch_is(branch_scope))
        )
        if int(issue_id) not in seen
    }


def find_issue(connection: Connection, code: str) -> Any:
    row = connection.execute(sa.select(issues).where(issues.c.issue_code == code)).first()
    if row is None:
        raise NotFound(f"no issue {code!r}")
    return row


def set_status(
    connection: Connection,
    code: str,
    status: IssueStatus,
    *,
    note: str | None = None,
    actor: str = "user",
    run_id: int | None = None,
) -> None:
    """A person moves an issue; RESOLVED stamps resolved_at, leaving it clears it."""
    issue = find_issue(connection, code)
    now = utcnow()
    values: dict[str, Any] = {"status": status.value, "updated_at": now, "edited_at": now}
    if status is IssueStatus.RESOLVED and issue.status != IssueStatus.RESOLVED.value:
        values.update(resolved_at=now, resolved_run_id=run_id)
    elif status is not IssueStatus.RESOLVED:
        values.update(resolved_at=None, resolved_run_id=None)
    if issue.status == status.value and note is None:
        return
    connection.execute(sa.update(issues).where(issues.c.id == issue.id).values(**values))
    if issue.status != status.value:
        add_event(
            connection,
            issue.id,
            "status",
            run_id=run_id,
            status_from=issue.status,
            status_to=status.value,
            note=note,
            actor=actor,
            at=now,
        )
    elif note:
        add_event(connection, issue.id, "note", note=note, actor=actor, at=now)


def edit_issue(
    connection: Connection, code: str, *, actor: str = "user", **fields: str | None
) -> None:
    """Change text fields (title, description, root_cause, resolution, priority, category)."""
    allowed = {"title", "description", "root_cause", "resolution", "priority", "category"}
    unknown = set(fields) - allowed
    if unknown:
        raise TestledgerError(f"cannot edit {', '.join(sorted(unknown))} of an issue")
    changes = {key: value for key, value in fields.items() if value is not None}
    if "priority" in changes:
        priority = str(changes["priority"]).upper()
        if priority not in PRIORITIES:
            raise TestledgerError(f"unknown priority {changes['priority']!r}: use {PRIORITIES}")
        changes["priority"] = priority
    if not changes:
        return
    issue = find_issue(connection, code)
    now = utcnow()
    connection.execute(
        sa.update(issues)
        .where(issues.c.id == issue.id)
        .values(**changes, updated_at=now, edited_at=now)
    )
    add_event(
        connection,
        issue.id,
        "edited",
        note="; ".join(f"{key}: {value}" for key, value in changes.items()),
        actor=actor,
        at=now,
    )


def link_fingerprint(
    connection: Connection,
    code: str,
    fingerprint: str,
    version: int,
    *,
    actor: str = "user",
    run_id: int | None = None,
    because: str | None = None,
    at: datetime | None = None,
) -> None:
    """Attach later failures with this fingerprint to the issue (e.g. a backfilled one, or
    an issue that detection found by a failure's secondary fingerprint). ``because`` ends
    the ``linked`` event's note; ``run_id`` is the run that caused the link, if any."""
    issue = find_issue(connection, code)
    owner = connection.execute(
        sa.select(issues.c.issue_code)
        .join(issue_fingerprints, issue_fingerprints.c.issue_id == issues.c.id)
        .where(issue_fingerprints.c.fingerprint == fingerprint)
        .where(issue_fingerprints.c.fingerprint_version == version)
    ).scalar()
    if owner == code:
        return
    at = at or utcnow()
    if owner is not None:
        connection.execute(
            sa.update(issue_fingerprints)
            .where(issue_fingerprints.c.fingerprint == fingerprint)
            .where(issue_fingerprints.c.fingerprint_version == version)
            .values(issue_id=issue.id)
        )
    else:
        connection.execute(
            sa.insert(issue_fingerprints).values(
                issue_id=issue.id,
                fingerprint=fingerprint,
                fingerprint_version=version,
                created_at=at,
            )
        )
    note = f"fingerprint {fingerprint} (v{version})"
    note += f" (moved from {owner})" if owner else ""
    note += f": {because}" if because else ""
    add_event(connection, issue.id, "linked", run_id=run_id, note=note, actor=actor, at=at)


def link_rule(connection: Connection, code: str, rule_name: str, *, actor: str = "user") -> None:
    """Attach later failures matching the named rule to the issue."""
    issue = find_issue(connection, code)
    connection.execute(
        sa.update(issues)
        .where(issues.c.rule_name == rule_name)
        .where(issues.c.id != issue.id)
        .values(rule_name=None)
    )
    connection.execute(sa.update(issues).where(issues.c.id == issue.id).values(rule_name=rule_name))
    add_event(connection, issue.id, "linked", note=f"rule {rule_name}", actor=actor)
