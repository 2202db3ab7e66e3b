"""Scripted histories: runs recorded at chosen times with chosen outcomes.

The report and analyze tests each script a small history; these builders hold what they all
repeated: a run started ``index`` steps after a fixed start, with the environment left unread
(so branch and commit are exactly the ones given), and a result named ``tool/variation`` whose
failure carries an error.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa

from testledger import Ledger
from testledger.record.runner import ResultRef, Run
from testledger.store.tables import test_runs

__all__ = ["FAILING", "HOUR", "START", "pin_run_durations", "record_test", "scripted_run"]

START = datetime(2025, 10, 1, 9, 0, tzinfo=timezone.utc)
HOUR = timedelta(hours=1)
FAILING = ("FAIL", "ERROR")


def scripted_run(
    ledger: Ledger,
    index: int,
    *,
    start: datetime = START,
    step: timedelta = HOUR,
    branch: str = "main",
    suite: str | None = "s",
    commit: str | None = None,
    run_key: str | None = None,
    **options: Any,
) -> Run:
    """Start run number ``index`` of a history, ``index`` steps after ``start`` (``suite`` None:
    the ledger's configured suite). ``options`` go to ``Ledger.start_run``
    (``detect_issues=False``, ``watcher_model=...``)."""
    return ledger.start_run(
        branch=branch,
        commit=commit,
        suite=suite,
        run_key=run_key,
        started_at=start + index * step,
        detect_environment=False,
        **options,
    )


def record_test(
    run: Run,
    test_id: str,
    status: str,
    *,
    error_type: str | None = "AssertionError",
    error_message: str | None = None,
    **fields: Any,
) -> ResultRef:
    """Record ``test_id`` (``tool/variation``) with ``status``; a failing one gets ``error_type``
    and ``error_message`` (default: ``"<test_id> went wrong"``), a passing one no error.
    ``fields`` go to ``Run.record`` as they are."""
    tool, variation = test_id.split("/", 1)
    failing = status in FAILING
    return run.record(
        test_id=test_id,
        tool_name=tool,
        variation=variation,
        status=status,
        error_type=error_type if failing else None,
        error_message=(error_message or f"{test_id} went wrong") if failing else None,
        **fields,
    )


def pin_run_durations(ledger: Ledger, seconds: dict[str, float]) -> None:
    """Set the duration of the runs keyed in ``seconds``: a run's duration is its wall clock,
    which a scripted run does not control (``total_duration_secs`` as the runner rounds it)."""
    with ledger.engine().begin() as conn:
        for key, secs in seconds.items():
            conn.execute(
                sa.update(test_runs)
                .where(test_runs.c.run_key == key)
                .values(duration_secs=secs, total_duration_secs=round(secs))
            )


def record_once(
    url: str, tmp_path_factory: pytest.TempPathFactory, record: Callable[[Ledger], object]
) -> str:
    """``record`` a module's scenario into its ``module_db_url`` (JSON files in a temporary
    folder), closing the ledger so that tests can copy the database; returns the URL."""
    with Ledger(url, results_dir=tmp_path_factory.mktemp("results")) as ledger:
        record(ledger)
    return url
