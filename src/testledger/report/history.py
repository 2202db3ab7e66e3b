"""One test's results over time: a line per run, with its attempts, outcome, cost and the issue
its failure was grouped into."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from testledger.common.jsondata import JsonData
from testledger.errors import NotFound, TestledgerError
from testledger.store.tables import issue_occurrences, issues, test_results, test_runs

__all__ = ["AmbiguousTest", "HistoryEntry", "ResultHistory", "resolve_test", "result_history"]

MAX_CANDIDATES = 10


class AmbiguousTest(TestledgerError):
    """A test reference that matches more than one test; ``candidates`` lists (up to ten)."""

    def __init__(self, reference: str, candidates: list[str], more: int) -> None:
        self.candidates = candidates
        listed = ", ".join(candidates) + (f" (and {more} more)" if more else "")
        super().__init__(
            f"{reference!r} matches {len(candidates) + more} tests: {listed}; give the full test id"
        )


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """The test in one run. ``status``, ``watcher_quality`` and the error are those of the last
    attempt; duration, cost and tokens add up every attempt (retries take time and are paid
    for). ``issue_code`` is the issue the failure is an occurrence of (the last attempt's, else
    an earlier attempt's)."""

    run_id: int
    run_key: str
    run_timestamp: datetime
    branch: str
    commit: str | None
    attempts: int
    status: str
    duration_secs: float | None
    cost_usd: float | None
    tokens_total: int | None
    watcher_quality: int | None
    provider: str | None
    model: str | None
    error_type: str | None
    error_message: str | None
    issue_code: str | None


@dataclass(frozen=True, slots=True)
class ResultHistory(JsonData):
    """The test's runs, newest first (at most ``limit``)."""

    test_id: str
    tool_name: str
    variation: str
    entries: list[HistoryEntry]
    limit: int
    branch: str | None


def resolve_test(connection: Connection, reference: str) -> str:
    """The test_id ``reference`` names: the test_id itself; else the one test whose
    ``tool/variation`` it is; else the one test_id containing it (ignoring case). Raises
    AmbiguousTest (listing candidates) or NotFound."""
    exact = connection.execute(
        sa.select(test_results.c.test_id).where(test_results.c.test_id == reference).limit(1)
    ).first()
    if exact is not None:
        return reference
    tool_variation = test_results.c.tool_name + "/" + test_results.c.variation
    lowered = sa.func.lower(test_results.c.test_id)
    for condition in (
        tool_variation == reference,
        lowered.contains(reference.lower(), autoescape=True),
    ):
        found = [
            str(value)
            for value in connection.execute(
                sa.select(test_results.c.test_id)
                .where(condition)
                .group_by(test_results.c.test_id)
                .order_by(test_results.c.test_id)
                .limit(MAX_CANDIDATES + 1)
            ).scalars()
        ]
        if len(found) == 1:
            return found[0]
        if found:
            more = 0
            if len(found) > MAX_CANDIDATES:
                more = (
                    connection.execute(
                        sa.select(sa.func.count(sa.distinct(test_results.c.test_id))).where(
                            condition
                        )
                    ).scalar_one()
                    - MAX_CANDIDATES
                )
            raise AmbiguousTest(reference, found[:MAX_CANDIDATES], int(more))
    raise NotFound(f"no test matches {reference!r}")


def _sum(values: list[Any], digits: int) -> float | None:
    present = [float(value) for value in values if value is not None]
    return round(sum(present), digits) if present else None


def _runs_of_test(
    connection: Connection, test_id: str, limit: int, branch: str | None
) -> list[Any]:
    """The last ``limit`` runs (of a branch) that have a result of the test, newest first."""
    runs_query = (
        sa.select(
            test_runs.c.id,
            test_runs.c.run_key,
            test_runs.c.run_timestamp,
            test_runs.c.branch_name,
            test_runs.c.commit_hash,
        )
        .where(
            sa.select(test_results.c.id)
            .where(test_results.c.run_id == test_runs.c.id)
            .where(test_results.c.test_id == test_id)
            .exists()
        )
        .order_by(test_runs.c.run_timestamp.desc(), test_runs.c.id.desc())
        .limit(limit)
    )
    if branch is not None:
        runs_query = runs_query.where(test_runs.c.branch_name == branch)
    return list(connection.execute(runs_query))


def _attempts_by_run(
    connection: Connection, test_id: str, run_ids: list[int]
) -> dict[int, list[Any]]:
    """The test's results in each of these runs, in attempt order."""
    attempts: dict[int, list[Any]] = {run_id: [] for run_id in run_ids}
    result_rows = connection.execute(
        sa.select(
            test_results.c.id,
            test_results.c.run_id,
            test_results.c.attempt,
            test_results.c.tool_name,
            test_results.c.variation,
            test_results.c.status,
            test_results.c.duration_secs,
            test_results.c.cost_usd,
            test_results.c.tokens_total,
            test_results.c.watcher_quality,
            test_results.c.provider,
            test_results.c.model,
            test_results.c.error_type,
            test_results.c.error_message,
        )
        .where(test_results.c.test_id == test_id)
        .where(test_results.c.run_id.in_(run_ids))
        .order_by(test_results.c.run_id, test_results.c.attempt)
    )
    for row in result_rows:
        attempts[int(row.run_id)].append(row)
    return attempts


def _issue_codes(connection: Connection, result_ids: list[int]) -> dict[int, str]:
    """The issue code of each of these results that is an issue's occurrence; 500 ids per
    query, well below SQLite's bound-parameter limit."""
    issue_of: dict[int, str] = {}
    for start in range(0, len(result_ids), 500):
        issue_of.update(
            (int(result_id), str(code))
            for result_id, code in connection.execute(
                sa.select(issue_occurrences.c.test_result_id, issues.c.issue_code)
                .join(issues, issues.c.id == issue_occurrences.c.issue_id)
                .where(issue_occurrences.c.test_result_id.in_(result_ids[start : start + 500]))
            )
        )
    return issue_of


def _entry(run: Any, rows: list[Any], issue_of: dict[int, str]) -> HistoryEntry:
    """The test in one run, from its attempts there (see :class:`HistoryEntry`)."""
    last = rows[-1]
    tokens = [row.tokens_total for row in rows if row.tokens_total is not None]
    # The last attempt's issue, else the latest earlier attempt's.
    codes = [issue_of[int(row.id)] for row in reversed(rows) if int(row.id) in issue_of]
    return HistoryEntry(
        run_id=int(run.id),
        run_key=run.run_key,
        run_timestamp=run.run_timestamp,
        branch=run.branch_name,
        commit=run.commit_hash,
        attempts=len(rows),
        status=last.status,
        duration_secs=_sum([row.duration_secs for row in rows], 3),
        cost_usd=_sum([row.cost_usd for row in rows], 6),
        tokens_total=sum(int(value) for value in tokens) if tokens else None,
        watcher_quality=last.watcher_quality,
        provider=last.provider,
        model=last.model,
        error_type=last.error_type,
        error_message=last.error_message,
        issue_code=codes[0] if codes else None,
    )


def _latest_names(connection: Connection, test_id: str) -> Any:
    """The test's tool name and variation as its latest result has them (they may change)."""
    return connection.execute(
        sa.select(test_results.c.tool_name, test_results.c.variation)
        .where(test_results.c.test_id == test_id)
        .order_by(test_results.c.id.desc())
        .limit(1)
    ).one()


def result_history(
    connection: Connection,
    test: str,
    *,
    limit: int = 30,
    branch: str | None = None,
) -> ResultHistory:
    """The last ``limit`` runs of the test (of a branch), newest first."""
    test_id = resolve_test(connection, test)
    runs = _runs_of_test(connection, test_id, limit, branch)
    attempts = _attempts_by_run(connection, test_id, [int(run.id) for run in runs])
    result_ids = [int(row.id) for rows in attempts.values() for row in rows]
    issue_of = _issue_codes(connection, result_ids)
    entries = [_entry(run, attempts[int(run.id)], issue_of) for run in runs]
    latest = _latest_names(connection, test_id)
    return ResultHistory(
        test_id=test_id,
        tool_name=latest.tool_name,
        variation=latest.variation,
        entries=entries,
        limit=limit,
        branch=branch,
    )
