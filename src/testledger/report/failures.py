"""A run's failures grouped by the issue each was grouped into, with one representative failure
(its message and traceback) per group: what an agent reads first when a run broke.

A failure is a test's last attempt in the run that is FAIL or ERROR (the rule of
``report.runs.show_run``). One query reads only the failures' ids, tests and issues, so that a
run with 10,000 failures is grouped without reading 10,000 messages; the messages and
tracebacks are then read for the representatives of the groups returned, and only for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from testledger.common.jsondata import JsonData
from testledger.errors import ConfigError
from testledger.report.runs import RunSummary, find_run, is_final_attempt
from testledger.store.tables import issue_occurrences, issues, test_results

__all__ = ["FailureGroup", "Representative", "RunFailures", "run_failures"]

_FAILING = ("FAIL", "ERROR")
#: Result ids per IN (...) list: well below SQLite's bound-parameter limit.
_CHUNK = 500


@dataclass(frozen=True, slots=True)
class Representative:
    """The failure that stands for its group: the first of its tests by test id."""

    result_id: int
    test_id: str
    status: str
    attempt: int
    error_type: str | None
    error_message: str | None
    traceback: str | None


@dataclass(frozen=True, slots=True)
class FailureGroup:
    """The run's failures that are occurrences of one issue (``issue_code`` None: failures not
    grouped into an issue, e.g. a run issue detection has not seen). ``tests`` lists the first
    ``tests_per_group`` of its ``failures`` tests by test id."""

    issue_code: str | None
    title: str | None
    status: str | None
    priority: str | None
    category: str | None
    failures: int
    flaky: int
    tests: list[str]
    representative: Representative


@dataclass(frozen=True, slots=True)
class RunFailures(JsonData):
    """Groups by size, largest first (then by issue code, the ungrouped last); at most ``limit``
    of the ``groups_total`` groups."""

    run: RunSummary
    failures: int
    groups_total: int
    groups: list[FailureGroup]


@dataclass(slots=True)
class _Group:
    code: str | None
    failures: int = 0
    flaky: int = 0
    tests: list[tuple[str, int]] | None = None


def _failures(connection: Connection, run_id: int) -> list[Any]:
    """(result id, test id) of each of the run's failing final attempts."""
    return list(
        connection.execute(
            sa.select(test_results.c.id, test_results.c.test_id)
            .where(test_results.c.run_id == run_id)
            .where(test_results.c.status.in_(_FAILING))
            .where(is_final_attempt())
        )
    )


def _issues_of(connection: Connection, run_id: int) -> dict[int, tuple[str, bool]]:
    """Each of the run's results that is an issue's occurrence: its issue code and whether the
    occurrence was flaky. A result in two issues keeps the one with the lower code."""
    found: dict[int, tuple[str, bool]] = {}
    rows = connection.execute(
        sa.select(
            issue_occurrences.c.test_result_id, issues.c.issue_code, issue_occurrences.c.flaky
        )
        .join(issues, issues.c.id == issue_occurrences.c.issue_id)
        .where(issue_occurrences.c.run_id == run_id)
        .where(issue_occurrences.c.test_result_id.is_not(None))
        .order_by(issues.c.issue_code.desc())
    )
    for result_id, code, flaky in rows:
        found[int(result_id)] = (code, bool(flaky))
    return found


def _grouped(connection: Connection, run_id: int) -> dict[str | None, _Group]:
    issue_of = _issues_of(connection, run_id)
    groups: dict[str | None, _Group] = {}
    for result_id, test_id in _failures(connection, run_id):
        code, flaky = issue_of.get(int(result_id), (None, False))
        group = groups.setdefault(code, _Group(code, tests=[]))
        group.failures += 1
        group.flaky += flaky
        assert group.tests is not None
        group.tests.append((test_id, int(result_id)))
    return groups


def _issue_rows(connection: Connection, codes: list[str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for start in range(0, len(codes), _CHUNK):
        rows = connection.execute(
            sa.select(issues.c.issue_code, issues.c.title, issues.c.status, issues.c.priority)
            .add_columns(issues.c.category)
            .where(issues.c.issue_code.in_(codes[start : start + _CHUNK]))
        )
        found.update((row.issue_code, row) for row in rows)
    return found


def _representatives(connection: Connection, result_ids: list[int]) -> dict[int, Representative]:
    found: dict[int, Representative] = {}
    r = test_results
    for start in range(0, len(result_ids), _CHUNK):
        rows = connection.execute(
            sa.select(
                r.c.id,
                r.c.test_id,
                r.c.status,
                r.c.attempt,
                r.c.error_type,
                r.c.error_message,
                r.c.traceback,
            ).where(r.c.id.in_(result_ids[start : start + _CHUNK]))
        )
        for row in rows:
            found[int(row.id)] = Representative(
                result_id=int(row.id),
                test_id=row.test_id,
                status=row.status,
                attempt=int(row.attempt),
                error_type=row.error_type,
                error_message=row.error_message,
                traceback=row.traceback,
            )
    return found


def _group(group: _Group, issue: Any, first: Representative, shown: int) -> FailureGroup:
    assert group.tests is not None
    return FailureGroup(
        issue_code=group.code,
        title=None if issue is None else issue.title,
        status=None if issue is None else issue.status,
        priority=None if issue is None else issue.priority,
        category=None if issue is None else issue.category,
        failures=group.failures,
        flaky=group.flaky,
        tests=[test_id for test_id, _ in group.tests[:shown]],
        representative=first,
    )


def run_failures(
    connection: Connection,
    run: str | int | None = None,
    *,
    limit: int = 20,
    tests_per_group: int = 10,
) -> RunFailures:
    """The failures of ``run`` (default: the latest) grouped by issue: at most ``limit`` groups,
    each listing at most ``tests_per_group`` tests. Raises NotFound, ConfigError."""
    if limit < 1 or tests_per_group < 1:
        raise ConfigError("limit and tests_per_group must be at least 1")
    summary = find_run(connection, run)
    groups = _grouped(connection, summary.id)
    ordered = sorted(groups.values(), key=lambda g: (g.code is None, -g.failures, g.code or ""))
    shown = ordered[:limit]
    for group in shown:
        assert group.tests is not None
        group.tests.sort()
    issue_rows = _issue_rows(connection, [g.code for g in shown if g.code is not None])
    firsts = _representatives(connection, [g.tests[0][1] for g in shown if g.tests])
    return RunFailures(
        run=summary,
        failures=sum(g.failures for g in ordered),
        groups_total=len(ordered),
        groups=[
            _group(g, issue_rows.get(g.code or ""), firsts[g.tests[0][1]], tests_per_group)
            for g in shown
            if g.tests
        ],
    )
