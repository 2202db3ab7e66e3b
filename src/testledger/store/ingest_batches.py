"""What the HTTP ingest API needs of the store beyond the recorder's writes: batch keys (a
retried batch is stored once), a run looked up by id, its expected test count, and the latest
attempt of tests whose results come without one."""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from testledger.errors import NotFound
from testledger.model import RunStatus, utcnow
from testledger.store.engine import dialect_insert
from testledger.store.runs import RunRow
from testledger.store.tables import ingest_batches, test_results, test_runs

__all__ = ["claim_batch", "latest_attempts", "run_by_id", "set_expected_tests"]


def run_by_id(connection: Connection, run_id: int) -> RunRow:
    """The run ``run_id`` as a recorder joins it (``existed`` True). Raises NotFound."""
    row = connection.execute(
        sa.select(test_runs.c.run_key, test_runs.c.status).where(test_runs.c.id == run_id)
    ).first()
    if row is None:
        raise NotFound(f"no run {run_id}: create it first (POST /api/v1/ingest/runs)")
    return RunRow(run_id, str(row.run_key), True, RunStatus(row.status))


def claim_batch(connection: Connection, run_id: int, batch_key: str, result_count: int) -> bool:
    """Note the batch ``batch_key`` of ``run_id`` in the caller's transaction: True when it is
    new (its rows are to be written in the same transaction), False when that batch is stored
    already. Two requests racing with the same key: the second waits on the unique key and
    finds it taken."""
    statement = (
        dialect_insert(connection)(ingest_batches)
        .values(run_id=run_id, batch_key=batch_key, result_count=result_count, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["run_id", "batch_key"])
        .returning(ingest_batches.c.id)
    )
    return connection.execute(statement).first() is not None


def set_expected_tests(connection: Connection, run_id: int, count: int | None) -> None:
    """Note how many tests the run is expected to hold (pytest's collected count), for a live
    run's progress."""
    connection.execute(
        sa.update(test_runs).where(test_runs.c.id == run_id).values(expected_tests=count)
    )


def latest_attempts(connection: Connection, run_id: int, test_ids: Iterable[str]) -> dict[str, int]:
    """The highest attempt the run holds for each of these tests (absent: none yet)."""
    wanted = sorted(set(test_ids))
    found: dict[str, int] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        rows = connection.execute(
            sa.select(test_results.c.test_id, sa.func.max(test_results.c.attempt))
            .where(test_results.c.run_id == run_id)
            .where(test_results.c.test_id.in_(chunk))
            .group_by(test_results.c.test_id)
        )
        found.update((str(test_id), int(attempt)) for test_id, attempt in rows)
    return found
