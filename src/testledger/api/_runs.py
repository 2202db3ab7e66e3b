"""Runs: the list, one run in detail."""

from __future__ import annotations

from datetime import datetime

from testledger.record.ledger import Ledger
from testledger.report import runs

__all__ = ["list_runs", "show_run"]


def list_runs(
    ledger: Ledger,
    *,
    branch: str | None = None,
    suite: str | None = None,
    limit: int = 20,
    status: str | None = None,
    since: datetime | None = None,
) -> list[runs.RunSummary]:
    """Recorded runs, newest first, optionally of one branch and suite, in one state
    (``running``, ``finished``, ``aborted``) and started at or after ``since`` (naive: UTC).
    Raises ConfigError for an unknown status."""
    with ledger.engine(create=False).connect() as connection:
        return runs.list_runs(
            connection, branch=branch, suite=suite, limit=limit, status=status, since=since
        )


def show_run(
    ledger: Ledger,
    run: str | int | None = None,
    *,
    branch: str | None = None,
    suite: str | None = None,
) -> runs.RunDetail:
    """One run (an id or run key; default the latest, of a branch and suite when given) with
    its failing tests. Raises NotFound."""
    with ledger.engine(create=False).connect() as connection:
        return runs.show_run(connection, run, branch=branch, suite=suite)
