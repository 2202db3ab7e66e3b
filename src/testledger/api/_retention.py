"""Retention: removing old runs (``testledger prune`` and ``[tool.testledger.retention]``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from testledger.common.jsondata import JsonData
from testledger.config import RetentionPolicy, parse_age
from testledger.model import utcnow
from testledger.record.ledger import Ledger
from testledger.record.pruning import prune_ledger
from testledger.store.retention import PruneProgress

__all__ = [
    "PruneProgress",
    "PruneReport",
    "RetentionPolicy",
    "parse_age",
    "prune",
]


@dataclass(frozen=True, slots=True)
class PruneReport(JsonData):
    """What a prune removed (with ``dry_run``: would remove). ``cutoff``: runs that started
    before it were old enough (None without ``older_than``). ``aggregate_rows``: rows of
    ``test_daily_stats`` written or added to, keeping the removed results' daily sums.
    ``issue_links_cleared``: links from issues to removed runs set NULL (the issues and their
    first and last seen times stay). ``skipped_runs``: runs left for the next prune because
    the rows they needed stayed locked."""

    dry_run: bool
    keep_runs: int | None
    cutoff: datetime | None
    suite: str | None
    branch: str | None
    keep_aggregates: bool
    runs: int
    results: int
    observations: int
    files: int
    aggregate_rows: int
    issue_links_cleared: int
    skipped_runs: list[str]
    seconds: float


def prune(
    ledger: Ledger,
    policy: RetentionPolicy,
    dry_run: bool = False,
    *,
    progress: Callable[[PruneProgress], None] | None = None,
) -> PruneReport:
    """Remove the finished runs ``policy`` names, with their results, observations and JSON
    files, in small transactions (a recorder writing meanwhile is never held up long); their
    issues stay, and the results' daily sums per test are kept unless
    ``policy.keep_aggregates`` is False. Never a run still running. ``dry_run`` counts only."""
    now = utcnow()
    started = time.perf_counter()
    totals = prune_ledger(
        ledger.engine(create=False),
        ledger.results_dir,
        policy,
        dry_run=dry_run,
        now=now,
        progress=progress,
    )
    return PruneReport(
        dry_run=dry_run,
        keep_runs=policy.keep_runs,
        cutoff=None if policy.older_than is None else now - policy.older_than,
        suite=policy.suite,
        branch=policy.branch,
        keep_aggregates=policy.keep_aggregates,
        runs=totals.runs,
        results=totals.results,
        observations=totals.observations,
        files=totals.files,
        aggregate_rows=len(totals.aggregate_keys),
        issue_links_cleared=totals.issue_links_cleared,
        skipped_runs=totals.skipped_runs,
        seconds=round(time.perf_counter() - started, 3),
    )
