"""Issue detection over a run: failures grouped into issues, occurrences, lifecycle.

For every FAIL/ERROR result of the run (every attempt):

1. its fingerprint is computed by the current fingerprint algorithm and stored on the result
   (with the algorithm's version; a hash already stored is never recomputed, so a new algorithm
   never regroups old failures);
2. the first matching pattern rule decides its issue (one issue per rule); otherwise its
   fingerprint does (an issue has one or more fingerprints, each with its version, in
   ``issue_fingerprints``). When no issue has it and a secondary algorithm is selected (the one
   the current algorithm replaced), the failure joins the issue that has its secondary
   fingerprint, and that issue learns the current one: a new algorithm moves issues over as
   they fail again instead of opening a second issue for each. Before the first pass with an
   algorithm, issues that carry other versions' fingerprints are re-fingerprinted once (their
   latest failures hashed with it, ``analyze.issues.refingerprint``), so that a failure of a
   cause an older version split over several issues joins one of them by whatever path;
3. one occurrence is recorded per (issue, run, result), marked flaky when the test passed on a
   later attempt in the run or is flaky by its history.

Then the lifecycle moves, and every move is written to ``issue_events`` with its run:

* a new issue is ``new``; one seen again is ``recurring``;
* a RESOLVED issue seen again is reopened (OPEN) and marked ``regressed``, with the run;
* WONT_FIX is never reopened by detection (its occurrences are still recorded);
* an OPEN issue whose tests ran in the last N runs (default 3) of the same suite and branch,
  at least one of them passing in each and none failing with it, is RESOLVED with
  ``resolved_run_id`` set to this run.

Issues are branch-aware. The default branch is ``[tool.testledger] default_branch``, else
``main``, else ``master`` (the first with runs; a ledger with neither and no setting has no
default branch, and every branch counts as the default, as before branches were told apart).
An issue first seen on another branch is that branch's (``issues.branch_name``); seen on the
default branch, it becomes the default branch's (``branch_name`` NULL). A failure on another
branch of a default-branch issue is recorded as an occurrence but does not move its lifecycle
(no reopening, no "recurring", no resolving by that branch's passing runs); a branch's issue
moves with that branch's runs only.

Detection is idempotent: running it again over the same run changes nothing, because lifecycle
moves only follow occurrences added by the same pass, or the absence of any.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from testledger.analyze.issues.fingerprint import (
    Fingerprint,
    FingerprintAlgorithm,
    current_algorithm,
    secondary_algorithm,
)
from testledger.analyze.issues.lifecycle import (
    DETECTOR,
    IssueStatus,
    add_event,
    auto_resolve,
    link_fingerprint,
    new_issue_code,
)
from testledger.analyze.issues.lookup import IssueKey, known_issues
from testledger.analyze.issues.refingerprint import (
    RESULT_COLUMNS,
    refingerprint_issues,
    result_from_row,
)
from testledger.analyze.issues.rules import Rule, RuleSet
from testledger.analyze.issues.titles import failure_title
from testledger.analyze.regressions.finder import (
    RegressionConfig,
    detect_regressions,
    open_regression_issue_ids,
)
from testledger.common.jsondata import JsonData
from testledger.errors import NotFound
from testledger.model import Status, TestResult, utcnow
from testledger.store.tables import (
    issue_fingerprints,
    issue_occurrences,
    issues,
    test_results,
    test_runs,
)

__all__ = [
    "DEFAULT_BRANCHES",
    "DetectConfig",
    "DetectionReport",
    "default_branch",
    "detect_run",
    "issue_branch",
    "runs_in_order",
]

_DESCRIPTION_LIMIT = 4000


@dataclass(frozen=True, slots=True)
class DetectConfig:
    """``[tool.testledger.detect]``: how many passing runs resolve an issue. (Category and
    priority of failures no rule matches come from the rules file's ``[defaults]``.)
    ``regressions``: metric regressions are looked for too (analyze.regressions) when set.
    ``default_branch``: ``[tool.testledger] default_branch``; None: ``main``, else ``master``
    (see the module docstring)."""

    auto_resolve_after: int = 3
    regressions: RegressionConfig | None = None
    default_branch: str | None = None


#: The default branch when none is configured: the first of these that has runs.
DEFAULT_BRANCHES = ("main", "master")


def default_branch(connection: Connection, configured: str | None) -> str | None:
    """The ledger's default branch: the configured one, else the first of DEFAULT_BRANCHES
    with runs, else None (no default branch: every branch counts as the default)."""
    if configured:
        return configured
    for name in DEFAULT_BRANCHES:
        found = connection.execute(
            sa.select(test_runs.c.id).where(test_runs.c.branch_name == name).limit(1)
        ).first()
        if found is not None:
            return name
    return None


def issue_branch(run_branch: str, default: str | None) -> str | None:
    """The ``issues.branch_name`` of an issue first seen on ``run_branch``: None on the default
    branch (or when there is none)."""
    return None if default is None or run_branch == default else run_branch


@dataclass(slots=True)
class DetectionReport(JsonData):
    run_id: int
    fingerprinted: int = 0
    occurrences_added: int = 0
    flaky_occurrences: int = 0
    new: list[str] = field(default_factory=list)
    recurring: list[str] = field(default_factory=list)
    regressed: list[str] = field(default_factory=list)
    auto_resolved: list[str] = field(default_factory=list)
    wont_fix_seen: list[str] = field(default_factory=list)
    #: Issues re-fingerprinted under the current algorithm before this run's failures were
    #: grouped (the first detection with it: analyze.issues.refingerprint).
    refingerprinted: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Failure:
    result_id: int
    result: TestResult
    fingerprint: str
    fingerprint_version: int
    rule: Rule | None
    flaky: bool = False


_FAILURE_COLUMNS = (
    *RESULT_COLUMNS,
    test_results.c.fingerprint,
    test_results.c.fingerprint_version,
)


_CHUNK = 5000


def _failure_chunks(
    connection: Connection, run_id: int, rules: RuleSet, algorithm: FingerprintAlgorithm
) -> Iterator[list[_Failure]]:
    """The run's failures, a chunk at a time (by id), so that memory does not grow with the
    number of failures in a run."""
    after = 0
    while True:
        rows = connection.execute(
            sa.select(*_FAILURE_COLUMNS)
            .where(test_results.c.run_id == run_id)
            .where(test_results.c.status.in_((Status.FAIL.value, Status.ERROR.value)))
            .where(test_results.c.id > after)
            .order_by(test_results.c.id)
            .limit(_CHUNK)
        ).all()
        if not rows:
            return
        after = int(rows[-1].id)
        yield _failures(connection, rows, rules, algorithm)


def _failures(
    connection: Connection, rows: Sequence[Any], rules: RuleSet, algorithm: FingerprintAlgorithm
) -> list[_Failure]:
    failures: list[_Failure] = []
    computed: list[dict[str, Any]] = []
    for row in rows:
        result = result_from_row(row)
        if row.fingerprint is not None and row.fingerprint_version is not None:
            hash_, version = row.fingerprint, int(row.fingerprint_version)
        else:
            made: Fingerprint = algorithm.fingerprint(result)
            hash_, version = made.hash, made.version
            computed.append({"rid": row.id, "fp": hash_, "fpv": version})
        failures.append(_Failure(row.id, result, hash_, version, rules.match(result)))
    if computed:
        connection.execute(
            sa.update(test_results)
            .where(test_results.c.id == sa.bindparam("rid"))
            .values(fingerprint=sa.bindparam("fp"), fingerprint_version=sa.bindparam("fpv")),
            computed,
        )
    return failures


def _mark_flaky(connection: Connection, run_id: int, suite: str, failures: list[_Failure]) -> None:
    """A failure is flaky when its test passed on a later attempt in this run, or when the
    test's history says it is flaky (analyze.flaky)."""
    if not failures:
        return
    test_ids = sorted({f.result.test_id for f in failures})
    passed_later = {
        (test_id, attempt)
        for start in range(0, len(test_ids), 500)
        for test_id, attempt in connection.execute(
            sa.select(test_results.c.test_id, test_results.c.attempt)
            .where(test_results.c.run_id == run_id)
            .where(test_results.c.status == Status.PASS.value)
            .where(test_results.c.test_id.in_(test_ids[start : start + 500]))
        )
    }
    last_pass: dict[str, int] = {}
    for test_id, attempt in passed_later:
        last_pass[test_id] = max(attempt, last_pass.get(test_id, 0))
    from testledger.analyze.flaky.finder import flaky_test_ids

    historic = flaky_test_ids(connection, {f.result.test_id for f in failures}, suite=suite)
    for failure in failures:
        test_id = failure.result.test_id
        retried_ok = last_pass.get(test_id, 0) > (failure.result.attempt or 1)
        failure.flaky = retried_ok or test_id in historic


def _title(failure: _Failure) -> str:
    if failure.rule is not None and failure.rule.title:
        return failure.rule.title
    result = failure.result
    return failure_title(
        result.error_type,
        result.error_message,
        result.traceback,
        f"{result.test_id} {result.status.value}",
    )


def _description(failure: _Failure, run: Any) -> str:
    result = failure.result
    where = f"{run.suite}/{run.branch_name}" + (f" @ {run.commit_hash}" if run.commit_hash else "")
    text = (
        f"First seen in run {run.id} ({where}) in {result.test_id} "
        f"({result.status.value}, attempt {result.attempt}).\n\n{result.error_message or ''}"
    ).strip()
    return text[:_DESCRIPTION_LIMIT]


def _issue_by_secondary(
    connection: Connection,
    failure: _Failure,
    secondary: FingerprintAlgorithm,
    run: Any,
    now: datetime,
) -> int | None:
    """The issue that has the failure's secondary fingerprint, linked to its current one so
    that the failures after it match directly; None when no issue has it."""
    if failure.fingerprint_version == secondary.version:
        return None  # its stored fingerprint is a secondary one, already looked up
    old = secondary.fingerprint(failure.result)
    found = connection.execute(
        sa.select(issues.c.id, issues.c.issue_code)
        .join(issue_fingerprints, issue_fingerprints.c.issue_id == issues.c.id)
        .where(issue_fingerprints.c.fingerprint == old.hash)
        .where(issue_fingerprints.c.fingerprint_version == old.version)
    ).first()
    if found is None:
        return None
    link_fingerprint(
        connection,
        found.issue_code,
        failure.fingerprint,
        failure.fingerprint_version,
        actor=DETECTOR,
        run_id=run.id,
        because=f"{failure.result.test_id} has its v{old.version} fingerprint {old.hash[:12]}",
        at=now,
    )
    return int(found.id)


def _issue_key(failure: _Failure) -> IssueKey:
    if failure.rule is not None:
        return ("rule", failure.rule.name, 0)
    return ("fingerprint", failure.fingerprint, failure.fingerprint_version)


def _issue_for(
    connection: Connection,
    failure: _Failure,
    run: Any,
    rules: RuleSet,
    secondary: FingerprintAlgorithm | None,
    now: datetime,
    report: DetectionReport,
    branch: str | None,
) -> int:
    """The id of the issue a failure belongs to, creating the issue when it is new (with
    ``branch`` as its ``branch_name``)."""
    if failure.rule is not None:
        found = connection.execute(
            sa.select(issues.c.id)
            .where(issues.c.rule_name == failure.rule.name)
            .order_by(issues.c.id)
            .limit(1)
        ).scalar()
        if found is not None:
            return int(found)
    else:
        found = connection.execute(
            sa.select(issue_fingerprints.c.issue_id)
            .where(issue_fingerprints.c.fingerprint == failure.fingerprint)
            .where(issue_fingerprints.c.fingerprint_version == failure.fingerprint_version)
        ).scalar()
        if found is None and secondary is not None:
            found = _issue_by_secondary(connection, failure, secondary, run, now)
        if found is not None:
            return int(found)
    rule = failure.rule
    category = rule.category if rule else rules.defaults.category
    priority = rule.priority if rule else rules.defaults.priority
    code = new_issue_code(connection, rules, rule, category=category, priority=priority)
    issue_id = connection.execute(
        sa.insert(issues)
        .values(
            issue_code=code,
            title=_title(failure),
            description=_description(failure, run),
            category=category,
            priority=priority,
            status=IssueStatus.OPEN.value,
            affected_tools=[],
            first_detected_run_id=run.id,
            first_seen_at=run.run_timestamp,
            branch_name=branch,
            created_at=now,
            updated_at=now,
            origin="detected",
            rule_name=rule.name if rule else None,
            lifecycle="new",
        )
        .returning(issues.c.id)
    ).scalar_one()
    if rule is None:
        connection.execute(
            sa.insert(issue_fingerprints).values(
                issue_id=issue_id,
                fingerprint=failure.fingerprint,
                fingerprint_version=failure.fingerprint_version,
                created_at=now,
            )
        )
    why = f"rule {rule.name}" if rule else f"fingerprint {failure.fingerprint[:12]}"
    add_event(
        connection,
        issue_id,
        "created",
        run_id=run.id,
        status_to=IssueStatus.OPEN.value,
        note=f"new issue from {failure.result.test_id} ({why})",
        at=now,
    )
    report.new.append(code)
    return int(issue_id)


def _record_occurrences(
    connection: Connection, run: Any, grouped: dict[int, list[_Failure]], now: datetime
) -> dict[int, list[_Failure]]:
    """Insert missing occurrences; returns, per issue, the failures newly recorded."""
    result_ids = sorted({f.result_id for items in grouped.values() for f in items})
    existing = {
        (issue_id, result_id)
        for start in range(0, len(result_ids), 500)
        for issue_id, result_id in connection.execute(
            sa.select(issue_occurrences.c.issue_id, issue_occurrences.c.test_result_id)
            .where(issue_occurrences.c.run_id == run.id)
            .where(issue_occurrences.c.test_result_id.in_(result_ids[start : start + 500]))
        )
    }
    added: dict[int, list[_Failure]] = {}
    rows: list[dict[str, Any]] = []
    priorities = dict(
        connection.execute(
            sa.select(issues.c.id, issues.c.priority).where(issues.c.id.in_(list(grouped)))
        ).all()
    )
    for issue_id, failures in grouped.items():
        for failure in failures:
            if (issue_id, failure.result_id) in existing:
                continue
            rows.append(
                {
                    "issue_id": issue_id,
                    "run_id": run.id,
                    "test_result_id": failure.result_id,
                    "severity": str(priorities.get(issue_id, "")).lower() or None,
                    "test_id": failure.result.test_id,
                    "fingerprint": failure.fingerprint,
                    "flaky": failure.flaky,
                    "created_at": now,
                }
            )
            added.setdefault(issue_id, []).append(failure)
    if rows:
        connection.execute(sa.insert(issue_occurrences), rows)
    return added


@dataclass(slots=True)
class _Seen:
    """What one detection pass newly recorded of an issue."""

    first_test_id: str
    tools: set[str] = field(default_factory=set)


def _update_seen_issues(
    connection: Connection,
    run: Any,
    added: dict[int, _Seen],
    now: datetime,
    report: DetectionReport,
    branch: str | None,
) -> None:
    """Move the lifecycle of the issues this run saw. ``branch``: the run's branch as an issue's
    ``branch_name`` (None: the default branch)."""
    if not added:
        return
    rows = connection.execute(sa.select(issues).where(issues.c.id.in_(list(added)))).all()
    for issue in rows:
        seen = added[issue.id]
        tools = sorted(set(issue.affected_tools or []) | seen.tools)
        values: dict[str, Any] = {"affected_tools": tools, "updated_at": now}
        if branch is not None and issue.branch_name is None:
            # The default branch's issue failing on another branch: an occurrence only.
            connection.execute(sa.update(issues).where(issues.c.id == issue.id).values(**values))
            continue
        if branch is None and issue.branch_name is not None:
            values["branch_name"] = None  # seen on the default branch: the default branch's
            add_event(
                connection,
                issue.id,
                "branch",
                run_id=run.id,
                note=f"seen on the default branch in {seen.first_test_id}: no longer only "
                f"{issue.branch_name}'s",
                at=now,
            )
        newer = issue.last_seen_at is None or issue.last_seen_at <= run.run_timestamp
        if newer:
            values.update(last_seen_run_id=run.id, last_seen_at=run.run_timestamp)
        if issue.first_detected_run_id is None and issue.first_seen_at is None:
            values.update(first_detected_run_id=run.id, first_seen_at=run.run_timestamp)
        if issue.status == IssueStatus.RESOLVED.value and newer:
            values.update(
                status=IssueStatus.OPEN.value,
                lifecycle="regressed",
                regressed_run_id=run.id,
                resolved_at=None,
                resolved_run_id=None,
            )
            resolved_in = (
                f" (resolved in run {issue.resolved_run_id})" if issue.resolved_run_id else ""
            )
            add_event(
                connection,
                issue.id,
                "regressed",
                run_id=run.id,
                status_from=IssueStatus.RESOLVED.value,
                status_to=IssueStatus.OPEN.value,
                note=f"seen again in {seen.first_test_id}{resolved_in}",
                at=now,
            )
            report.regressed.append(issue.issue_code)
        elif issue.status == IssueStatus.WONT_FIX.value:
            report.wont_fix_seen.append(issue.issue_code)
        elif issue.first_detected_run_id != run.id and issue.issue_code not in report.new:
            if issue.lifecycle != "regressed" or issue.regressed_run_id != run.id:
                values["lifecycle"] = "recurring"
            report.recurring.append(issue.issue_code)
        connection.execute(sa.update(issues).where(issues.c.id == issue.id).values(**values))


def detect_run(
    connection: Connection,
    run_id: int,
    *,
    rules: RuleSet,
    config: DetectConfig | None = None,
    now: datetime | None = None,
) -> DetectionReport:
    """Detect issues in one run (see the module docstring). Call inside a transaction."""
    config = config or DetectConfig()
    now = now or utcnow()
    run = connection.execute(sa.select(test_runs).where(test_runs.c.id == run_id)).first()
    if run is None:
        raise NotFound(f"no run with id {run_id}")
    report = DetectionReport(run_id)
    default = default_branch(connection, config.default_branch)
    branch = issue_branch(run.branch_name, default)
    seen_issues: set[int] = set()
    added: dict[int, _Seen] = {}
    # One selection for the whole pass, whatever is selected meanwhile.
    current, secondary = current_algorithm(), secondary_algorithm()
    if secondary is not None:
        # Moving issues over: those with other versions' fingerprints get the current
        # version's first (once), so that a cause an older version split into several issues
        # opens no further one. (No secondary: the selection regroups from scratch.)
        refingerprinted = refingerprint_issues(connection, current, at=now, run_id=run_id)
        report.refingerprinted = refingerprinted.issues
    for failures in _failure_chunks(connection, run_id, rules, current):
        report.fingerprinted += len(failures)
        _mark_flaky(connection, run_id, run.suite, failures)
        grouped: dict[int, list[_Failure]] = {}
        known = known_issues(connection, map(_issue_key, failures))
        for failure in failures:
            key = _issue_key(failure)
            issue_id = known.get(key)
            if issue_id is None:  # by the secondary fingerprint, or a new issue
                issue_id = _issue_for(
                    connection, failure, run, rules, secondary, now, report, branch
                )
                known[key] = issue_id
            grouped.setdefault(issue_id, []).append(failure)
        seen_issues.update(grouped)
        for issue_id, new in _record_occurrences(connection, run, grouped, now).items():
            report.occurrences_added += len(new)
            report.flaky_occurrences += sum(f.flaky for f in new)
            seen = added.setdefault(issue_id, _Seen(new[0].result.test_id))
            seen.tools.update(f.result.tool_name for f in new)
    _update_seen_issues(connection, run, added, now, report, branch)
    # Regression issues resolve when their metric is back, not when their test passes.
    not_failures = open_regression_issue_ids(connection)
    report.auto_resolved = auto_resolve(
        connection,
        run,
        after_runs=config.auto_resolve_after,
        seen=seen_issues | not_failures,
        at=now,
        # Only the issues of this run's branch (None: the default branch's): another branch's
        # passing runs say nothing of them. No default branch: every issue, as before.
        branch_scope=None if default is None else (branch,),
    )
    if config.regressions is not None and config.regressions.detect:
        moved = detect_regressions(
            connection, run_id, rules=rules, config=config.regressions, now=now
        )
        report.new += moved.opened
        report.regressed += moved.reopened
        report.auto_resolved += moved.resolved
    connection.execute(sa.update(test_runs).where(test_runs.c.id == run_id).values(detected_at=now))
    return report


def runs_in_order(connection: Connection, run_ids: Iterable[int] | None = None) -> list[int]:
    """Run ids oldest first (all runs, or the given ones), the order detection must follow."""
    query = sa.select(test_runs.c.id).order_by(test_runs.c.run_timestamp, test_runs.c.id)
    if run_ids is not None:
        query = query.where(test_runs.c.id.in_(list(run_ids)))
    return [int(run_id) for run_id in connection.execute(query).scalars()]
